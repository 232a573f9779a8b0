import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Faulty sites through the run's toxiproxy server (started by test/setup/global-setup.ts, API at
 * CLOVER_TOXIPROXY_URL). Each call makes its own uniquely named proxies on ports the OS picks, so test
 * files running in parallel never share one.
 */
export interface ProxiedSites {
  /** A sites file identical to CLOVER_SITES except that the named sites' endpoints go through this file's own proxies. */
  sitesFile: string;
  /** Holds a site: a bandwidth toxic of ~1 KB/s both ways, so requests in flight stall but nothing is lost. */
  hold(site: string): Promise<void>;
  /** Removes the hold: traffic flows at full speed again. */
  release(site: string): Promise<void>;
  /** Adds a toxic (toxiproxy's JSON: type, stream, toxicity, attributes); returns its name. */
  addToxic(site: string, toxic: { type: string; stream?: 'upstream' | 'downstream'; toxicity?: number; attributes: Record<string, number> }): Promise<string>;
  removeToxic(site: string, name: string): Promise<void>;
  /** Removes every toxic of this file's proxies. */
  clear(): Promise<void>;
  /** Deletes this file's proxies. */
  close(): Promise<void>;
}

type SitesJson = { sites: Record<string, { endpoint: string } & Record<string, unknown>> };

function apiUrl(): string {
  const url = process.env.CLOVER_TOXIPROXY_URL;
  if (!url) throw new Error('CLOVER_TOXIPROXY_URL is not set: the toxiproxy server is started by test/setup/global-setup.ts');
  return url;
}

async function api<T = unknown>(method: string, path: string, body?: unknown, okStatus: number[] = []): Promise<T | undefined> {
  const res = await fetch(`${apiUrl()}${path}`, {
    method,
    headers: body === undefined ? undefined : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (!res.ok && !okStatus.includes(res.status)) throw new Error(`toxiproxy ${method} ${path}: HTTP ${res.status} ${text}`);
  return text && res.ok ? (JSON.parse(text) as T) : undefined;
}

/** Proxies for `sites` of `baseSitesFile` (default: the run's CLOVER_SITES). */
export async function proxiedSites(sites: string[], baseSitesFile = process.env.CLOVER_SITES!): Promise<ProxiedSites> {
  const base = JSON.parse(readFileSync(baseSitesFile, 'utf8')) as SitesJson;
  const tag = randomBytes(4).toString('hex');
  const proxies = new Map<string, string>(); // site -> proxy name
  const out: SitesJson = JSON.parse(JSON.stringify(base)) as SitesJson;
  const created: string[] = [];
  try {
    for (const site of sites) {
      const cfg = base.sites[site];
      if (!cfg) throw new Error(`site ${site} is not in ${baseSitesFile}`);
      const upstream = new URL(cfg.endpoint);
      const name = `clover-${tag}-${site}`;
      // Port 0: toxiproxy binds a port the OS picks and reports it, so no two proxies can race for one.
      const p = await api<{ listen: string }>('POST', '/proxies', { name, listen: '127.0.0.1:0', upstream: `${upstream.hostname}:${upstream.port}`, enabled: true });
      created.push(name);
      proxies.set(site, name);
      const port = Number(p!.listen.slice(p!.listen.lastIndexOf(':') + 1));
      out.sites[site] = { ...cfg, endpoint: `${upstream.protocol}//127.0.0.1:${port}` };
    }
  } catch (err) {
    for (const name of created) await api('DELETE', `/proxies/${name}`, undefined, [404]).catch(() => undefined);
    throw err;
  }
  const sitesFile = join(process.env.CLOVER_TEST_STACK_DIR!, `sites-proxied-${tag}.json`);
  writeFileSync(sitesFile, JSON.stringify(out, null, 2) + '\n', { mode: 0o600 });

  const proxyOf = (site: string): string => {
    const name = proxies.get(site);
    if (!name) throw new Error(`site ${site} is not proxied here (proxied: ${[...proxies.keys()].join(', ')})`);
    return name;
  };
  let seq = 0;
  const addToxic: ProxiedSites['addToxic'] = async (site, toxic) => {
    const name = `${toxic.type}-${toxic.stream ?? 'downstream'}-${++seq}`;
    await api('POST', `/proxies/${proxyOf(site)}/toxics`, { name, stream: 'downstream', toxicity: 1, ...toxic });
    return name;
  };
  const removeToxic = async (site: string, name: string) => {
    await api('DELETE', `/proxies/${proxyOf(site)}/toxics/${name}`, undefined, [404]);
  };
  return {
    sitesFile,
    async hold(site) {
      for (const stream of ['upstream', 'downstream'] as const) {
        await api('POST', `/proxies/${proxyOf(site)}/toxics`, { name: `hold-${stream}`, type: 'bandwidth', stream, toxicity: 1, attributes: { rate: 1 } });
      }
    },
    async release(site) {
      for (const stream of ['upstream', 'downstream']) await removeToxic(site, `hold-${stream}`);
    },
    addToxic,
    removeToxic,
    async clear() {
      for (const name of proxies.values()) {
        const toxics = (await api<{ name: string }[]>('GET', `/proxies/${name}/toxics`)) ?? [];
        for (const t of toxics) await api('DELETE', `/proxies/${name}/toxics/${t.name}`, undefined, [404]);
      }
    },
    async close() {
      for (const name of proxies.values()) await api('DELETE', `/proxies/${name}`, undefined, [404]);
      proxies.clear();
    },
  };
}

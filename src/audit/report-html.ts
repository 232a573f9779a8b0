import { USER_STATES, type ResidencyReport } from './report';

/** Users shown in the HTML page's table, at most (the JSON report has them all). */
export const HTML_USERS_SHOWN = 500;

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

const EEA_COLOUR = '#1f7a4d';
const OUTSIDE_COLOUR = '#c0392b';
const STATE_COLOURS: Record<string, string> = { migrated: '#2e86c1', 'cut over': EEA_COLOUR, 'rolled back': '#8e44ad', 'no manifest': '#7f8c8d' };

export function headline(r: ResidencyReport): string {
  return `${r.totals.eeaOnly} of ${r.totals.users} users' data is in the EEA only; ${r.totals.outsideEEA} user${r.totals.outsideEEA === 1 ? '' : 's'} still ha${r.totals.outsideEEA === 1 ? 's' : 've'} data outside the EEA`;
}

function barChart(rows: { label: string; value: number; colour: string; text: string }[], title: string): string {
  const rowH = 28;
  const labelW = 150;
  const barW = 300;
  const textW = 110;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const h = rows.length * rowH + 8;
  const bars = rows.map((r, i) => {
    const y = 4 + i * rowH;
    const w = r.value > 0 ? Math.max(2, Math.round((r.value / max) * barW)) : 0;
    return `<text x="${labelW - 8}" y="${y + 18}" text-anchor="end">${escapeHtml(r.label)}</text>` +
      `<rect x="${labelW}" y="${y + 4}" width="${w}" height="${rowH - 10}" fill="${r.colour}" rx="3"/>` +
      `<text x="${labelW + w + 6}" y="${y + 18}">${escapeHtml(r.text)}</text>`;
  });
  return `<svg role="img" aria-label="${escapeHtml(title)}" width="${labelW + barW + textW}" height="${h}" viewBox="0 0 ${labelW + barW + textW} ${h}" xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="13">${bars.join('')}</svg>`;
}

/** One self-contained page (inline CSS and SVG, nothing fetched) an overseer can open and read at a glance. */
export function renderReportHtml(r: ResidencyReport): string {
  const t = r.totals;
  const siteChart = barChart(
    r.sites.map((s) => ({ label: s.name, value: s.bytes, colour: s.jurisdiction === 'EEA' ? EEA_COLOUR : OUTSIDE_COLOUR, text: `${humanBytes(s.bytes)}` })),
    'bytes per site',
  );
  const stateChart = barChart(
    USER_STATES.map((s) => ({ label: s, value: t.byState[s], colour: STATE_COLOURS[s]!, text: String(t.byState[s]) })),
    'users per state',
  );
  const siteRows = r.sites.map((s) => `<tr><td>${escapeHtml(s.name)}</td><td>${escapeHtml(s.region)}</td><td>${escapeHtml(s.country)}</td>` +
    `<td><span class="tag ${s.jurisdiction === 'EEA' ? 'eea' : 'out'}">${escapeHtml(s.jurisdiction)}</span></td><td>${escapeHtml(s.role)}</td>` +
    `<td class="n">${s.users}</td><td class="n">${s.objects}</td><td class="n">${escapeHtml(humanBytes(s.bytes))}</td></tr>`).join('\n');
  const shown = r.users.slice(0, HTML_USERS_SHOWN);
  const userRows = shown.map((u) => {
    const o = u.stillOutsideEEA;
    const outside = o.objects > 0
      ? `<span class="tag out">${o.objects} object(s), ${escapeHtml(humanBytes(o.bytes))} in ${escapeHtml(o.sites.join(', '))}</span><div class="keys">${o.keys.map(escapeHtml).join('<br>')}${o.objects > o.keys.length ? '<br>…' : ''}</div>`
      : u.errors?.length ? `<span class="tag unk">unknown: ${escapeHtml(u.errors.join('; '))}</span>` : '<span class="tag eea">none</span>';
    return `<tr><td>${escapeHtml(u.userId)}</td><td>${escapeHtml(u.country ?? '')}</td><td>${escapeHtml(u.state)}</td><td>${escapeHtml(u.targetSite ?? '—')}</td>` +
      `<td class="n">${u.generation ?? '—'}</td><td class="n">${u.objects}</td><td class="n">${escapeHtml(humanBytes(u.bytes))}</td>` +
      `<td class="h">${escapeHtml(u.sha256Total ?? '—')}</td><td>${outside}</td></tr>`;
  }).join('\n');
  const more = r.users.length > shown.length ? `<p class="note">Showing the first ${shown.length} of ${r.users.length} users; <code>clover report ${escapeHtml(r.migrationId)} --json</code> lists every one.</p>` : '';
  const good = t.outsideEEA === 0 && t.byState['no manifest'] === 0 && t.errors === 0;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Residency report: ${escapeHtml(r.migrationId)}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px 32px; color: #1b1f23; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #586069; margin: 0 0 16px; }
.headline { font-size: 18px; padding: 12px 16px; border-radius: 6px; border-left: 6px solid ${good ? EEA_COLOUR : OUTSIDE_COLOUR}; background: ${good ? '#eaf6ef' : '#fbeeec'}; }
.cards { display: flex; gap: 12px; margin: 16px 0; flex-wrap: wrap; }
.card { border: 1px solid #e1e4e8; border-radius: 6px; padding: 10px 14px; min-width: 140px; }
.card b { display: block; font-size: 20px; }
.charts { display: flex; gap: 32px; flex-wrap: wrap; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #e1e4e8; padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.h { font-family: ui-monospace, monospace; font-size: 11px; max-width: 160px; word-break: break-all; }
.tag { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px; color: #fff; }
.tag.eea { background: ${EEA_COLOUR}; } .tag.out { background: ${OUTSIDE_COLOUR}; } .tag.unk { background: #b7950b; }
.keys { font-family: ui-monospace, monospace; font-size: 11px; color: #586069; margin-top: 3px; }
.legend span { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin: 0 4px 0 12px; vertical-align: -1px; }
.note { color: #586069; font-size: 13px; }
</style></head>
<body>
<h1>Residency report: ${escapeHtml(r.migrationId)}</h1>
<p class="sub">Generated ${escapeHtml(r.generatedAt)} from storage alone (user list, manifests, a listing of every user's prefix in every source: ${escapeHtml(r.sources.join(', ') || 'none')}).</p>
<p class="headline">${escapeHtml(headline(r))}.</p>
<div class="cards">
<div class="card"><b>${t.users}</b>users in the plan</div>
<div class="card"><b>${escapeHtml(humanBytes(t.eeaBytes))}</b>${t.eeaObjects} object(s) in EEA sites</div>
<div class="card"><b>${escapeHtml(humanBytes(t.outsideBytes))}</b>${t.outsideObjects} object(s) still outside the EEA</div>
<div class="card"><b>${t.byState['no manifest']}</b>users with no manifest</div>
${t.errors > 0 ? `<div class="card"><b>${t.errors}</b>listings failed (unknown)</div>` : ''}
</div>
<div class="charts">
<div><h2>Bytes per site</h2><p class="legend"><span style="background:${EEA_COLOUR}"></span>EEA<span style="background:${OUTSIDE_COLOUR}"></span>outside the EEA</p>${siteChart}</div>
<div><h2>Users per state</h2>${stateChart}</div>
</div>
<h2>Sites</h2>
<table><thead><tr><th>site</th><th>region</th><th>country</th><th>jurisdiction</th><th>role</th><th>users</th><th>objects</th><th>bytes</th></tr></thead>
<tbody>
${siteRows}
</tbody></table>
<h2>Users</h2>
${more}
<table><thead><tr><th>user</th><th>country</th><th>state</th><th>EU site</th><th>generation</th><th>objects</th><th>bytes</th><th>SHA-256 total</th><th>still outside the EEA</th></tr></thead>
<tbody>
${userRows}
</tbody></table>
${more}
<p class="note">SHA-256 total: the SHA-256 of the newest manifest's entries sorted by key, one line each: <code>key</code>, a tab, <code>sha256</code>, a newline. "Still outside the EEA" is what a listing of the user's prefix in every source found when this report was made.</p>
</body></html>
`;
}

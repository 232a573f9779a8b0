import { createHash } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import type { Sites } from '../config/sites';
import type { UserRow } from '../domain/routing';
import { createSiteClients, destroySiteClients } from '../storage/clients';
import { describeS3Error, isPreconditionFailed } from '../storage/errors';
import { headObject } from '../storage/object-meta';

/** Deterministic PRNG (mulberry32): the same seed gives the same users and bytes on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes derived from a name: content is reproducible without storing it. */
export function bytesFor(name: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(name).digest();
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off, 0, Math.min(block.length, size - off));
    if (off + block.length < size && (off / 32) % 1024 === 1023) block = createHash('sha256').update(block).digest();
  }
  return out;
}

export interface SeedObject {
  site: string;
  key: string;
  body: Buffer;
  contentType?: string;
  metadata?: Record<string, string>;
  cacheControl?: string;
  contentDisposition?: string;
  contentEncoding?: string;
}

/** A non-empty list to pick from. */
type Pick = readonly [string, ...string[]];
const pick = (xs: Pick, r: number): string => xs[Math.floor(r * xs.length)] ?? xs[0];
const COUNTRIES: Pick = ['DE', 'FR', 'NL', 'IE', 'ES', 'IT', 'PL', 'NO', 'SE', 'DK', 'FI', 'IS', 'AT', 'BE', 'PT'];
const NAMES: Pick = ['photo.jpg', 'notes/today.md', 'docs/2024/report.pdf', 'settings.json', 'inbox/msg-1.eml', 'avatars/small.png'];
const SPECIAL: Pick = ['summer 2024/beach photo.jpg', 'résumé ü.txt', 'a+b%20c.txt', 'notes/日本語.md', 'deep/a/b/c/d/e/f.txt'];

/**
 * The demo's data set: ~200 users over sg and us, with every kind of key and size the engine must handle.
 * Keys are `<root><userId>/…` (root `users/` by default, i.e. the plan's default userPrefix).
 */
export function demoDataSet(userCount = 200, seed = 20261127, multipartBytes = 20 * 1024 * 1024, root = 'users/'): { users: UserRow[]; objects: SeedObject[]; later: SeedObject[] } {
  const rnd = prng(seed);
  const users: UserRow[] = [];
  const objects: SeedObject[] = [];
  for (let i = 1; i <= userCount; i++) {
    const userId = `u-${String(i).padStart(4, '0')}`;
    users.push({ userId, country: pick(COUNTRIES, rnd()) });
    const placement = rnd();
    const sitesOf: Pick = placement < 0.45 ? ['sg'] : placement < 0.9 ? ['us'] : ['sg', 'us'];
    if (i === 7) continue; // a user with no objects at all
    for (const site of sitesOf) {
      const n = 1 + Math.floor(rnd() * 5);
      for (let j = 0; j < n; j++) {
        const name = `${site}-${pick(NAMES, rnd()).replace(/(\.[a-z]+)$/, `-${j}$1`)}`;
        const size = j === 0 && i % 10 === 0 ? 0 : Math.floor(rnd() * rnd() * 256 * 1024);
        const key = `${root}${userId}/${name}`;
        objects.push({ site, key, body: bytesFor(key, size), contentType: name.endsWith('.json') ? 'application/json' : 'application/octet-stream', metadata: { origin: site, 'user-id': userId } });
      }
    }
    if (i % 20 === 3) {
      const key = `${root}${userId}/${pick(SPECIAL, (i % SPECIAL.length) / SPECIAL.length)}`;
      objects.push({ site: sitesOf[0], key, body: bytesFor(key, 1000 + i), contentType: 'text/plain; charset=utf-8', cacheControl: 'max-age=60', contentDisposition: 'attachment; filename="x.txt"' });
    }
  }
  // One object large enough to go multipart.
  const big = `${root}u-0002/videos/holiday.mp4`;
  objects.push({ site: 'us', key: big, body: bytesFor(big, multipartBytes), contentType: 'video/mp4', metadata: { camera: 'demo' } });
  // One same-key conflict: the same key in both sources with different bytes (us written second: newest wins).
  const clash = `${root}u-0005/profile.json`;
  objects.push({ site: 'sg', key: clash, body: Buffer.from('{"theme":"light"}'), contentType: 'application/json' });
  const later = [{ site: 'us', key: clash, body: Buffer.from('{"theme":"dark","lang":"de"}'), contentType: 'application/json' }];
  return { users, objects, later };
}

/** Writes the objects into their sites; an object already there is left as it is (idempotent). */
export async function seedObjects(sites: Sites, objects: SeedObject[], concurrency = 16): Promise<{ written: number; present: number }> {
  const clients = createSiteClients(sites, { maxSockets: concurrency });
  const limit = pLimit(concurrency);
  let written = 0;
  let present = 0;
  try {
    await Promise.all(
      objects.map((o) =>
        limit(async () => {
          const s = clients.get(o.site)!;
          // Look first: a conditional PUT refused early resets the connection mid-body for large objects.
          if (await headObject(s, o.key)) {
            present++;
            return;
          }
          try {
            await s.s3.send(new PutObjectCommand({
              Bucket: s.bucket, Key: o.key, Body: o.body, ContentLength: o.body.length, IfNoneMatch: '*',
              ContentType: o.contentType, Metadata: o.metadata, CacheControl: o.cacheControl, ContentDisposition: o.contentDisposition, ContentEncoding: o.contentEncoding,
            }));
            written++;
          } catch (err) {
            if (isPreconditionFailed(err)) present++;
            else throw describeS3Error(err, { site: s.name, bucket: s.bucket, key: o.key, action: 'seeding' });
          }
        }),
      ),
    );
  } finally {
    destroySiteClients(clients);
  }
  return { written, present };
}

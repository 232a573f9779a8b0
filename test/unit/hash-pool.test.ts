import { createHash, randomBytes } from 'node:crypto';
import { HashPool, inlineHasher, sharedBuffer } from '../../src/storage/hash-pool';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

describe('hash threads', () => {
  const pool = new HashPool(2, 8 * 1024 * 1024);
  afterAll(() => pool.close());

  test('one buffer: the same SHA-256 and MD5 as node:crypto, from shared and from ordinary memory', async () => {
    const data = randomBytes(300_000);
    const shared = pool.alloc(data.length);
    data.copy(shared);
    for (const buf of [shared, data]) {
      const d = await pool.once(buf, true);
      expect(d.sha256.toString('hex')).toBe(sha(data));
      expect(d.md5).toBe(md5(data));
    }
    expect((await pool.once(shared, false)).md5).toBeUndefined();
  });

  test('streams hash their parts in order, many at once, each part digested on its own', async () => {
    const objects = Array.from({ length: 6 }, (_, i) => Array.from({ length: 5 }, (_, j) => randomBytes(65_536 + i * 1000 + j)));
    await Promise.all(
      objects.map(async (parts) => {
        const s = pool.stream(true);
        const partShas = await Promise.all(parts.map((p) => {
          const b = sharedBuffer(p.length);
          p.copy(b);
          return s.part(b);
        }));
        const whole = await s.end();
        const all = Buffer.concat(parts);
        expect(whole.sha256.toString('hex')).toBe(sha(all));
        expect(whole.md5).toBe(md5(all));
        expect(partShas.map((x) => x.toString('hex'))).toEqual(parts.map(sha));
      }),
    );
  });

  test('reused buffers come back at their size class; the inline hasher gives the same digests', async () => {
    const a = pool.alloc(1_000_000);
    pool.free(a);
    const b = pool.alloc(900_000);
    expect(b.buffer).toBe(a.buffer);
    expect(b.length).toBe(900_000);
    const data = randomBytes(1000);
    const s = inlineHasher.stream(true);
    await s.part(data.subarray(0, 400));
    await s.update(data.subarray(400));
    const d = await s.end();
    expect(d.sha256.toString('hex')).toBe(sha(data));
    expect(d.md5).toBe(md5(data));
  });
});

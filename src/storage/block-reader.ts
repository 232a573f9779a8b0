import type { Readable } from 'node:stream';
import type { ByteBudget } from './byte-budget';
import type { Hasher } from './hash-pool';
import { progressed } from './liveness';

/**
 * Reads `body` into buffers of `blockSize` from `hasher`, each held against `budget`, and hands every
 * full one, then the last partial one (or one empty block for an empty body), to `take`, which owns the
 * buffer and its budget from then on and must free both. Returns the bytes read.
 */
export async function readInBlocks(
  body: Readable, blockSize: number, hasher: Hasher, budget: ByteBudget, take: (block: Buffer, held: number) => Promise<void>,
): Promise<number> {
  let held = await budget.acquire(blockSize);
  let buf = hasher.alloc(blockSize);
  let fill = 0;
  let read = 0;
  let handed = 0;
  const hand = (block: Buffer, h: number) => {
    buf = Buffer.alloc(0);
    held = 0;
    handed++;
    return take(block, h);
  };
  try {
    for await (const chunk of body) {
      let c = chunk as Buffer;
      read += c.length;
      progressed();
      while (c.length > 0) {
        const n = Math.min(c.length, blockSize - fill);
        c.copy(buf, fill, 0, n);
        fill += n;
        c = c.subarray(n);
        if (fill < blockSize) continue;
        await hand(buf, held);
        held = await budget.acquire(blockSize);
        buf = hasher.alloc(blockSize);
        fill = 0;
      }
    }
    if (fill > 0 || handed === 0) await hand(buf.subarray(0, fill), held);
    return read;
  } finally {
    // Only a buffer not yet handed to `take` is still ours here.
    if (buf.length > 0) hasher.free(buf);
    budget.release(held);
  }
}

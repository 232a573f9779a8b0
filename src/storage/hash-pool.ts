import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** SHA-256 (raw) and, when asked for, MD5 (hex) of some bytes. */
export interface Digests {
  sha256: Buffer;
  md5?: string;
}

/**
 * Hashes one object's bytes in order (the whole-object SHA-256 and MD5) while giving back each part's
 * own SHA-256 as it is added.
 */
export interface StreamHasher {
  /** Adds the next part; resolves to the part's own SHA-256. */
  part(buf: Buffer): Promise<Buffer>;
  /** Adds bytes that are not a part of their own (no per-part digest). */
  update(buf: Buffer): Promise<void>;
  end(): Promise<Digests>;
  /** Forgets the stream (the copy failed). */
  drop(): void;
}

export interface Hasher {
  /** Digests of one buffer. */
  once(buf: Buffer, md5: boolean): Promise<Digests>;
  stream(md5: boolean): StreamHasher;
  /** A buffer of `size` bytes for object data that this hasher can read in place. */
  alloc(size: number): Buffer;
  /** Gives a buffer from `alloc` back for reuse; the caller must no longer use it (nor any request). */
  free(buf: Buffer): void;
}

/** Allocates a buffer the hash threads can read without a copy (shared memory). */
export function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(Math.max(1, size)), 0, size);
}

const isShared = (b: Buffer) => b.buffer instanceof SharedArrayBuffer;

/** Hashes on the calling thread: tests, short-lived tools, and buffers not in shared memory. */
export const inlineHasher: Hasher = {
  async once(buf, md5) {
    return { sha256: createHash('sha256').update(buf).digest(), md5: md5 ? createHash('md5').update(buf).digest('hex') : undefined };
  },
  stream(md5) {
    const sha = createHash('sha256');
    const m: Hash | undefined = md5 ? createHash('md5') : undefined;
    return {
      async part(buf) {
        sha.update(buf);
        m?.update(buf);
        return createHash('sha256').update(buf).digest();
      },
      async update(buf) {
        sha.update(buf);
        m?.update(buf);
      },
      async end() {
        return { sha256: sha.digest(), md5: m?.digest('hex') };
      },
      drop() {},
    };
  },
  alloc: (size) => Buffer.allocUnsafeSlow(size),
  free: () => undefined,
};

/** Buffers are pooled in power-of-two sizes from 64 KiB. */
export const sizeClass = (size: number): number => Math.max(64 * 1024, 2 ** Math.ceil(Math.log2(Math.max(1, size))));

// The hash thread's code: plain CommonJS, evaluated as a string so it needs no loader or build step.
const THREAD_CODE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const streams = new Map();
parentPort.on('message', (m) => {
  try {
    const b = m.buf ? Buffer.from(m.buf, m.off, m.len) : undefined;
    if (m.op === 'once') {
      parentPort.postMessage({ id: m.id, sha256: createHash('sha256').update(b).digest(), md5: m.md5 ? createHash('md5').update(b).digest('hex') : undefined });
    } else if (m.op === 'begin') {
      streams.set(m.stream, { sha: createHash('sha256'), md5: m.md5 ? createHash('md5') : undefined });
    } else if (m.op === 'part' || m.op === 'update') {
      const s = streams.get(m.stream);
      s.sha.update(b);
      if (s.md5) s.md5.update(b);
      parentPort.postMessage({ id: m.id, sha256: m.op === 'part' ? createHash('sha256').update(b).digest() : undefined });
    } else if (m.op === 'end') {
      const s = streams.get(m.stream);
      streams.delete(m.stream);
      parentPort.postMessage({ id: m.id, sha256: s.sha.digest(), md5: s.md5 ? s.md5.digest('hex') : undefined });
    } else if (m.op === 'drop') {
      streams.delete(m.stream);
    }
  } catch (err) {
    if (m.id !== undefined) parentPort.postMessage({ id: m.id, error: String(err && err.message || err) });
  }
});
`;

interface Reply {
  id: number;
  sha256?: Uint8Array;
  md5?: string;
  error?: string;
}

type Pending = { resolve: (r: Reply) => void; reject: (e: Error) => void };

/**
 * Hashes object bytes on worker threads, so the thread that moves bytes over HTTP never spends its time
 * on SHA-256 and MD5 (about 2 s of CPU per GiB together). Buffers must be in shared memory
 * (`sharedBuffer`): they are read in place, never copied. One object's stream stays on one thread, so its
 * parts are hashed in order. A thread that dies fails its pending work with a retryable error and is
 * replaced.
 */
export class HashPool implements Hasher {
  private readonly threads: { worker: Worker; pending: Map<number, Pending> }[] = [];
  private nextId = 1;
  private nextThread = 0;
  private closed = false;
  /** Shared buffers given back, by size class, up to `maxFreeBytes` in all. */
  private readonly freeLists = new Map<number, Buffer[]>();
  private freeBytes = 0;

  /**
   * @param size hash threads
   * @param maxFreeBytes bytes of shared buffers kept for reuse: part-sized buffers are reused instead of
   *   waiting for two threads' garbage collectors, so resident memory follows the byte budget.
   */
  constructor(
    readonly size: number,
    private readonly maxFreeBytes = 128 * 1024 * 1024,
  ) {
    for (let i = 0; i < Math.max(1, size); i++) this.threads.push(this.spawn());
  }

  alloc(size: number): Buffer {
    const cls = sizeClass(size);
    const reused = this.freeLists.get(cls)?.pop();
    if (reused) {
      this.freeBytes -= cls;
      return reused.subarray(0, size);
    }
    // None of this size is free: buffers of other sizes kept idle are let go, so idle and busy buffers
    // together stay near what is really in use.
    for (const [c, list] of this.freeLists) {
      this.freeBytes -= c * list.length;
      this.freeLists.delete(c);
    }
    return sharedBuffer(cls).subarray(0, size);
  }

  free(buf: Buffer): void {
    if (!isShared(buf)) return;
    const cls = buf.buffer.byteLength;
    if (this.closed || cls !== sizeClass(cls) || this.freeBytes + cls > this.maxFreeBytes) return;
    const list = this.freeLists.get(cls) ?? [];
    list.push(Buffer.from(buf.buffer, 0, cls));
    this.freeLists.set(cls, list);
    this.freeBytes += cls;
  }

  private spawn(): { worker: Worker; pending: Map<number, Pending> } {
    // The thread allocates little of its own (digests, views on shared buffers): a small heap keeps its
    // footprint small.
    const worker = new Worker(THREAD_CODE, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 } });
    worker.unref();
    const t = { worker, pending: new Map<number, Pending>() };
    worker.on('message', (r: Reply) => {
      const p = t.pending.get(r.id);
      if (!p) return;
      t.pending.delete(r.id);
      if (r.error) p.reject(new Error(`hash thread: ${r.error}`));
      else p.resolve(r);
    });
    const fail = (why: string) => {
      for (const p of t.pending.values()) p.reject(new Error(`hash thread stopped (${why})`));
      t.pending.clear();
      const i = this.threads.indexOf(t);
      if (i >= 0 && !this.closed) this.threads[i] = this.spawn();
    };
    worker.on('error', (err) => fail(err.message));
    worker.on('exit', (code) => fail(`exit ${code}`));
    return t;
  }

  private pick(): number {
    this.nextThread = (this.nextThread + 1) % this.threads.length;
    return this.nextThread;
  }

  /** Thread `i` of the pool (indices come from `pick`, so it always exists). */
  private thread(i: number): { worker: Worker; pending: Map<number, Pending> } {
    const t = this.threads[i];
    if (!t) throw new Error(`hash pool has no thread ${i}`);
    return t;
  }

  private call(thread: number, msg: Record<string, unknown>, buf?: Buffer): Promise<Reply> {
    if (this.closed) return Promise.reject(new Error('hash pool is closed'));
    const t = this.thread(thread);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      t.pending.set(id, { resolve, reject });
      t.worker.postMessage({ ...msg, id, ...(buf ? { buf: buf.buffer, off: buf.byteOffset, len: buf.length } : {}) });
    });
  }

  async once(buf: Buffer, md5: boolean): Promise<Digests> {
    if (!isShared(buf)) return inlineHasher.once(buf, md5);
    const r = await this.call(this.pick(), { op: 'once', md5 }, buf);
    return { sha256: Buffer.from(r.sha256!), md5: r.md5 };
  }

  stream(md5: boolean): StreamHasher {
    const thread = this.pick();
    const stream = this.nextId++;
    const worker = this.thread(thread).worker;
    worker.postMessage({ op: 'begin', stream, md5 });
    const send = (op: string, buf?: Buffer) => {
      // A replaced thread no longer holds this stream's state: fail rather than hash half an object.
      if (this.threads[thread]?.worker !== worker) return Promise.reject(new Error('hash thread was replaced mid-object'));
      let shared = buf;
      if (buf && !isShared(buf)) {
        shared = sharedBuffer(buf.length);
        buf.copy(shared);
      }
      return this.call(thread, { op, stream }, shared);
    };
    return {
      part: async (buf) => Buffer.from((await send('part', buf)).sha256!),
      update: async (buf) => void (await send('update', buf)),
      end: async () => {
        const r = await send('end');
        return { sha256: Buffer.from(r.sha256!), md5: r.md5 };
      },
      drop: () => {
        if (this.threads[thread]?.worker === worker && !this.closed) worker.postMessage({ op: 'drop', stream });
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.freeLists.clear();
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }
}

/**
 * Caps the bytes a worker holds in buffers at once (small objects and multipart parts), so resident
 * memory follows the configured budget, not object sizes or the number of objects in flight.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiters: { n: number; resolve: () => void }[] = [];

  constructor(readonly limit: number) {}

  async acquire(n: number): Promise<number> {
    const want = Math.min(n, this.limit);
    if (this.used + want <= this.limit && this.waiters.length === 0) {
      this.used += want;
      return want;
    }
    await new Promise<void>((resolve) => this.waiters.push({ n: want, resolve }));
    return want;
  }

  release(n: number): void {
    this.used -= n;
    for (let w = this.waiters[0]; w && this.used + w.n <= this.limit; w = this.waiters[0]) {
      this.waiters.shift();
      this.used += w.n;
      w.resolve();
    }
  }
}

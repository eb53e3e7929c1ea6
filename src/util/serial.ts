/**
 * Runs async operations one at a time, in the order they asked, and names the one running (the HA
 * cycle and operator requests such as a restart never interleave).
 */
export class Serial {
  private tail: Promise<void> = Promise.resolve();
  /** What runs right now; null when idle. */
  current: string | null = null;

  async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    await previous;
    this.current = what;
    try {
      return await fn();
    } finally {
      this.current = null;
      release();
    }
  }
}

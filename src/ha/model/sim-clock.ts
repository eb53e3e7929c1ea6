/**
 * Simulated time for the model test: one monotonic timeline shared by every simulated process,
 * a wall clock per node that faults can step, and timers fired in order by `advance`. Between
 * timers the pending promise chains run to completion (microtasks and one macrotask turn), so an
 * async runner makes progress exactly as far as simulated time allows.
 */
import type { Clock, TimerHandle } from '../../util/clock.js';

interface Timer {
  id: number;
  due: number;
  seq: number;
  fn: () => void;
  owner: string;
}

/** Lets every pending promise chain run until it waits on a timer again. */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

export class SimTime {
  mono = 0;
  private seq = 0;
  private timers = new Map<number, Timer>();
  private nextId = 1;

  add(owner: string, fn: () => void, ms: number): { id: number } {
    const id = this.nextId++;
    this.timers.set(id, { id, due: this.mono + Math.max(0, ms), seq: this.seq++, fn, owner });
    return { id };
  }

  cancel(h: TimerHandle | null | undefined): void {
    if (h && typeof h === 'object' && 'id' in h) this.timers.delete(h.id);
  }

  /** Cancels every timer of `owner` (a simulated process that died). */
  cancelOwner(owner: string): void {
    for (const [id, t] of this.timers) if (t.owner === owner) this.timers.delete(id);
  }

  private next(until: number): Timer | null {
    let best: Timer | null = null;
    for (const t of this.timers.values())
      if (t.due <= until && (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq))) best = t;
    return best;
  }

  /** Fires every timer due within `ms`, in order, letting the async work each one starts run. */
  async advance(ms: number, afterEach?: () => void): Promise<void> {
    const until = this.mono + ms;
    await settle();
    for (;;) {
      const t = this.next(until);
      if (!t) break;
      this.timers.delete(t.id);
      this.mono = Math.max(this.mono, t.due);
      t.fn();
      await settle();
      afterEach?.();
    }
    this.mono = until;
    await settle();
  }
}

/** One simulated process's clock: the shared monotonic time, its node's wall clock, its timers. */
export class SimClock implements Clock {
  constructor(
    private readonly time: SimTime,
    readonly owner: string,
    /** Wall-clock offset of the node (ms since the epoch at mono 0), changed by clock steps. */
    private readonly wallBase: () => number,
  ) {}

  now(): number {
    return this.wallBase() + this.time.mono;
  }

  mono(): number {
    return this.time.mono;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    return this.time.add(this.owner, fn, ms);
  }

  clearTimer(t: TimerHandle | null | undefined): void {
    this.time.cancel(t);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      const h = this.time.add(this.owner, () => resolve(), ms);
      signal?.addEventListener(
        'abort',
        () => {
          this.time.cancel(h);
          reject(signal.reason as Error);
        },
        { once: true },
      );
    });
  }

  timeout(ms: number): AbortSignal {
    const ac = new AbortController();
    this.time.add(this.owner, () => ac.abort(new Error(`timed out after ${ms} ms`)), ms);
    return ac.signal;
  }
}

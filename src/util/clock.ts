/**
 * Time as the HA core, the router and the VIP see it. Two clocks, never mixed:
 * - `now()`: wall-clock milliseconds since the epoch, for what people read (log times, ISO stamps,
 *   `scheduled_at` of a switchover or restart);
 * - `mono()`: monotonic milliseconds, for every lease, fence and timeout. A wall clock stepped
 *   backwards by NTP or an operator must never move a fence deadline later.
 * Timers and sleeps go through the same object, so a simulation drives all of them (src/ha/model).
 */

/**
 * A wall-clock time as Patroni writes times people read (`history`, `scheduled_at`): ISO 8601 with
 * a `+00:00` offset, as Python's `isoformat()` gives, rather than JavaScript's `Z`.
 */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+00:00');
}

/** An opaque timer handle. */
export type TimerHandle = { readonly id: number } | ReturnType<typeof setTimeout>;

export interface Clock {
  /** Wall-clock ms since the epoch. */
  now(): number;
  /** Monotonic ms (an arbitrary origin; only differences mean anything). */
  mono(): number;
  /** Calls `fn` after `ms` milliseconds of monotonic time. */
  setTimer(fn: () => void, ms: number): TimerHandle;
  clearTimer(t: TimerHandle | null | undefined): void;
  /** Resolves after `ms`; rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** A signal that aborts after `ms` (a deadline for one operation). */
  timeout(ms: number): AbortSignal;
}

/** The process's clocks: `Date.now` and `performance.now`, with Node's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  mono: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimer: (t) => {
    if (t) clearTimeout(t as ReturnType<typeof setTimeout>);
  },
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      const t = setTimeout(
        () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        Math.max(0, ms),
      );
      const onAbort = () => {
        clearTimeout(t);
        reject(signal?.reason as Error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
  timeout: (ms) => AbortSignal.timeout(Math.max(1, ms)),
};

/**
 * Deadlines as abort signals that fire whatever the garbage collector does.
 *
 * `AbortSignal.any([AbortSignal.timeout(ms), other])` is the obvious way to write "`ms` or `other`,
 * whichever comes first", and on Node.js 20 it can fail for good: the composite signal holds its
 * sources only weakly, and a timeout signal's own timer holds it only weakly too, so once nothing
 * else refers to the timeout signal a garbage collection takes it and the deadline never fires
 * (nodejs/node#57736). A query, an etcd request or a client's wait then runs for ever.
 * `deadline()` gives the same signal with the timer holding its controller until it fires.
 */

/** A signal that aborts after `ms` or when one of `signals` does; `clear()` when done with it. */
export interface Deadline {
  readonly signal: AbortSignal;
  /** Stops the timer and the listening on `signals` (the signal then never aborts). */
  clear(): void;
}

/** The reason a timed-out signal carries, as `AbortSignal.timeout` gives it. */
function timeoutReason(): DOMException {
  return new DOMException('The operation was aborted due to timeout', 'TimeoutError');
}

export function deadline(ms: number, ...signals: Array<AbortSignal | undefined>): Deadline {
  const ac = new AbortController();
  const sources = signals.filter((s): s is AbortSignal => s !== undefined);
  const already = sources.find((s) => s.aborted);
  if (already) {
    ac.abort(already.reason);
    return { signal: ac.signal, clear: () => undefined };
  }
  const listeners = sources.map((s) => {
    const onAbort = () => {
      clear();
      ac.abort(s.reason);
    };
    s.addEventListener('abort', onAbort, { once: true });
    return { s, onAbort };
  });
  const timer = setTimeout(
    () => {
      clear();
      ac.abort(timeoutReason());
    },
    Math.max(0, ms),
  );
  // Like AbortSignal.timeout, the deadline alone does not keep the process alive.
  timer.unref();
  function clear(): void {
    clearTimeout(timer);
    for (const { s, onAbort } of listeners) s.removeEventListener('abort', onAbort);
  }
  return { signal: ac.signal, clear };
}

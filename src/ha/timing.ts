/**
 * Every lease and fence formula in one place. The agent's fence, its lease keeper, the router's
 * stale-view fence and the VIP's hold all derive from these, on the monotonic clock
 * (`Clock.mono`), so the promise they share is written once:
 *
 *   An etcd lease renewed by a keep-alive *sent* at `s` cannot expire before `s + ttl`. A holder
 *   stops acting on it at `s + ttl − margin`, so nothing it guards overlaps a successor, which can
 *   only exist after the expiry.
 */

/** The smallest margin a fence keeps before the lease can expire (seconds). */
export const MIN_SAFETY_MARGIN_S = 2;

/**
 * Seconds before the lease can expire at which a holder that could not renew stops: the configured
 * `watchdog.safety_margin` (Patroni's key), at least 2 s, at most half the ttl.
 */
export function safetyMarginMs(ttlS: number, configuredS: number = MIN_SAFETY_MARGIN_S): number {
  return Math.min(Math.max(configuredS, MIN_SAFETY_MARGIN_S), ttlS / 2) * 1000;
}

/** The earliest moment a lease renewed by a keep-alive sent at `sentMono` can expire in etcd. */
export function leaseExpiresNotBefore(sentMono: number, ttlS: number): number {
  return sentMono + ttlS * 1000;
}

/** When a holder must have stopped acting on a lease last renewed at `sentMono`. */
export function fenceDeadline(sentMono: number, ttlS: number, marginMs: number): number {
  return leaseExpiresNotBefore(sentMono, ttlS) - marginMs;
}

/** How often the leader's lease keeper renews between HA cycles. */
export function keeperIntervalMs(ttlS: number): number {
  return Math.max(250, (ttlS * 1000) / 5);
}

/**
 * Whether the lease keeper may renew now. It renews while the HA loop completes cycles, or while
 * a long action that the loop waits for (a promotion, a start) is in progress; a loop stuck for
 * longer than ttl with nothing in progress stops renewing, so the cluster fails over.
 */
export function keeperMayRenew(opts: {
  nowMono: number;
  lastCycleMono: number | null;
  ttlS: number;
  longActionSinceMono: number | null;
}): boolean {
  if (opts.longActionSinceMono !== null) return true;
  if (opts.lastCycleMono === null) return false;
  return opts.nowMono - opts.lastCycleMono <= opts.ttlS * 1000;
}

/**
 * The router's and the VIP's view of the leader is only as good as their last linearizable read:
 * a read *sent* at `sentMono` saw the key alive, so its lease could expire (and another member be
 * promoted) from `sentMono + ttl` on. Past that moment they must stop acting on that view.
 */
export function staleViewDeadline(readSentMono: number, ttlS: number): number {
  return leaseExpiresNotBefore(readSentMono, ttlS);
}

/** The VIP key's holder drops the address at its fence deadline, renewing twice as often. */
export function vipRenewWithinMs(ttlS: number): number {
  return (ttlS * 1000 - safetyMarginMs(ttlS)) / 2;
}

/**
 * Whether a cause that wakes the HA loop early (the session to PostgreSQL lost, a primary just
 * started) may do so again at `nowMono`, its last early wake having been at `lastMono`: once per
 * `loop_wait` at most, so a cause that repeats (a server that crashes again and again, right after
 * each start too) goes at the loop's pace.
 */
export function earlyWakeAllowed(lastMono: number, nowMono: number, loopWaitS: number): boolean {
  return nowMono - lastMono >= loopWaitS * 1000;
}

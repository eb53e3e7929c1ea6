/**
 * The switchover's drain handshake with the routers, as a pure step function the runner follows
 * before it stops the old primary:
 * 1. write the `drain` key (this request's id, the old primary, the candidate) on our lease;
 * 2. every registered router (`routers/<id>`, on its own lease: a dead router's key is gone) holds
 *    new transactions for us at transaction boundaries, lets the ones in flight finish within its
 *    `drain_timeout`, cuts what cannot move, and answers `routers/<id>/drained` = the request's id;
 * 3. go on once every live router answered, or once the slowest router's drain_timeout plus a
 *    margin has passed (a router that hangs must not stop a switchover);
 * after the stop, the routers move the sessions they hold to the new primary and release them.
 */
import type { DrainKey, RouterKey } from '../dcs/types.js';

/** Waited beyond the slowest router's drain_timeout before the switchover goes on without it. */
export const DRAIN_MARGIN_MS = 2000;

export type DrainStep =
  | { kind: 'request' }
  | { kind: 'wait'; pending: string[] }
  | { kind: 'proceed'; why: string; late: string[] };

export function drainStep(opts: {
  routers: readonly RouterKey[];
  /** The `drain` key as read (null: none). */
  current: DrainKey | null;
  /** This switchover's request. */
  want: DrainKey;
  /** Since the request was first written (ms); 0 before. */
  waitedMs: number;
}): DrainStep {
  const { routers, current, want } = opts;
  if (routers.length === 0) return { kind: 'proceed', why: 'no router is registered', late: [] };
  if (current?.id !== want.id) {
    // Another request's key (an earlier switchover's, still on its agent's lease) cannot be ours:
    // the routers follow that one; waiting for ours would only cost the timeout.
    if (current !== null && opts.waitedMs > 0)
      return { kind: 'proceed', why: `another drain request (${current.id}) holds the key`, late: [] };
    return { kind: 'request' };
  }
  const pending = routers.filter((r) => r.drained !== want.id).map((r) => r.id);
  if (pending.length === 0) return { kind: 'proceed', why: `${routers.length} router(s) drained`, late: [] };
  const limit = Math.max(...routers.map((r) => r.drainTimeoutMs)) + DRAIN_MARGIN_MS;
  if (opts.waitedMs >= limit)
    return {
      kind: 'proceed',
      why: `${pending.length} router(s) did not answer within ${limit} ms`,
      late: pending,
    };
  return { kind: 'wait', pending };
}

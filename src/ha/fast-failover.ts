/**
 * `fast_failover` (pgha extension): replace a leader whose processes are proven gone without
 * waiting for its lease. The proof must be one a firewall cannot forge, so it takes two
 * independent witnesses:
 * - the leader's PostgreSQL and REST ports both *refuse* connections (a TCP reset or ICMP
 *   refusal, never a timeout) several probes in a row — which a REJECT rule can fake;
 * - etcd shows that the leader's lease has not been renewed for more than two renewal intervals
 *   — which a live agent that still reaches etcd never lets happen, whatever a firewall does to us.
 * A leader that is alive but cut off from etcd stops renewing too; its own fence then stops it at
 * `last renewal + ttl − margin`. That double fault (cut from etcd and REJECTing its peers while
 * clients still reach it) is the one case this rule cannot tell from a dead leader.
 */
import { keeperIntervalMs } from './timing.js';

/** Consecutive probe rounds in which both ports must refuse. */
export const REFUSALS_NEEDED = 3;
/** How often a replica probes its leader. */
export const LEADER_PROBE_MS = 300;

/** How long a leader's lease must have gone unrenewed to count as a witness (ms). */
export function silenceNeededMs(ttlS: number): number {
  return 2 * keeperIntervalMs(ttlS) + 1000;
}

export type ProbeResult = 'open' | 'refused' | 'unknown';

/** One probe round's refusals, counted per leader key revision. */
export function countRefusals(
  previous: { key: string; count: number },
  key: string,
  pg: ProbeResult,
  api: ProbeResult,
): { key: string; count: number } {
  if (pg !== 'refused' || api !== 'refused') return { key: '', count: 0 };
  return { key, count: previous.key === key ? previous.count + 1 : 1 };
}

export type GoneVerdict = { gone: true; why: string } | { gone: false; why: string };

/**
 * Whether the leader is proven gone. `leaseSilentMs`: how long etcd says its lease has not been
 * renewed (granted ttl − remaining), null when unknown.
 */
export function leaderGoneVerdict(opts: {
  refusals: number;
  leaseSilentMs: number | null;
  ttlS: number;
  pgAddress: string;
  apiAddress: string;
}): GoneVerdict {
  if (opts.refusals < REFUSALS_NEEDED)
    return { gone: false, why: `${opts.refusals} of ${REFUSALS_NEEDED} probe rounds refused` };
  const need = silenceNeededMs(opts.ttlS);
  if (opts.leaseSilentMs === null)
    return {
      gone: false,
      why: 'its ports refuse connections but etcd did not say when its lease was last renewed',
    };
  if (opts.leaseSilentMs < need)
    return {
      gone: false,
      why: `its ports refuse connections but its lease was renewed ${Math.round(opts.leaseSilentMs)} ms ago (a firewall may be rejecting us)`,
    };
  return {
    gone: true,
    why:
      `its PostgreSQL (${opts.pgAddress}) and REST API (${opts.apiAddress}) refused ${opts.refusals} connection ` +
      `attempts in a row and its lease has not been renewed for ${Math.round(opts.leaseSilentMs / 1000)} s`,
  };
}

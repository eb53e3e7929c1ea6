/**
 * A leader that stopped renewing, timed by the replicas themselves instead of by etcd's lease.
 *
 * etcd expires a lease `ttl` after its last keep-alive — unless its own leader changes: the new
 * etcd leader renews every lease in full when it takes over. A host that vanishes together with
 * the etcd leader member (power loss, a cut cable) therefore keeps its leader key for ttl plus an
 * etcd election plus up to another ttl. So the replicas keep their own time:
 *
 * - every renewal that re-arms the leader's fence also rewrites the leader key (lease.ts, the
 *   etcd `renewLeader`), so the key's revision moves at least once per renewal, and the fence is
 *   armed from a send time earlier than that write;
 * - a replica notes, on its own monotonic clock, when it first saw each revision of the key
 *   (from the watch, or from a read — either is after the write, so never too early);
 * - once one revision has stood for at least ttl (and at least the lease's granted TTL, should the
 *   leader run with a longer ttl than this node read), the leader's fence — at send time + ttl −
 *   margin — has fired: the replica releases the key by compare-and-set on that revision (a leader
 *   that renewed since has another revision, and nothing happens) and the race starts.
 *
 * Invariant: a replica releases a key only at a moment the leader that wrote it can no longer be
 * writable under it (maintenance mode excepted, where nobody releases anything).
 */

/** When this node first saw a revision of the leader key (monotonic ms). */
export interface Sighting {
  name: string;
  modRevision: string;
  atMono: number;
}

/**
 * The sighting after seeing `leader` at `nowMono`. A revision older than the one already seen (a
 * late read racing the watch) changes nothing; a new holder or a newer revision starts the clock.
 */
export function sight(
  prev: Sighting | null,
  leader: { name: string; modRevision: string } | null,
  nowMono: number,
): Sighting | null {
  if (!leader) return null;
  if (prev && prev.name === leader.name) {
    if (prev.modRevision === leader.modRevision) return prev;
    if (revisionBefore(leader.modRevision, prev.modRevision)) return prev;
  }
  return { name: leader.name, modRevision: leader.modRevision, atMono: nowMono };
}

function revisionBefore(a: string, b: string): boolean {
  try {
    return BigInt(a) < BigInt(b);
  } catch {
    return false;
  }
}

/** The latest a silent leader's REST API is first asked, before this node would release its key (ms). */
export const PREFETCH_LEAD_MS = 2300;
/** How long past `loop_wait` a leader key may stand before its holder counts as overdue (ms). */
export const OVERDUE_MS = 1500;

/**
 * From how long a silence on this node's clock the silent leader's REST API is asked, so that the
 * race (which must hear from every member, the lost leader too, or wait 2 s for it) finds the
 * answer ready. Not only shortly before this node's own release: replicas start their clocks on
 * one revision seconds apart (one whose etcd member was lost reads the revision only after an
 * election), and the first to reach ttl releases the key for all of them. So the asking starts as
 * soon as the key is overdue — a healthy leader rewrites it every `loop_wait` — and at the latest
 * PREFETCH_LEAD_MS before this node's own ttl.
 */
export function prefetchFromMs(ttlS: number, loopWaitS: number): number {
  return Math.max(0, Math.min(ttlS * 1000 - PREFETCH_LEAD_MS, loopWaitS * 1000 + OVERDUE_MS));
}

export interface SilenceFacts {
  sighting: Sighting | null;
  nowMono: number;
  ttlS: number;
  loopWaitS: number;
  /** Maintenance mode: nobody replaces anyone. */
  paused: boolean;
  me: string;
}

export type SilenceVerdict =
  | { kind: 'quiet' }
  | { kind: 'prefetch'; silentMs: number }
  | { kind: 'release'; silentMs: number; why: string };

/** What the replica does about the leader's silence now (the lease's granted TTL is checked at release). */
export function silenceVerdict(f: SilenceFacts): SilenceVerdict {
  const s = f.sighting;
  if (!s || f.paused || s.name === f.me) return { kind: 'quiet' };
  const silentMs = f.nowMono - s.atMono;
  const needMs = f.ttlS * 1000;
  if (silentMs >= needMs)
    return {
      kind: 'release',
      silentMs,
      why: `its leader key has not been renewed for ${(silentMs / 1000).toFixed(1)} s (ttl ${f.ttlS} s)`,
    };
  if (silentMs >= prefetchFromMs(f.ttlS, f.loopWaitS)) return { kind: 'prefetch', silentMs };
  return { kind: 'quiet' };
}

/** Whether the silence also covers the lease's own TTL (a leader running with a longer ttl). */
export function outlastsLease(silentMs: number, grantedTtlS: number | null): boolean {
  return grantedTtlS === null || silentMs >= grantedTtlS * 1000;
}

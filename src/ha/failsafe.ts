/**
 * `failsafe_mode`, as Patroni: while the store is unreachable, a primary keeps running only as long
 * as every member in the `failsafe` key confirms it over REST (`POST /failsafe`); the first round
 * that misses one demotes it to a read-only standby. A replica takes each confirmation as a
 * heartbeat of the leader and, for `ttl` seconds after it, sees that leader even when the `leader`
 * key has expired, so it does not start a race, and reports failsafe mode active.
 *
 * Why every member and not a quorum (Patroni's reasoning): the etcd quorum and the members may be
 * spread differently; only hearing from all of them proves no one of them can be promoted.
 */
import type { ClusterState, Member } from '../dcs/types.js';

/** What a leader sends in `POST /failsafe` (Patroni's fields). */
export interface FailsafeLeader {
  name: string;
  conn_url?: string;
  api_url?: string;
  slots?: Record<string, number>;
}

/** One member's answer to `POST /failsafe`. */
export interface FailsafeAnswer {
  name: string;
  accepted: boolean;
  /** Why not, for the log: the status and text, or the connection error. */
  detail: string;
  lsn?: number;
}

/** The `failsafe` key the leader keeps: every known member's REST URL, itself included. */
export function failsafeTopology(
  cluster: ClusterState,
  me: string,
  myApiUrl: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of cluster.members) if (m.data.api_url) out[m.name] = m.data.api_url;
  out[me] = myApiUrl;
  return out;
}

/**
 * The members a leader cut off from the store must hear from: those of the `failsafe` key it last
 * read and of the one it last wrote (or tried to), together. The key it wrote may not have been
 * read back before the store went away, yet a member it added there may race once the store
 * answers again, so that member must confirm too.
 */
export function failsafeMembers(
  read: Record<string, string> | null | undefined,
  written: Record<string, string> | null,
): Record<string, string> | null {
  if (!read && !written) return null;
  return { ...(read ?? {}), ...(written ?? {}) };
}

/** Whether two topologies name the same members at the same URLs. */
export function sameTopology(a: Record<string, string> | null, b: Record<string, string>): boolean {
  if (!a) return false;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/**
 * Whether this member may race for the leader key under `failsafe_mode`: a member missing from a
 * non-empty `failsafe` key was not known to the last leader, so it may lack its data (as Patroni).
 */
export function failsafeRaceBlock(cluster: ClusterState, me: string, enabled: boolean): string | null {
  const fs = cluster.failsafe;
  if (!enabled || !fs || Object.keys(fs).length === 0 || me in fs) return null;
  return `failsafe_mode is on and this member is not in the failsafe key (${Object.keys(fs).join(', ')})`;
}

/** Members of the `failsafe` key other than `me`, as members whose REST API can be called. */
export function failsafePeers(failsafe: Record<string, string>, me: string): Member[] {
  return Object.entries(failsafe)
    .filter(([name]) => name !== me)
    .map(([name, api_url]) => ({ name, data: { api_url }, modRevision: '0', lease: '0' }));
}

/** The replica side: the last leader heard over `POST /failsafe`, valid for `ttl` seconds. */
export class FailsafeHeartbeats {
  private last: { leader: FailsafeLeader; at: number } | null = null;

  record(leader: FailsafeLeader, now: number): void {
    this.last = { leader, at: now };
  }

  clear(): void {
    this.last = null;
  }

  /** Whether a leader other than `me` called within `ttlS` (Patroni's `failsafe_is_active` on a replica). */
  active(now: number, ttlS: number, me: string): boolean {
    const l = this.leader(now, ttlS);
    return l !== null && l.name !== me;
  }

  /** The leader still vouched for at `now`, or null once `ttlS` passed since its last call. */
  leader(now: number, ttlS: number): FailsafeLeader | null {
    if (!this.last || this.last.at + ttlS * 1000 <= now) return null;
    return this.last.leader;
  }
}

/**
 * A cluster view with the failsafe leader put back when the store shows none (Patroni's
 * `update_cluster`): the replica keeps following it instead of racing.
 */
export function withFailsafeLeader(cluster: ClusterState, leader: FailsafeLeader): ClusterState {
  if (cluster.leader) return cluster;
  const known = cluster.members.some((m) => m.name === leader.name);
  const members = known
    ? cluster.members
    : [
        ...cluster.members,
        {
          name: leader.name,
          data: {
            conn_url: leader.conn_url,
            api_url: leader.api_url,
            role: 'primary',
            state: 'running',
          },
          modRevision: '0',
          lease: '0',
        },
      ];
  return { ...cluster, leader: { name: leader.name, modRevision: '0', lease: '0' }, members };
}

/**
 * The cluster a replica keeps its slots by while the store is down (Patroni's `update_cluster`): the
 * last one it read, with the leader that calls it over `POST /failsafe` and the slot positions that
 * leader sent. Null when the leader sent none.
 */
export function failsafeSlotView(cluster: ClusterState, leader: FailsafeLeader): ClusterState | null {
  if (!leader.slots) return null;
  const base = withFailsafeLeader({ ...cluster, leader: null }, leader);
  const status = cluster.status ?? { optime: 0 };
  return { ...base, status: { ...status, slots: leader.slots } };
}

/**
 * Whether a leader that lost the store may run a failsafe round at all: failsafe_mode on, not in
 * maintenance mode (there the fence does not run anyway), running as primary, holding the key.
 */
export function failsafeApplies(opts: {
  enabled: boolean;
  paused: boolean;
  primary: boolean;
  leader: boolean;
  stopping: boolean;
}): boolean {
  return opts.enabled && !opts.paused && opts.primary && opts.leader && !opts.stopping;
}

export type FailsafeVerdict =
  { confirmed: true; message: string } | { confirmed: false; level: 'warn' | 'error'; message: string };

/**
 * A failsafe round's outcome: the primary keeps running (its fence re-armed from the round's
 * start) only if every other member of the last `failsafe` key accepted it; otherwise it demotes
 * itself to a read-only standby at once (Patroni's `demote('offline')`), without waiting for the
 * fence: a member that did not answer may be about to take over once the store is back.
 */
export function failsafeVerdict(
  me: string,
  failsafe: Record<string, string> | null | undefined,
  answers: FailsafeAnswer[] | null,
): FailsafeVerdict {
  if (!failsafe || !(me in failsafe))
    return {
      confirmed: false,
      level: 'warn',
      message:
        'failsafe_mode is on but the last failsafe key read does not list this member; demoting to a read-only standby',
    };
  const refused = (answers ?? []).filter((a) => !a.accepted);
  if (answers === null || refused.length > 0)
    return {
      confirmed: false,
      level: 'error',
      message:
        `failsafe_mode: not every member confirmed this primary (${refused.map((a) => `${a.name}: ${a.detail}`).join('; ')}); ` +
        'demoting to a read-only standby',
    };
  const names = failsafePeers(failsafe, me)
    .map((p) => p.name)
    .join(', ');
  return {
    confirmed: true,
    message: `continuing to run as leader because failsafe mode is enabled and all members are accessible (${names || 'none, single member'})`,
  };
}

/**
 * What a node publishes about itself in `members/<name>` (Patroni's member JSON), built from its
 * snapshot. Pure, so the names other tools read are tested with literals.
 */
import type { MemberData } from '../dcs/types.js';
import type { ServerStatus } from '../postgres/types.js';

export interface MemberFacts {
  running: boolean;
  /** The state shown while an action runs (`starting`, `promoting`, ...), else null. */
  busyState: string | null;
  /** The last state shown (`crashed` stays until PostgreSQL runs again). */
  previousState: string;
  status: ServerStatus | null;
  role: string;
  diverged: string | null;
  connUrl: string;
  apiUrl: string;
  version: string;
  tags: Record<string, unknown>;
  pause: boolean;
  scheduledRestart: Record<string, unknown> | null;
}

/**
 * The node's own state: running, streaming, in archive recovery, diverged, starting, stopped,
 * crashed, ... The member key and REST API publish it as Patroni does ({@link publishedState}).
 */
export function memberState(
  f: Pick<MemberFacts, 'running' | 'busyState' | 'previousState' | 'status' | 'diverged'>,
): string {
  if (f.busyState) return f.busyState;
  if (!f.running) return f.previousState === 'crashed' ? 'crashed' : 'stopped';
  const s = f.status;
  if (!s) return 'starting';
  if (s.inRecovery && f.diverged) return 'diverged';
  if (s.inRecovery && s.replicationState === 'streaming') return 'streaming';
  if (s.inRecovery) return 'in archive recovery';
  return 'running';
}

/**
 * A state as Patroni publishes it: `running` for any PostgreSQL that accepts connections, the
 * replica's progress going to `replication_state` instead.
 */
export function publishedState(state: string): string {
  return state === 'streaming' || state === 'in archive recovery' || state === 'diverged' ? 'running' : state;
}

/**
 * A role as Patroni 3 publishes it in the member key, the REST API and callback arguments: the
 * primary is `master`. Patroni 4 and its tools read both names; the scripts and checks written for
 * Debian's Patroni 3 read only this one.
 */
export function publishedRole(role: string): string {
  return role === 'primary' ? 'master' : role;
}

/** The member key's JSON. */
export function memberData(f: MemberFacts): MemberData {
  const data: MemberData = {
    conn_url: f.connUrl,
    api_url: f.apiUrl,
    state: publishedState(memberState(f)),
    role: publishedRole(f.role),
    version: f.version,
  };
  const status = f.status;
  if (status) {
    // A diverged replica's received WAL is not what the leader has: show how far it really got.
    data.xlog_location = f.diverged ? (status.replayLsn ?? status.walPosition) : status.walPosition;
    data.timeline = status.timeline;
    if (status.inRecovery) {
      if (f.diverged) data.replication_state = 'diverged';
      else if (status.replicationState) data.replication_state = status.replicationState;
      if (status.receiveLsn !== undefined) data.receive_lsn = status.receiveLsn;
      if (status.replayLsn !== undefined) data.replay_lsn = status.replayLsn;
    }
    if (status.pendingRestart) data.pending_restart = true;
  }
  const tags = publishedTags(f.tags);
  if (Object.keys(tags).length > 0) data.tags = tags;
  if (f.pause) data.pause = true;
  if (f.scheduledRestart) data.scheduled_restart = f.scheduledRestart;
  return data;
}

/** Tags as Patroni publishes them: false and empty ones left out. */
export function publishedTags(tags: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(tags)) {
    if (v === false || v === undefined || v === null) continue;
    out[k] = v;
  }
  return out;
}

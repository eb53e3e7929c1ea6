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

/** Patroni's member state: running, streaming (pgha), starting, stopped, crashed, diverged, ... */
export function memberState(f: MemberFacts): string {
  if (f.busyState) return f.busyState;
  if (!f.running) return f.previousState === 'crashed' ? 'crashed' : 'stopped';
  const s = f.status;
  if (!s) return 'starting';
  if (s.inRecovery && f.diverged) return 'diverged';
  if (s.inRecovery && s.replicationState === 'streaming') return 'streaming';
  if (s.inRecovery) return 'in archive recovery';
  return 'running';
}

/** The member key's JSON. */
export function memberData(f: MemberFacts): MemberData {
  const data: MemberData = {
    conn_url: f.connUrl,
    api_url: f.apiUrl,
    state: memberState(f),
    role: f.role,
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

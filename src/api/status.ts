/**
 * The bodies and status codes of Patroni's REST API, computed from the agent's snapshot.
 * Pure functions: the HTTP layer only maps them onto requests.
 */
import type { AgentSnapshot } from '../ha/runner.js';
import { memberRows } from '../ctl/members.js';
import { memberState, publishedRole, publishedState } from '../ha/member.js';
import type { ServerStatus } from '../postgres/types.js';

/** PostgreSQL's state as Patroni's API reports it: `running` for any server that accepts connections. */
export function apiState(s: AgentSnapshot): string {
  return publishedState(s.state);
}

/** What the REST API checks of the local PostgreSQL for one request (api/live.ts does the checking). */
export interface LiveCheck {
  /** Whether a postmaster of this node's data directory runs. */
  alive: boolean;
  /** The status query's answer; null when it failed or did not answer within the deadline. */
  status: ServerStatus | null;
  /** The state an action in progress shows (`starting`, `stopping`, ...); null when none runs. */
  busyState: string | null;
}

/** Member states of a PostgreSQL that accepts connections. */
const RUNNING_STATES = new Set(['running', 'streaming', 'in archive recovery', 'diverged']);

/**
 * The snapshot as one request sees it, as Patroni's `get_postgresql_status` queries PostgreSQL for
 * every request: PostgreSQL's answer replaces the last HA cycle's, so a node that just became
 * leader shows `running` at once. When PostgreSQL does not answer although the last cycle saw it
 * running (or starting, and its postmaster is gone), the state is `unknown` (Patroni's word), so
 * no health check passes on a server that just went away; the role stays the last one known.
 */
export function withLiveCheck(s: AgentSnapshot, live: LiveCheck): AgentSnapshot {
  const st = live.alive ? live.status : null;
  if (st) {
    const state = memberState({
      running: true,
      busyState: live.busyState,
      previousState: s.state,
      status: st,
      diverged: s.diverged,
    });
    // In recovery the HA loop's role stands when it is standby_leader (a standby cluster's leader).
    const role = !st.inRecovery ? 'primary' : s.role === 'standby_leader' ? 'standby_leader' : 'replica';
    return { ...s, running: true, status: st, role, state };
  }
  // `starting` without an action is what the cycle records for a postmaster that exists but does
  // not answer yet (or any more); once the postmaster is gone, nothing is starting.
  const gone = RUNNING_STATES.has(s.state) || (!live.alive && s.state === 'starting');
  const state = live.busyState ?? (gone ? 'unknown' : s.state);
  return { ...s, running: live.alive, status: null, state };
}

/** Extra fields of the status document that live outside the snapshot. */
export interface StatusExtras {
  /** The node's effective tags (those published in the member key). */
  tags?: Record<string, unknown>;
  /** A scheduled restart (`schedule`, filters), shown as Patroni shows it. */
  scheduledRestart?: Record<string, unknown> | null;
}

/** `GET /patroni`: the status document every health endpoint also returns. */
export function statusBody(
  s: AgentSnapshot,
  version: string,
  extras: StatusExtras = {},
): Record<string, unknown> {
  const st = s.status;
  const body: Record<string, unknown> = { state: apiState(s) };
  if (st && s.running) {
    body.postmaster_start_time = st.postmasterStartTime;
    body.role = publishedRole(
      st.inRecovery ? (s.role === 'standby_leader' ? 'standby_leader' : 'replica') : 'primary',
    );
    body.server_version = st.serverVersion;
    body.xlog = st.inRecovery
      ? {
          received_location: st.receiveLsn ?? st.walPosition,
          replayed_location: st.replayLsn ?? st.walPosition,
          replayed_timestamp: st.replayTimestamp ?? null,
          paused: st.replayPaused ?? false,
        }
      : { location: st.walPosition };
    body.timeline = st.timeline;
    if (st.inRecovery && st.replicationState) body.replication_state = st.replicationState;
    if (st.replication.length > 0) {
      body.replication = st.replication.map((r) => ({
        usename: r.usename,
        application_name: r.application_name,
        client_addr: r.client_addr,
        state: r.state,
        sync_state: r.sync_state,
        sync_priority: r.sync_priority,
      }));
    }
    if (st.pendingRestart) body.pending_restart = true;
    if (s.cluster?.sync && st.inRecovery && (s.cluster.sync.sync_standby ?? '').split(',').includes(s.name)) {
      body.sync_standby = true;
    }
  } else {
    body.role = publishedRole(s.role);
  }
  if (!s.cluster || !s.cluster.leader) body.cluster_unlocked = true;
  if (s.failsafeActive) body.failsafe_mode_is_active = true;
  if (extras.tags && Object.keys(extras.tags).length > 0) body.tags = extras.tags;
  if (extras.scheduledRestart) body.scheduled_restart = { ...extras.scheduledRestart };
  if (s.paused) body.pause = true;
  if (s.sysid) body.database_system_identifier = s.sysid;
  body.dcs_last_seen = s.dcsLastSeen ?? 0;
  body.patroni = { version, scope: s.scope, name: s.name };
  return body;
}

/** Parses Patroni's `lag` query value: bytes, or a number with kB/MB/GB (base 1024). */
export function parseLag(value: string | undefined): number | null {
  if (value === undefined) return null;
  const m = /^\s*(\d+)\s*(B|kB|KB|MB|GB|TB)?\s*$/.exec(value);
  if (!m) return null;
  const unit: Record<string, number> = {
    B: 1,
    kB: 1024,
    KB: 1024,
    MB: 1024 ** 2,
    GB: 1024 ** 3,
    TB: 1024 ** 4,
  };
  return Number(m[1]) * (unit[m[2] ?? 'B'] ?? 1);
}

export interface HealthQuery {
  lag?: string;
  replication_state?: string;
  tags: Record<string, string>;
}

/** The status code of a health endpoint (`/primary`, `/replica`, ...), as Patroni computes it. */
export function healthCode(
  path: string,
  s: AgentSnapshot,
  q: HealthQuery,
  tags: Record<string, unknown>,
): number {
  const p = path === '/' ? '/primary' : path;
  const st = s.status;
  const running = s.running && st !== null;
  const role = running
    ? st.inRecovery
      ? s.role === 'standby_leader'
        ? 'standby_leader'
        : 'replica'
      : 'primary'
    : s.role;
  const leaderOptime = s.cluster?.status?.optime ?? 0;
  const replayed = st?.replayLsn ?? st?.walPosition ?? 0;
  const maxLag = parseLag(q.lag) ?? Number.MAX_SAFE_INTEGER;
  const lagging = leaderOptime > 0 && leaderOptime > replayed + maxLag;
  const streamingOk = q.replication_state === undefined || st?.replicationState === q.replication_state;
  const replicaCode =
    tags.noloadbalance !== true && !lagging && role === 'replica' && running && streamingOk ? 200 : 503;
  const isLeader = s.isLeader;
  const leaderCode = isLeader || (s.paused && !s.cluster && role === 'primary') ? 200 : 503;
  const primaryCode = leaderCode === 200 && role === 'primary' ? 200 : 503;
  const isSync = st?.inRecovery === true && (s.cluster?.sync?.sync_standby ?? '').split(',').includes(s.name);

  let code = 503;
  let ignoreTags = false;
  if (p.includes('standby_leader') || p.includes('standby-leader')) {
    // Patroni: the holder of a standby cluster's leader key whose PostgreSQL runs as a replica.
    code = isLeader && s.standbyCluster && (role === 'standby_leader' || role === 'replica') ? 200 : 503;
    ignoreTags = true;
  } else if (p.includes('leader')) {
    code = leaderCode;
    ignoreTags = true;
  } else if (p.includes('master') || p.includes('primary') || p.includes('read-write')) {
    code = primaryCode;
    ignoreTags = true;
  } else if (p.includes('replica')) {
    code = replicaCode;
  } else if (p.includes('read-only') && !p.includes('sync')) {
    code = primaryCode === 200 || (isLeader && role === 'standby_leader') ? 200 : replicaCode;
  } else if (p.includes('health')) {
    code = running ? 200 : 503;
  } else if (s.cluster) {
    if ((p === '/sync' || p === '/synchronous') && isSync) code = replicaCode;
    else if ((p === '/async' || p === '/asynchronous') && !isSync) code = replicaCode;
    else if (p === '/read-only-sync' || p === '/read-only-synchronous')
      code = primaryCode === 200 ? 200 : isSync ? replicaCode : 503;
  }
  if (!ignoreTags && code === 200) {
    for (const [k, v] of Object.entries(q.tags)) {
      const mine = tags[k];
      if (mine === undefined || mine === null || tagText(mine).toLowerCase() !== v.toLowerCase()) return 503;
    }
  }
  return code;
}

function tagText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** `GET /cluster`: all members as patronictl shows them (Patroni's `cluster_as_json`). */
export function clusterBody(s: AgentSnapshot): Record<string, unknown> {
  const c = s.cluster;
  if (!c) return { members: [], scope: s.scope };
  const body: Record<string, unknown> = { members: memberRows(c), scope: s.scope };
  if (s.paused) body.pause = true;
  if (c.failover?.scheduled_at) {
    body.scheduled_switchover = {
      at: c.failover.scheduled_at,
      from: c.failover.leader,
      to: c.failover.member,
    };
  }
  return body;
}

/** `GET /metrics`: Prometheus text with Patroni's metric names, help texts and types. */
export function metricsBody(s: AgentSnapshot, version: string): string {
  const labels = `{scope="${promLabel(s.scope)}",name="${promLabel(s.name)}"}`;
  const st = s.running ? s.status : null;
  const primary = st !== null && !st.inRecovery;
  const replica = st !== null && st.inRecovery;
  const isSync = replica && (s.cluster?.sync?.sync_standby ?? '').split(',').includes(s.name);
  const lines: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, value: number) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels} ${value}`);
  };
  const epoch = (t: string | null | undefined) => (t ? Date.parse(t) / 1000 || 0 : 0);
  metric('patroni_version', 'gauge', 'Patroni semver without periods.', versionNumber(version));
  metric('patroni_postgres_running', 'gauge', 'Value is 1 if Postgres is running, 0 otherwise.', st ? 1 : 0);
  metric(
    'patroni_postmaster_start_time',
    'gauge',
    'Epoch seconds since Postgres started.',
    epoch(st?.postmasterStartTime),
  );
  metric('patroni_master', 'gauge', 'Value is 1 if this node is the leader, 0 otherwise.', primary ? 1 : 0);
  metric('patroni_primary', 'gauge', 'Value is 1 if this node is the leader, 0 otherwise.', primary ? 1 : 0);
  metric(
    'patroni_xlog_location',
    'counter',
    'Current location of the Postgres transaction log, 0 if this node is not the leader.',
    primary ? st.walPosition : 0,
  );
  metric(
    'patroni_standby_leader',
    'gauge',
    'Value is 1 if this node is the standby_leader, 0 otherwise.',
    replica && s.isLeader && s.role === 'standby_leader' ? 1 : 0,
  );
  metric(
    'patroni_replica',
    'gauge',
    'Value is 1 if this node is a replica, 0 otherwise.',
    replica && s.role !== 'standby_leader' ? 1 : 0,
  );
  metric(
    'patroni_sync_standby',
    'gauge',
    'Value is 1 if this node is a sync standby replica, 0 otherwise.',
    isSync ? 1 : 0,
  );
  metric(
    'patroni_quorum_standby',
    'gauge',
    'Value is 1 if this node is a quorum standby replica, 0 otherwise.',
    isSync && typeof s.cluster?.sync?.quorum === 'number' ? 1 : 0,
  );
  metric(
    'patroni_xlog_received_location',
    'counter',
    'Current location of the received Postgres transaction log, 0 if this node is not a replica.',
    replica ? (st.receiveLsn ?? st.walPosition) : 0,
  );
  metric(
    'patroni_xlog_replayed_location',
    'counter',
    'Current location of the replayed Postgres transaction log, 0 if this node is not a replica.',
    replica ? (st.replayLsn ?? st.walPosition) : 0,
  );
  metric(
    'patroni_xlog_replayed_timestamp',
    'gauge',
    'Current timestamp of the replayed Postgres transaction log, 0 if null.',
    replica ? epoch(st.replayTimestamp) : 0,
  );
  metric(
    'patroni_xlog_paused',
    'gauge',
    'Value is 1 if the Postgres xlog is paused, 0 otherwise.',
    replica && st.replayPaused === true ? 1 : 0,
  );
  metric(
    'patroni_postgres_streaming',
    'gauge',
    'Value is 1 if Postgres is streaming, 0 otherwise.',
    replica && st.replicationState === 'streaming' ? 1 : 0,
  );
  metric(
    'patroni_postgres_in_archive_recovery',
    'gauge',
    'Value is 1 if Postgres is replicating from archive, 0 otherwise.',
    replica && st.replicationState !== 'streaming' ? 1 : 0,
  );
  metric(
    'patroni_postgres_server_version',
    'gauge',
    'Version of Postgres (if running), 0 otherwise.',
    st?.serverVersion ?? 0,
  );
  metric(
    'patroni_cluster_unlocked',
    'gauge',
    'Value is 1 if the cluster is unlocked, 0 if locked.',
    s.cluster?.leader ? 0 : 1,
  );
  metric(
    'patroni_failsafe_mode_is_active',
    'gauge',
    'Value is 1 if failsafe mode is active, 0 if inactive.',
    s.failsafeActive ? 1 : 0,
  );
  metric(
    'patroni_postgres_timeline',
    'counter',
    'Postgres timeline of this node (if running), 0 otherwise.',
    st?.timeline ?? 0,
  );
  metric(
    'patroni_dcs_last_seen',
    'gauge',
    'Epoch timestamp when DCS was last contacted successfully by Patroni.',
    s.dcsLastSeen ?? 0,
  );
  metric(
    'patroni_pending_restart',
    'gauge',
    'Value is 1 if the node needs a restart, 0 otherwise.',
    st?.pendingRestart ? 1 : 0,
  );
  metric(
    'patroni_is_paused',
    'gauge',
    'Value is 1 if auto failover is disabled, 0 otherwise.',
    s.paused ? 1 : 0,
  );
  lines.push('');
  return lines.join('\n');
}

function promLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function versionNumber(v: string): number {
  const [a = 0, b = 0, c = 0] = v.split('.').map((x) => Number.parseInt(x, 10) || 0);
  return a * 10000 + b * 100 + c;
}

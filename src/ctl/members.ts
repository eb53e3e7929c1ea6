/**
 * `list` and `topology`: the member table patronictl users know, built from the keys in etcd
 * exactly as Patroni's `cluster_as_json` + `output_members` build it.
 */
import { shownState, type ClusterState, type Member } from '../dcs/types.js';
import { formatOutput, pyRound, type Cell, type OutputFormat } from './table.js';

export interface MemberRow {
  name: string;
  role: string;
  state: string;
  api_url?: string;
  host?: string;
  port?: number;
  timeline?: number;
  lag?: number | string;
  pending_restart?: boolean;
  scheduled_restart?: { schedule?: string; postgres_version?: string };
  tags?: Record<string, unknown>;
}

/** Patroni's `is_standby_cluster`: a `standby_cluster` section with a host, port or restore_command. */
export function isStandbyCluster(config: Record<string, unknown> | undefined): boolean {
  const s = config?.standby_cluster;
  if (!s || typeof s !== 'object') return false;
  const o = s as Record<string, unknown>;
  return Boolean(o.host || o.port || o.restore_command);
}

/** Whether the dynamic configuration has `pause` set (Patroni's `cluster.is_paused()`). */
export function isPaused(cluster: ClusterState): boolean {
  const p = cluster.config?.value.pause;
  return p === true || (typeof p === 'string' && /^(on|true|yes|1)$/i.test(p));
}

/** Names in the `sync` key (Patroni's `SyncState.members`). */
export function syncMembers(cluster: ClusterState): string[] {
  if (!cluster.sync?.leader) return [];
  return (cluster.sync.sync_standby ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s);
}

/** Patroni's `Member.conn_kwargs()`: host, port and dbname from `conn_kwargs` or `conn_url`. */
export function connKwargs(m: Member): { host?: string; port?: number; dbname?: string } {
  const kw = m.data.conn_kwargs;
  if (kw && typeof kw === 'object') {
    const o = kw as Record<string, unknown>;
    return {
      host: typeof o.host === 'string' ? o.host : undefined,
      port: o.port === undefined || o.port === null ? undefined : Number(o.port),
      dbname: typeof o.dbname === 'string' ? o.dbname : undefined,
    };
  }
  if (!m.data.conn_url) return {};
  try {
    const u = new URL(m.data.conn_url);
    return {
      host: decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, '$1'),
      port: Number(u.port || 5432),
      dbname: decodeURIComponent(u.pathname.slice(1)),
    };
  } catch {
    // an unparsable conn_url leaves the host cell empty, as in Patroni
    return {};
  }
}

/** Members with their cluster role and lag, sorted by name (Patroni's `cluster_as_json`). */
export function memberRows(cluster: ClusterState): MemberRow[] {
  const leader = cluster.leader?.name;
  const optime = cluster.status?.optime ?? 0;
  const sync = new Set(syncMembers(cluster));
  const rows = cluster.members.map((m) => {
    const role =
      m.name === leader
        ? isStandbyCluster(cluster.config?.value)
          ? 'standby_leader'
          : 'leader'
        : sync.has(m.name)
          ? 'sync_standby'
          : 'replica';
    const row: MemberRow = {
      name: m.name,
      role,
      state: shownState(m.data, m.name === leader),
    };
    if (m.data.api_url) row.api_url = m.data.api_url;
    const kw = connKwargs(m);
    if (kw.host) {
      row.host = kw.host;
      if (kw.port) row.port = kw.port;
    }
    if (m.data.timeline !== undefined) row.timeline = m.data.timeline;
    if (m.data.pending_restart !== undefined) row.pending_restart = m.data.pending_restart;
    if (m.data.scheduled_restart) row.scheduled_restart = m.data.scheduled_restart;
    if (m.data.tags) row.tags = m.data.tags;
    if (m.name !== leader) {
      const lsn = m.data.xlog_location;
      row.lag = typeof lsn !== 'number' ? 'unknown' : Math.max(0, optime - lsn);
    }
    return row;
  });
  return rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Orders members leader first, each followed by the replicas that stream from it, indented with
 * `+ ` (Patroni's `topology_sort`). Without a leader every member is shown one level down.
 */
function topologySort(rows: MemberRow[]): MemberRow[] {
  const isLeader = (r: MemberRow) => r.role.endsWith('leader');
  const leader = rows.find(isLeader);
  const replicas = new Set(rows.filter((r) => !isLeader(r)).map((r) => r.name));
  const children = new Map<string | undefined, MemberRow[]>();
  for (const r of rows) {
    if (isLeader(r)) continue;
    const tag = r.tags?.replicatefrom;
    const parent = typeof tag === 'string' && tag && tag !== r.name && replicas.has(tag) ? tag : leader?.name;
    children.set(parent, [...(children.get(parent) ?? []), r]);
  }
  const out: MemberRow[] = [];
  const visit = (name: string | undefined, r: MemberRow | undefined, level: number) => {
    if (r) out.push(level > 0 ? { ...r, name: ' '.repeat((level - 1) * 2) + '+ ' + r.name } : r);
    for (const c of children.get(name) ?? []) visit(c.name, c, level + 1);
  };
  visit(leader?.name, leader, 0);
  return out;
}

/** The text `pgha ctl list` / `topology` prints for one cluster (table and service info). */
export function renderMembers(
  scope: string,
  cluster: ClusterState,
  fmt: OutputFormat,
  extended = false,
): string {
  const rows = memberRows(cluster);
  const columns = ['Cluster', 'Member', 'Host', 'Role', 'State', 'TL', 'Lag in MB'];
  const withHost = rows.filter((r) => r.host !== undefined);
  for (const [c, key] of [
    ['Pending restart', 'pending_restart'],
    ['Scheduled restart', 'scheduled_restart'],
    ['Tags', 'tags'],
  ] as const) {
    if (extended || withHost.some((r) => isTruthy(r[key]))) columns.push(c);
  }
  const appendPort =
    withHost.some((r) => r.port !== undefined && r.port !== 5432) ||
    new Set(withHost.map((r) => r.host)).size < withHost.length;
  const ordered = fmt === 'topology' ? topologySort(rows) : rows;
  const table: Cell[][] = ordered.map((r) => {
    let host = r.host ?? '';
    if (appendPort && host && r.port) host = `${host}:${r.port}`;
    const lag = typeof r.lag === 'number' ? pyRound(r.lag / 1024 / 1024) : (r.lag ?? '');
    let scheduled: Cell = '';
    if (r.scheduled_restart) {
      scheduled = r.scheduled_restart.schedule ?? '';
      if (r.scheduled_restart.postgres_version)
        scheduled += ` if version < ${r.scheduled_restart.postgres_version}`;
    }
    const cells: Record<string, Cell> = {
      Cluster: scope,
      Member: r.name,
      Host: host,
      Role: titleCase(r.role.replace(/_/g, ' ')),
      State: r.state,
      TL: r.timeline ?? '',
      'Lag in MB': lag,
      'Pending restart': r.pending_restart ? '*' : '',
      'Scheduled restart': scheduled,
      Tags: r.tags ?? '',
    };
    return columns.map((c) => cells[c]);
  });
  let out = formatOutput(columns, table, fmt, {
    align: { 'Lag in MB': 'r', TL: 'r' },
    // Patroni 3.1+ (and this project's reference) show the system identifier; Debian's 3.0.2 does not.
    title: ` Cluster: ${scope} (${initializeText(cluster)}) `,
  });
  if (fmt === 'pretty' || fmt === 'topology') {
    const info = serviceInfo(cluster);
    if (info.length > 0) out += '\n ' + info.join('\n ');
  }
  return out;
}

/** The cluster's system identifier, or what patronictl shows instead. */
export function initializeText(cluster: ClusterState): string {
  return cluster.initialize === null
    ? 'uninitialized'
    : cluster.initialize === ''
      ? 'initializing'
      : cluster.initialize;
}

/** Lines under the table: maintenance mode and a scheduled switchover (`get_cluster_service_info`). */
function serviceInfo(cluster: ClusterState): string[] {
  const info: string[] = [];
  if (isPaused(cluster)) info.push('Maintenance mode: on');
  const fo = cluster.failover;
  if (fo?.scheduled_at) {
    let line = `Switchover scheduled at: ${fo.scheduled_at}`;
    if (fo.leader) line += `\n${'from'.padStart(24)}: ${fo.leader}`;
    if (fo.member) line += `\n${'to'.padStart(24)}: ${fo.member}`;
    info.push(line);
  }
  return info;
}

function isTruthy(v: unknown): boolean {
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v);
}

/** Python's `str.title()`. */
function titleCase(s: string): string {
  return s.toLowerCase().replace(/(^|[^a-zA-Z])([a-z])/g, (_, p: string, c: string) => p + c.toUpperCase());
}

/**
 * `list` and `topology`: the member table patronictl users know, built from the keys in etcd
 * exactly as Patroni's `cluster_as_json` + `output_members` build it.
 */
import type { ClusterState } from '../dcs/types.js';
import { formatOutput, type Cell, type OutputFormat } from './table.js';

interface MemberRow {
  name: string;
  role: string;
  state: string;
  host?: string;
  port?: number;
  timeline?: number;
  lag?: number | string;
  pending_restart?: boolean;
  scheduled_restart?: { schedule?: string; postgres_version?: string };
  tags?: Record<string, unknown>;
  replicatefrom?: string;
}

/** Members with their cluster role and lag, sorted by name (Patroni's `cluster_as_json`). */
export function memberRows(cluster: ClusterState): MemberRow[] {
  const leader = cluster.leader?.name;
  const optime = cluster.status?.optime ?? 0;
  const sync = new Set(
    (cluster.sync?.sync_standby ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s),
  );
  const rows = cluster.members.map((m) => {
    const row: MemberRow = {
      name: m.name,
      role: m.name === leader ? 'leader' : sync.has(m.name) ? 'sync_standby' : 'replica',
      state: typeof m.data.state === 'string' ? m.data.state : '',
    };
    if (m.data.conn_url) {
      try {
        const u = new URL(m.data.conn_url);
        if (u.hostname) {
          row.host = u.hostname;
          row.port = Number(u.port || 5432);
        }
      } catch {
        // an unparsable conn_url leaves the host cell empty, as in Patroni
      }
    }
    if (typeof m.data.timeline === 'number') row.timeline = m.data.timeline;
    if (m.data.pending_restart) row.pending_restart = true;
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

/** Orders members leader first, each followed by the replicas that stream from it, indented. */
function topologySort(rows: MemberRow[]): Array<MemberRow & { indent: number }> {
  const leader = rows.find((r) => r.role.endsWith('leader'));
  if (!leader) return rows.map((r) => ({ ...r, indent: 0 }));
  const replicas = new Set(rows.filter((r) => !r.role.endsWith('leader')).map((r) => r.name));
  const children = new Map<string, MemberRow[]>();
  for (const r of rows) {
    if (r.role.endsWith('leader')) continue;
    const parentTag = r.tags?.replicatefrom;
    const parent =
      typeof parentTag === 'string' && parentTag !== r.name && replicas.has(parentTag)
        ? parentTag
        : leader.name;
    children.set(parent, [...(children.get(parent) ?? []), r]);
  }
  const out: Array<MemberRow & { indent: number }> = [];
  const visit = (r: MemberRow, level: number) => {
    out.push({ ...r, indent: level });
    for (const c of children.get(r.name) ?? []) visit(c, level + 1);
  };
  visit(leader, 0);
  return out;
}

/** The text `pgha ctl list` / `topology` prints for one cluster. */
export function renderMembers(
  scope: string,
  cluster: ClusterState,
  fmt: OutputFormat,
  extended = false,
): string {
  const rows = memberRows(cluster);
  const columns = ['Cluster', 'Member', 'Host', 'Role', 'State', 'TL', 'Lag in MB'];
  for (const [c, key] of [
    ['Pending restart', 'pending_restart'],
    ['Scheduled restart', 'scheduled_restart'],
    ['Tags', 'tags'],
  ] as const) {
    if (extended || rows.some((r) => r[key])) columns.push(c);
  }
  const hosts = rows.filter((r) => r.host !== undefined);
  const appendPort =
    hosts.some((r) => r.port !== 5432) || new Set(hosts.map((r) => r.host)).size < hosts.length;
  const ordered = fmt === 'topology' ? topologySort(rows) : rows.map((r) => ({ ...r, indent: 0 }));
  const table: Cell[][] = ordered.map((r) => {
    let host = r.host ?? '';
    if (appendPort && host && r.port) host = `${host}:${r.port}`;
    const member =
      fmt === 'topology' && r.indent > 0 ? ' '.repeat((r.indent - 1) * 2) + '+ ' + r.name : r.name;
    const lag = typeof r.lag === 'number' ? Math.round(r.lag / 1024 / 1024) : (r.lag ?? '');
    let scheduled = '';
    if (r.scheduled_restart?.schedule) {
      scheduled = r.scheduled_restart.schedule;
      if (r.scheduled_restart.postgres_version)
        scheduled += ` if version < ${r.scheduled_restart.postgres_version}`;
    }
    const cells: Record<string, Cell> = {
      Cluster: scope,
      Member: member,
      Host: host,
      Role: titleCase(r.role.replace(/_/g, ' ')),
      State: r.state,
      TL: r.timeline ?? '',
      'Lag in MB': lag,
      'Pending restart': r.pending_restart ? '*' : '',
      'Scheduled restart': scheduled,
      Tags: r.tags ? JSON.stringify(r.tags) : '',
    };
    return columns.map((c) => cells[c]);
  });
  const init =
    cluster.initialize === null
      ? 'uninitialized'
      : cluster.initialize === ''
        ? 'initializing'
        : cluster.initialize;
  const title = ` Cluster: ${scope} (${init}) `;
  let out = formatOutput(columns, table, fmt === 'topology' ? 'pretty' : fmt, {
    align: { 'Lag in MB': 'r', TL: 'r' },
    title,
    skipFirstColumn: true,
  });
  if (fmt === 'pretty' || fmt === 'topology') {
    const info: string[] = [];
    const paused = cluster.config?.value.pause === true;
    if (paused) info.push('Maintenance mode: on');
    const fo = cluster.failover;
    if (fo?.scheduled_at) {
      let line = `Switchover scheduled at: ${fo.scheduled_at}`;
      if (fo.leader) line += `\n${'from'.padStart(24)}: ${fo.leader}`;
      if (fo.member) line += `\n${'to'.padStart(24)}: ${fo.member}`;
      info.push(line);
    }
    if (info.length > 0) out += '\n ' + info.join('\n ');
  }
  return out;
}

function titleCase(s: string): string {
  return s.replace(/\b\w/g, (c) => c.toUpperCase());
}

/**
 * Which member a catalog dump reads from, decided from the cluster's keys in etcd alone (pure, so
 * every rule is unit-tested with plain objects): a healthy streaming replica with the least lag,
 * so the Director's primary does no dump work, else the leader.
 */
import { isStreamingMember, type ClusterState, type Member } from '../dcs/types.js';
import { connKwargs } from '../ctl/members.js';

/** One member a dump may read from, best first. */
export interface DumpSource {
  name: string;
  host: string;
  port: number;
  role: 'replica' | 'leader';
  /** Bytes behind the leader's last known WAL position (0 for the leader; null when unknown). */
  lagBytes: number | null;
}

export interface SourceChoice {
  /** Candidates in the order to try them. */
  sources: DumpSource[];
  /** Why each member left out was left out, for the log. */
  skipped: Array<{ name: string; reason: string }>;
}

export interface SourceOptions {
  /** Replicas further behind than this are not used. */
  maxLagBytes: number;
  /** Only this member (by name), whatever its role. */
  member?: string;
  /** Never fall back to the leader. */
  replicaOnly?: boolean;
  /** Read from the leader only. */
  leaderOnly?: boolean;
}

function isTrue(v: unknown): boolean {
  return v === true || (typeof v === 'string' && /^(true|yes|on|1)$/i.test(v));
}

function endpoint(m: Member): { host: string; port: number } | null {
  const kw = connKwargs(m);
  return kw.host ? { host: kw.host, port: kw.port ?? 5432 } : null;
}

/**
 * Orders the members a dump may read from. Replicas qualify when they are `streaming`, have a
 * connection address, are not tagged `noloadbalance` (the operator keeps client reads away from
 * them) and are at most `maxLagBytes` behind; they come first, least lag first. The leader comes
 * last (unless `replicaOnly`) when its state is `running`.
 */
export function chooseDumpSources(cluster: ClusterState, opts: SourceOptions): SourceChoice {
  const leaderName = cluster.leader?.name;
  const optime = cluster.status?.optime;
  const skipped: SourceChoice['skipped'] = [];
  const replicas: DumpSource[] = [];
  let leader: DumpSource | undefined;

  for (const m of cluster.members) {
    if (opts.member !== undefined && m.name !== opts.member) continue;
    const at = endpoint(m);
    if (!at) {
      skipped.push({ name: m.name, reason: 'no connection address in etcd' });
      continue;
    }
    if (m.name === leaderName) {
      if (m.data.state === 'running') leader = { name: m.name, ...at, role: 'leader', lagBytes: 0 };
      else skipped.push({ name: m.name, reason: `leader in state ${m.data.state ?? 'unknown'}` });
      continue;
    }
    if (opts.leaderOnly) continue;
    if (!isStreamingMember(m.data)) {
      skipped.push({ name: m.name, reason: `state ${m.data.state ?? 'unknown'}, not streaming` });
      continue;
    }
    if (opts.member === undefined && isTrue(m.data.tags?.noloadbalance)) {
      skipped.push({ name: m.name, reason: 'tagged noloadbalance' });
      continue;
    }
    // What a query on the replica sees is what it has replayed, not only received.
    const lsn = m.data.replay_lsn ?? m.data.xlog_location;
    const lag = typeof optime === 'number' && typeof lsn === 'number' ? Math.max(0, optime - lsn) : null;
    if (lag !== null && lag > opts.maxLagBytes) {
      skipped.push({ name: m.name, reason: `${lag} bytes behind the leader (max ${opts.maxLagBytes})` });
      continue;
    }
    replicas.push({ name: m.name, ...at, role: 'replica', lagBytes: lag });
  }
  // Unknown lag sorts after every known one: a replica that reports its position is preferred.
  replicas.sort(
    (a, b) =>
      (a.lagBytes ?? Number.MAX_SAFE_INTEGER) - (b.lagBytes ?? Number.MAX_SAFE_INTEGER) ||
      a.name.localeCompare(b.name),
  );
  const sources = [...replicas];
  if (leader && !opts.replicaOnly) sources.push(leader);
  return { sources, skipped };
}

/** Parses `16MB`, `1048576`, `512kB` (powers of 1024, as the router's `max_lag`); undefined if invalid. */
export function parseBytes(value: string): number | undefined {
  const m = /^\s*(\d+)\s*(B|kB|KB|MB|GB|TB)?\s*$/i.exec(value);
  if (!m) return undefined;
  const mult: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
  return Number(m[1]) * (mult[(m[2] ?? 'B').toUpperCase()] ?? 1);
}

/** `12.3 MiB`-style sizes for progress lines. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/**
 * From the cluster as read from etcd to where the router sends clients: a pure function, tested
 * with plain objects. The rules mirror Patroni's REST health checks on purpose (`/primary`:
 * holds the leader key and runs as primary; `/replica`: a running replica, not tagged
 * `noloadbalance`, within the lag cap), so the router agrees with what HAProxy would have chosen.
 */
import { parseDynamicConfig } from '../config/schema.js';
import { isStreamingMember, type ClusterState, type Member } from '../dcs/types.js';
import { urlHostPort } from '../util/net.js';

/** A PostgreSQL server the router can connect to. */
export interface Backend {
  name: string;
  host: string;
  port: number;
  /** The agent's REST base URL (`http://host:8008`), when published. */
  apiUrl?: string;
}

export interface ReplicaBackend extends Backend {
  /** Bytes behind the leader's last known WAL position; undefined when unknown. */
  lagBytes?: number;
}

export interface Topology {
  /** Where writes go; null when no member holds the leader key and runs as primary. */
  primary: Backend | null;
  /** Why `primary` is null (for logs and the status endpoint). */
  primaryReason?: string;
  /** Replicas eligible for the read-only port, in member-name order. */
  replicas: ReplicaBackend[];
  /** Every member with a usable address (a cancel request with an unknown key goes to all). */
  all: Backend[];
  /** Members left out of `replicas`, with the reason, for the status endpoint. */
  excluded: Array<{ name: string; reason: string }>;
  /** Dynamic `ttl` in seconds: how long the leader's lease may outlive our last etcd read. */
  ttl: number;
  /** Dynamic `retry_timeout` in seconds: the deadline of each etcd request, as the agents use it. */
  retryTimeout: number;
  /** The `leader` key's value, even when that member is not (yet) usable as primary. */
  leaderName: string | null;
  /** Dynamic `failsafe_mode`: a primary cut off from etcd may go on while every member confirms it. */
  failsafeMode: boolean;
}

export interface TopologyOptions {
  /** Replicas further behind than this many bytes are not used; null for no cap. */
  maxLagBytes: number | null;
}

/** `http://h:8008/patroni` → `http://h:8008`. */
function apiBase(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

function toBackend(m: Member): Backend | null {
  const addr = urlHostPort(m.data.conn_url);
  if (!addr) return null;
  const b: Backend = { name: m.name, host: addr.host, port: addr.port };
  const api = apiBase(m.data.api_url);
  if (api) b.apiUrl = api;
  return b;
}

function truthyTag(v: unknown): boolean {
  return v === true || (typeof v === 'string' && ['true', 'yes', 'on', '1'].includes(v.toLowerCase()));
}

const PRIMARY_ROLES = new Set(['primary', 'master']);

/** Computes where the router sends clients, from one consistent read of the cluster. */
export function computeTopology(cluster: ClusterState, opts: TopologyOptions): Topology {
  const {
    ttl,
    retry_timeout: retryTimeout,
    failsafe_mode: failsafeMode,
  } = parseDynamicConfig(cluster.config?.value ?? {}).config;
  const all: Backend[] = [];
  for (const m of cluster.members) {
    const b = toBackend(m);
    if (b) all.push(b);
  }
  const leaderName = cluster.leader?.name ?? null;
  const leader = cluster.members.find((m) => m.name === leaderName);
  let primary: Backend | null = null;
  let primaryReason: string | undefined;
  if (leaderName === null) primaryReason = 'no member holds the leader key';
  else if (!leader) primaryReason = `leader ${leaderName} has no member key`;
  else if (!PRIMARY_ROLES.has(String(leader.data.role)))
    primaryReason = `leader ${leaderName} is not running as primary yet (role ${String(leader.data.role)})`;
  else if (leader.data.state !== 'running')
    primaryReason = `leader ${leaderName} is not running (state ${String(leader.data.state)})`;
  else {
    primary = toBackend(leader);
    if (!primary) primaryReason = `leader ${leaderName} publishes no usable conn_url`;
  }

  // Lag is measured against the best known position of the leader.
  const leaderWal = Math.max(
    cluster.status?.optime ?? 0,
    typeof leader?.data.xlog_location === 'number' ? leader.data.xlog_location : 0,
  );
  const replicas: ReplicaBackend[] = [];
  const excluded: Array<{ name: string; reason: string }> = [];
  const members = [...cluster.members].sort((a, b) => a.name.localeCompare(b.name));
  for (const m of members) {
    if (m.name === leaderName) continue;
    const d = m.data;
    const exclude = (reason: string) => excluded.push({ name: m.name, reason });
    if (d.role !== 'replica') {
      exclude(`role ${String(d.role)}`);
      continue;
    }
    if (!isStreamingMember(d)) {
      exclude(`not streaming (state ${String(d.state)})`);
      continue;
    }
    if (truthyTag(d.tags?.noloadbalance)) {
      exclude('tagged noloadbalance');
      continue;
    }
    const b = toBackend(m);
    if (!b) {
      exclude('no usable conn_url');
      continue;
    }
    const pos = Math.max(
      typeof d.receive_lsn === 'number' ? d.receive_lsn : 0,
      typeof d.replay_lsn === 'number' ? d.replay_lsn : 0,
      typeof d.xlog_location === 'number' ? d.xlog_location : 0,
    );
    const r: ReplicaBackend = b;
    if (leaderWal > 0 && pos > 0) r.lagBytes = Math.max(0, leaderWal - pos);
    if (opts.maxLagBytes !== null && r.lagBytes !== undefined && r.lagBytes > opts.maxLagBytes) {
      exclude(`lag ${r.lagBytes} bytes > maximum ${opts.maxLagBytes}`);
      continue;
    }
    replicas.push(r);
  }

  const t: Topology = { primary, replicas, all, excluded, ttl, retryTimeout, leaderName, failsafeMode };
  if (primaryReason !== undefined) t.primaryReason = primaryReason;
  return t;
}

/** True when two backends are the same server (name and address). */
export function sameBackend(a: Backend | null, b: Backend | null): boolean {
  if (a === null || b === null) return a === b;
  return a.name === b.name && a.host === b.host && a.port === b.port;
}

/** How the read-only port picks among eligible replicas. */
export type BalancePolicy = 'round-robin' | 'least-connections';

/**
 * Picks a replica: round-robin over the eligible list, or the one with the fewest open sessions
 * (ties broken round-robin so an idle cluster still spreads). Returns null when the list is empty.
 */
export class ReplicaPicker {
  private cursor = 0;
  constructor(private readonly policy: BalancePolicy) {}

  pick(replicas: readonly Backend[], sessions: (name: string) => number): Backend | null {
    if (replicas.length === 0) return null;
    const start = this.cursor++ % replicas.length;
    if (this.policy === 'round-robin') return replicas[start]!;
    let best: Backend | null = null;
    let bestCount = Infinity;
    for (let i = 0; i < replicas.length; i++) {
      const r = replicas[(start + i) % replicas.length]!;
      const n = sessions(r.name);
      if (n < bestCount) {
        best = r;
        bestCount = n;
      }
    }
    return best;
  }
}

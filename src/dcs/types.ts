/**
 * The distributed configuration store (DCS) as the rest of pgha sees it. Only `src/dcs/` talks to
 * etcd; `ha/` works on the plain `ClusterState` objects below, so its logic is tested without etcd.
 * Key names and JSON fields are Patroni's (see docs/design.md), so Patroni tools read pgha clusters.
 */

/** `members/<name>`: what one node publishes about itself, as Patroni's JSON. */
export interface MemberData {
  conn_url?: string;
  api_url?: string;
  state?: string;
  role?: string;
  version?: string;
  xlog_location?: number;
  receive_lsn?: number;
  replay_lsn?: number;
  replication_state?: string;
  timeline?: number;
  tags?: Record<string, unknown>;
  pending_restart?: boolean;
  scheduled_restart?: Record<string, unknown>;
  pause?: boolean;
  checkpoint_after_promote?: boolean;
  [field: string]: unknown;
}

export interface Member {
  name: string;
  data: MemberData;
  /** etcd mod_revision of the member key (string: etcd revisions are 64-bit). */
  modRevision: string;
  /** Lease the key hangs on, as a decimal string; '0' when none. */
  lease: string;
}

export interface LeaderKey {
  name: string;
  modRevision: string;
  lease: string;
}

/** One change a watch saw: the key (relative to the prefix), its new value (null: deleted), its revision. */
export interface WatchEvent {
  key: string;
  value: string | null;
  modRevision: string;
}

/** `failover`: a requested switchover (leader set) or failover (only member set). */
export interface FailoverKey {
  leader?: string;
  member?: string;
  scheduled_at?: string;
  modRevision: string;
}

/** `sync`: which standbys are synchronous. */
export interface SyncKey {
  leader: string | null;
  sync_standby: string | null;
  quorum?: number | null;
  modRevision: string;
}

/** One `history` entry: [timeline, lsn, reason, ISO time, new leader]. */
export type HistoryEntry = [number, number, string, string?, string?];

/** `status`: the leader's last known WAL position and its replication slots' positions. */
export interface StatusKey {
  optime: number;
  slots?: Record<string, number>;
  retain_slots?: string[];
}

/**
 * `routers/<id>`: a running `pgha router` (on its own lease), and its `routers/<id>/drained` answer
 * to a drain request (the request's id). pgha extension: Patroni ignores the keys.
 */
export interface RouterKey {
  id: string;
  /** How long the router lets transactions finish before it cuts them (ms). */
  drainTimeoutMs: number;
  /** The id of the last drain request it finished, or null. */
  drained: string | null;
}

/** `drain`: a primary about to stop for a switchover asks the routers to drain its sessions. */
export interface DrainKey {
  /** Unique per switchover request. */
  id: string;
  /** The primary that will stop. */
  from: string;
  /** The member taking over. */
  to: string;
}

/** Everything under `/<namespace>/<scope>/`, read at one etcd revision. */
export interface ClusterState {
  /** Database system identifier from `initialize`; null when the cluster is not initialised. */
  initialize: string | null;
  config: { value: Record<string, unknown>; modRevision: string } | null;
  leader: LeaderKey | null;
  members: Member[];
  failover: FailoverKey | null;
  sync: SyncKey | null;
  history: HistoryEntry[];
  status: StatusKey | null;
  failsafe: Record<string, string> | null;
  /** Registered routers (pgha extension; absent from states built without them). */
  routers?: RouterKey[];
  /** A switchover's drain request (pgha extension). */
  drain?: DrainKey | null;
  /** etcd header revision the state was read at. */
  revision: string;
}

/** Result of a compare-and-set style write. */
export type CasResult = { ok: true; modRevision: string } | { ok: false };

export interface Dcs {
  /** `/<namespace>/<scope>/`, with the trailing slash. */
  readonly prefix: string;
  readonly memberName: string;
  /** This node's current lease (decimal string), or null before the first grant. */
  readonly leaseId: string | null;

  /** Reads every key of the cluster in one range request. Throws `DcsError` when unreachable. */
  readCluster(signal?: AbortSignal): Promise<ClusterState>;

  /**
   * Keeps this node's lease alive (one keep-alive request), creating a new lease when it was lost.
   * Returns the monotonic time (ms, as `Clock.mono`) the successful request was *sent*: the lease
   * cannot expire on the etcd side before that time + ttl.
   */
  refreshLease(signal?: AbortSignal): Promise<number>;
  /** Changes the TTL used for leases created from now on (dynamic `ttl` changed). */
  setTtl(ttlSeconds: number): void;
  /** Changes the deadline of each request (dynamic `retry_timeout` changed); optional. */
  setRequestTimeout?(ms: number): void;

  /** Writes `members/<name>` attached to this node's lease. */
  touchMember(data: MemberData, signal?: AbortSignal): Promise<void>;
  /** Deletes a member key (`pgha ctl remove`, or this node's own on clean shutdown). */
  deleteMember(name: string): Promise<void>;

  /** Atomically creates `leader` = own name with own lease if absent (create_revision == 0). */
  attemptToAcquireLeader(signal?: AbortSignal): Promise<boolean>;
  /**
   * Renews leadership: refreshes the lease and verifies `leader` still holds our name with our lease;
   * re-attaches it (txn on value) if the lease was replaced. Returns false when someone else holds it.
   */
  updateLeader(signal?: AbortSignal): Promise<boolean>;
  /**
   * `updateLeader` that says from when the key is provably ours: the monotonic send time of the
   * keep-alive of the lease the key hangs on (the key lives at least until then + ttl), or null
   * when the key is not ours. The fence is armed only from this.
   */
  renewLeader(signal?: AbortSignal): Promise<number | null>;
  /**
   * How long ago (ms) the lease `lease` (another member's, from its key) was last renewed, as
   * etcd sees it (granted ttl − remaining ttl; one-second resolution); null when it is gone or unknown.
   */
  leaseSilentMs(lease: string, signal?: AbortSignal): Promise<number | null>;
  /** The TTL (seconds) the lease `lease` was granted with; null when it is gone. Throws when etcd does not say. */
  leaseGrantedTtlS(lease: string, signal?: AbortSignal): Promise<number | null>;
  /** Releases the leader key only if it still holds our name (txn value == name → delete). */
  deleteLeader(): Promise<boolean>;
  /**
   * Deletes another member's leader key, only if it still holds `name` at `modRevision` (nobody
   * renewed or re-took it since it was seen); for a leader proven gone (`fast_failover`).
   */
  deleteLeaderOf(name: string, modRevision: string): Promise<boolean>;

  /**
   * Holds a key of its own under the cluster prefix on this node's lease (`pgha vip` uses
   * `vip/<address>`): creates `rel` = `value` when absent (create_revision == 0). Returns who holds
   * it now, and whether that is us (same value, on our current lease).
   */
  claimKey(
    rel: string,
    value: string,
    signal?: AbortSignal,
  ): Promise<{ held: boolean; holder: string | null }>;
  /** Deletes `rel` only if it still holds `value` on our lease. */
  releaseKey(rel: string, value: string): Promise<boolean>;

  /** Bootstrap race: creates `initialize` with `value` only if absent. */
  initialize(value: string, create: boolean): Promise<boolean>;
  cancelInitialization(): Promise<void>;

  /** Writes `config`; with `expectedModRevision`, only if unchanged since (409 semantics). */
  setConfig(value: Record<string, unknown>, expectedModRevision?: string): Promise<CasResult>;
  setFailover(value: Omit<FailoverKey, 'modRevision'>, expectedModRevision?: string): Promise<CasResult>;
  /** Clears a failover request by writing `{}`, as Patroni does. */
  clearFailover(): Promise<void>;
  setSync(value: Omit<SyncKey, 'modRevision'>, expectedModRevision?: string): Promise<CasResult>;
  setHistory(history: HistoryEntry[]): Promise<void>;
  setStatus(status: StatusKey): Promise<void>;
  setFailsafe(value: Record<string, string> | null): Promise<void>;
  /** Deletes every key of the cluster (`pgha ctl remove`). */
  deleteCluster(): Promise<void>;

  /**
   * Watches the cluster prefix; calls `onChange` for every batch of events (coalesced by the caller).
   * Re-establishes the watch after errors. Returns a function that stops watching. `events`
   * carries each change's value and revision where the store knows them.
   */
  watch(onChange: (keys: string[], events?: WatchEvent[]) => void): () => Promise<void>;

  /** Revokes this node's lease (its member and leader keys vanish at once) and closes connections. */
  close(opts?: { revokeLease?: boolean }): Promise<void>;
}

/**
 * Whether a member key says its PostgreSQL streams from an upstream. Patroni (and pgha) publish
 * `state: running` with `replication_state: streaming`; pgha before 0.2 published `state: streaming`.
 */
export function isStreamingMember(d: MemberData): boolean {
  return d.state === 'streaming' || (d.state === 'running' && d.replication_state === 'streaming');
}

/** What `patronictl list` shows as State: a replica's replication state when it has one, else its state. */
export function shownState(d: MemberData, isLeader: boolean): string {
  return (!isLeader && typeof d.replication_state === 'string' && d.replication_state) || (d.state ?? '');
}

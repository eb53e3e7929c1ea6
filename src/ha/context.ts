/**
 * What the HA runner's effect modules (actions.ts, leader.ts, switchover-run.ts, probe.ts) share:
 * the injected dependencies, the state kept across cycles, and a few helpers of the runner. The
 * runner implements `RunnerContext`; the modules only carry out what the planners decided.
 */
import type { CallbackName, DynamicConfig, PghaConfig } from '../config/types.js';
import type { ClusterState, Dcs, Member } from '../dcs/types.js';
import type { ConnTarget, PostgresNode, RoleConfig, ServerStatus } from '../postgres/types.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { LeaderWatchdog } from '../watchdog/watchdog.js';
import type { FailsafeAnswer, FailsafeLeader } from './failsafe.js';
import type { ProbeResult } from './fast-failover.js';
import type { LeaseGuard } from './lease.js';
import type { SlotKeeper } from './slots-run.js';
import type { Decision, PeerStatus } from './types.js';

export interface RunnerDeps {
  config: PghaConfig;
  dcs: Dcs;
  pg: PostgresNode;
  logger: Logger;
  /** Parses the `config` key (or bootstrap.dcs) into the dynamic config with defaults. */
  parseDynamic(raw: Record<string, unknown>): DynamicConfig;
  /** Asks a peer's REST API for its status (`GET /patroni`), within the signal's deadline. */
  fetchPeer(member: Member, signal: AbortSignal): Promise<PeerStatus>;
  /** The watchdog pinged with every renewal while leader (absent: none, as `watchdog.mode: off`). */
  watchdog?: LeaderWatchdog;
  /** One TCP connection attempt (`fast_failover` probes of the leader); absent: no fast failover. */
  probePort?(host: string, port: number): Promise<ProbeResult>;
  /** `POST /failsafe` to a peer (failsafe_mode); absent: every peer counts as not confirming. */
  postFailsafe?(member: Member, leader: FailsafeLeader, signal: AbortSignal): Promise<FailsafeAnswer>;
  /** Runs a user callback (`on_start`, ...) without waiting for it. */
  runCallback(action: CallbackName, role: string): void;
  /** Physical slot name for a member (Patroni's rule). */
  slotName(member: string): string;
  version: string;
  /** Wall and monotonic time, timers (default: the process's). */
  clock?: Clock;
}

/** What the REST API and the ctl read about this node; updated once per cycle. */
export interface AgentSnapshot {
  name: string;
  scope: string;
  /** Patroni's member state: running, starting, stopped, crashed, creating replica, ... */
  state: string;
  role: 'primary' | 'replica' | 'standby_leader' | 'uninitialized' | 'demoted';
  /** The dynamic configuration in force makes this a standby cluster. */
  standbyCluster: boolean;
  cluster: ClusterState | null;
  dynamic: DynamicConfig;
  status: ServerStatus | null;
  running: boolean;
  /** Seconds since epoch of the last successful read from the store. */
  dcsLastSeen: number | null;
  /** Seconds since epoch of the end of the last HA cycle. */
  lastLoop: number | null;
  lastDecision: Decision | null;
  isLeader: boolean;
  sysid: string | null;
  paused: boolean;
  /** The store is unreachable and every member confirmed this primary over `POST /failsafe`. */
  failsafeActive: boolean;
  /** A replica that cannot apply what it streams (a fork on the same timeline): the evidence. */
  diverged: string | null;
}

/** State the runner keeps across cycles. */
export interface RunnerState {
  /** The member this node was last configured to stream from (null: none, or primary). */
  configuredUpstream: string | null;
  upstreamKnown: boolean;
  /** With `configuredUpstream` the standby_cluster source: its settings then (`remoteKey`). */
  configuredRemote: string | null;
  /** Waiting for an operator: the reason (persisted beside the data directory for rewind failures). */
  operatorHold: string | null;
  /** The member state shown while an action runs (`starting`, `promoting`, ...). */
  busyState: string | null;
  /** Since when (monotonic) a long action the keeper must cover runs; null when none. */
  longActionSince: number | null;
  /** Parameters and pg_hba last written to the server's configuration (null: not since start). */
  appliedServerConfig: string | null;
  /** Why the last start as primary failed (cleared by a successful start). */
  startFailure: string | null;
  /** synchronous_standby_names this leader put in force, and the WAL position once it was. */
  ssn: string;
  ssnSince: number;
  lastSyncWhy: string;
  /** Quick looks taken since the last change of synchronous replication (leader.ts followUpSync). */
  syncRechecks: number;
  /** When (monotonic) a start of PostgreSQL as primary last woke the loop early. */
  startWokeAt: number;
  /** Standbys the standby watch found silent (sync.ts trackSilence): not synchronous candidates. */
  silentStandbys: string[];
  lastStatusKey: string;
  /** Whether this node was leader in the previous cycle (a new leader restarts its slot retention). */
  ledBefore: boolean;
  /**
   * A switchover waiting for its candidate to stream from us (which request, since when), then for
   * the routers to drain (since when the drain was requested).
   */
  switchoverWait: { key: string; since: number; drainSince?: number } | null;
  /** Members seen in earlier cycles, by name, with when (monotonic) they were last seen. */
  knownMembers: Map<string, { member: Member; seen: number }>;
  /** Since when (monotonic) the store has shown no `initialize` key while we hold data. */
  uninitializedSince: number | null;
  /** The leader before the key vanished (its failover_priority does not count in the race). */
  formerLeader: string | null;
  /** Leader: the `failsafe` key it wrote (or tried to: a write that timed out may have landed), until read back. */
  failsafeWritten: Record<string, string> | null;
}

export function initialState(): RunnerState {
  return {
    configuredUpstream: null,
    upstreamKnown: false,
    configuredRemote: null,
    operatorHold: null,
    busyState: null,
    longActionSince: null,
    appliedServerConfig: null,
    startFailure: null,
    ssn: '',
    ssnSince: 0,
    lastSyncWhy: '',
    syncRechecks: 0,
    startWokeAt: -Infinity,
    silentStandbys: [],
    lastStatusKey: '',
    ledBefore: false,
    switchoverWait: null,
    knownMembers: new Map(),
    uninitializedSince: null,
    formerLeader: null,
    failsafeWritten: null,
  };
}

export interface RunnerContext {
  readonly d: RunnerDeps;
  readonly log: Logger;
  readonly clock: Clock;
  readonly st: RunnerState;
  readonly snapshot: AgentSnapshot;
  readonly lease: LeaseGuard;
  /** Replication slot upkeep and its memory (slots-run.ts). */
  readonly slots: SlotKeeper;
  readonly me: string;
  dynamic(): DynamicConfig;
  /** Logs what a decision led to (repeated info lines go to debug). */
  say(decision: Decision, did: string, level?: 'info' | 'warn' | 'error'): void;
  publish(): Promise<void>;
  wake(): void;
  roleConfig(role: 'primary' | 'replica', cluster: ClusterState | null, upstream: string | null): RoleConfig;
  /** The role a running server has: primary, replica, or standby_leader (the leader of a standby cluster). */
  roleOf(status: ServerStatus): 'primary' | 'replica' | 'standby_leader';
  /** Host and port of the standby_cluster source, or null (no standby cluster, or restore_command only). */
  remoteTarget(): ConnTarget | null;
  /** The standby_cluster settings a standby leader streams with, to tell when they changed. */
  remoteKey(): string;
  /** Records that the server configuration now matches the parameters in force. */
  markServerConfigApplied(): void;
  /** Every other member's `GET /patroni` (members of the store, remembered ones, failsafe ones). */
  fetchPeers(cluster: ClusterState, only?: string | null): Promise<PeerStatus[]>;
  /**
   * Runs `fn` showing `state` as the member state; `long` marks an action the lease keeper keeps
   * the lease for (a promotion, a start).
   */
  during<T>(state: string, fn: () => Promise<T>, long?: boolean): Promise<T>;
  /** Fast stop, escalating to immediate when it does not finish in time. */
  stopFastOrImmediate(): Promise<void>;
  /** Sets or clears the operator hold; `persist` keeps it across agent restarts (default). */
  setHold(reason: string | null, persist?: boolean): Promise<void>;
}

/**
 * Remembers the other members seen (for `forgetAfterMs`, so a member whose key expired still gets
 * asked in the leader race), since when the store has had no `initialize` key, and the last leader.
 */
export function rememberCluster(
  st: RunnerState,
  cluster: ClusterState,
  me: string,
  now: number,
  forgetAfterMs: number,
): void {
  for (const m of cluster.members) if (m.name !== me) st.knownMembers.set(m.name, { member: m, seen: now });
  for (const [name, k] of st.knownMembers) if (now - k.seen > forgetAfterMs) st.knownMembers.delete(name);
  if (cluster.initialize === null) st.uninitializedSince ??= now;
  else st.uninitializedSince = null;
  if (cluster.leader) st.formerLeader = cluster.leader.name;
}

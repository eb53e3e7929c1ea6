/**
 * Plain data the HA planners work on. Everything here is built by the runner from the store and
 * the local PostgreSQL, so the rules are tested with literals and no processes.
 */
import type { DynamicConfig, TagsConfig } from '../config/types.js';
import type { ClusterState, Member } from '../dcs/types.js';
import type { ControlData, ServerStatus, TimelineSwitch } from '../postgres/types.js';

export type { TimelineSwitch };

/** What the agent knows about its own PostgreSQL at the start of a cycle. */
export interface LocalPostgres {
  dataState: 'empty' | 'initialized' | 'invalid';
  control: ControlData | null;
  running: boolean;
  /** Null while the server is down or does not accept connections yet. */
  status: ServerStatus | null;
  /** Why the status query got no connection while the postmaster runs (a wrong password, ...). */
  connectionError?: string | null;
  /** The upstream member we last configured this node to stream from (null: none, primary). */
  configuredUpstream: string | null;
  /**
   * How long this running replica's WAL receiver has not been streaming, in ms (0 when it
   * streams). Its timeline is uncertain meanwhile: the checkpoint's lags behind the WAL received.
   */
  notStreamingForMs?: number;
  /** The switch points of this node's ancestor timelines (its timeline's history file). */
  history?: TimelineSwitch[];
  /**
   * Stopped data that last ran as a primary: no standby.signal and pg_control says
   * `in production` or `shut down`. Such data may be started as a primary; a replica's never.
   */
  wasPrimary?: boolean;
  /** Why the last attempt to start this node as a primary failed (null: none since it last ran). */
  startFailure?: string | null;
  /** The postmaster runs but has not accepted connections for this long (ms); 0 otherwise. */
  startingForMs?: number;
  /**
   * A running replica that cannot apply what its upstream sends (a fork on the same timeline
   * number): the evidence, e.g. `record with incorrect prev-link at 0/3000060`. Null otherwise.
   */
  diverged?: string | null;
}

/** What the agent remembers across cycles that the store may have lost. */
export interface HaMemory {
  /**
   * How long the store has shown no `initialize` key while this node holds data (ms), or null
   * when it shows one. A fresh agent counts from its start.
   */
  uninitializedForMs?: number | null;
  /** Members seen in earlier cycles (Patroni's `old_cluster`): peers to ask during a race. */
  knownMembers?: Member[];
}

export interface HaInput {
  me: string;
  /** Wall-clock ms (scheduled switchovers compare with it). */
  now: number;
  cluster: ClusterState;
  config: DynamicConfig;
  tags: TagsConfig;
  pg: LocalPostgres;
  memory?: HaMemory;
  /** Local settings the rules read (postgresql.remove_data_directory_on_*). */
  local?: { removeDataOnDivergedTimelines?: boolean };
  /** Set while the agent is waiting for an operator (a refused join); the loop only reports. */
  operatorHold?: string | null;
}

/** What a peer's REST API (`GET /patroni`) said; null fields when unreachable. */
export interface PeerStatus {
  name: string;
  reachable: boolean;
  role?: string;
  state?: string;
  /** Received or replayed (replica) or current (primary) WAL position; 0 when PostgreSQL is down. */
  walPosition?: number;
  timeline?: number;
  tags?: Record<string, unknown>;
  /** The peer answered that it is in recovery (false: a primary). */
  inRecovery?: boolean;
  /** The peer's watchdog failed (Patroni's `watchdog_failed`). */
  watchdogFailed?: boolean;
}

/**
 * One decision per cycle. `why` says what the agent saw and which rule fired; the runner logs it
 * with what it did. Every kind is carried out by `execute` in runner.ts (checked at compile time).
 */
export type Decision =
  | { kind: 'idle'; why: string }
  | { kind: 'refuse'; why: string }
  | { kind: 'bootstrap'; why: string }
  | { kind: 'adopt'; why: string }
  | { kind: 'clone'; from: string; why: string }
  /**
   * Bring the leader's PostgreSQL back: as the primary it was, or read-only (`readOnly`: its data
   * is a replica's, to be promoted next); with `failoverFirst` hand over instead when someone can.
   */
  | { kind: 'start_primary'; why: string; failoverFirst: boolean; readOnly: boolean }
  | { kind: 'start_replica'; upstream: string | null; rewind: boolean; why: string }
  | { kind: 'release_leader'; why: string; stop: 'none' | 'immediate'; onlyIfFailoverPossible: boolean }
  | { kind: 'race'; why: string }
  | { kind: 'renew'; why: string }
  | { kind: 'promote'; why: string }
  | { kind: 'demote'; upstream: string | null; why: string }
  | { kind: 'follow'; upstream: string | null; rewind: boolean; why: string }
  | { kind: 'reinit'; from: string; why: string }
  | { kind: 'switchover'; candidate: string | null; why: string }
  | { kind: 'cancel_switchover'; why: string };

export type DecisionKind = Decision['kind'];

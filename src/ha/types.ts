/**
 * Plain data the HA decision works on. Everything here is built by the runner from the store and
 * the local PostgreSQL, so the rules in `decide.ts` are tested with literals and no processes.
 */
import type { DynamicConfig, TagsConfig } from '../config/types.js';
import type { ClusterState } from '../dcs/types.js';
import type { ControlData, ServerStatus } from '../postgres/types.js';

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
}

export interface HaInput {
  me: string;
  now: number;
  cluster: ClusterState;
  config: DynamicConfig;
  tags: TagsConfig;
  pg: LocalPostgres;
  /** Set while the agent is waiting for an operator (a refused join); the loop only reports. */
  operatorHold?: string | null;
}

/** What a peer's REST API (`GET /patroni`) said during a leader race; null fields when unreachable. */
export interface PeerStatus {
  name: string;
  reachable: boolean;
  role?: string;
  state?: string;
  walPosition?: number;
  timeline?: number;
  tags?: Record<string, unknown>;
}

/** One decision per cycle. `why` says what the agent saw; the runner logs it with what it did. */
export type Decision =
  | { kind: 'idle'; why: string }
  | { kind: 'refuse'; why: string }
  | { kind: 'bootstrap'; why: string }
  | { kind: 'adopt'; why: string }
  | { kind: 'clone'; from: string; why: string }
  | { kind: 'start_primary'; why: string }
  | { kind: 'start_replica'; upstream: string | null; rewind: boolean; why: string }
  | { kind: 'race'; why: string }
  | { kind: 'renew'; why: string }
  | { kind: 'promote'; why: string }
  | { kind: 'demote'; upstream: string | null; why: string }
  | { kind: 'follow'; upstream: string; rewind: boolean; why: string }
  | { kind: 'switchover'; candidate: string | null; why: string }
  | { kind: 'cancel_switchover'; why: string };

export type DecisionKind = Decision['kind'];

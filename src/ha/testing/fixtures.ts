/**
 * Builders of plain HA inputs for the planners' table tests: a cluster, members, pg_control, a
 * server status, the local PostgreSQL, peers. Defaults describe a healthy streaming replica `n1`.
 */
import type { DynamicConfig, TagsConfig } from '../../config/types.js';
import { emptyCluster } from '../../dcs/keys.js';
import type { ClusterState, Member } from '../../dcs/types.js';
import type { ControlData, ServerStatus } from '../../postgres/types.js';
import type { HaInput, LocalPostgres, PeerStatus } from '../types.js';

export const SYSID = '7000000000000000001';

export const dynamic: DynamicConfig = {
  ttl: 30,
  loop_wait: 10,
  retry_timeout: 10,
  maximum_lag_on_failover: 1048576,
  maximum_lag_on_syncnode: -1,
  primary_start_timeout: 300,
  primary_stop_timeout: 0,
  synchronous_mode: false,
  synchronous_mode_strict: false,
  synchronous_node_count: 1,
  failsafe_mode: false,
  fast_failover: true,
  move_etcd_leader: true,
  check_timeline: false,
  pause: false,
  slots: [],
  ignore_slots: [],
  member_slots_ttl: 1800,
  postgresql: { use_pg_rewind: true, use_slots: true, parameters: {} },
  raw: {},
};

export const tags: TagsConfig = { noloadbalance: false, clonefrom: false, nosync: false };

export function member(name: string, data: Member['data'] = {}): Member {
  return {
    name,
    data: {
      conn_url: `postgres://127.0.0.1:${5432 + name.length}/postgres`,
      api_url: `http://127.0.0.1:${8008 + name.length}/patroni`,
      state: 'running',
      role: 'replica',
      ...data,
    },
    modRevision: '1',
    lease: '1',
  };
}

export function cluster(over: Partial<ClusterState> = {}): ClusterState {
  return { ...emptyCluster('10'), initialize: SYSID, ...over };
}

export const leaderIs = (name: string) => ({ name, modRevision: '5', lease: '9' });

export function control(over: Partial<ControlData> = {}): ControlData {
  return {
    systemIdentifier: SYSID,
    clusterState: 'in archive recovery',
    timeline: 1,
    checkpointLsn: 0x3000000,
    minRecoveryLsn: 0,
    dataChecksums: true,
    walLogHints: false,
    raw: {},
    ...over,
  };
}

export function status(over: Partial<ServerStatus> = {}): ServerStatus {
  return {
    inRecovery: true,
    timeline: 1,
    walPosition: 0x3000100,
    replicationState: 'streaming',
    systemIdentifier: SYSID,
    serverVersion: 150000,
    postmasterStartTime: '2026-01-01T00:00:00Z',
    pendingRestart: false,
    replication: [],
    ...over,
  };
}

export const primaryStatus = (over: Partial<ServerStatus> = {}) => status({ inRecovery: false, ...over });

export function pg(over: Partial<LocalPostgres> = {}): LocalPostgres {
  return {
    dataState: 'initialized',
    control: control(),
    running: true,
    status: status(),
    configuredUpstream: null,
    ...over,
  };
}

/** A stopped node (no status). */
export const down = (over: Partial<LocalPostgres> = {}) => pg({ running: false, status: null, ...over });

export function input(over: Partial<HaInput> = {}): HaInput {
  return {
    me: 'n1',
    now: Date.parse('2026-01-01T00:00:00Z'),
    cluster: cluster(),
    config: dynamic,
    tags,
    pg: pg(),
    ...over,
  };
}

export function peer(name: string, over: Partial<PeerStatus> = {}): PeerStatus {
  return {
    name,
    reachable: true,
    role: 'replica',
    state: 'running',
    walPosition: 0x3000000,
    timeline: 1,
    inRecovery: true,
    ...over,
  };
}

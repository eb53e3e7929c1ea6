/**
 * Plain-data snapshots for the in-process API tests: what `HaRunner.snapshot` holds on a primary,
 * on a streaming replica, and on a stopped node.
 */
import { parseDynamicConfig } from '../../src/config/schema.js';
import type { ClusterState, Member } from '../../src/dcs/types.js';
import { emptyCluster } from '../../src/dcs/keys.js';
import type { AgentSnapshot } from '../../src/ha/runner.js';
import type { ServerStatus } from '../../src/postgres/types.js';

export function member(name: string, port: number, extra: Record<string, unknown> = {}): Member {
  return {
    name,
    data: {
      conn_url: `postgres://127.0.0.1:${5432 + port}/postgres`,
      api_url: `http://127.0.0.1:${8008 + port}/patroni`,
      state: 'running',
      role: 'replica',
      version: '0.1.0',
      xlog_location: 100,
      timeline: 1,
      ...extra,
    },
    modRevision: '1',
    lease: '0',
  };
}

export function cluster(overrides: Partial<ClusterState> = {}): ClusterState {
  return {
    ...emptyCluster('10'),
    initialize: '7000000000000000001',
    config: { value: { ttl: 30, loop_wait: 10 }, modRevision: '5' },
    leader: { name: 'pg1', modRevision: '3', lease: '1' },
    members: [
      member('pg1', 0, { role: 'primary', xlog_location: 1000 }),
      member('pg2', 1, { state: 'streaming', xlog_location: 900 }),
      member('pg3', 2, { state: 'streaming', xlog_location: 1000 }),
    ],
    history: [[1, 25000000, 'no recovery target specified', '2024-01-01T00:00:00+00:00', 'pg1']],
    status: { optime: 1000 },
    ...overrides,
  };
}

export function status(overrides: Partial<ServerStatus> = {}): ServerStatus {
  return {
    inRecovery: false,
    timeline: 1,
    walPosition: 1000,
    systemIdentifier: '7000000000000000001',
    serverVersion: 150004,
    postmasterStartTime: '2024-01-01T00:00:00.000Z',
    pendingRestart: false,
    replication: [],
    ...overrides,
  };
}

/** A leader running as primary, or (role: 'replica') a streaming replica of pg1. */
export function snapshot(role: 'primary' | 'replica' | 'stopped', overrides: Partial<AgentSnapshot> = {}) {
  const dynamic = parseDynamicConfig({ ttl: 30, loop_wait: 10 }).config;
  const base: AgentSnapshot = {
    name: role === 'primary' ? 'pg1' : 'pg2',
    scope: 'demo',
    state: role === 'primary' ? 'running' : role === 'replica' ? 'streaming' : 'stopped',
    role: role === 'stopped' ? 'replica' : role,
    cluster: cluster(),
    dynamic,
    status:
      role === 'primary'
        ? status()
        : role === 'replica'
          ? status({
              inRecovery: true,
              walPosition: 900,
              receiveLsn: 900,
              replayLsn: 900,
              replicationState: 'streaming',
            })
          : null,
    running: role !== 'stopped',
    dcsLastSeen: Math.floor(Date.now() / 1000),
    lastLoop: Date.now() / 1000,
    lastDecision: null,
    isLeader: role === 'primary',
    sysid: '7000000000000000001',
    paused: false,
    failsafeActive: false,
    diverged: null,
    standbyCluster: false,
  };
  return { ...base, ...overrides };
}

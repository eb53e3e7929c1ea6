import { describe, expect, it } from 'vitest';
import type { DynamicConfig, TagsConfig } from '../config/types.js';
import type { ClusterState, Member } from '../dcs/types.js';
import { emptyCluster } from '../dcs/keys.js';
import type { ControlData, ServerStatus } from '../postgres/types.js';
import { decide, DIVERGENCE_GRACE_MS } from './decide.js';
import { mergeTimelineHistory } from './history.js';
import { evaluateRace, manualPromotionRisk, needsRewind } from './rules.js';
import type { HaInput, LocalPostgres, PeerStatus } from './types.js';

const dynamic: DynamicConfig = {
  ttl: 30,
  loop_wait: 10,
  retry_timeout: 10,
  maximum_lag_on_failover: 1048576,
  primary_start_timeout: 300,
  primary_stop_timeout: 0,
  synchronous_mode: false,
  synchronous_mode_strict: false,
  synchronous_node_count: 1,
  failsafe_mode: false,
  fast_failover: true,
  check_timeline: false,
  pause: false,
  postgresql: { use_pg_rewind: true, use_slots: true, parameters: {} },
  raw: {},
};
const tags: TagsConfig = { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false };

function member(name: string, data: Member['data'] = {}): Member {
  return {
    name,
    data: {
      conn_url: `postgres://127.0.0.1:${5432 + name.length}/postgres`,
      state: 'running',
      role: 'replica',
      ...data,
    },
    modRevision: '1',
    lease: '1',
  };
}

function cluster(over: Partial<ClusterState> = {}): ClusterState {
  return {
    ...emptyCluster('10'),
    initialize: '7000000000000000001',
    ...over,
  };
}

function control(over: Partial<ControlData> = {}): ControlData {
  return {
    systemIdentifier: '7000000000000000001',
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

function status(over: Partial<ServerStatus> = {}): ServerStatus {
  return {
    inRecovery: true,
    timeline: 1,
    walPosition: 0x3000100,
    replicationState: 'streaming',
    systemIdentifier: '7000000000000000001',
    serverVersion: 150000,
    postmasterStartTime: '2026-01-01T00:00:00Z',
    pendingRestart: false,
    replication: [],
    ...over,
  };
}

function pg(over: Partial<LocalPostgres> = {}): LocalPostgres {
  return {
    dataState: 'initialized',
    control: control(),
    running: true,
    status: status(),
    configuredUpstream: null,
    ...over,
  };
}

function input(over: Partial<HaInput> = {}): HaInput {
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

const leaderIs = (name: string) => ({ name, modRevision: '5', lease: '9' });

describe('decide: bootstrap and joining', () => {
  it('bootstraps an uninitialised cluster from an empty data directory', () => {
    const d = decide(
      input({
        cluster: cluster({ initialize: null }),
        pg: pg({ dataState: 'empty', running: false, status: null, control: null }),
      }),
    );
    expect(d.kind).toBe('bootstrap');
  });

  it('adopts existing data when the cluster is not initialised', () => {
    expect(
      decide(input({ cluster: cluster({ initialize: null }), pg: pg({ running: false, status: null }) }))
        .kind,
    ).toBe('adopt');
  });

  it('clones from a running leader when the data directory is empty', () => {
    const d = decide(
      input({
        cluster: cluster({ leader: leaderIs('n2'), members: [member('n2', { role: 'primary' })] }),
        pg: pg({ dataState: 'empty', running: false, status: null, control: null }),
      }),
    );
    expect(d).toMatchObject({ kind: 'clone', from: 'n2' });
  });

  it('waits when the data directory is empty and there is no leader', () => {
    const d = decide(input({ pg: pg({ dataState: 'empty', running: false, status: null, control: null }) }));
    expect(d.kind).toBe('idle');
  });

  it('refuses to join with a different system identifier and names the fix', () => {
    const d = decide(
      input({
        pg: pg({ control: control({ systemIdentifier: '7999' }) }),
        cluster: cluster({ leader: leaderIs('n2') }),
      }),
    );
    expect(d.kind).toBe('refuse');
    expect(d.why).toContain('7999');
    expect(d.why).toContain('reinit');
    expect(d.why).toContain('untouched');
  });

  it('refuses a data directory with files but no cluster', () => {
    expect(decide(input({ pg: pg({ dataState: 'invalid' }) })).kind).toBe('refuse');
  });

  it('waits while another member initialises the cluster', () => {
    expect(decide(input({ cluster: cluster({ initialize: '' }), pg: pg({ dataState: 'empty' }) })).kind).toBe(
      'idle',
    );
  });
});

describe('decide: PostgreSQL down', () => {
  it('restarts in place as primary while holding the lock (no failover)', () => {
    const d = decide(
      input({ cluster: cluster({ leader: leaderIs('n1') }), pg: pg({ running: false, status: null }) }),
    );
    expect(d.kind).toBe('start_primary');
  });

  it('starts as replica of the leader, with rewind when a former primary diverged', () => {
    const c = cluster({
      leader: leaderIs('n2'),
      members: [member('n2', { role: 'primary', timeline: 2 })],
      history: [[1, 0x3000000, 'no recovery target specified', '2026-01-01T00:00:00Z', 'n2']],
    });
    const d = decide(
      input({
        cluster: c,
        pg: pg({
          running: false,
          status: null,
          control: control({ clusterState: 'shut down', checkpointLsn: 0x3000500 }),
        }),
      }),
    );
    expect(d).toMatchObject({ kind: 'start_replica', upstream: 'n2', rewind: true });
  });

  it('starts without rewind when the clean shutdown checkpoint precedes the fork point', () => {
    const c = cluster({
      leader: leaderIs('n2'),
      members: [member('n2', { role: 'primary', timeline: 2 })],
      history: [[1, 0x3000100, 'no recovery target specified', '2026-01-01T00:00:00Z', 'n2']],
    });
    const d = decide(
      input({
        cluster: c,
        pg: pg({
          running: false,
          status: null,
          control: control({ clusterState: 'shut down', checkpointLsn: 0x3000028 }),
        }),
      }),
    );
    expect(d).toMatchObject({ kind: 'start_replica', upstream: 'n2', rewind: false });
  });

  it('starts read-only when there is no leader', () => {
    expect(decide(input({ pg: pg({ running: false, status: null }) }))).toMatchObject({
      kind: 'start_replica',
      upstream: null,
    });
  });
});

describe('decide: running', () => {
  it('says why it cannot reach a running PostgreSQL', () => {
    const d = decide(
      input({ pg: pg({ status: null, connectionError: 'password authentication failed for user "x"' }) }),
    );
    expect(d.kind).toBe('idle');
    expect(d.why).toContain('password authentication failed');
    expect(d.why).toContain('postgresql.authentication.superuser');
  });

  it('races when there is no leader', () => {
    expect(decide(input()).kind).toBe('race');
  });

  it('renews as leader and primary', () => {
    const d = decide(
      input({
        cluster: cluster({ leader: leaderIs('n1') }),
        pg: pg({ status: status({ inRecovery: false }) }),
      }),
    );
    expect(d.kind).toBe('renew');
  });

  it('promotes when holding the lock as a replica', () => {
    expect(decide(input({ cluster: cluster({ leader: leaderIs('n1') }) })).kind).toBe('promote');
  });

  it('demotes a primary when another member holds the lock', () => {
    const d = decide(
      input({
        cluster: cluster({ leader: leaderIs('n2') }),
        pg: pg({ status: status({ inRecovery: false }) }),
      }),
    );
    expect(d).toMatchObject({ kind: 'demote', upstream: 'n2' });
  });

  it('re-points a replica at a new leader', () => {
    const c = cluster({ leader: leaderIs('n3'), members: [member('n3', { role: 'primary', timeline: 1 })] });
    const d = decide(input({ cluster: c, pg: pg({ configuredUpstream: 'n2' }) }));
    expect(d).toMatchObject({ kind: 'follow', upstream: 'n3', rewind: false });
  });

  it('stays put when following the right leader', () => {
    const c = cluster({ leader: leaderIs('n2'), members: [member('n2', { role: 'primary', timeline: 1 })] });
    expect(decide(input({ cluster: c, pg: pg({ configuredUpstream: 'n2' }) })).kind).toBe('idle');
  });

  it('rewinds a replica stuck behind a fork only once its receiver has been down for a while', () => {
    const c = cluster({
      leader: leaderIs('n2'),
      members: [member('n2', { role: 'primary', timeline: 2 })],
      history: [[1, 0x3000000, 'switchover']],
    });
    const stuck = status({ timeline: 1, walPosition: 0x3000100, replicationState: undefined });
    const at = (ms: number) =>
      decide(
        input({ cluster: c, pg: pg({ configuredUpstream: 'n2', status: stuck, notStreamingForMs: ms }) }),
      );
    expect(at(3000).kind).toBe('idle');
    expect(at(DIVERGENCE_GRACE_MS)).toMatchObject({ kind: 'follow', upstream: 'n2', rewind: true });
  });

  it('starts a requested switchover on the leader', () => {
    const c = cluster({ leader: leaderIs('n1'), failover: { leader: 'n1', member: 'n2', modRevision: '3' } });
    const d = decide(input({ cluster: c, pg: pg({ status: status({ inRecovery: false }) }) }));
    expect(d).toMatchObject({ kind: 'switchover', candidate: 'n2' });
  });

  it('waits for a scheduled switchover', () => {
    const c = cluster({
      leader: leaderIs('n1'),
      failover: { leader: 'n1', member: 'n2', scheduled_at: '2026-01-01T01:00:00Z', modRevision: '3' },
    });
    expect(decide(input({ cluster: c, pg: pg({ status: status({ inRecovery: false }) }) })).kind).toBe(
      'renew',
    );
  });

  it('drops a scheduled switchover missed by more than 1.5 loops instead of running it late', () => {
    const c = cluster({
      leader: leaderIs('n1'),
      failover: { leader: 'n1', member: 'n2', scheduled_at: '2025-12-31T23:59:00Z', modRevision: '3' },
    });
    const d = decide(input({ cluster: c, pg: pg({ status: status({ inRecovery: false }) }) }));
    expect(d.kind).toBe('cancel_switchover');
    expect(d.why).toContain('2025-12-31T23:59:00Z');
  });

  it('does nothing but keep the lock in maintenance mode', () => {
    const paused = { ...dynamic, pause: true };
    expect(decide(input({ config: paused, pg: pg({ running: false, status: null }) })).kind).toBe('idle');
    const leader = decide(
      input({
        config: paused,
        cluster: cluster({ leader: leaderIs('n1') }),
        pg: pg({ status: status({ inRecovery: false }) }),
      }),
    );
    expect(leader.kind).toBe('renew');
  });
});

describe('evaluateRace', () => {
  const base = {
    me: 'n1',
    cluster: cluster(),
    config: dynamic,
    tags,
    status: status(),
    peers: [] as PeerStatus[],
  };

  it('lets a named candidate promote in synchronous mode even when not synchronous, naming the risk', () => {
    const c = cluster({
      failover: { member: 'n1', modRevision: '3' },
      sync: { leader: 'n0', sync_standby: 'n2', modRevision: '4' },
    });
    const v = evaluateRace({ ...base, cluster: c, config: { ...dynamic, synchronous_mode: true } });
    expect(v.ok).toBe(true);
    expect(v.ok && v.risk).toMatch(
      /^n1 is not a synchronous standby \(synchronous: n2\); transactions acknowledged/,
    );
    expect(manualPromotionRisk(c, true, 'n2')).toBeNull();
    expect(manualPromotionRisk(c, false, 'n1')).toBeNull();
  });

  it('waits for a named candidate only while it runs, then races normally', () => {
    const c = cluster({ failover: { member: 'n3', modRevision: '3' }, members: [member('n3')] });
    const running: PeerStatus = {
      name: 'n3',
      reachable: true,
      role: 'replica',
      state: 'running',
      walPosition: 1,
    };
    expect(evaluateRace({ ...base, cluster: c, peers: [running] }).why).toBe(
      'a manual failover/switchover to n3 is in progress',
    );
    const down: PeerStatus = { name: 'n3', reachable: true, role: 'replica', state: 'stopped' };
    const v = evaluateRace({ ...base, cluster: c, peers: [down] });
    expect(v.ok).toBe(true);
    expect(v.why).toMatch(/the requested candidate n3 is not running: stopped/);
    expect(evaluateRace({ ...base, cluster: c, peers: [{ name: 'n3', reachable: false }] }).why).toMatch(
      /n3 is unreachable/,
    );
  });

  it('keeps the member a switchover moves away from out of the race while another can take over', () => {
    const c = cluster({ failover: { leader: 'n1', modRevision: '3' } });
    const other: PeerStatus = {
      name: 'n2',
      reachable: true,
      role: 'replica',
      state: 'running',
      walPosition: 1,
    };
    expect(evaluateRace({ ...base, cluster: c, peers: [other] }).why).toBe(
      'a switchover away from this member is in progress (n2 can take over)',
    );
    expect(evaluateRace({ ...base, cluster: c, peers: [{ ...other, reachable: false }] }).ok).toBe(true);
  });

  it('in synchronous mode compares WAL only with members the sync key lets be promoted', () => {
    const c = cluster({ sync: { leader: 'n0', sync_standby: 'n1', modRevision: '4' } });
    const async: PeerStatus = {
      name: 'n2',
      reachable: true,
      role: 'replica',
      state: 'running',
      walPosition: 0x9000000,
    };
    expect(
      evaluateRace({ ...base, cluster: c, config: { ...dynamic, synchronous_mode: true }, peers: [async] })
        .ok,
    ).toBe(true);
    expect(evaluateRace({ ...base, cluster: c, peers: [async] }).ok).toBe(false);
  });

  it('under failsafe_mode, keeps a member the last leader did not list out of the race', () => {
    const fs = { n0: 'http://a/patroni', n2: 'http://b/patroni' };
    const on = { ...base, config: { ...dynamic, failsafe_mode: true } };
    const v = evaluateRace({ ...on, cluster: cluster({ failsafe: fs }) });
    expect(v).toEqual({
      ok: false,
      why: 'failsafe_mode is on and this member is not in the failsafe key (n0, n2)',
    });
    expect(evaluateRace({ ...on, cluster: cluster({ failsafe: { ...fs, n1: 'http://c' } }) }).ok).toBe(true);
    expect(evaluateRace({ ...base, cluster: cluster({ failsafe: fs }) }).ok).toBe(true);
  });

  it('lets the most advanced healthy replica win', () => {
    const peers: PeerStatus[] = [
      { name: 'n2', reachable: true, role: 'replica', state: 'running', walPosition: 0x3000000, timeline: 1 },
    ];
    expect(evaluateRace({ ...base, peers }).ok).toBe(true);
  });

  it('backs off when a peer is ahead, naming it and the numbers', () => {
    const peers: PeerStatus[] = [
      { name: 'n2', reachable: true, role: 'replica', state: 'running', walPosition: 0x3000200, timeline: 1 },
    ];
    const v = evaluateRace({ ...base, peers });
    expect(v.ok).toBe(false);
    expect(v.why).toMatch(/n2 is ahead/);
    expect(v.why).toContain(String(0x3000200));
  });

  it('ignores unreachable peers and peers tagged nofailover', () => {
    const peers: PeerStatus[] = [
      { name: 'n2', reachable: false },
      {
        name: 'n3',
        reachable: true,
        role: 'replica',
        state: 'running',
        walPosition: 0x9000000,
        tags: { nofailover: true },
      },
    ];
    expect(evaluateRace({ ...base, peers }).ok).toBe(true);
  });

  it('refuses with nofailover, too much lag, or a primary still running', () => {
    expect(evaluateRace({ ...base, tags: { ...tags, nofailover: true } }).why).toMatch(/nofailover/);
    const lagging = evaluateRace({
      ...base,
      cluster: cluster({ status: { optime: 0x3000100 + 2 * 1048576 } }),
    });
    expect(lagging.ok).toBe(false);
    expect(lagging.why).toMatch(/maximum_lag_on_failover is 1048576/);
    const peers: PeerStatus[] = [
      { name: 'n2', reachable: true, role: 'primary', state: 'running', walPosition: 1 },
    ];
    expect(evaluateRace({ ...base, peers }).why).toMatch(/n2 is still running as primary/);
  });

  it('honours a manual failover target and synchronous mode', () => {
    const c = cluster({ failover: { member: 'n3', modRevision: '1' }, members: [member('n3')] });
    expect(evaluateRace({ ...base, cluster: c }).why).toMatch(/to n3 is in progress/);
    expect(evaluateRace({ ...base, me: 'n3', cluster: c, tags: { ...tags, nofailover: true } }).ok).toBe(
      true,
    );
    const sync = cluster({ sync: { leader: 'n0', sync_standby: 'n2', modRevision: '1' } });
    expect(
      evaluateRace({ ...base, cluster: sync, config: { ...dynamic, synchronous_mode: true } }).why,
    ).toMatch(/not in the sync key/);
  });

  it('in quorum mode, needs enough synchronous members to answer', () => {
    const sync = cluster({ sync: { leader: 'n0', sync_standby: 'n1,n2,n3', quorum: 1, modRevision: '1' } });
    const config = { ...dynamic, synchronous_mode: 'quorum' as const };
    const one: PeerStatus[] = [
      { name: 'n2', reachable: true, role: 'replica', state: 'running', walPosition: 1 },
    ];
    expect(evaluateRace({ ...base, cluster: sync, config, peers: one }).why).toMatch(
      /only 2 of 3 synchronous members answer, 3 are needed/,
    );
    const all: PeerStatus[] = [
      ...one,
      { name: 'n3', reachable: true, role: 'replica', state: 'running', walPosition: 1 },
    ];
    expect(evaluateRace({ ...base, cluster: sync, config, peers: all }).ok).toBe(true);
  });

  it('prefers a higher failover_priority among equals', () => {
    const peers: PeerStatus[] = [
      {
        name: 'n2',
        reachable: true,
        role: 'replica',
        state: 'running',
        walPosition: 0x3000100,
        tags: { failover_priority: 5 },
      },
    ];
    expect(evaluateRace({ ...base, peers }).why).toMatch(/failover_priority/);
  });
});

describe('needsRewind', () => {
  it('is false on the same timeline and true when ahead of the fork point', () => {
    expect(needsRewind({ control: control(), leaderTimeline: 1, history: [] })).toBe(false);
    const history: [number, number, string][] = [[1, 0x3000100, 'x']];
    expect(
      needsRewind({
        control: control({ clusterState: 'shut down', checkpointLsn: 0x3000200 }),
        leaderTimeline: 2,
        history,
      }),
    ).toBe(true);
    expect(
      needsRewind({
        control: control({ clusterState: 'shut down in recovery', checkpointLsn: 0x3000000 }),
        leaderTimeline: 2,
        history,
      }),
    ).toBe(false);
  });

  it('lets a running replica whose replay ends exactly at the fork point follow as it is', () => {
    const history: [number, number, string][] = [[1, 0x3000100, 'x']];
    const c = control({ clusterState: 'in archive recovery' });
    expect(needsRewind({ control: c, position: 0x3000100, timeline: 1, leaderTimeline: 2, history })).toBe(
      false,
    );
    expect(needsRewind({ control: c, position: 0x3000101, timeline: 1, leaderTimeline: 2, history })).toBe(
      true,
    );
  });

  it('starts a standby that stopped uncleanly as it is, leaving a real divergence to the running rule', () => {
    const history: [number, number, string][] = [[1, 0x3000100, 'x']];
    const c = control({ clusterState: 'in archive recovery', checkpointLsn: 0x3000200 });
    expect(needsRewind({ control: c, leaderTimeline: 2, history })).toBe(false);
  });

  it('always rewinds a crashed primary on another timeline', () => {
    expect(
      needsRewind({ control: control({ clusterState: 'in production' }), leaderTimeline: 2, history: [] }),
    ).toBe(true);
  });
});

describe('mergeTimelineHistory', () => {
  it('adds new timeline switches and keeps known ones', () => {
    const file = '1\t0/3000100\tno recovery target specified\n2\t0/5000000\tno recovery target specified\n';
    const known: [number, number, string, string, string][] = [
      [1, 0x3000100, 'no recovery target specified', '2026-01-01T00:00:00.000Z', 'n2'],
    ];
    const merged = mergeTimelineHistory(known, file, new Date('2026-02-01T00:00:00Z'), 'n3');
    expect(merged).toEqual([
      known[0],
      [2, 0x5000000, 'no recovery target specified', '2026-02-01T00:00:00.000Z', 'n3'],
    ]);
  });
});

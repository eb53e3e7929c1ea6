import { describe, expect, it } from 'vitest';
import type { Decision, HaInput } from './types.js';
import { decide, decidingRule, DIVERGENCE_GRACE_MS, RULES } from './decide.js';
import {
  cluster,
  control,
  down,
  dynamic,
  input,
  leaderIs,
  member,
  pg,
  primaryStatus,
  status,
} from './testing/fixtures.js';

const paused = { ...dynamic, pause: true };
const emptyData = { dataState: 'empty' as const, running: false, status: null, control: null };
const forkAt = (lsn: number) =>
  [[1, lsn, 'no recovery target specified', '2026-01-01T00:00:00Z', 'n2']] as [
    number,
    number,
    string,
    string,
    string,
  ][];
const newLeader = (timeline = 2, over = {}) =>
  cluster({ leader: leaderIs('n2'), members: [member('n2', { role: 'primary', timeline })], ...over });

/** One row: what the node saw, the step it must take, and the rule that decides it. */
interface Row {
  name: string;
  in: Partial<HaInput>;
  want: Partial<Decision> & { kind: Decision['kind'] };
  rule: string;
  why?: RegExp;
}

const rows: Row[] = [
  // ---- creating and joining
  {
    name: 'bootstraps an uninitialised cluster from an empty data directory',
    in: { cluster: cluster({ initialize: null }), pg: pg(emptyData) },
    want: { kind: 'bootstrap' },
    rule: 'bootstrap',
  },
  {
    name: 'does not bootstrap in maintenance mode',
    in: { cluster: cluster({ initialize: null }), pg: pg(emptyData), config: paused },
    want: { kind: 'idle' },
    rule: 'bootstrap',
  },
  {
    name: 'clones from a running leader when the data directory is empty',
    in: { cluster: newLeader(1), pg: pg(emptyData) },
    want: { kind: 'clone', from: 'n2' },
    rule: 'clone',
  },
  {
    name: 'waits when the data directory is empty and there is no leader',
    in: { pg: pg(emptyData) },
    want: { kind: 'idle' },
    rule: 'clone',
  },
  {
    name: 'without a leader, creates its data with a replica method that needs none (no_leader)',
    in: { pg: pg(emptyData), local: { cloneWithoutLeader: true } },
    want: { kind: 'clone', from: null },
    rule: 'clone',
  },
  {
    name: 'a no_leader method waits while another member initialises the cluster',
    in: { pg: pg(emptyData), local: { cloneWithoutLeader: true }, cluster: cluster({ initialize: '' }) },
    want: { kind: 'idle' },
    rule: 'clone',
  },
  {
    name: 'with a running leader, clones from it even when a no_leader method exists',
    in: { cluster: newLeader(1), pg: pg(emptyData), local: { cloneWithoutLeader: true } },
    want: { kind: 'clone', from: 'n2' },
    rule: 'clone',
  },
  {
    name: 'a leader whose data directory is gone releases the key',
    in: { cluster: cluster({ leader: leaderIs('n1') }), pg: pg(emptyData) },
    want: { kind: 'release_leader', stop: 'immediate' },
    rule: 'empty-leader',
  },
  {
    name: 'refuses to join with a different system identifier and names the fix',
    in: {
      pg: pg({
        control: control({ systemIdentifier: '7999' }),
        status: status({ systemIdentifier: '7999' }),
      }),
      cluster: cluster({ leader: leaderIs('n2') }),
    },
    want: { kind: 'refuse' },
    rule: 'sysid',
    why: /7999.*refusing to join and leaving the data untouched.*reinit/,
  },
  {
    name: 'a leader whose system identifier does not match releases the key',
    in: {
      pg: pg({
        control: control({ systemIdentifier: '7999' }),
        status: primaryStatus({ systemIdentifier: '7999' }),
      }),
      cluster: cluster({ leader: leaderIs('n1') }),
    },
    want: { kind: 'release_leader' },
    rule: 'sysid',
  },
  {
    name: 'refuses a data directory with files but no cluster',
    in: { pg: pg({ dataState: 'invalid' }) },
    want: { kind: 'refuse' },
    rule: 'invalid-data',
  },
  {
    name: 'waits while another member initialises the cluster',
    in: { cluster: cluster({ initialize: '' }), pg: pg(emptyData) },
    want: { kind: 'idle' },
    rule: 'clone',
  },
  // ---- a store that lost the cluster's keys
  {
    name: 'stopped data that last ran as a primary is adopted',
    in: {
      cluster: cluster({ initialize: null }),
      pg: down({ wasPrimary: true, control: control({ clusterState: 'shut down' }) }),
    },
    want: { kind: 'adopt' },
    rule: 'unregistered-stopped',
  },
  {
    name: 'stopped replica data is started read-only, never as a primary',
    in: { cluster: cluster({ initialize: null }), pg: down({ wasPrimary: false }) },
    want: { kind: 'start_replica', upstream: null, rewind: false },
    rule: 'unregistered-stopped',
  },
  {
    name: 'with a leader but no initialize key, waits for the leader to register',
    in: { cluster: cluster({ initialize: null, leader: leaderIs('n2') }), pg: down({ wasPrimary: true }) },
    want: { kind: 'idle' },
    rule: 'unregistered-stopped',
  },
  {
    name: 'a running primary with no initialize key races (and re-registers, without a restart)',
    in: { cluster: cluster({ initialize: null }), pg: pg({ status: primaryStatus() }) },
    want: { kind: 'race' },
    rule: 'unregistered-running',
  },
  {
    name: 'a running replica with no initialize key waits one ttl for the primary',
    in: { cluster: cluster({ initialize: null }), memory: { uninitializedForMs: 5000 } },
    want: { kind: 'idle' },
    rule: 'unregistered-running',
    why: /waiting for the primary to re-register/,
  },
  {
    name: 'a running replica races (by promotion) once the store has had no initialize key for a ttl',
    in: { cluster: cluster({ initialize: null }), memory: { uninitializedForMs: 31_000 } },
    want: { kind: 'race' },
    rule: 'unregistered-running',
  },
  // ---- maintenance mode
  {
    name: 'in pause, a leader running as primary keeps the key and does nothing else',
    in: { config: paused, cluster: cluster({ leader: leaderIs('n1') }), pg: pg({ status: primaryStatus() }) },
    want: { kind: 'renew' },
    rule: 'pause-leader',
  },
  {
    name: 'in pause, a leader whose PostgreSQL is not running releases the key (as Patroni)',
    in: { config: paused, cluster: cluster({ leader: leaderIs('n1') }), pg: down() },
    want: { kind: 'release_leader', stop: 'none' },
    rule: 'pause-leader',
  },
  {
    name: 'in pause, a running primary without a leader takes the key back (agent restarted)',
    in: { config: paused, pg: pg({ status: primaryStatus() }) },
    want: { kind: 'race' },
    rule: 'pause-other',
  },
  {
    name: 'in pause, a stopped node starts nothing',
    in: { config: paused, pg: down() },
    want: { kind: 'idle' },
    rule: 'pause-other',
  },
  {
    name: 'in pause, a replica without a leader does not race',
    in: { config: paused },
    want: { kind: 'idle' },
    rule: 'pause-other',
  },
  {
    name: 'in pause, a leader running as primary hands over to the named candidate of a switchover',
    in: {
      config: paused,
      cluster: cluster({
        leader: leaderIs('n1'),
        failover: { leader: 'n1', member: 'n2', modRevision: '3' },
      }),
      pg: pg({ status: primaryStatus() }),
    },
    want: { kind: 'switchover', candidate: 'n2' },
    rule: 'pause-leader',
  },
  {
    name: 'in pause, a switchover without a candidate is dropped (as Patroni)',
    in: {
      config: paused,
      cluster: cluster({ leader: leaderIs('n1'), failover: { leader: 'n1', modRevision: '3' } }),
      pg: pg({ status: primaryStatus() }),
    },
    want: { kind: 'cancel_switchover' },
    rule: 'pause-leader',
  },
  {
    name: 'in pause, a switchover scheduled for later waits',
    in: {
      config: paused,
      now: Date.parse('2026-01-01T00:00:00Z'),
      cluster: cluster({
        leader: leaderIs('n1'),
        failover: { leader: 'n1', member: 'n2', scheduled_at: '2026-01-01T01:00:00Z', modRevision: '3' },
      }),
      pg: pg({ status: primaryStatus() }),
    },
    want: { kind: 'renew' },
    rule: 'pause-leader',
  },
  {
    name: 'in pause, the candidate that took the key keeps it while its promotion runs',
    in: {
      config: paused,
      cluster: cluster({ leader: leaderIs('n1'), failover: { member: 'n1', modRevision: '3' } }),
    },
    want: { kind: 'idle' },
    rule: 'pause-leader',
  },
  {
    name: 'in pause, the replica a switchover names races once the leader key is free',
    in: { config: paused, cluster: cluster({ failover: { leader: 'n2', member: 'n1', modRevision: '3' } }) },
    want: { kind: 'race' },
    rule: 'pause-other',
  },
  {
    name: 'in pause, a replica not named by the switchover does not race',
    in: { config: paused, cluster: cluster({ failover: { leader: 'n2', member: 'n3', modRevision: '3' } }) },
    want: { kind: 'idle' },
    rule: 'pause-other',
  },
  {
    name: 'in pause, a nofailover replica named by a switchover does not race',
    in: {
      config: paused,
      tags: { nofailover: true, noloadbalance: false, clonefrom: false, nosync: false },
      cluster: cluster({ failover: { leader: 'n2', member: 'n1', modRevision: '3' } }),
    },
    want: { kind: 'idle' },
    rule: 'pause-other',
  },
  // ---- PostgreSQL down
  {
    name: 'restarts in place as primary while holding the lock (no failover)',
    in: { cluster: cluster({ leader: leaderIs('n1') }), pg: down({ wasPrimary: true }) },
    want: { kind: 'start_primary', failoverFirst: false, readOnly: false },
    rule: 'down-leader',
  },
  {
    name: 'a leader whose data is a replica’s (a promotion cut short) starts it read-only to promote, never as a primary',
    in: { cluster: cluster({ leader: leaderIs('n1') }), pg: down({ wasPrimary: false }) },
    want: { kind: 'start_primary', readOnly: true },
    rule: 'down-leader',
  },
  {
    name: 'with primary_start_timeout 0, fails over first when another member can take over',
    in: {
      cluster: cluster({ leader: leaderIs('n1') }),
      pg: down(),
      config: { ...dynamic, primary_start_timeout: 0 },
    },
    want: { kind: 'start_primary', failoverFirst: true },
    rule: 'down-leader',
  },
  {
    name: 'a leader whose PostgreSQL failed to start releases the key',
    in: {
      cluster: cluster({ leader: leaderIs('n1') }),
      pg: down({ startFailure: 'FATAL: invalid value for parameter "work_mem"' }),
    },
    want: { kind: 'release_leader', stop: 'none', onlyIfFailoverPossible: false },
    rule: 'start-failed',
    why: /failed to start as primary .*work_mem/,
  },
  {
    name: 'starts as replica of the leader, with rewind when a former primary diverged',
    in: {
      cluster: newLeader(2, { history: forkAt(0x3000000) }),
      pg: down({ control: control({ clusterState: 'shut down', checkpointLsn: 0x3000500 }) }),
    },
    want: { kind: 'start_replica', upstream: 'n2', rewind: true },
    rule: 'down-follower',
  },
  {
    name: 'starts without rewind when the clean shutdown checkpoint precedes the fork point',
    in: {
      cluster: newLeader(2, { history: forkAt(0x3000100) }),
      pg: down({ control: control({ clusterState: 'shut down', checkpointLsn: 0x3000028 }) }),
    },
    want: { kind: 'start_replica', upstream: 'n2', rewind: false },
    rule: 'down-follower',
  },
  {
    name: 'rewinds a node whose own timeline 2 is not the leader’s timeline 2',
    in: {
      cluster: newLeader(2, { history: forkAt(0x5000000) }),
      pg: down({
        control: control({ clusterState: 'shut down in recovery', timeline: 2, checkpointLsn: 0x6000000 }),
        history: [{ timeline: 1, lsn: 0x4000000 }],
      }),
    },
    want: { kind: 'start_replica', upstream: 'n2', rewind: true },
    rule: 'down-follower',
  },
  {
    name: 'starts read-only when there is no leader',
    in: { pg: down() },
    want: { kind: 'start_replica', upstream: null },
    rule: 'down-no-leader',
  },
  // ---- starting
  {
    name: 'says why it cannot reach a running PostgreSQL',
    in: { pg: pg({ status: null, connectionError: 'password authentication failed for user "x"' }) },
    want: { kind: 'idle' },
    rule: 'starting',
    why: /password authentication failed.*postgresql\.authentication\.superuser/,
  },
  {
    name: 'a leader starting for longer than primary_start_timeout releases the key when others can take over',
    in: { cluster: cluster({ leader: leaderIs('n1') }), pg: pg({ status: null, startingForMs: 301_000 }) },
    want: { kind: 'release_leader', stop: 'immediate', onlyIfFailoverPossible: true },
    rule: 'starting',
  },
  {
    name: 'a leader still within primary_start_timeout waits',
    in: { cluster: cluster({ leader: leaderIs('n1') }), pg: pg({ status: null, startingForMs: 10_000 }) },
    want: { kind: 'idle' },
    rule: 'starting',
  },
  // ---- running
  { name: 'races when there is no leader', in: {}, want: { kind: 'race' }, rule: 'no-leader' },
  {
    name: 'renews as leader and primary',
    in: { cluster: cluster({ leader: leaderIs('n1') }), pg: pg({ status: primaryStatus() }) },
    want: { kind: 'renew' },
    rule: 'leader',
  },
  {
    name: 'promotes when holding the lock as a replica',
    in: { cluster: cluster({ leader: leaderIs('n1') }) },
    want: { kind: 'promote' },
    rule: 'leader-replica',
  },
  {
    name: 'demotes a primary when another member holds the lock',
    in: { cluster: cluster({ leader: leaderIs('n2') }), pg: pg({ status: primaryStatus() }) },
    want: { kind: 'demote', upstream: 'n2' },
    rule: 'other-leader-primary',
  },
  {
    name: 're-points a replica at a new leader',
    in: {
      cluster: cluster({ leader: leaderIs('n3'), members: [member('n3', { role: 'primary', timeline: 1 })] }),
      pg: pg({ configuredUpstream: 'n2' }),
    },
    want: { kind: 'follow', upstream: 'n3', rewind: false },
    rule: 'follow',
  },
  {
    name: 'stays put when following the right leader',
    in: { cluster: newLeader(1), pg: pg({ configuredUpstream: 'n2' }) },
    want: { kind: 'idle' },
    rule: 'following',
  },
  {
    name: 'a replica that cannot apply what it streams is reported, not shown as healthy',
    in: {
      cluster: newLeader(1),
      pg: pg({
        configuredUpstream: 'n2',
        diverged: 'replay stuck at 0/3000060: record with incorrect prev-link',
      }),
    },
    want: { kind: 'idle' },
    rule: 'diverged',
    why: /diverged from leader n2 on the same timeline.*pgha ctl reinit/,
  },
  {
    name: 'a diverged replica is reinitialised when remove_data_directory_on_diverged_timelines allows it',
    in: {
      cluster: newLeader(1),
      pg: pg({ configuredUpstream: 'n2', diverged: 'replay stuck' }),
      local: { removeDataOnDivergedTimelines: true },
    },
    want: { kind: 'reinit', from: 'n2' },
    rule: 'diverged',
  },
  {
    name: 'starts a requested switchover on the leader',
    in: {
      cluster: cluster({
        leader: leaderIs('n1'),
        failover: { leader: 'n1', member: 'n2', modRevision: '3' },
      }),
      pg: pg({ status: primaryStatus() }),
    },
    want: { kind: 'switchover', candidate: 'n2' },
    rule: 'leader-switchover',
  },
  {
    name: 'waits for a scheduled switchover',
    in: {
      cluster: cluster({
        leader: leaderIs('n1'),
        failover: { leader: 'n1', member: 'n2', scheduled_at: '2026-01-01T01:00:00Z', modRevision: '3' },
      }),
      pg: pg({ status: primaryStatus() }),
    },
    want: { kind: 'renew' },
    rule: 'leader',
  },
  {
    name: 'drops a scheduled switchover missed by more than 1.5 loops instead of running it late',
    in: {
      cluster: cluster({
        leader: leaderIs('n1'),
        failover: { leader: 'n1', member: 'n2', scheduled_at: '2025-12-31T23:59:00Z', modRevision: '3' },
      }),
      pg: pg({ status: primaryStatus() }),
    },
    want: { kind: 'cancel_switchover' },
    rule: 'leader-switchover',
    why: /2025-12-31T23:59:00Z/,
  },
];

describe('decide: the rule table', () => {
  it.each(rows)('$name', (row) => {
    const i = input(row.in);
    const d = decide(i);
    expect(d).toMatchObject(row.want);
    expect(decidingRule(i)).toBe(row.rule);
    if (row.why) expect(d.why).toMatch(row.why);
  });

  it('rewinds a replica stuck behind a fork only once its receiver has been down for a while', () => {
    const c = newLeader(2, { history: forkAt(0x3000000) });
    const stuck = status({ timeline: 1, walPosition: 0x3000100, replicationState: undefined });
    const at = (ms: number) =>
      decide(
        input({ cluster: c, pg: pg({ configuredUpstream: 'n2', status: stuck, notStreamingForMs: ms }) }),
      );
    expect(at(3000).kind).toBe('idle');
    expect(at(DIVERGENCE_GRACE_MS)).toMatchObject({ kind: 'follow', upstream: 'n2', rewind: true });
  });

  it('every rule has an id, a condition and a step for the docs, and every rule is reached by a row', () => {
    const ids = RULES.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const r of RULES) expect(r.when.length * r.then.length).toBeGreaterThan(0);
    const covered = new Set([...rows.map((r) => r.rule), 'fork', 'initializing']);
    expect(ids.filter((id) => !covered.has(id))).toEqual(['operator-hold']);
  });

  it('an operator hold wins over everything', () => {
    const d = decide(
      input({ operatorHold: 'pg_rewind failed', cluster: cluster({ leader: leaderIs('n1') }), pg: down() }),
    );
    expect(d).toEqual({ kind: 'refuse', why: 'pg_rewind failed' });
  });
});

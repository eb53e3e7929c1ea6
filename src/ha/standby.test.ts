import { describe, expect, it } from 'vitest';
import { decide, decidingRule } from './decide.js';
import { planReplicaMethods, bootstrapArgs } from './replica-methods.js';
import { cloneSource, REMOTE_UPSTREAM, slotMembers, standbyRecoveryParams, upstreamFor } from './standby.js';
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
  tags,
} from './testing/fixtures.js';
import type { Decision, HaInput } from './types.js';

const standby = { ...dynamic, standby_cluster: { host: '10.0.0.9', port: 5432, primary_slot_name: 'pm_1' } };
const emptyData = { dataState: 'empty' as const, running: false, status: null, control: null };
const primaryData = down({ control: control({ clusterState: 'shut down' }), wasPrimary: true });

interface Row {
  name: string;
  in: Partial<HaInput>;
  want: Partial<Decision> & { kind: Decision['kind'] };
  rule: string;
}

/** The decision table in a standby cluster: every row keeps PostgreSQL a replica. */
const rows: Row[] = [
  {
    name: 'bootstraps the standby leader (a copy of the source) from an empty data directory',
    in: { cluster: cluster({ initialize: null }), pg: pg(emptyData) },
    want: { kind: 'bootstrap' },
    rule: 'bootstrap',
  },
  {
    name: 'clones from the standby leader when the cluster exists',
    in: { cluster: cluster({ leader: leaderIs('n2'), members: [member('n2')] }), pg: pg(emptyData) },
    want: { kind: 'clone', from: 'n2' },
    rule: 'clone',
  },
  {
    name: "starts a former primary's data as a replica of the source, never adopts it",
    in: { cluster: cluster({ initialize: null }), pg: primaryData },
    want: { kind: 'start_replica', upstream: REMOTE_UPSTREAM },
    rule: 'unregistered-stopped',
  },
  {
    name: 'the leader whose PostgreSQL is down starts it as a replica of the source',
    in: { cluster: cluster({ leader: leaderIs('n1'), members: [member('n1')] }), pg: primaryData },
    want: { kind: 'start_replica', upstream: REMOTE_UPSTREAM },
    rule: 'down-leader',
  },
  {
    name: 'with no leader a stopped member follows the source before the race',
    in: { cluster: cluster(), pg: down() },
    want: { kind: 'start_replica', upstream: REMOTE_UPSTREAM },
    rule: 'down-no-leader',
  },
  {
    name: 'a stopped member follows the standby leader',
    in: { cluster: cluster({ leader: leaderIs('n2'), members: [member('n2')] }), pg: down() },
    want: { kind: 'start_replica', upstream: 'n2' },
    rule: 'down-follower',
  },
  {
    name: 'a running replica with no initialize key races at once (nobody re-registers a standby cluster)',
    in: { cluster: cluster({ initialize: null }), pg: pg() },
    want: { kind: 'race' },
    rule: 'unregistered-running',
  },
  {
    name: 'the leader running as a replica of someone else follows the source instead of promoting',
    in: {
      cluster: cluster({ leader: leaderIs('n1'), members: [member('n1')] }),
      pg: pg({ configuredUpstream: 'n2' }),
    },
    want: { kind: 'follow', upstream: REMOTE_UPSTREAM },
    rule: 'leader-replica',
  },
  {
    name: 'the standby leader streaming from the source renews',
    in: {
      cluster: cluster({ leader: leaderIs('n1'), members: [member('n1')] }),
      pg: pg({ configuredUpstream: REMOTE_UPSTREAM }),
    },
    want: { kind: 'renew' },
    rule: 'leader-replica',
  },
  {
    name: 'a leader running as a writable primary demotes (standby_cluster was added: demote-cluster)',
    in: {
      cluster: cluster({ leader: leaderIs('n1'), members: [member('n1')] }),
      pg: pg({ status: primaryStatus() }),
    },
    want: { kind: 'demote', upstream: REMOTE_UPSTREAM },
    rule: 'leader',
  },
  {
    name: 'a switchover request is cancelled',
    in: {
      cluster: cluster({
        leader: leaderIs('n1'),
        members: [member('n1')],
        failover: { member: 'n2', modRevision: '3' },
      }),
      pg: pg({ configuredUpstream: REMOTE_UPSTREAM }),
    },
    want: { kind: 'cancel_switchover' },
    rule: 'leader-replica',
  },
  {
    name: 'a replica following the source while a standby leader exists follows the standby leader',
    in: {
      cluster: cluster({ leader: leaderIs('n2'), members: [member('n2', { role: 'standby_leader' })] }),
      pg: pg({ configuredUpstream: REMOTE_UPSTREAM }),
    },
    want: { kind: 'follow', upstream: 'n2' },
    rule: 'follow',
  },
];

describe('decide in a standby cluster', () => {
  it.each(rows)('$name', (row) => {
    const i = input({ config: standby, ...row.in });
    expect(decide(i)).toMatchObject(row.want);
    expect(decidingRule(i)).toBe(row.rule);
  });

  it('never starts, adopts or promotes a writable primary while standby_cluster is set', () => {
    // Every combination of the facts the rules read: no decision may make a primary.
    const clusters = [
      cluster({ initialize: null }),
      cluster(),
      cluster({ leader: leaderIs('n1'), members: [member('n1')] }),
      cluster({ leader: leaderIs('n2'), members: [member('n2', { role: 'standby_leader' })] }),
    ];
    const pgs = [
      pg(emptyData),
      primaryData,
      down(),
      down({ startFailure: 'boom' }),
      pg(),
      pg({ configuredUpstream: REMOTE_UPSTREAM }),
      pg({ status: primaryStatus() }),
      pg({ status: status({ replicationState: 'stopped' }), notStreamingForMs: 60_000 }),
    ];
    for (const c of clusters)
      for (const p of pgs)
        for (const t of [tags, { ...tags, nostream: true }, { ...tags, replicatefrom: 'n2' }]) {
          const d = decide(input({ config: standby, cluster: c, pg: p, tags: t }));
          expect(['adopt', 'promote', 'start_primary', 'switchover']).not.toContain(d.kind);
        }
  });
});

describe('upstreamFor', () => {
  const c = cluster({ leader: leaderIs('n2'), members: [member('n2'), member('n3')] });
  it.each([
    ['the leader', { me: 'n1', cluster: c, standby: undefined, tags }, 'n2'],
    [
      'the replicatefrom member',
      { me: 'n1', cluster: c, standby: undefined, tags: { ...tags, replicatefrom: 'n3' } },
      'n3',
    ],
    [
      'the leader when the replicatefrom member is gone',
      { me: 'n1', cluster: c, standby: undefined, tags: { ...tags, replicatefrom: 'n9' } },
      'n2',
    ],
    [
      'nobody with nostream',
      { me: 'n1', cluster: c, standby: undefined, tags: { ...tags, nostream: true } },
      null,
    ],
    ['the source as standby leader', { me: 'n2', cluster: c, standby: {}, tags }, REMOTE_UPSTREAM],
    ['the source with no leader', { me: 'n1', cluster: cluster(), standby: {}, tags }, REMOTE_UPSTREAM],
    ['the standby leader for others', { me: 'n1', cluster: c, standby: {}, tags }, 'n2'],
  ] as const)('%s', (_n, inp, want) => {
    expect(upstreamFor(inp)).toBe(want);
  });
});

describe('cloneSource and slotMembers', () => {
  it('prefers a running clonefrom member over the leader, never itself', () => {
    const c = cluster({
      leader: leaderIs('n0'),
      members: [
        member('n0', { tags: { clonefrom: true } }),
        member('n2', { tags: { clonefrom: true }, state: 'stopped' }),
        member('n3', { tags: { clonefrom: true } }),
        member('n1', { tags: { clonefrom: true } }),
      ],
    });
    expect(cloneSource(c, 'n1')?.name).toBe('n3');
    expect(cloneSource(cluster({ leader: leaderIs('n0'), members: [member('n0')] }), 'n1')?.name).toBe('n0');
  });

  it('the leader keeps slots for members without replicatefrom, a replica for those cascading from it', () => {
    const c = cluster({
      leader: leaderIs('n0'),
      members: [
        member('n0'),
        member('n1'),
        member('n2', { tags: { replicatefrom: 'n1' } }),
        member('n3', { tags: { nostream: true } }),
        member('n4', { tags: { replicatefrom: 'gone' } }),
      ],
    });
    expect(slotMembers(c, 'n0', true)).toEqual(['n1', 'n4']);
    expect(slotMembers(c, 'n1', false)).toEqual(['n2']);
  });

  it('standby recovery settings: the standby leader gets the apply delay, replicas the archive', () => {
    const s = { restore_command: 'cp %f %p', archive_cleanup_command: 'x', recovery_min_apply_delay: '1min' };
    expect(standbyRecoveryParams(s, true)).toEqual(s);
    expect(standbyRecoveryParams(s, false)).toEqual({
      restore_command: 'cp %f %p',
      archive_cleanup_command: 'x',
    });
    expect(standbyRecoveryParams(undefined, true)).toEqual({});
  });
});

describe('planReplicaMethods', () => {
  const base = { scope: 'demo', dataDir: '/d', connstring: 'host=h port=1' };
  it('runs the methods in order with Patroni arguments', () => {
    const steps = planReplicaMethods({
      ...base,
      methods: ['restore', 'basebackup'],
      sections: {
        restore: {
          command: 'restore.sh --x',
          keep_data: true,
          no_params: false,
          no_leader: false,
          options: { a: '1' },
        },
      },
    });
    expect(steps).toEqual([
      {
        method: 'restore',
        kind: 'command',
        command: 'restore.sh --x',
        args: ['--a=1', '--scope=demo', '--role=replica', '--datadir=/d', '--connstring=host=h port=1'],
        keepData: true,
      },
      { method: 'basebackup', kind: 'basebackup' },
    ]);
  });

  it('without a source keeps only no_leader methods; no_params passes nothing', () => {
    const steps = planReplicaMethods({
      ...base,
      connstring: null,
      methods: ['basebackup', 'wal_e', 'restore'],
      sections: {
        restore: { command: 'r', keep_data: false, no_params: true, no_leader: true, options: {} },
      },
    });
    expect(steps).toEqual([{ method: 'restore', kind: 'command', command: 'r', args: [], keepData: false }]);
  });

  it('a method without a section runs its name', () => {
    expect(planReplicaMethods({ ...base, methods: ['wal_e'], sections: {} })[0]).toMatchObject({
      command: 'wal_e',
    });
    expect(bootstrapArgs(false, 's', '/d')).toEqual(['--scope=s', '--datadir=/d']);
    expect(bootstrapArgs(true, 's', '/d')).toEqual([]);
  });
});

import { describe, expect, it, vi } from 'vitest';
import type { EtcdEndpointStatus, EtcdMemberInfo } from '../dcs/etcd.js';
import type { Logger } from '../util/log.js';
import { capturedLogger } from '../testing/captured-log.js';
import {
  EtcdLeaderKeeper,
  localMemberId,
  planRaftPlacement,
  type RaftPlacementFacts,
  type RaftPlacementPort,
} from './etcd-leader.js';

const member = (id: string, name: string, isLearner = false): EtcdMemberInfo => ({
  id,
  name,
  peerUrls: [],
  clientUrls: [],
  isLearner,
});
const MEMBERS = [member('11', 'db1'), member('12', 'db2'), member('13', 'db3')];

/** Endpoint i (1-based ids 11..13) answering with `leader`, or silent when leader is null. */
const ep = (id: string, leader: string | null, local = false): EtcdEndpointStatus => ({
  endpoint: `10.0.0.${id}:2379`,
  local,
  status:
    leader === null
      ? null
      : { endpoint: `10.0.0.${id}:2379`, id, leader, version: '3.4', raftTerm: '2', dbSize: 1 },
});

const facts = (
  endpoints: EtcdEndpointStatus[],
  over: Partial<RaftPlacementFacts> = {},
): RaftPlacementFacts => ({
  me: 'catalog01',
  members: MEMBERS,
  endpoints,
  ...over,
});

describe('planRaftPlacement', () => {
  const rows: Array<[string, RaftPlacementFacts, string | null]> = [
    [
      'leader on this host (by address): handed to the first other voter',
      facts([ep('11', '11', true), ep('12', '11'), ep('13', '11')]),
      '12',
    ],
    ['leader on another host', facts([ep('11', '12', true), ep('12', '12'), ep('13', '12')]), null],
    [
      'leader on this host, found by name',
      facts([ep('11', '13'), ep('12', '13'), ep('13', '13')], { me: 'db3' }),
      '11',
    ],
    [
      'a name match wins over addresses',
      facts([ep('11', '11', true), ep('12', '11'), ep('13', '11')], { me: 'db2' }),
      null,
    ],
    [
      'the next member does not answer: the one after',
      facts([ep('11', '11', true), ep('12', null), ep('13', '11')]),
      '13',
    ],
    [
      'only learners besides: stay',
      facts([ep('11', '11', true), ep('12', '11'), ep('13', '11')], {
        members: [member('11', 'db1'), member('12', 'db2', true), member('13', 'db3', true)],
      }),
      null,
    ],
    ['no other member answers: stay', facts([ep('11', '11', true), ep('12', null), ep('13', null)]), null],
    [
      'members disagree on the leader (an election): stay',
      facts([ep('11', '11', true), ep('12', '12'), ep('13', '11')]),
      null,
    ],
    ['no leader: stay', facts([ep('11', '0', true), ep('12', '0'), ep('13', '0')]), null],
    [
      'every endpoint looks local (loopback) and none is named: stay',
      facts([ep('11', '11', true), ep('12', '11', true), ep('13', '11', true)]),
      null,
    ],
    ['no endpoint is local: stay', facts([ep('11', '11'), ep('12', '11'), ep('13', '11')]), null],
    [
      'the two-member seed: the other catalog node',
      facts([ep('11', '11', true), ep('12', '11')], { members: MEMBERS.slice(0, 2) }),
      '12',
    ],
  ];
  it.each(rows)('%s', (_name, f, target) => {
    const plan = planRaftPlacement(f);
    if (target === null) expect(plan.kind).toBe('stay');
    else {
      expect(plan).toMatchObject({ kind: 'move', target: { id: target } });
      const leader = f.endpoints.find((e) => e.status !== null)!.status!.leader;
      expect(plan).toMatchObject({ leaderEndpoint: `10.0.0.${leader}:2379` });
    }
  });

  it('never hands the leadership to the member that leads, nor away from another host', () => {
    // Invariant over every leader / local / answering combination of three members: a move starts
    // at the member on this host, which leads, and ends at another voting member that answered.
    const ids = ['11', '12', '13'];
    for (const leader of ids)
      for (const localId of ids)
        for (let mask = 0; mask < 8; mask++) {
          const f = facts(
            ids.map((id, i) => ep(id, (mask >> i) & 1 || id === localId ? leader : null, id === localId)),
          );
          const plan = planRaftPlacement(f);
          if (plan.kind !== 'move') continue;
          expect(leader).toBe(localId);
          expect(plan.target.id).not.toBe(leader);
          expect(f.endpoints.find((e) => e.status?.id === plan.target.id)).toBeDefined();
        }
  });
});

describe('localMemberId', () => {
  it('says why when the local member cannot be told', () => {
    expect(localMemberId(facts([ep('11', '11', true), ep('12', '11', true)]))).toEqual({
      why: '2 configured etcd members look local and none is named catalog01',
    });
    expect(localMemberId(facts([ep('11', null, true), ep('12', '11')]))).toEqual({
      why: 'the etcd member on this host does not answer',
    });
    expect(localMemberId(facts([ep('11', '12'), ep('12', '12')]))).toEqual({
      why: 'no configured etcd member runs on this host',
    });
  });
});

describe('EtcdLeaderKeeper', () => {
  const keeper = (port: RaftPlacementPort, logger: Logger, active: () => boolean = () => true) =>
    new EtcdLeaderKeeper({ port, me: 'x', logger, active, intervalMs: () => 1000, timeoutMs: () => 500 });
  const port = (over: Partial<RaftPlacementPort> = {}) => {
    const moves: Array<[string, string]> = [];
    const p: RaftPlacementPort = {
      memberList: () => Promise.resolve(MEMBERS),
      endpointStatuses: () => Promise.resolve([ep('11', '11', true), ep('12', '11'), ep('13', '11')]),
      moveLeader: (endpoint, id) => {
        moves.push([endpoint, id]);
        return Promise.resolve();
      },
      ...over,
    };
    return { p, moves };
  };

  it('hands the leadership on only while active, and says so', async () => {
    const { logger, lines } = capturedLogger();
    const { p, moves } = port();
    let active = false;
    const k = keeper(p, logger, () => active);
    expect(await k.round()).toBeNull();
    active = true;
    expect(await k.round()).toMatchObject({ kind: 'move', target: { name: 'db2' } });
    expect(moves).toEqual([['10.0.0.11:2379', '12']]);
    await new Promise((r) => setImmediate(r));
    expect(lines.join('\n')).toMatch(
      /etcd's raft leader db1 runs on this host.*handed etcd's raft leadership to db2/,
    );
  });

  it('an etcd that does not answer is a quiet stay; a move refused twice in a row is reported once and retried a minute later', async () => {
    vi.useFakeTimers();
    try {
      const { logger, lines } = capturedLogger();
      let listFails = true;
      let attempts = 0;
      const { p } = port({
        memberList: () =>
          listFails ? Promise.reject(new Error('etcd unreachable')) : Promise.resolve(MEMBERS),
        moveLeader: () => {
          attempts += 1;
          return Promise.reject(new Error('etcdserver: permission denied'));
        },
      });
      const k = keeper(p, logger);
      expect(await k.round()).toMatchObject({
        kind: 'stay',
        why: 'cannot list the etcd members: etcd unreachable',
      });
      listFails = false;
      k.start();
      // The first failure may be a race with etcd's own leader change: looked at again as usual.
      await vi.advanceTimersByTimeAsync(1000);
      expect(attempts).toBe(1);
      await vi.advanceTimersByTimeAsync(1000);
      expect(attempts).toBe(2);
      // The second in a row is reported, and the next attempt comes a minute later.
      await vi.advanceTimersByTimeAsync(30_000);
      expect(attempts).toBe(2);
      await vi.advanceTimersByTimeAsync(30_000);
      expect(attempts).toBe(3);
      await k.stop();
      await vi.advanceTimersByTimeAsync(120_000);
      expect(attempts).toBe(3);
      const warnings = lines.filter((l) => l.includes('could not keep etcd'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/permission denied.*root role only.*move_etcd_leader: false/);
    } finally {
      vi.useRealTimers();
    }
  });
});

import { describe, expect, it } from 'vitest';
import type { ClusterState, Member } from '../dcs/types.js';
import { emptyCluster } from '../dcs/keys.js';
import {
  failsafePeers,
  failsafeTopology,
  FailsafeHeartbeats,
  sameTopology,
  withFailsafeLeader,
} from './failsafe.js';

function member(name: string, api?: string): Member {
  return { name, data: api ? { api_url: api } : {}, modRevision: '1', lease: '1' };
}

function cluster(over: Partial<ClusterState> = {}): ClusterState {
  return {
    ...emptyCluster('1'),
    initialize: '1',
    ...over,
  };
}

describe('failsafe', () => {
  it('lists every member with a REST URL, and the leader itself', () => {
    const c = cluster({
      members: [member('a', 'http://a/patroni'), member('b'), member('c', 'http://c/patroni')],
    });
    expect(failsafeTopology(c, 'me', 'http://me/patroni')).toEqual({
      a: 'http://a/patroni',
      c: 'http://c/patroni',
      me: 'http://me/patroni',
    });
  });

  it('compares topologies by content', () => {
    expect(sameTopology({ a: '1', b: '2' }, { b: '2', a: '1' })).toBe(true);
    expect(sameTopology({ a: '1' }, { a: '1', b: '2' })).toBe(false);
    expect(sameTopology({ a: '1' }, { a: '2' })).toBe(false);
    expect(sameTopology(null, {})).toBe(false);
  });

  it('asks every member of the key but the leader', () => {
    expect(failsafePeers({ me: 'u0', a: 'u1', b: 'u2' }, 'me').map((m) => [m.name, m.data.api_url])).toEqual([
      ['a', 'u1'],
      ['b', 'u2'],
    ]);
  });

  it('vouches for the calling leader for ttl seconds after its last call', () => {
    const hb = new FailsafeHeartbeats();
    expect(hb.leader(1000, 10)).toBeNull();
    hb.record({ name: 'pg1', api_url: 'http://pg1/patroni' }, 1000);
    expect(hb.leader(10_999, 10)?.name).toBe('pg1');
    expect(hb.leader(11_000, 10)).toBeNull();
    hb.record({ name: 'pg1' }, 20_000);
    hb.clear();
    expect(hb.leader(20_001, 10)).toBeNull();
  });

  it('puts the vouched-for leader back into a view without one, and leaves a real leader alone', () => {
    const leader = { name: 'pg1', conn_url: 'postgres://x/postgres', api_url: 'http://x/patroni' };
    const view = withFailsafeLeader(cluster({ members: [member('pg2')] }), leader);
    expect(view.leader?.name).toBe('pg1');
    expect(view.members.map((m) => m.name)).toEqual(['pg2', 'pg1']);
    expect(view.members[1]!.data).toMatchObject({ role: 'primary', conn_url: 'postgres://x/postgres' });
    const held = cluster({ leader: { name: 'pg3', modRevision: '5', lease: '7' } });
    expect(withFailsafeLeader(held, leader)).toBe(held);
  });
});

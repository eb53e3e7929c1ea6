import { describe, expect, it } from 'vitest';
import type { ClusterState, Member } from '../dcs/types.js';
import { emptyCluster } from '../dcs/keys.js';
import {
  failsafeApplies,
  failsafeMembers,
  failsafePeers,
  failsafeVerdict,
  failsafeTopology,
  FailsafeHeartbeats,
  sameTopology,
  withFailsafeLeader,
  type FailsafeAnswer,
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

  it('asks the members of the key it read and of the one it wrote since, together', () => {
    expect(failsafeMembers({ pg1: 'u1', pg2: 'u2' }, { pg1: 'u1', pg2: 'u2', pg3: 'u3' })).toEqual({
      pg1: 'u1',
      pg2: 'u2',
      pg3: 'u3',
    });
    expect(failsafeMembers({ pg1: 'u1', pg2: 'u2' }, null)).toEqual({ pg1: 'u1', pg2: 'u2' });
    expect(failsafeMembers(null, { pg1: 'u1' })).toEqual({ pg1: 'u1' });
    expect(failsafeMembers(undefined, null)).toBeNull();
  });

  it('reports failsafe mode active on a member a leader called within ttl, never for itself', () => {
    const hb = new FailsafeHeartbeats();
    expect(hb.active(1000, 10, 'pg2')).toBe(false);
    hb.record({ name: 'pg1' }, 1000);
    expect(hb.active(5000, 10, 'pg2')).toBe(true);
    expect(hb.active(5000, 10, 'pg1')).toBe(false);
    expect(hb.active(11_000, 10, 'pg2')).toBe(false);
  });

  const fs = { pg1: 'u1', pg2: 'u2', pg3: 'u3' };
  const yes = (name: string) => ({ name, accepted: true, detail: 'accepted' });
  const no = (name: string) => ({ name, accepted: false, detail: 'connect ECONNREFUSED' });
  it.each<{
    name: string;
    failsafe: Record<string, string> | null;
    answers: FailsafeAnswer[] | null;
    confirmed: boolean;
  }>([
    { name: 'every other member accepted', failsafe: fs, answers: [yes('pg2'), yes('pg3')], confirmed: true },
    { name: 'a single-member cluster needs nobody', failsafe: { pg1: 'u1' }, answers: [], confirmed: true },
    { name: 'one member did not answer', failsafe: fs, answers: [yes('pg2'), no('pg3')], confirmed: false },
    { name: 'this member is not in the key', failsafe: { pg2: 'u2' }, answers: null, confirmed: false },
    { name: 'there is no failsafe key', failsafe: null, answers: null, confirmed: false },
  ])('a leader cut off from the store stays primary only when confirmed: $name', (row) => {
    const v = failsafeVerdict('pg1', row.failsafe, row.answers);
    expect(v.confirmed).toBe(row.confirmed);
    if (!v.confirmed) expect(v.message).toMatch(/demoting to a read-only standby/);
  });

  it.each([
    [{ enabled: true, paused: false, primary: true, leader: true, stopping: false }, true],
    [{ enabled: false, paused: false, primary: true, leader: true, stopping: false }, false],
    [{ enabled: true, paused: true, primary: true, leader: true, stopping: false }, false],
    [{ enabled: true, paused: false, primary: false, leader: true, stopping: false }, false],
    [{ enabled: true, paused: false, primary: true, leader: false, stopping: false }, false],
    [{ enabled: true, paused: false, primary: true, leader: true, stopping: true }, false],
  ])('runs failsafe rounds only as a running, unpaused leader with failsafe_mode: %o', (opts, want) => {
    expect(failsafeApplies(opts)).toBe(want);
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

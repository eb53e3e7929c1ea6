import { describe, expect, it } from 'vitest';
import { rng } from './model/world.js';
import { checkQuorumInvariant, quorumTransitions, type QuorumState, type QuorumStep } from './quorum.js';

interface Snap {
  leader: string;
  quorum: number;
  voters: string[];
  numsync: number;
  sync: string[];
}

function subsets(names: string[], k: number): string[][] {
  if (k <= 0) return [[]];
  if (k > names.length) return [];
  const [first, ...rest] = names as [string, ...string[]];
  return [...subsets(rest, k - 1).map((s) => [first, ...s]), ...subsets(rest, k)];
}

/**
 * The safety property itself, by brute force: every set of `numsync` listed standbys that can
 * acknowledge a commit meets every set of `quorum + 1` voters (the old leader gone) that can make
 * a new leader.
 */
function overlaps(key: Snap, guc: Snap): boolean {
  if (key.voters.length === 0 || guc.sync.length === 0 || guc.numsync === 0) return true;
  const voters = key.voters.filter((v) => v !== key.leader);
  for (const ack of subsets(guc.sync, guc.numsync))
    for (const votes of subsets(voters, key.quorum + 1))
      if (!votes.some((v) => ack.includes(v))) return false;
  return true;
}

function apply(s: Snap, t: QuorumStep): Snap {
  if (t.kind === 'key') return { ...s, leader: t.leader, quorum: t.quorum, voters: t.voters };
  if (t.kind === 'ssn') return { ...s, numsync: t.numsync, sync: t.sync };
  return s;
}

const NAMES = ['a', 'b', 'c', 'd', 'e'];

describe('quorum commit transitions', () => {
  it('reaches the wanted state from scratch in the safe order', () => {
    const start: QuorumState = {
      leader: 'L',
      quorum: 0,
      voters: [],
      numsync: 0,
      sync: [],
      numsyncConfirmed: 0,
      active: ['a', 'b', 'c'],
      wanted: 1,
      leaderWanted: 'L',
    };
    const steps = quorumTransitions(start);
    // From nothing, listing everyone at once is safe; the key follows once one of them confirmed.
    expect(steps).toEqual([{ kind: 'ssn', numsync: 1, sync: ['a', 'b', 'c'] }, { kind: 'restart' }]);
    const next = quorumTransitions({ ...start, numsync: 1, sync: ['a', 'b', 'c'], numsyncConfirmed: 1 });
    expect(next).toEqual([{ kind: 'key', leader: 'L', quorum: 2, voters: ['a', 'b', 'c'] }]);
  });

  it('stores quorum as voters − synchronous nodes, as Patroni does', () => {
    const steady: QuorumState = {
      leader: 'L',
      quorum: 2,
      voters: ['a', 'b', 'c'],
      numsync: 1,
      sync: ['a', 'b', 'c'],
      numsyncConfirmed: 1,
      active: ['a', 'b', 'c'],
      wanted: 1,
      leaderWanted: 'L',
    };
    expect(quorumTransitions(steady)).toEqual([]);
    // A higher replication factor: the list first; the quorum drops once the second confirmed.
    expect(quorumTransitions({ ...steady, wanted: 2 })).toEqual([
      { kind: 'ssn', numsync: 2, sync: ['a', 'b', 'c'] },
    ]);
    expect(quorumTransitions({ ...steady, wanted: 2, numsync: 2, numsyncConfirmed: 2 })).toEqual([
      { kind: 'key', leader: 'L', quorum: 1, voters: ['a', 'b', 'c'] },
    ]);
  });

  it('a member that stops streaming leaves the key before the list shrinks', () => {
    const s: QuorumState = {
      leader: 'L',
      quorum: 1,
      voters: ['a', 'b'],
      numsync: 1,
      sync: ['a', 'b'],
      numsyncConfirmed: 1,
      active: ['a'],
      wanted: 1,
      leaderWanted: 'L',
    };
    const steps = quorumTransitions(s);
    expect(steps.map((t) => t.kind)).toEqual(['ssn', 'key']);
    let cur: Snap = s;
    for (const t of steps) {
      const next = apply(cur, t);
      expect(overlaps(next, cur) && overlaps(next, next)).toBe(true);
      cur = next;
    }
  });

  it('after a failover the new leader leads the key and the old one becomes a voter', () => {
    const s: QuorumState = {
      leader: 'a',
      quorum: 1,
      voters: ['L', 'b'],
      numsync: 1,
      sync: [],
      numsyncConfirmed: 0,
      active: ['b'],
      wanted: 1,
      leaderWanted: 'L',
    };
    const steps = quorumTransitions(s);
    expect(steps.find((t) => t.kind === 'key')).toMatchObject({ leader: 'L', voters: ['a', 'b'] });
  });

  it('keeps the invariant and the overlap after every intermediate step of 20 000 random cycles', () => {
    // A random walk through states a leader really reaches: members come and go, the wanted
    // count changes, confirmations lag, and a cycle may stop half way (a crash between writes).
    const r = rng(42);
    let checked = 0;
    for (let walk = 0; walk < 400; walk++) {
      let cur: Snap = { leader: 'L', quorum: 0, voters: [], numsync: 0, sync: [] };
      let wanted = 1 + Math.floor(r() * 3);
      let active = NAMES.filter(() => r() < 0.6);
      for (let cycle = 0; cycle < 50; cycle++) {
        if (r() < 0.3) active = NAMES.filter(() => r() < 0.6);
        if (r() < 0.1) wanted = 1 + Math.floor(r() * 3);
        const confirmed = Math.floor(r() * (cur.numsync + 1));
        const steps = quorumTransitions({
          ...cur,
          numsyncConfirmed: confirmed,
          active,
          wanted,
          leaderWanted: 'L',
        });
        const done = r() < 0.2 ? Math.floor(r() * steps.length) : steps.length;
        for (const t of steps.slice(0, done)) {
          if (t.kind === 'restart') break;
          const next = apply(cur, t);
          checkQuorumInvariant({ ...next, leaderWanted: 'L' });
          // The key in force meets the commits acknowledged under the list before and after.
          if (!overlaps(next, cur) || !overlaps(next, next))
            throw new Error(`unsafe step ${JSON.stringify(t)} from ${JSON.stringify(cur)}`);
          cur = next;
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(5_000);
  });
});

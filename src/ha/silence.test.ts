import { describe, expect, it } from 'vitest';
import { renewalsOnly } from './runner.js';
import {
  outlastsLease,
  prefetchFromMs,
  PREFETCH_LEAD_MS,
  sight,
  silenceVerdict,
  type Sighting,
} from './silence.js';

const seen = (name: string, modRevision: string, atMono: number): Sighting => ({ name, modRevision, atMono });

describe('sight', () => {
  it.each([
    ['no key', seen('pg1', '10', 0), null, 5000, null],
    ['first sight', null, { name: 'pg1', modRevision: '10' }, 5000, seen('pg1', '10', 5000)],
    [
      'same revision keeps its time',
      seen('pg1', '10', 0),
      { name: 'pg1', modRevision: '10' },
      5000,
      seen('pg1', '10', 0),
    ],
    [
      'newer revision restarts',
      seen('pg1', '10', 0),
      { name: 'pg1', modRevision: '12' },
      5000,
      seen('pg1', '12', 5000),
    ],
    [
      'older revision (late read) is ignored',
      seen('pg1', '12', 100),
      { name: 'pg1', modRevision: '10' },
      5000,
      seen('pg1', '12', 100),
    ],
    [
      'another holder restarts',
      seen('pg1', '12', 0),
      { name: 'pg2', modRevision: '9' },
      5000,
      seen('pg2', '9', 5000),
    ],
  ] as const)('%s', (_what, prev, leader, now, want) => {
    expect(sight(prev, leader, now)).toEqual(want);
  });
});

describe('silenceVerdict', () => {
  const base = { ttlS: 10, loopWaitS: 10, paused: false, me: 'pg2' };
  it.each([
    ['nothing seen', null, 99_000, {}, 'quiet'],
    ['renewed recently', seen('pg1', '10', 0), 5000, {}, 'quiet'],
    ['just before the prefetch', seen('pg1', '10', 0), 10_000 - PREFETCH_LEAD_MS - 1, {}, 'quiet'],
    ['prefetch window', seen('pg1', '10', 0), 10_000 - PREFETCH_LEAD_MS, {}, 'prefetch'],
    ['a ms short of ttl', seen('pg1', '10', 0), 9999, {}, 'prefetch'],
    ['ttl reached', seen('pg1', '10', 0), 10_000, {}, 'release'],
    ['long silence in maintenance mode', seen('pg1', '10', 0), 60_000, { paused: true }, 'quiet'],
    ['my own key', seen('pg2', '10', 0), 60_000, {}, 'quiet'],
    ['a longer ttl waits longer', seen('pg1', '10', 0), 29_999, { ttlS: 30 }, 'prefetch'],
    ['a short loop_wait: renewed within it', seen('pg1', '10', 0), 2499, { loopWaitS: 1 }, 'quiet'],
    ['a short loop_wait: overdue, asked early', seen('pg1', '10', 0), 2500, { loopWaitS: 1 }, 'prefetch'],
  ] as const)('%s', (_what, sighting, now, over, kind) => {
    expect(silenceVerdict({ ...base, ...over, sighting, nowMono: now }).kind).toBe(kind);
  });

  it('says how long the key stood still', () => {
    const v = silenceVerdict({ ...base, sighting: seen('pg1', '10', 1000), nowMono: 12_500 });
    expect(v.kind === 'release' && [v.silentMs, v.why]).toEqual([
      11_500,
      'its leader key has not been renewed for 11.5 s (ttl 10 s)',
    ]);
  });
});

describe('prefetchFromMs', () => {
  it.each([
    ['overdue well before ttl', 10, 1, 2500],
    ["Patroni's defaults", 30, 10, 11_500],
    ['loop_wait close to ttl: the lead before ttl', 10, 10, 10_000 - PREFETCH_LEAD_MS],
    ['never negative', 2, 1, 0],
  ] as const)('%s (ttl %d s, loop_wait %d s)', (_what, ttl, loopWait, want) => {
    expect(prefetchFromMs(ttl, loopWait)).toBe(want);
  });

  // Whatever the timings, the ask starts at least PREFETCH_LEAD_MS before this node's own release.
  it.each([
    [10, 1],
    [10, 5],
    [30, 10],
    [30, 28],
    [60, 10],
  ])('ttl %d s, loop_wait %d s: at least the lead before ttl', (ttl, loopWait) => {
    expect(prefetchFromMs(ttl, loopWait)).toBeLessThanOrEqual(ttl * 1000 - PREFETCH_LEAD_MS);
  });
});

describe('outlastsLease', () => {
  it.each([
    [10_000, 10, true],
    [9_999, 10, false],
    [10_000, 30, false],
    [30_000, 30, true],
    [10_000, null, true],
  ] as const)('silent %d ms, lease granted %s s: %s', (silent, granted, want) => {
    expect(outlastsLease(silent, granted)).toBe(want);
  });
});

describe('renewalsOnly (which watch batches leave the loop asleep)', () => {
  const put = (key: string, value: string | null) => ({ key, value, modRevision: '5' });
  it.each([
    ['the leader rewrites its key', [put('leader', 'pg1')], 'pg1', true],
    ['with a member key beside it', [put('leader', 'pg1'), put('members/pg2', '{}')], 'pg1', true],
    ['another member holds the key now', [put('leader', 'pg2')], 'pg1', false],
    ['the key is deleted', [put('leader', null)], 'pg1', false],
    ['no leader known yet', [put('leader', 'pg1')], undefined, false],
    ['a failover request comes with it', [put('leader', 'pg1'), put('failover', '{}')], 'pg1', false],
    ['no leader event at all', [put('members/pg2', '{}')], 'pg1', false],
  ] as const)('%s: %s', (_what, events, leader, want) => {
    expect(renewalsOnly([...events], leader)).toBe(want);
  });
});

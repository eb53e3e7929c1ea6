import { describe, expect, it } from 'vitest';
import { failsafeView, withAnswer, type FailsafeViewInput, type PrimaryAnswer } from './failsafe-view.js';

const TTL_MS = 10_000;
const yes = (member: string, sentAt: number): PrimaryAnswer => ({
  member,
  sentAt,
  status: 200,
  failsafeActive: true,
});
const replica = (member: string, sentAt: number): PrimaryAnswer => ({
  member,
  sentAt,
  status: 503,
  failsafeActive: true,
});

/** etcd last read at 0 (deadline ttl), now 12 s later unless a row says otherwise. */
const base: FailsafeViewInput = {
  enabled: true,
  now: 12_000,
  viewDeadline: TTL_MS,
  primary: 'pg1',
  answers: [],
  ttlS: TTL_MS / 1000,
  marginMs: 0,
};

const rows: Array<
  [string, Partial<FailsafeViewInput>, { act: boolean; until?: number; failsafe?: boolean }]
> = [
  // etcd read still fresh: act as without failsafe, whatever the answers say.
  ['fresh read', { now: 5000 }, { act: true, until: TTL_MS, failsafe: false }],
  ['fresh read, primary 503', { now: 5000, answers: [replica('pg1', 4000)] }, { act: true, until: TTL_MS }],
  ['fresh read, failsafe off', { now: 5000, enabled: false }, { act: true, until: TTL_MS }],
  ['no primary known', { now: 5000, primary: null }, { act: false }],
  ['never read', { viewDeadline: null, primary: null, answers: [yes('pg1', 11_000)] }, { act: false }],
  // Past the read's deadline: only a confirmation keeps it.
  ['stale, failsafe off', { enabled: false, answers: [yes('pg1', 11_000)] }, { act: false }],
  ['stale, no answer yet', {}, { act: false }],
  [
    'stale, primary confirms',
    { answers: [yes('pg1', 11_000), replica('pg2', 11_000), replica('pg3', 11_000)] },
    { act: true, until: 21_000, failsafe: true },
  ],
  [
    'stale, primary confirms, replicas silent',
    { answers: [yes('pg1', 11_000), { ...replica('pg2', 11_000), status: null }] },
    { act: true, until: 21_000 },
  ],
  ['primary 503', { answers: [replica('pg1', 11_000)] }, { act: false }],
  [
    'primary 200 but failsafe not active (holds the key again: wait for etcd)',
    { answers: [{ ...yes('pg1', 11_000), failsafeActive: false }] },
    { act: false },
  ],
  [
    'primary silent',
    { answers: [{ member: 'pg1', sentAt: 11_000, status: null, failsafeActive: false, detail: 'timeout' }] },
    { act: false },
  ],
  [
    'another member says primary too',
    { answers: [yes('pg1', 11_000), { ...yes('pg2', 11_000), failsafeActive: false }] },
    { act: false },
  ],
  ['confirmation only from another member', { answers: [yes('pg2', 11_000)] }, { act: false }],
  // The window from the confirmation's sending: at s + window it stops, with no later answer.
  ['confirmation just inside its window', { now: 20_999, answers: [yes('pg1', 11_000)] }, { act: true }],
  ['confirmation at the end of its window', { now: 21_000, answers: [yes('pg1', 11_000)] }, { act: false }],
  [
    'VIP window (ttl − margin)',
    { now: 18_500, marginMs: 2000, answers: [yes('pg1', 11_000)] },
    { act: true, until: 19_000 },
  ],
  ['VIP window over', { now: 19_000, marginMs: 2000, answers: [yes('pg1', 11_000)] }, { act: false }],
];

describe('failsafeView', () => {
  it.each(rows)('%s', (_name, over, want) => {
    const v = failsafeView({ ...base, ...over });
    expect(v.act).toBe(want.act);
    if (v.act && want.until !== undefined) expect(v.until).toBe(want.until);
    if (v.act && want.failsafe !== undefined) expect(v.failsafe).toBe(want.failsafe);
    expect(v.why.length).toBeGreaterThan(0);
  });

  it('never acts past the last confirmation + window, whatever came before', () => {
    // Invariant check over a grid of answer times and moments.
    for (let sent = 10_000; sent <= 30_000; sent += 1000)
      for (let now = 10_000; now <= 45_000; now += 500) {
        const v = failsafeView({ ...base, now, answers: [yes('pg1', sent)] });
        if (v.act) {
          expect(now).toBeLessThan(sent + TTL_MS);
          expect(v.until).toBe(sent + TTL_MS);
        }
        // A later non-confirming answer stops it at once.
        const after = withAnswer([yes('pg1', sent)], replica('pg1', sent + 500));
        expect(failsafeView({ ...base, now, answers: after }).act).toBe(false);
      }
  });
});

describe('withAnswer', () => {
  it('keeps the latest answer per member by send time', () => {
    let a = withAnswer([], yes('pg1', 1000));
    a = withAnswer(a, replica('pg1', 2000));
    expect(a).toEqual([replica('pg1', 2000)]);
    a = withAnswer(a, yes('pg1', 1500)); // a slow answer to an earlier request
    expect(a).toEqual([replica('pg1', 2000)]);
    a = withAnswer(a, replica('pg2', 1500));
    expect(a.map((x) => x.member).sort()).toEqual(['pg1', 'pg2']);
  });

  it('a confirmation stands through one missed answer, not two', () => {
    const miss = (sentAt: number): PrimaryAnswer => ({
      member: 'pg1',
      sentAt,
      status: null,
      failsafeActive: false,
      detail: 'timeout',
    });
    let a = withAnswer([], yes('pg1', 11_000));
    a = withAnswer(a, miss(12_000));
    expect(a).toEqual([{ ...yes('pg1', 11_000), missed: 1 }]);
    // Still within its own window, counted from when it was asked.
    expect(failsafeView({ ...base, now: 14_000, answers: a })).toMatchObject({ act: true, until: 21_000 });
    expect(failsafeView({ ...base, now: 21_000, answers: a }).act).toBe(false);
    a = withAnswer(a, miss(14_000));
    expect(a).toEqual([miss(14_000)]);
    expect(failsafeView({ ...base, now: 16_500, answers: a }).act).toBe(false);
    // A real answer resets the count.
    a = withAnswer(a, yes('pg1', 17_000));
    a = withAnswer(a, miss(18_000));
    expect(a).toEqual([{ ...yes('pg1', 17_000), missed: 1 }]);
    // A non-confirming answer is never held back.
    expect(withAnswer(a, replica('pg1', 19_000))).toEqual([replica('pg1', 19_000)]);
  });
});

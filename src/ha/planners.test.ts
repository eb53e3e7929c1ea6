/** Table tests of the small planners: switchover steps, rewind policy, fast failover, failsafe. */
import { describe, expect, it } from 'vitest';
import { failsafeVerdict } from './failsafe.js';
import { countRefusals, leaderGoneVerdict, silenceNeededMs } from './fast-failover.js';
import { planRewind, planRewindFailure } from './recovery.js';
import { afterStop, chooseCandidate, connectStep, SWITCHOVER_CONNECT_WAIT_MS } from './switchover.js';
import { cluster, peer } from './testing/fixtures.js';
import {
  earlyWakeAllowed,
  fenceDeadline,
  keeperMayRenew,
  leaseExpiresNotBefore,
  safetyMarginMs,
} from './timing.js';

describe('switchover steps', () => {
  it('picks the named candidate only when healthy, else the most advanced (a sync member in sync mode)', () => {
    const peers = [
      peer('n2', { walPosition: 10 }),
      peer('n3', { walPosition: 20 }),
      peer('n4', { walPosition: 30, tags: { nofailover: true } }),
    ];
    const c = cluster();
    expect(chooseCandidate({ cluster: c, peers, requested: 'n2', synchronous: false })).toMatchObject({
      ok: true,
      candidate: { name: 'n2' },
    });
    expect(chooseCandidate({ cluster: c, peers, requested: null, synchronous: false })).toMatchObject({
      ok: true,
      candidate: { name: 'n3' },
    });
    expect(chooseCandidate({ cluster: c, peers, requested: 'n4', synchronous: false })).toEqual({
      ok: false,
      why: 'candidate n4 is not a healthy running replica (role replica, state running, not allowed to promote)',
    });
    const s = cluster({ sync: { leader: 'n1', sync_standby: 'n2', modRevision: '1' } });
    expect(chooseCandidate({ cluster: s, peers, requested: null, synchronous: true })).toMatchObject({
      ok: true,
      candidate: { name: 'n2' },
    });
  });

  it.each([
    [true, 0, 'proceed'],
    [false, 1000, 'wait'],
    [false, SWITCHOVER_CONNECT_WAIT_MS, 'cancel'],
  ] as const)('streaming %s after %i ms → %s', (streaming, waited, want) =>
    expect(connectStep(streaming, waited)).toBe(want),
  );

  it.each([
    [true, true, 'release_and_follow'],
    [true, false, 'release_and_follow'],
    [false, true, 'restart_as_primary'],
    [false, false, 'stay_stopped'],
  ] as const)('caught up %s, key ours %s → %s', (caughtUp, ours, want) =>
    expect(afterStop({ candidateCaughtUp: caughtUp, keyStillOurs: ours })).toBe(want),
  );
});

describe('rewind policy: data is never removed unless a setting says so', () => {
  const policy = { usePgRewind: true, removeOnDiverged: false, removeOnRewindFailure: false };
  it.each([
    [policy, 'rewind'],
    [{ ...policy, usePgRewind: false }, 'hold'],
    [{ ...policy, usePgRewind: false, removeOnDiverged: true }, 'remove_data'],
  ] as const)('%j → %s', (p, want) => expect(planRewind(p, 'n2', 'n1').action).toBe(want));
  it.each([
    ['could not connect to server: Connection refused', policy, 'retry'],
    ['pg_rewind: fatal: could not find common ancestor', policy, 'hold'],
    [
      'pg_rewind: fatal: could not find common ancestor',
      { ...policy, removeOnRewindFailure: true },
      'remove_data',
    ],
  ] as const)('failure %s → %s', (error, p, want) =>
    expect(planRewindFailure(p, 'n2', 'n1', error).action).toBe(want),
  );
  it('names the fix', () => {
    const plan = planRewindFailure(policy, 'n2', 'n1', 'boom');
    expect(plan.action === 'hold' ? plan.why : '').toMatch(/pgha ctl reinit <scope> n1/);
  });
});

describe('fast failover needs a witness a firewall cannot forge', () => {
  const v = (refusals: number, silent: number | null) =>
    leaderGoneVerdict({
      refusals,
      leaseSilentMs: silent,
      ttlS: 10,
      pgAddress: 'h:5432',
      apiAddress: 'h:8008',
    });
  it('counts refusals of both ports per leader key revision', () => {
    let r = { key: '', count: 0 };
    r = countRefusals(r, 'a@1', 'refused', 'refused');
    r = countRefusals(r, 'a@1', 'refused', 'refused');
    expect(r.count).toBe(2);
    expect(countRefusals(r, 'a@2', 'refused', 'refused').count).toBe(1);
    expect(countRefusals(r, 'a@1', 'refused', 'unknown').count).toBe(0);
  });
  it.each([
    [2, 60_000, false],
    [3, null, false],
    [3, 1000, false],
    [3, silenceNeededMs(10) - 1, false],
    [3, silenceNeededMs(10), true],
  ])('%i refusals, lease silent %s ms → gone %s', (refusals, silent, want) =>
    expect(v(refusals, silent).gone).toBe(want),
  );
  it('says why a REJECT rule is not enough', () =>
    expect(v(3, 1000).why).toMatch(/renewed 1000 ms ago \(a firewall may be rejecting us\)/));
});

describe('failsafe verdict', () => {
  const fs = { n1: 'http://a', n2: 'http://b' };
  it('confirms only when every other member accepted', () => {
    expect(failsafeVerdict('n1', fs, [{ name: 'n2', accepted: true, detail: 'accepted' }]).confirmed).toBe(
      true,
    );
    const refused = failsafeVerdict('n1', fs, [
      { name: 'n2', accepted: false, detail: '500 Running as a leader' },
    ]);
    expect(refused.confirmed).toBe(false);
    expect(refused.message).toMatch(/n2: 500 Running as a leader/);
    expect(failsafeVerdict('n3', fs, null).confirmed).toBe(false);
  });
});

describe('timing', () => {
  it('fences before the lease can expire, by the margin (2 s at least, ttl/2 at most)', () => {
    expect(safetyMarginMs(10, 5)).toBe(5000);
    expect(safetyMarginMs(10, 0)).toBe(2000);
    expect(safetyMarginMs(3, 5)).toBe(1500);
    expect(fenceDeadline(1000, 10, 2000)).toBe(9000);
    expect(leaseExpiresNotBefore(1000, 10)).toBe(11_000);
  });
  it('the keeper renews while cycles complete or a long action runs', () => {
    expect(
      keeperMayRenew({ nowMono: 20_000, lastCycleMono: 15_000, ttlS: 10, longActionSinceMono: null }),
    ).toBe(true);
    expect(
      keeperMayRenew({ nowMono: 30_000, lastCycleMono: 15_000, ttlS: 10, longActionSinceMono: null }),
    ).toBe(false);
    expect(
      keeperMayRenew({ nowMono: 30_000, lastCycleMono: 15_000, ttlS: 10, longActionSinceMono: 14_000 }),
    ).toBe(true);
  });
});

describe('earlyWakeAllowed: one early wake per loop_wait and cause', () => {
  it.each([
    ['the first one', -Infinity, 1_000, 10, true],
    ['another within loop_wait', 1_000, 10_999, 10, false],
    ['another once loop_wait has passed', 1_000, 11_000, 10, true],
    ['at a fast loop', 1_000, 2_000, 1, true],
  ])('%s', (_name, last, now, loopWait, want) => {
    expect(earlyWakeAllowed(last, now, loopWait)).toBe(want);
  });

  it('a cause that repeats at any pace wakes the loop no more often than loop_wait', () => {
    for (const everyMs of [50, 400, 2_500, 9_999, 10_000, 15_000]) {
      let last = -Infinity;
      const woke: number[] = [];
      for (let now = 0; now <= 120_000; now += everyMs)
        if (earlyWakeAllowed(last, now, 10)) {
          woke.push(now);
          last = now;
        }
      for (let i = 1; i < woke.length; i++) expect(woke[i]! - woke[i - 1]!).toBeGreaterThanOrEqual(10_000);
      expect(woke[0]).toBe(0);
    }
  });
});

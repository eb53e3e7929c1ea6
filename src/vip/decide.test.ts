import { describe, expect, it } from 'vitest';
import {
  INITIAL_HEALTH,
  addressStep,
  eligibility,
  failsafeHoldUntil,
  heldUntil,
  keyStep,
  nextHealth,
  takeoverBlock,
  type AddressInput,
  type FailsafeHoldInput,
  type HealthState,
} from './decide.js';

const healthy: HealthState = { healthy: true, streak: 0, why: 'ok' };
const down: HealthState = { healthy: false, streak: 0, why: 'connection refused' };

describe('eligibility: who may hold the VIP', () => {
  it('leader mode: only the leader key holder', () => {
    expect(eligibility({ mode: 'leader', me: 'pg1', leader: 'pg1' }).eligible).toBe(true);
    expect(eligibility({ mode: 'leader', me: 'pg1', leader: 'pg2' })).toEqual({
      eligible: false,
      why: 'pg2 holds the leader key',
    });
    expect(eligibility({ mode: 'leader', me: 'pg1', leader: null }).why).toBe('no node holds the leader key');
    expect(eligibility({ mode: 'leader', me: 'pg1' }).eligible).toBe(false);
  });

  it('router mode: a node whose local router is healthy, whoever leads', () => {
    expect(eligibility({ mode: 'router', me: 'pg1', leader: 'pg2', router: healthy }).eligible).toBe(true);
    expect(eligibility({ mode: 'router', me: 'pg1', router: down })).toEqual({
      eligible: false,
      why: 'the local router is down: connection refused',
    });
    expect(eligibility({ mode: 'router', me: 'pg1' }).eligible).toBe(false);
  });

  it('nobody while stopping', () => {
    expect(eligibility({ mode: 'leader', me: 'pg1', leader: 'pg1', stopping: true }).eligible).toBe(false);
  });
});

describe('keyStep: claim, or release only once the address is gone', () => {
  it('an eligible node claims (acquires, or confirms its own key)', () => {
    expect(keyStep({ eligible: true, keyOurs: false, present: false })).toBe('claim');
    expect(keyStep({ eligible: true, keyOurs: true, present: true })).toBe('claim');
  });
  it('a node that may not hold it keeps the key while the address is still up', () => {
    expect(keyStep({ eligible: false, keyOurs: true, present: true })).toBe('none');
    expect(keyStep({ eligible: false, keyOurs: true, present: false })).toBe('release');
    expect(keyStep({ eligible: false, keyOurs: false, present: false })).toBe('none');
  });
  it('while a takeover is blocked, only a key already ours is claimed (renewed)', () => {
    expect(keyStep({ eligible: true, keyOurs: false, present: false, takeover: false })).toBe('none');
    expect(keyStep({ eligible: true, keyOurs: true, present: true, takeover: false })).toBe('claim');
  });
});

describe('failsafe_mode: the VIP stays where it is', () => {
  it('takeoverBlock: with failsafe_mode, no takeover while no node holds the leader key', () => {
    expect(takeoverBlock({ failsafeMode: false, leader: null })).toBeNull();
    expect(takeoverBlock({ failsafeMode: true, leader: 'pg1' })).toBeNull();
    expect(takeoverBlock({ failsafeMode: true, leader: null })).toMatch(/stays where it is/);
    expect(takeoverBlock({ failsafeMode: true, leader: undefined })).toMatch(/stays where it is/);
  });

  const yes = (member: string, sentAt: number) => ({ member, sentAt, status: 200, failsafeActive: true });
  // Key renewed at 0 with ttl 10: its deadline is 8 s (margin 2 s); confirmations count the same way.
  const base: FailsafeHoldInput = {
    failsafeMode: true,
    now: 9000,
    keyHeldUntil: heldUntil(0, 10),
    leader: 'pg1',
    answers: [yes('pg1', 7000)],
    vipTtl: 10,
    clusterTtl: 10,
  };
  const rows: Array<[string, Partial<FailsafeHoldInput>, number | null]> = [
    ['the leader confirms: held ttl − margin after the confirmation was asked', {}, 15_000],
    ['before the key deadline a confirmation holds too (no gap in its last second)', { now: 5000 }, 15_000],
    ['failsafe_mode off', { failsafeMode: false }, null],
    ['key not ours', { keyHeldUntil: null }, null],
    ['no leader known', { leader: null }, null],
    ['the leader answers 503', { answers: [{ ...yes('pg1', 8500), status: 503 }] }, null],
    [
      'the leader is primary but not in failsafe mode',
      { answers: [{ ...yes('pg1', 8500), failsafeActive: false }] },
      null,
    ],
    ['no answer', { answers: [{ member: 'pg1', sentAt: 8500, status: null, failsafeActive: false }] }, null],
    ['another member says primary', { answers: [yes('pg1', 7000), yes('pg2', 7000)] }, null],
    ['confirmation too old', { now: 15_000 }, null],
    ['the shorter ttl counts (cluster ttl 6: margin 2 s)', { clusterTtl: 6 }, 11_000],
  ];
  it.each(rows)('failsafeHoldUntil: %s', (_name, over, until) => {
    const h = failsafeHoldUntil({ ...base, ...over });
    expect(h.until).toBe(until);
    expect(h.why.length).toBeGreaterThan(0);
  });
});

describe('addressStep: the address is up only while the key is ours and not past its deadline', () => {
  const now = 1_000_000;
  const base: AddressInput = {
    now,
    eligible: true,
    heldUntil: now + 8000,
    sameNameElsewhere: false,
    present: false,
    lifetimeEndsAt: null,
    renewWithinMs: 4000,
    why: 'this node holds the leader key',
    holder: 'pg1',
  };

  it('adds with a kernel lifetime that ends by the deadline, then renews it', () => {
    expect(addressStep(base)).toEqual({ step: 'add', lifetimeS: 8, why: base.why });
    expect(addressStep({ ...base, present: true, heldUntil: now + 7999 })).toMatchObject({
      step: 'renew',
      lifetimeS: 7,
    });
  });

  it('renews the lifetime only once less than renewWithinMs of it is left', () => {
    const holding = { ...base, present: true, heldUntil: now + 8000 };
    expect(addressStep({ ...holding, lifetimeEndsAt: now + 6000 }).step).toBe('none');
    expect(addressStep({ ...holding, lifetimeEndsAt: now + 3999 })).toMatchObject({
      step: 'renew',
      lifetimeS: 8,
    });
  });

  it('does not add without the key, and removes an address it finds without the key', () => {
    expect(addressStep({ ...base, heldUntil: null, holder: 'pg2' }).step).toBe('none');
    expect(addressStep({ ...base, heldUntil: null, holder: 'pg2', present: true })).toEqual({
      step: 'remove',
      why: 'pg2 holds the VIP key',
    });
  });

  it('removes it at once when the node may no longer hold it', () => {
    expect(addressStep({ ...base, eligible: false, present: true, why: 'pg2 holds the leader key' })).toEqual(
      {
        step: 'remove',
        why: 'pg2 holds the leader key',
      },
    );
  });

  it('removes it when etcd could not be reached until the deadline (lease deadline minus the margin)', () => {
    const past = { ...base, present: true, heldUntil: now - 1 };
    expect(addressStep(past)).toEqual({
      step: 'remove',
      why: 'the key could not be renewed before the lease deadline',
    });
    // Less than a whole second left: the kernel counts seconds, so do not renew for 0.
    expect(addressStep({ ...base, present: true, heldUntil: now + 900 }).step).toBe('remove');
  });

  it('leaves alone an address held under its name by another process (a previous run)', () => {
    expect(
      addressStep({ ...base, heldUntil: null, present: true, sameNameElsewhere: true, holder: 'pg1' }).step,
    ).toBe('none');
  });

  it('the deadline is renewal send time + ttl − 2 s (at most ttl / 2 early)', () => {
    expect(heldUntil(1000, 10)).toBe(9000);
  });
});

describe('the two-node story: never both', () => {
  it('switchover: the old holder removes, then releases; the new one adds only after its claim', () => {
    const common = { now: 0, sameNameElsewhere: false, lifetimeEndsAt: null, renewWithinMs: 4000 };
    // pg1 held it; the leader key moved to pg2.
    const pg1 = eligibility({ mode: 'leader', me: 'pg1', leader: 'pg2' });
    expect(keyStep({ eligible: pg1.eligible, keyOurs: true, present: true })).toBe('none');
    expect(
      addressStep({
        ...common,
        eligible: pg1.eligible,
        heldUntil: 8000,
        present: true,
        why: pg1.why,
        holder: 'pg1',
      }).step,
    ).toBe('remove');
    expect(keyStep({ eligible: pg1.eligible, keyOurs: true, present: false })).toBe('release');
    // pg2's claim failed while pg1 held the key: it must not add.
    const pg2 = eligibility({ mode: 'leader', me: 'pg2', leader: 'pg2' });
    expect(
      addressStep({
        ...common,
        eligible: pg2.eligible,
        heldUntil: null,
        present: false,
        why: pg2.why,
        holder: 'pg1',
      }).step,
    ).toBe('none');
  });
});

describe('nextHealth: fall and rise', () => {
  const opts = { fall: 2, rise: 2 };
  const ok = { ok: true, refused: false, detail: 'answered 200' };
  const slow = { ok: false, refused: false, detail: 'did not answer' };
  const refused = { ok: false, refused: true, detail: 'connection refused' };

  it('starts down and comes up after `rise` good checks', () => {
    const one = nextHealth(INITIAL_HEALTH, ok, opts);
    expect(one.healthy).toBe(false);
    expect(nextHealth(one, ok, opts).healthy).toBe(true);
    expect(nextHealth(INITIAL_HEALTH, ok, { fall: 2, rise: 1 }).healthy).toBe(true);
  });

  it('goes down after `fall` failures in a row; a good check in between resets the count', () => {
    const a = nextHealth(healthy, slow, opts);
    expect(a.healthy).toBe(true);
    expect(nextHealth(a, slow, opts).healthy).toBe(false);
    expect(nextHealth(nextHealth(a, ok, opts), slow, opts).healthy).toBe(true);
  });

  it('goes down at once when the connection is refused (the router is not running)', () => {
    expect(nextHealth(healthy, refused, opts)).toEqual({
      healthy: false,
      streak: 0,
      why: 'connection refused',
    });
  });
});

import { describe, expect, it } from 'vitest';
import type { DynamicConfig } from '../config/types.js';
import { evaluateRace, failoverPossible, watchdogRule, type RaceInput } from './race.js';
import { isNoFailover, manualPromotionRisk } from './rules.js';
import { cluster, dynamic, member, peer, primaryStatus, status, tags } from './testing/fixtures.js';

const base: RaceInput = { me: 'n1', cluster: cluster(), config: dynamic, tags, status: status(), peers: [] };
const race = (over: Partial<RaceInput>) => evaluateRace({ ...base, ...over });
const sync = (over: Partial<DynamicConfig> = {}) => ({
  ...dynamic,
  synchronous_mode: true as const,
  ...over,
});
const quorum = { ...dynamic, synchronous_mode: 'quorum' as const };

describe('evaluateRace', () => {
  it('lets a named candidate promote in synchronous mode even when not synchronous, naming the risk', () => {
    const c = cluster({
      failover: { member: 'n1', modRevision: '3' },
      sync: { leader: 'n0', sync_standby: 'n2', modRevision: '4' },
    });
    const v = race({ cluster: c, config: sync() });
    expect(v.ok).toBe(true);
    expect(v.ok && v.risk).toMatch(
      /^n1 is not a synchronous standby \(synchronous: n2\); transactions acknowledged/,
    );
    expect(manualPromotionRisk(c, true, 'n2')).toBeNull();
    expect(manualPromotionRisk(c, false, 'n1')).toBeNull();
  });

  it('in a switchover in synchronous mode only sync-key members race, the named candidate too (as Patroni)', () => {
    const c = cluster({
      failover: { leader: 'n0', member: 'n1', modRevision: '3' },
      sync: { leader: 'n0', sync_standby: 'n2', modRevision: '4' },
    });
    expect(race({ cluster: c, config: sync() }).why).toBe(
      'a switchover in synchronous mode: this member is not in the sync key (synchronous: n2)',
    );
    expect(race({ cluster: c, config: { ...dynamic, synchronous_mode: 'quorum' } }).ok).toBe(false);
    expect(race({ cluster: c }).ok).toBe(true);
  });

  it('a switchover candidate whose leader vanished must pass the race, and drops the request when it cannot', () => {
    const c = cluster({ failover: { leader: 'n0', member: 'n1', modRevision: '3' } });
    expect(race({ cluster: c, peers: [peer('n2', { walPosition: 0x3000000 })] })).toMatchObject({ ok: true });
    expect(race({ cluster: c, peers: [peer('n2', { walPosition: 0x9000000 })] })).toEqual({
      ok: false,
      why: `the switchover to this member cannot be completed safely: member n2 is ahead (WAL ${0x9000000} > mine ${0x3000100})`,
      dropRequest: true,
    });
    // A failover by hand is the operator's call.
    const f = cluster({ failover: { member: 'n1', modRevision: '3' } });
    expect(race({ cluster: f, peers: [peer('n2', { walPosition: 0x9000000 })] }).ok).toBe(true);
  });

  it('waits for a named candidate only while it runs, then races normally', () => {
    const c = cluster({ failover: { member: 'n3', modRevision: '3' }, members: [member('n3')] });
    expect(race({ cluster: c, peers: [peer('n3', { walPosition: 1 })] }).why).toBe(
      'a manual failover/switchover to n3 is in progress',
    );
    const v = race({ cluster: c, peers: [peer('n3', { state: 'stopped', walPosition: 0 })] });
    expect(v.ok).toBe(true);
    expect(v.why).toMatch(/the requested candidate n3 is not running: stopped/);
    expect(race({ cluster: c, peers: [{ name: 'n3', reachable: false }] }).why).toMatch(/n3 is unreachable/);
  });

  // Liveness: with its leader gone, a switchover must not leave every healthy member waiting for
  // another. A candidate outside the sync key (the key changed after the request was taken) can
  // never take the key in synchronous mode, so nobody waits for it.
  it.each([
    ['the candidate is the synchronous standby', true as const, 'n3', 'n3'],
    ['the candidate is not in the sync key', true as const, 'n1', 'n1'],
    ['quorum mode, the candidate is not a voter', 'quorum' as const, 'n1', 'n1'],
    ['asynchronous mode', false as const, 'n3', 'n3'],
  ])(
    'a switchover whose leader vanished: %s — someone may take the key',
    (_what, mode, syncStandby, winner) => {
      const c = cluster({
        failover: { leader: 'n0', member: 'n3', modRevision: '3' },
        sync: {
          leader: 'n0',
          sync_standby: syncStandby,
          quorum: mode === 'quorum' ? 0 : null,
          modRevision: '4',
        },
        members: [member('n1'), member('n3')],
      });
      const config = { ...dynamic, synchronous_mode: mode };
      const verdicts = ['n1', 'n3'].map((me) =>
        race({
          me,
          cluster: c,
          config,
          peers: [peer(me === 'n1' ? 'n3' : 'n1', { walPosition: 0x3000100 })],
        }),
      );
      const winners = ['n1', 'n3'].filter((_, i) => verdicts[i]!.ok);
      expect(winners, JSON.stringify(verdicts)).toEqual([winner]);
    },
  );

  it('keeps the member a switchover moves away from out of the race while another can take over', () => {
    const c = cluster({ failover: { leader: 'n1', modRevision: '3' } });
    expect(race({ cluster: c, peers: [peer('n2', { walPosition: 1 })] }).why).toBe(
      'a switchover away from this member is in progress (n2 can take over)',
    );
    expect(race({ cluster: c, peers: [{ name: 'n2', reachable: false }] }).ok).toBe(true);
  });

  it('in synchronous mode compares WAL only with members the sync key lets be promoted', () => {
    const c = cluster({ sync: { leader: 'n0', sync_standby: 'n1', modRevision: '4' } });
    const ahead = peer('n2', { walPosition: 0x9000000 });
    expect(race({ cluster: c, config: sync(), peers: [ahead] }).ok).toBe(true);
    expect(race({ cluster: c, peers: [ahead] }).ok).toBe(false);
  });

  it('in synchronous mode ignores the former leader being ahead', () => {
    const c = cluster({ sync: { leader: 'n0', sync_standby: 'n1', modRevision: '4' } });
    expect(race({ cluster: c, config: sync(), peers: [peer('n0', { walPosition: 0x9000000 })] }).ok).toBe(
      true,
    );
  });

  it('under failsafe_mode, keeps a member the last leader did not list out of the race', () => {
    const fs = { n0: 'http://a/patroni', n2: 'http://b/patroni' };
    const on = { config: { ...dynamic, failsafe_mode: true } };
    expect(race({ ...on, cluster: cluster({ failsafe: fs }) })).toEqual({
      ok: false,
      why: 'failsafe_mode is on and this member is not in the failsafe key (n0, n2)',
    });
    expect(race({ ...on, cluster: cluster({ failsafe: { ...fs, n1: 'http://c' } }) }).ok).toBe(true);
    expect(race({ cluster: cluster({ failsafe: fs }) }).ok).toBe(true);
  });

  it('lets the most advanced healthy replica win, backs off when a peer is ahead', () => {
    expect(race({ peers: [peer('n2', { walPosition: 0x3000000 })] }).ok).toBe(true);
    const v = race({ peers: [peer('n2', { walPosition: 0x3000200 })] });
    expect(v).toEqual({ ok: false, why: `member n2 is ahead (WAL ${0x3000200} > mine ${0x3000100})` });
  });

  it('ignores unreachable peers, peers whose PostgreSQL is down and peers tagged nofailover', () => {
    const peers = [
      { name: 'n2', reachable: false },
      peer('n3', { walPosition: 0x9000000, tags: { nofailover: true } }),
      peer('n4', { walPosition: 0x9000000, tags: { failover_priority: 0 } }),
    ];
    expect(race({ peers }).ok).toBe(true);
  });

  it('refuses with nofailover or failover_priority 0, too much lag, or a primary still running', () => {
    expect(race({ tags: { ...tags, nofailover: true } }).why).toMatch(/nofailover/);
    expect(race({ tags: { ...tags, failover_priority: 0 } }).why).toBe(
      'this member has failover_priority 0 (0 or less: never promoted)',
    );
    const lagging = race({ cluster: cluster({ status: { optime: 0x3000100 + 2 * 1048576 } }) });
    expect(lagging.ok).toBe(false);
    expect(lagging.why).toMatch(/maximum_lag_on_failover is 1048576/);
    expect(race({ peers: [peer('n2', { inRecovery: false, role: 'primary', walPosition: 1 })] }).why).toMatch(
      /n2 is still running as primary/,
    );
  });

  it('prefers a higher failover_priority among equals, but not the former leader’s', () => {
    const p = peer('n2', { walPosition: 0x3000100, tags: { failover_priority: 5 } });
    expect(race({ peers: [p] }).why).toMatch(/higher failover_priority \(5 > 1\)/);
    expect(race({ peers: [p], formerLeader: 'n2' }).ok).toBe(true);
  });

  it('check_timeline: a replica behind the cluster timeline never wins (as Patroni)', () => {
    const c = cluster({ history: [[1, 0x3000000, 'x', 't', 'n2']] });
    const on = { ...dynamic, check_timeline: true };
    expect(race({ cluster: c, config: on })).toEqual({
      ok: false,
      why: 'my timeline 1 is behind last known cluster timeline 2 (check_timeline)',
    });
    expect(race({ cluster: c }).ok).toBe(true); // off: Patroni's default lets it race
    expect(race({ cluster: c, config: on, status: status({ timeline: 2 }) }).ok).toBe(true);
  });

  it('a primary behind the cluster timeline never takes the key back, whatever check_timeline', () => {
    const c = cluster({ history: [[1, 0x3000000, 'x', 't', 'n2']] });
    expect(race({ cluster: c, status: primaryStatus() })).toEqual({
      ok: false,
      why: 'my timeline 1 is behind last known cluster timeline 2',
    });
    expect(race({ cluster: c, status: primaryStatus({ timeline: 2 }) }).ok).toBe(true);
  });

  it('of two running primaries the newer timeline, then the longer WAL, then the smaller name wins', () => {
    const me = primaryStatus({ timeline: 2, walPosition: 100 });
    const other = (over = {}) =>
      peer('n2', { inRecovery: false, role: 'primary', timeline: 2, walPosition: 100, ...over });
    expect(race({ status: me, peers: [other({ timeline: 3 })] }).ok).toBe(false);
    expect(race({ status: me, peers: [other({ walPosition: 101 })] }).ok).toBe(false);
    expect(race({ status: me, peers: [other()] }).ok).toBe(true); // n1 < n2
    expect(race({ me: 'n3', status: me, peers: [other()] }).ok).toBe(false);
    expect(race({ status: me, peers: [other({ timeline: 1 })] }).ok).toBe(true);
  });

  describe('quorum mode (Patroni 4: the sync key holds quorum = voters − synchronous nodes)', () => {
    // Leader n0, voters n1 n2 n3, ANY 1 of them acknowledges: quorum 2.
    const c = cluster({ sync: { leader: 'n0', sync_standby: 'n1,n2,n3', quorum: 2, modRevision: '1' } });

    it('needs quorum votes from members whose PostgreSQL runs', () => {
      const one = [peer('n2', { walPosition: 1 })];
      expect(race({ cluster: c, config: quorum, peers: one }).why).toMatch(
        /1 of the members n0, n1, n2, n3 confirm no one is ahead, 2 are needed/,
      );
      const two = [...one, peer('n3', { walPosition: 1 })];
      expect(race({ cluster: c, config: quorum, peers: two }).ok).toBe(true);
    });

    it('does not count a voter whose PostgreSQL is down (WAL position 0)', () => {
      const peers = [peer('n2', { walPosition: 1 }), peer('n3', { walPosition: 0, state: 'stopped' })];
      expect(race({ cluster: c, config: quorum, peers }).ok).toBe(false);
    });

    it('counts nofailover voters as votes', () => {
      const peers = [
        peer('n2', { walPosition: 1 }),
        peer('n3', { walPosition: 1, tags: { nofailover: true } }),
      ];
      expect(race({ cluster: c, config: quorum, peers }).ok).toBe(true);
    });

    it('the former leader may take the key back when nobody is ahead', () => {
      expect(race({ me: 'n0', cluster: c, config: quorum, peers: [] }).ok).toBe(true);
    });
  });
});

describe('failoverPossible', () => {
  const fp = (peers = [peer('n2', { walPosition: 0x3000000 })], over = {}) =>
    failoverPossible({ me: 'n1', cluster: cluster(), config: dynamic, peers, ...over });

  it('needs one healthy, promotable, not lagging member', () => {
    expect(fp().possible).toBe(true);
    expect(fp([{ name: 'n2', reachable: false }]).why).toMatch(/n2 is not reachable/);
    expect(fp([peer('n2', { tags: { failover_priority: 0 } })]).why).toMatch(/not allowed to promote/);
    expect(fp([peer('n2', { walPosition: 0 })]).why).toMatch(/no running PostgreSQL/);
    expect(
      fp([peer('n2', { walPosition: 1 })], { cluster: cluster({ status: { optime: 1 + 2 * 1048576 } }) }).why,
    ).toMatch(/exceeds maximum replication lag/);
    expect(fp([peer('n2', { walPosition: 0x100 })], { clusterLsn: 0x200 }).possible).toBe(false);
  });

  it('in synchronous mode only members of the sync key count', () => {
    const c = cluster({ sync: { leader: 'n1', sync_standby: 'n3', modRevision: '1' } });
    expect(fp(undefined, { cluster: c, config: sync() }).possible).toBe(false);
  });
});

describe('tags', () => {
  it('failover_priority 0 or less means nofailover unless nofailover says otherwise', () => {
    expect(isNoFailover({ failover_priority: 0 })).toBe(true);
    expect(isNoFailover({ failover_priority: '-1' })).toBe(true);
    expect(isNoFailover({ failover_priority: 1 })).toBe(false);
    expect(isNoFailover({ failover_priority: 0, nofailover: false })).toBe(false);
    expect(isNoFailover({ nofailover: 'true' })).toBe(true);
  });

  it('a required watchdog that cannot be armed refuses leadership; other modes never do', () => {
    expect(watchdogRule('required', 'no /dev/watchdog')).toMatch(
      /required and the watchdog is unusable: no \/dev\/watchdog/,
    );
    expect(watchdogRule('automatic', 'no /dev/watchdog')).toBeNull();
    expect(watchdogRule('required', null)).toBeNull();
  });
});

/**
 * Two or three `VipManager`s on an in-memory etcd (keys, leases that expire on a fake clock, a
 * watch) and fake interfaces that record every change: the address must never be on two nodes,
 * through a switchover, an etcd partition, a router death and a shutdown.
 */
import { systemClock } from '../util/clock.js';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { VipConfig } from '../config/types.js';
import type { ClusterState } from '../dcs/types.js';
import { DcsError } from '../util/errors.js';
import type { ProbeResult } from './decide.js';
import type { AddressControl, AddressState } from './iproute.js';
import { VipManager, vipKey, type VipStore } from './manager.js';
import type { ProbeTarget } from '../ha/failsafe-probe.js';
import type { PrimaryAnswer } from '../ha/failsafe-view.js';

const log = pino({ level: 'silent' });

/** etcd as far as the VIP sees it: keys on leases, expiring on `Date.now()` (faked). */
class FakeEtcd {
  leader: string | null = null;
  /** The dynamic config's `failsafe_mode`. */
  failsafe = false;
  readonly keys = new Map<string, { value: string; lease: number }>();
  private readonly leases = new Map<number, number>();
  private nextLease = 1;
  private readonly watchers = new Set<(keys: string[]) => void>();

  expire(): void {
    const now = Date.now();
    for (const [id, until] of this.leases) {
      if (until > now) continue;
      this.leases.delete(id);
      for (const [k, v] of this.keys) if (v.lease === id) this.delete(k);
    }
  }
  private delete(k: string): void {
    this.keys.delete(k);
    queueMicrotask(() => this.watchers.forEach((w) => w([k])));
  }

  client(ttl: number): VipStore & { cut: boolean } {
    let lease: number | null = null;
    const check = () => {
      if (c.cut) throw new DcsError('etcd unreachable (test)');
      this.expire();
    };
    const c: VipStore & { cut: boolean } = {
      cut: false,
      prefix: '/service/demo/',
      refreshLease: () => {
        check();
        const sent = Date.now();
        if (lease === null || !this.leases.has(lease)) lease = this.nextLease++;
        this.leases.set(lease, sent + ttl * 1000);
        return Promise.resolve(sent);
      },
      readCluster: () => {
        check();
        return Promise.resolve({
          leader: this.leader ? { name: this.leader } : null,
          config: { value: { ttl: 10, failsafe_mode: this.failsafe } },
          members: ['pg1', 'pg2', 'pg3'].map((name) => ({
            name,
            data: { api_url: `http://${name}:8008/patroni` },
          })),
        } as unknown as ClusterState);
      },
      claimKey: (rel, value) => {
        check();
        const kv = this.keys.get(rel);
        if (!kv) {
          this.keys.set(rel, { value, lease: lease! });
          queueMicrotask(() => this.watchers.forEach((w) => w([rel])));
          return Promise.resolve({ held: true, holder: value });
        }
        return Promise.resolve({ held: kv.value === value && kv.lease === lease, holder: kv.value });
      },
      releaseKey: (rel, value) => {
        check();
        const kv = this.keys.get(rel);
        if (!kv || kv.value !== value || kv.lease !== lease) return Promise.resolve(false);
        this.delete(rel);
        return Promise.resolve(true);
      },
      watch: (fn) => {
        this.watchers.add(fn);
        return () => {
          this.watchers.delete(fn);
          return Promise.resolve();
        };
      },
    };
    return c;
  }
}

/** One link: records which nodes have the address, and fails the test if two ever do. */
class FakeLink {
  readonly holders = new Set<string>();
  readonly events: string[] = [];
  overlap = false;

  nic(node: string): AddressControl & { lifetime: number } {
    const { holders, events } = this;
    const nic = {
      label: `10.0.0.100/24 on eth0 of ${node}`,
      lifetime: 0,
      preflight: () => Promise.resolve(),
      inspect: (): Promise<AddressState> =>
        Promise.resolve({ present: holders.has(node), tentative: false, dadFailed: false }),
      add: (lifetimeS: number) => {
        if (holders.size > 0 && !holders.has(node)) this.overlap = true;
        holders.add(node);
        events.push(`${node} add`);
        nic.lifetime = lifetimeS;
        return Promise.resolve();
      },
      renew: (lifetimeS: number) => {
        nic.lifetime = lifetimeS;
        return Promise.resolve();
      },
      remove: () => {
        if (holders.delete(node)) events.push(`${node} del`);
        return Promise.resolve();
      },
      announce: () => undefined,
      close: () => Promise.resolve(),
    };
    return nic;
  }
}

const config = (mode: 'leader' | 'router'): VipConfig => ({
  address: '10.0.0.100',
  family: 4,
  prefix: 24,
  interface: 'eth0',
  mode,
  ttl: 10,
  check_interval: 1,
  fall: 1,
  rise: 1,
  arp_count: 0,
});

describe('VipManager', () => {
  let etcd: FakeEtcd;
  let link: FakeLink;
  const managers: VipManager[] = [];

  beforeEach(() => {
    agents.clear();
    vi.useFakeTimers({ now: 1_000_000 });
    etcd = new FakeEtcd();
    link = new FakeLink();
  });
  afterEach(async () => {
    for (const m of managers.splice(0)) await m.stop();
    vi.useRealTimers();
  });

  /** What each agent answers to `GET /primary` (failsafe_mode); absent: no answer. */
  const agents = new Map<string, { status: number; failsafeActive: boolean }>();
  const askPrimary = (t: ProbeTarget): Promise<PrimaryAnswer> => {
    const a = agents.get(t.name);
    return Promise.resolve({
      member: t.name,
      sentAt: Date.now(),
      status: a?.status ?? null,
      failsafeActive: a?.failsafeActive ?? false,
    });
  };

  function node(name: string, mode: 'leader' | 'router', probe?: () => Promise<ProbeResult>) {
    const store = etcd.client(10);
    const nic = link.nic(name);
    const m = new VipManager({
      config: config(mode),
      me: name,
      store,
      net: nic,
      log,
      // The fake etcd stamps its renewals with the faked Date; the manager's deadlines use the same.
      clock: { ...systemClock, mono: () => Date.now(), now: () => Date.now() },
      askPrimary,
      ...(probe ? { probe } : {}),
    });
    managers.push(m);
    return { m, store, nic };
  }

  it('leader mode: follows the leader key through a switchover, never on two nodes', async () => {
    etcd.leader = 'pg1';
    const a = node('pg1', 'leader');
    const b = node('pg2', 'leader');
    await a.m.start();
    await b.m.start();
    await vi.advanceTimersByTimeAsync(1500);
    expect([...link.holders]).toEqual(['pg1']);
    expect(etcd.keys.get(vipKey('10.0.0.100'))?.value).toBe('pg1');
    expect(a.nic.lifetime).toBeGreaterThanOrEqual(7);

    etcd.leader = 'pg2';
    // pg2 sees it first: its claim fails while pg1 still holds the key, so it waits.
    await b.m.checkNow();
    expect([...link.holders]).toEqual(['pg1']);
    await a.m.checkNow();
    await vi.advanceTimersByTimeAsync(10); // the watch event on the released key wakes pg2
    expect([...link.holders]).toEqual(['pg2']);
    expect(link.events).toEqual(['pg1 add', 'pg1 del', 'pg2 add']);
    expect(b.m.status()).toMatchObject({ held: true, holder: 'pg2', takeovers: 1 });
    expect(link.overlap).toBe(false);
  });

  it('a holder cut off from etcd drops the address before its lease can expire; then another takes it', async () => {
    etcd.leader = 'pg1';
    const a = node('pg1', 'leader');
    const b = node('pg2', 'leader');
    await a.m.start();
    await b.m.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect([...link.holders]).toEqual(['pg1']);
    const cutAt = Date.now();
    a.store.cut = true;
    etcd.leader = 'pg2'; // the cluster fails over meanwhile
    let droppedAt = 0;
    let takenAt = 0;
    for (let t = 0; t < 15_000; t += 100) {
      await vi.advanceTimersByTimeAsync(100);
      if (!droppedAt && !link.holders.has('pg1')) droppedAt = Date.now();
      if (!takenAt && link.holders.has('pg2')) takenAt = Date.now();
      expect(link.overlap).toBe(false);
    }
    // Dropped by the last renewal + ttl − 2 s; taken only once pg1's lease ran out (+ ttl).
    expect(droppedAt - cutAt).toBeLessThanOrEqual(8000);
    expect(takenAt).toBeGreaterThan(droppedAt);
    expect(takenAt - cutAt).toBeGreaterThan(9000);
    expect(a.m.status().held).toBe(false);
  });

  it('router mode: a node whose router dies releases at once and a healthy one takes over', async () => {
    let pg1Router: ProbeResult = { ok: true, refused: false, detail: 'answered 200' };
    const ok = () => Promise.resolve({ ok: true, refused: false, detail: 'answered 200' });
    const a = node('pg1', 'router', () => Promise.resolve(pg1Router));
    await a.m.start();
    await vi.advanceTimersByTimeAsync(100);
    const b = node('pg2', 'router', ok);
    const c = node('pg3', 'router', ok);
    await b.m.start();
    await c.m.start();
    await vi.advanceTimersByTimeAsync(2000);
    expect([...link.holders]).toEqual(['pg1']);

    pg1Router = { ok: false, refused: true, detail: 'connection refused' };
    await vi.advanceTimersByTimeAsync(1100);
    expect(link.holders.size).toBe(1);
    expect(link.holders.has('pg1')).toBe(false);
    expect(a.m.status()).toMatchObject({ held: false, eligible: false });
    expect(a.m.status().why).toMatch(/router is down: connection refused/);
    expect(link.overlap).toBe(false);
  });

  it('stop removes the address and releases the key, so another node takes over at once', async () => {
    etcd.leader = 'pg1';
    const a = node('pg1', 'router', () => Promise.resolve({ ok: true, refused: false, detail: 'ok' }));
    await a.m.start();
    await vi.advanceTimersByTimeAsync(100);
    const b = node('pg2', 'router', () => Promise.resolve({ ok: true, refused: false, detail: 'ok' }));
    await b.m.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect([...link.holders]).toEqual(['pg1']);
    await a.m.stop();
    managers.splice(managers.indexOf(a.m), 1);
    await vi.advanceTimersByTimeAsync(10);
    expect(etcd.keys.get(vipKey('10.0.0.100'))?.value).toBe('pg2');
    expect([...link.holders]).toEqual(['pg2']);
    expect(link.overlap).toBe(false);
  });

  it('removes an address it finds on the interface without holding the key', async () => {
    etcd.leader = 'pg2';
    link.holders.add('pg1'); // left by hand, or by a run before a reboot of etcd
    const a = node('pg1', 'leader');
    await a.m.start();
    await vi.advanceTimersByTimeAsync(100);
    expect(link.holders.has('pg1')).toBe(false);
  });
  it('failsafe_mode, leader mode: etcd gone for everyone, the holder keeps the VIP while its agent confirms, then drops it', async () => {
    etcd.leader = 'pg1';
    etcd.failsafe = true;
    const a = node('pg1', 'leader');
    const b = node('pg2', 'leader');
    await a.m.start();
    await b.m.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect([...link.holders]).toEqual(['pg1']);
    agents.set('pg1', { status: 200, failsafeActive: true });
    agents.set('pg2', { status: 503, failsafeActive: true });
    const cutAt = Date.now();
    a.store.cut = true;
    b.store.cut = true;
    for (let t = 0; t < 30_000; t += 100) {
      await vi.advanceTimersByTimeAsync(100);
      expect([...link.holders]).toEqual(['pg1']);
    }
    expect(a.m.status()).toMatchObject({ held: true });
    expect(a.m.status().failsafe).toMatch(/pg1 confirms/);
    expect(a.nic.lifetime).toBeGreaterThanOrEqual(1);
    // pg1's agent stops confirming (a member could not be reached: it demoted itself).
    agents.set('pg1', { status: 503, failsafeActive: false });
    const stopAt = Date.now();
    await waitUntil(() => !link.holders.has('pg1'), 5000);
    expect(Date.now() - stopAt).toBeLessThanOrEqual(1500);
    expect(Date.now() - cutAt).toBeGreaterThan(30_000);
    expect(link.overlap).toBe(false);
  });

  // The address step lets an address go once less than a second of its hold is left (the kernel
  // lifetime counts whole seconds). Each check runs a second after the last one ended, so with a
  // slow etcd the checks drift against the key's deadline and one lands in its last second: the
  // failsafe hold must already count there.
  it.each([0, 20, 40, 130])(
    'failsafe_mode, leader mode: the confirmed holder never drops the VIP (etcd answers in %i ms)',
    async (latencyMs) => {
      etcd.leader = 'pg1';
      etcd.failsafe = true;
      agents.set('pg1', { status: 200, failsafeActive: true });
      const a = node('pg1', 'leader');
      const refresh = a.store.refreshLease;
      a.store.refreshLease = async () => {
        await new Promise((r) => setTimeout(r, latencyMs));
        return refresh();
      };
      await a.m.start();
      await vi.advanceTimersByTimeAsync(2500);
      expect([...link.holders]).toEqual(['pg1']);
      a.store.cut = true;
      for (let t = 0; t < 20_000; t += 50) {
        await vi.advanceTimersByTimeAsync(50);
        expect(link.events).toEqual(['pg1 add']);
      }
      expect(a.m.status().failsafe).toMatch(/pg1 confirms/);
    },
  );

  it('failsafe_mode, leader mode: with no answer from the agent the VIP drops as without failsafe', async () => {
    etcd.leader = 'pg1';
    etcd.failsafe = true;
    const a = node('pg1', 'leader');
    await a.m.start();
    await vi.advanceTimersByTimeAsync(1000);
    const cutAt = Date.now();
    a.store.cut = true;
    await waitUntil(() => !link.holders.has('pg1'), 10_000);
    expect(Date.now() - cutAt).toBeLessThanOrEqual(8000);
  });

  it('failsafe_mode, router mode: the holder cut off keeps the VIP and a node that reaches etcd does not take it', async () => {
    etcd.leader = 'pg3';
    etcd.failsafe = true;
    const ok = () => Promise.resolve({ ok: true, refused: false, detail: 'answered 200' });
    const a = node('pg1', 'router', ok);
    await a.m.start();
    await vi.advanceTimersByTimeAsync(100);
    const b = node('pg2', 'router', ok);
    await b.m.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect([...link.holders]).toEqual(['pg1']);
    // pg1 loses etcd; the primary pg3 loses it too and runs on in failsafe mode: its key expires.
    agents.set('pg3', { status: 200, failsafeActive: true });
    a.store.cut = true;
    etcd.leader = null;
    for (let t = 0; t < 30_000; t += 100) {
      await vi.advanceTimersByTimeAsync(100);
      expect([...link.holders]).toEqual(['pg1']);
    }
    expect(b.m.status().eligible).toBe(true);
    // The failsafe primary demotes itself; a new leader is elected later.
    agents.set('pg3', { status: 503, failsafeActive: false });
    await waitUntil(() => !link.holders.has('pg1'), 5000);
    await vi.advanceTimersByTimeAsync(5000);
    expect(link.holders.size).toBe(0);
    etcd.leader = 'pg2';
    await waitUntil(() => link.holders.has('pg2'), 5000);
    expect(link.overlap).toBe(false);
  });

  /** Advances the fake clock in 100 ms steps until `cond` holds; fails after `ms`. */
  async function waitUntil(cond: () => boolean, ms: number): Promise<void> {
    for (let t = 0; t < ms && !cond(); t += 100) await vi.advanceTimersByTimeAsync(100);
    expect(cond()).toBe(true);
  }
});

/**
 * EtcdDcs against a real single-node etcd: Patroni's key layout, leader exclusivity, lease expiry,
 * CAS writes and the watch.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EtcdDcs, type EtcdDcsOptions } from '../../src/dcs/etcd.js';
import type { WatchEvent } from '../../src/dcs/types.js';
import { DcsError } from '../../src/util/errors.js';
import { run } from '../../src/util/process.js';
import { startEtcd, type EtcdCluster } from '../support/etcd.js';
import { freePort } from '../support/net.js';

let etcd: EtcdCluster;
let raw: Etcd3;
const open: EtcdDcs[] = [];
let scopeSeq = 0;

beforeAll(async () => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: etcd.endpoints.map((e) => `http://${e}`) });
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close().catch(() => undefined)));
});

afterAll(async () => {
  raw?.close();
  await etcd?.stop();
});

/** A fresh scope per test so tests never see each other's keys. */
function newScope(): string {
  scopeSeq += 1;
  return `c${scopeSeq}`;
}

function dcs(scope: string, name: string, extra: Partial<EtcdDcsOptions> = {}): EtcdDcs {
  const d = new EtcdDcs({
    hosts: etcd.endpoints,
    namespace: '/service/',
    scope,
    name,
    ttl: 10,
    requestTimeoutMs: 3000,
    ...extra,
  });
  open.push(d);
  return d;
}

async function rawKeys(prefix: string): Promise<Record<string, string>> {
  return raw.getAll().prefix(prefix).strings();
}

async function waitFor(
  cond: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

describe('EtcdDcs key layout', () => {
  it('writes every key where and how Patroni does', async () => {
    const scope = newScope();
    const d = dcs(scope, 'n1');
    expect(d.prefix).toBe(`/service/${scope}/`);
    const member = {
      conn_url: 'postgres://127.0.0.1:5432/postgres',
      api_url: 'http://127.0.0.1:8008/patroni',
      state: 'running',
      role: 'primary',
      version: '3.0.2',
      xlog_location: 69485568,
      timeline: 4,
    };
    await d.touchMember(member);
    expect(await d.attemptToAcquireLeader()).toBe(true);
    expect(await d.initialize('7711413016369676563', true)).toBe(true);
    await d.setConfig({ ttl: 30, loop_wait: 10, postgresql: { use_pg_rewind: true } });
    await d.setStatus({ optime: 67108960, slots: { n2: 67108960 } });
    await d.setHistory([[1, 25165984, 'no recovery target specified', '2024-01-01T00:00:00+00:00', 'n1']]);
    await d.setFailover({ leader: 'n1', member: 'n2' });
    await d.setSync({ leader: 'n1', sync_standby: 'n2' });
    await d.setFailsafe({ n1: 'http://127.0.0.1:8008/patroni' });

    const p = `/service/${scope}/`;
    const keys = await rawKeys(p);
    expect(keys).toEqual({
      [`${p}members/n1`]: JSON.stringify(member),
      [`${p}leader`]: 'n1',
      [`${p}initialize`]: '7711413016369676563',
      [`${p}config`]: '{"ttl":30,"loop_wait":10,"postgresql":{"use_pg_rewind":true}}',
      [`${p}status`]: '{"optime":67108960,"slots":{"n2":67108960}}',
      [`${p}history`]: '[[1,25165984,"no recovery target specified","2024-01-01T00:00:00+00:00","n1"]]',
      [`${p}failover`]: '{"leader":"n1","member":"n2"}',
      [`${p}sync`]: '{"leader":"n1","sync_standby":"n2"}',
      [`${p}failsafe`]: '{"n1":"http://127.0.0.1:8008/patroni"}',
    });

    // leader and the member key hang on the same lease; everything else has none.
    const leaderKv = await raw.get(`${p}leader`).exec();
    const memberKv = await raw.get(`${p}members/n1`).exec();
    const configKv = await raw.get(`${p}config`).exec();
    expect(leaderKv.kvs[0]?.lease).toBe(d.leaseId);
    expect(memberKv.kvs[0]?.lease).toBe(d.leaseId);
    expect(configKv.kvs[0]?.lease).toBe('0');

    // etcdctl (a different client) sees the same thing.
    const ctl = await run(
      '/usr/bin/etcdctl',
      ['--endpoints', etcd.endpoints.join(','), 'get', `${p}leader`, '--print-value-only'],
      {
        env: { ...process.env, ETCDCTL_API: '3' },
        timeoutMs: 10_000,
      },
    );
    expect(ctl.stdout.trim()).toBe('n1');

    const state = await d.readCluster();
    expect(state.initialize).toBe('7711413016369676563');
    expect(state.leader).toMatchObject({ name: 'n1', lease: d.leaseId });
    expect(state.members).toHaveLength(1);
    expect(state.members[0]).toMatchObject({ name: 'n1', data: member, lease: d.leaseId });
    expect(state.config?.value).toEqual({ ttl: 30, loop_wait: 10, postgresql: { use_pg_rewind: true } });
    expect(state.config?.modRevision).toBe(configKv.kvs[0]?.mod_revision);
    expect(state.status).toEqual({ optime: 67108960, slots: { n2: 67108960 } });
    expect(state.history).toEqual([
      [1, 25165984, 'no recovery target specified', '2024-01-01T00:00:00+00:00', 'n1'],
    ]);
    expect(state.failover).toMatchObject({ leader: 'n1', member: 'n2' });
    expect(state.sync).toMatchObject({ leader: 'n1', sync_standby: 'n2' });
    expect(state.failsafe).toEqual({ n1: 'http://127.0.0.1:8008/patroni' });
    expect(BigInt(state.revision)).toBeGreaterThan(0n);

    await d.setFailsafe(null);
    await d.deleteCluster();
    expect(await rawKeys(p)).toEqual({});
  });

  it('normalises the namespace like Patroni and reads keys written by another client', async () => {
    const scope = newScope();
    const d = dcs(scope, 'n1', { namespace: 'db' });
    expect(d.prefix).toBe(`/db/${scope}/`);
    const p = d.prefix;
    await raw.put(`${p}members/good`).value('{"role":"replica","state":"running"}');
    await raw.put(`${p}members/garbage`).value('{not json');
    await raw.put(`${p}members/array`).value('[1,2]');
    await raw.put(`${p}config`).value('also not json');
    await raw.put(`${p}history`).value('nope');
    await raw.put(`${p}optime/leader`).value('12345');
    await raw.put(`${p}failover`).value('');
    const state = await d.readCluster();
    expect(state.members.map((m) => m.name)).toEqual(['good']);
    expect(state.config?.value).toEqual({});
    expect(state.history).toEqual([]);
    expect(state.status).toEqual({ optime: 12345 });
    expect(state.failover).toBeNull();
    expect(state.leader).toBeNull();
    expect(state.initialize).toBeNull();
  });
});

describe('EtcdDcs leader key', () => {
  it('is exclusive between two nodes and only its holder can delete it', async () => {
    const scope = newScope();
    const a = dcs(scope, 'a');
    const b = dcs(scope, 'b');
    const [ra, rb] = await Promise.all([a.attemptToAcquireLeader(), b.attemptToAcquireLeader()]);
    expect([ra, rb].filter(Boolean)).toHaveLength(1);
    const [winner, loser] = ra ? [a, b] : [b, a];

    expect(await loser.attemptToAcquireLeader()).toBe(false);
    expect(await loser.updateLeader()).toBe(false);
    expect(await winner.updateLeader()).toBe(true);

    expect(await loser.deleteLeader()).toBe(false);
    expect((await winner.readCluster()).leader?.name).toBe(winner.memberName);

    expect(await winner.deleteLeader()).toBe(true);
    expect((await winner.readCluster()).leader).toBeNull();
    // updateLeader never re-creates a missing key.
    expect(await winner.updateLeader()).toBe(false);
    expect((await winner.readCluster()).leader).toBeNull();

    expect(await loser.attemptToAcquireLeader()).toBe(true);
    expect((await a.readCluster()).leader?.name).toBe(loser.memberName);
  });

  // The replicas time the leader by its key's revision (src/ha/silence.ts): every renewal must move it.
  it('every renewal rewrites the leader key (same name and lease, a new revision) and watchers see it', async () => {
    const scope = newScope();
    const a = dcs(scope, 'a', { ttl: 7 });
    const b = dcs(scope, 'b');
    const seen: WatchEvent[] = [];
    const stop = b.watch((_keys, events) => seen.push(...(events ?? [])));
    try {
      expect(await a.attemptToAcquireLeader()).toBe(true);
      const before = (await a.readCluster()).leader!;
      expect(await a.updateLeader()).toBe(true);
      const after = (await a.readCluster()).leader!;
      expect(BigInt(after.modRevision)).toBeGreaterThan(BigInt(before.modRevision));
      expect([after.name, after.lease]).toEqual([before.name, before.lease]);
      await waitFor(
        () => seen.some((e) => e.key === 'leader' && e.value === 'a' && e.modRevision === after.modRevision),
        5000,
        'the watcher to see the renewal',
      );
      expect(await b.leaseGrantedTtlS(after.lease)).toBe(7);
      expect(await b.leaseGrantedTtlS('12345')).toBeNull();
      expect(await b.deleteLeader()).toBe(false);
      expect(await a.deleteLeader()).toBe(true);
      await waitFor(
        () => seen.some((e) => e.key === 'leader' && e.value === null),
        5000,
        'the watcher to see the deletion',
      );
    } finally {
      await stop();
    }
  });

  it('renewLeader says from when the key is provably ours; leaseSilentMs how long a lease went unrenewed', async () => {
    const scope = newScope();
    const a = dcs(scope, 'a', { ttl: 5 });
    const b = dcs(scope, 'b', { ttl: 5 });
    expect(await a.attemptToAcquireLeader()).toBe(true);
    const before = performance.now();
    const sent = await a.renewLeader();
    expect(sent).not.toBeNull();
    expect(sent!).toBeGreaterThanOrEqual(before);
    expect(await b.renewLeader()).toBeNull();
    const lease = (await b.readCluster()).leader!.lease;
    expect(await b.leaseSilentMs(lease)).toBeLessThanOrEqual(1000); // whole seconds
    await new Promise((r) => setTimeout(r, 2200));
    expect(await b.leaseSilentMs(lease)).toBeGreaterThanOrEqual(2000);
    await a.renewLeader();
    expect(await b.leaseSilentMs(lease)).toBeLessThanOrEqual(1000); // whole seconds
    expect(await b.leaseSilentMs('12345')).toBeNull();
  });

  it('vanishes with the member key when the lease is not refreshed, and a new lease is granted', async () => {
    const scope = newScope();
    const a = dcs(scope, 'a', { ttl: 2 });
    const b = dcs(scope, 'b', { ttl: 2 });
    await a.touchMember({ state: 'running', role: 'primary' });
    expect(await a.attemptToAcquireLeader()).toBe(true);
    const firstLease = a.leaseId;
    const sentAt = a.lastLeaseRefreshAt;
    expect(sentAt).not.toBeNull();

    // Refreshing keeps it alive past the TTL.
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 800));
      // Send times are monotonic (performance.now), never the wall clock a step could move.
      const t0 = performance.now();
      const sent = await a.refreshLease();
      expect(sent).toBeGreaterThanOrEqual(t0);
      expect(sent).toBeLessThanOrEqual(performance.now());
    }
    expect((await b.readCluster()).leader?.name).toBe('a');

    // No renewal: both keys go away at about the TTL.
    const stoppedAt = Date.now();
    await waitFor(async () => (await b.readCluster()).leader === null, 6000, 'leader key to expire');
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(1000);
    const state = await b.readCluster();
    expect(state.members).toHaveLength(0);
    expect(await b.attemptToAcquireLeader()).toBe(true);

    // Writing the member key on a lost lease gets a new lease instead of failing.
    await a.touchMember({ state: 'running', role: 'replica' });
    const secondLease = a.leaseId;
    expect(secondLease).not.toBe(firstLease);
    expect((await b.readCluster()).members.map((m) => [m.name, m.lease])).toEqual([['a', secondLease]]);

    // The old holder notices: its lease is gone, it gets a new one, and the key is not its own.
    await a.refreshLease();
    expect(a.leaseId).toBe(secondLease);
    expect(await a.updateLeader()).toBe(false);
    expect((await b.readCluster()).leader?.name).toBe('b');
  });

  it('updateLeader re-attaches the key to a replaced lease', async () => {
    const scope = newScope();
    const a = dcs(scope, 'a', { ttl: 5 });
    expect(await a.attemptToAcquireLeader()).toBe(true);
    const oldLease = a.leaseId;
    a.setTtl(6); // a changed ttl needs a new lease
    expect(await a.updateLeader()).toBe(true);
    expect(a.leaseId).not.toBe(oldLease);
    const state = await a.readCluster();
    expect(state.leader).toMatchObject({ name: 'a', lease: a.leaseId });
  });

  it('close({revokeLease}) removes the leader and member keys at once', async () => {
    const scope = newScope();
    const a = new EtcdDcs({ hosts: etcd.endpoints, namespace: '/service/', scope, name: 'a', ttl: 30 });
    const b = dcs(scope, 'b');
    await a.touchMember({ state: 'running' });
    expect(await a.attemptToAcquireLeader()).toBe(true);
    await a.close({ revokeLease: true });
    const state = await b.readCluster();
    expect(state.leader).toBeNull();
    expect(state.members).toHaveLength(0);
    await expect(a.readCluster()).rejects.toBeInstanceOf(DcsError);
  });
});

describe('EtcdDcs CAS writes', () => {
  it('config CAS on mod_revision', async () => {
    const scope = newScope();
    const d = dcs(scope, 'n1');
    const first = await d.setConfig({ ttl: 30 });
    expect(first.ok).toBe(true);
    const state = await d.readCluster();
    expect(state.config?.modRevision).toBe(first.ok ? first.modRevision : '');

    const second = await d.setConfig({ ttl: 20 }, state.config!.modRevision);
    expect(second.ok).toBe(true);
    // A stale revision loses.
    expect(await d.setConfig({ ttl: 10 }, state.config!.modRevision)).toEqual({ ok: false });
    expect((await d.readCluster()).config?.value).toEqual({ ttl: 20 });
  });

  it('initialize is created only once', async () => {
    const scope = newScope();
    const a = dcs(scope, 'a');
    const b = dcs(scope, 'b');
    const results = await Promise.all([a.initialize('', true), b.initialize('', true)]);
    expect(results.filter(Boolean)).toHaveLength(1);
    await a.initialize('7711413016369676563', false);
    expect((await b.readCluster()).initialize).toBe('7711413016369676563');
    await a.cancelInitialization();
    expect((await b.readCluster()).initialize).toBeNull();
  });

  it('failover is cleared by writing {} and sync supports CAS', async () => {
    const scope = newScope();
    const d = dcs(scope, 'n1');
    const w = await d.setFailover({ leader: 'n1', member: 'n2', scheduled_at: '2030-01-01T00:00:00+00:00' });
    expect(w.ok).toBe(true);
    const state = await d.readCluster();
    expect(state.failover).toEqual({
      leader: 'n1',
      member: 'n2',
      scheduled_at: '2030-01-01T00:00:00+00:00',
      modRevision: w.ok ? w.modRevision : '',
    });
    expect(await d.setFailover({ member: 'n3' }, '1')).toEqual({ ok: false });
    await d.clearFailover();
    expect(await rawKeys(`${d.prefix}failover`)).toEqual({ [`${d.prefix}failover`]: '{}' });
    expect((await d.readCluster()).failover).toBeNull();

    const s1 = await d.setSync({ leader: 'n1', sync_standby: null }, '0');
    expect(s1.ok).toBe(true);
    expect(await d.setSync({ leader: 'n1', sync_standby: 'n2' }, '0')).toEqual({ ok: false });
    const s2 = await d.setSync({ leader: 'n1', sync_standby: 'n2', quorum: 1 }, s1.ok ? s1.modRevision : '');
    expect(s2.ok).toBe(true);
    expect(await rawKeys(`${d.prefix}sync`)).toEqual({
      [`${d.prefix}sync`]: '{"leader":"n1","sync_standby":"n2","quorum":1}',
    });
    expect((await d.readCluster()).sync).toMatchObject({ leader: 'n1', sync_standby: 'n2', quorum: 1 });
  });
});

describe('EtcdDcs watch', () => {
  it('reports changed keys relative to the prefix and stops when asked', async () => {
    const scope = newScope();
    const d = dcs(scope, 'n1');
    const other = dcs(newScope(), 'x');
    const seen: string[][] = [];
    const stop = d.watch((keys) => seen.push(keys));
    // Give the watch a moment to be created (it starts from the revision current at creation).
    await new Promise((r) => setTimeout(r, 300));
    await d.touchMember({ state: 'running' });
    await d.setConfig({ ttl: 30 });
    await other.setConfig({ ttl: 1 }); // another cluster: not reported
    await waitFor(() => seen.flat().includes('config'), 5000, 'config change event');
    expect(seen.flat()).toContain('members/n1');
    expect(seen.flat()).not.toContain('');
    await d.deleteMember('n1');
    await waitFor(() => seen.flat().filter((k) => k === 'members/n1').length >= 2, 5000, 'delete event');

    await stop();
    const count = seen.length;
    await d.setConfig({ ttl: 31 });
    await new Promise((r) => setTimeout(r, 500));
    expect(seen.length).toBe(count);
  });

  it('survives an etcd restart and resumes without losing events', async () => {
    const scope = newScope();
    const d = dcs(scope, 'n1', { requestTimeoutMs: 2000 });
    const seen = new Set<string>();
    const stop = d.watch((keys) => keys.forEach((k) => seen.add(k)));
    await new Promise((r) => setTimeout(r, 300));
    await etcd.stopMember(0);
    await expect(d.readCluster()).rejects.toThrow(/etcd unreachable at 127\.0\.0\.1:\d+/);
    await etcd.startMember(0);
    // A write from another client while our watch may still be reconnecting.
    await raw.put(`${d.prefix}config`).value('{"ttl":30}');
    await waitFor(() => seen.has('config'), 10_000, 'watch to deliver the change after reconnect');
    await stop();
  });
});

/** True when every thread of `pid` is stopped (state T in /proc/<pid>/task/<tid>/stat). */
function allThreadsStopped(pid: number): boolean {
  try {
    return readdirSync(`/proc/${pid}/task`).every((tid) => {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      return /^T/.test(stat.slice(stat.lastIndexOf(')') + 2));
    });
  } catch {
    return false;
  }
}

describe('EtcdDcs errors', () => {
  it('fails fast with a DcsError naming the endpoints when etcd is unreachable', async () => {
    const port = await freePort();
    const d = dcs('x', 'n1', { hosts: [`127.0.0.1:${port}`], requestTimeoutMs: 1500 });
    const t0 = Date.now();
    const err = await d.readCluster().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DcsError);
    expect((err as DcsError).retryable).toBe(true);
    expect((err as DcsError).message).toContain(`etcd unreachable at 127.0.0.1:${port}`);
    expect(Date.now() - t0).toBeLessThan(3000);
    await expect(d.refreshLease()).rejects.toBeInstanceOf(DcsError);
  });

  it('gives up at the deadline when etcd hangs', async () => {
    const d = dcs(newScope(), 'n1', { requestTimeoutMs: 1000 });
    await d.refreshLease();
    const child = etcd.members[0]!.process!;
    child.kill('SIGSTOP');
    try {
      // The signal reaches each of etcd's threads in turn: on a busy machine one may still answer.
      await waitFor(() => allThreadsStopped(child.pid!), 2000, 'etcd to stop');
      const t0 = Date.now();
      await expect(d.readCluster()).rejects.toThrow(/etcd unreachable at 127\.0\.0\.1:\d+/);
      await expect(d.refreshLease()).rejects.toBeInstanceOf(DcsError);
      expect(Date.now() - t0).toBeLessThan(3500);
    } finally {
      child.kill('SIGCONT');
    }
    await waitFor(
      () =>
        d.readCluster().then(
          () => true,
          () => false,
        ),
      10_000,
      'etcd to answer again',
    );
  });

  it('honours the caller abort signal', async () => {
    const d = dcs(newScope(), 'n1');
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await expect(d.readCluster(ac.signal)).rejects.toThrow(DcsError);
  });
});

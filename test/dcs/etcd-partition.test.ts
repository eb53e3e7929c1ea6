/**
 * The etcd client against a partitioned member of a 3-member cluster: the member costs one
 * attempt's timeout, once; the requests after it go to the members that answer at once, the
 * lease is renewed through them and the watch moves to them; the member is trusted again once it
 * answers. Two kinds of partition: a member whose packets vanish (a stalled TCP proxy in front of
 * it), and a member cut off from its peers in a network namespace while the client still reaches
 * it (it has no raft leader any more, and says so).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { stopProcess } from '../../src/util/process.js';
import { startEtcd, type EtcdCluster } from '../support/etcd.js';
import { createNetLab, type NetLab } from '../support/netns.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

/** Whole deadline of a request; one attempt on one member gets a third of it (2 s). */
const DEADLINE_MS = 6000;
const ATTEMPT_MS = 2000;

const open: EtcdDcs[] = [];
afterAll(async () => {
  await Promise.all(open.splice(0).map((d) => d.close().catch(() => undefined)));
});

function client(hosts: string[], name: string): EtcdDcs {
  const d = new EtcdDcs({
    hosts,
    namespace: '/service/',
    scope: 'part',
    name,
    ttl: 10,
    requestTimeoutMs: DEADLINE_MS,
    isLocal: () => false,
  });
  open.push(d);
  return d;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return performance.now() - t0;
}

/**
 * What every partition must show, from a client `d` whose preferred member was just cut off:
 * one slow request at most, then ten quick ones (reads, keep-alives, leader renewals, member key
 * writes), a watch that sees a write made elsewhere.
 */
async function checkFailsFast(d: EtcdDcs, other: EtcdDcs, seen: Set<string>, cut: string): Promise<void> {
  const first = await timed(() => d.readCluster());
  expect(first.value.leader?.name).toBe('n1');
  expect(first.ms).toBeLessThan(ATTEMPT_MS + 1500);
  expect(d.client.pool.isSuspect(cut)).toBe(true);

  const t0 = performance.now();
  for (let i = 0; i < 3; i++) {
    await d.readCluster();
    await d.refreshLease();
    expect(await d.renewLeader()).not.toBeNull();
  }
  await d.touchMember({ state: 'running', role: 'primary' });
  const rest = performance.now() - t0;
  // Ten requests in less time than one attempt on the cut member would take.
  expect(rest).toBeLessThan(ATTEMPT_MS);

  seen.clear();
  await other.setConfig({ ttl: 10, marker: cut });
  const ms = await until(
    () => seen.has('config'),
    ATTEMPT_MS + 3000,
    'the watch to see a write made elsewhere',
  );
  expect(ms).toBeLessThan(ATTEMPT_MS + 3000);
}

describe('a member whose packets vanish (stalled proxy)', () => {
  let etcd: EtcdCluster;
  let proxy: TcpProxy;
  afterAll(async () => {
    await proxy?.close();
    await etcd?.stop();
  });

  it('costs one attempt, once; the lease and the watch move to the others', async () => {
    etcd = await startEtcd({ members: 3 });
    const [h0, h1, h2] = etcd.endpoints as [string, string, string];
    proxy = await startTcpProxy('127.0.0.1', Number(h0.split(':')[1]));
    const d = client([proxy.endpoint, h1, h2], 'n1');
    const other = client([h1, h2], 'n2');
    const seen = new Set<string>();
    const stopWatch = d.watch((keys) => keys.forEach((k) => seen.add(k)));
    await d.touchMember({ state: 'running', role: 'primary' });
    expect(await d.attemptToAcquireLeader()).toBe(true);
    expect(d.client.pool.current()).toBe(proxy.endpoint);
    await other.setConfig({ ttl: 10 });
    await until(() => seen.has('config'), 5000, 'the watch to start');

    proxy.stall();
    await checkFailsFast(d, other, seen, proxy.endpoint);

    proxy.resume();
    await until(() => !d.client.pool.isSuspect(proxy.endpoint), 15_000, 'the member to be trusted again');
    await stopWatch();
  }, 60_000);
});

describe('a member cut off from its peers (network namespaces)', () => {
  let lab: NetLab | null = null;
  const etcds: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'pgha-etcd-part-'));
  afterAll(async () => {
    for (const p of etcds.reverse()) await stopProcess(p, 'SIGTERM', 3000).catch(() => undefined);
    await lab?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers "no leader" instead of hanging; the others serve every request', async () => {
    lab = await createNetLab({ hosts: ['e1', 'e2', 'e3'] });
    const hosts = lab.hosts;
    const cluster = hosts.map((h) => `${h.name}=http://${h.address}:2380`).join(',');
    for (const h of hosts) {
      mkdirSync(join(dir, h.name), { recursive: true });
      // etcd's own defaults for heartbeat and election (100 ms, 1 s), as in production.
      const child = h.spawn('/usr/bin/etcd', [
        ...['--name', h.name, '--data-dir', join(dir, h.name)],
        ...['--listen-client-urls', `http://${h.address}:2379`],
        ...['--advertise-client-urls', `http://${h.address}:2379`],
        ...['--listen-peer-urls', `http://${h.address}:2380`],
        ...['--initial-advertise-peer-urls', `http://${h.address}:2380`],
        ...['--initial-cluster', cluster, '--initial-cluster-state', 'new'],
        ...['--initial-cluster-token', `part-${lab.id}`, '--log-level', 'warn'],
      ]);
      child.on('error', () => undefined);
      etcds.push(child);
    }
    const endpoints = hosts.map((h) => `${h.address}:2379`);
    const d = client(endpoints, 'n1');
    const other = client(endpoints.slice(1), 'n2');
    const start = performance.now();
    for (;;) {
      const ok = await d.readCluster().then(
        () => true,
        () => false,
      );
      if (ok) break;
      if (performance.now() - start > 30_000) throw new Error('etcd cluster did not start');
      await new Promise((r) => setTimeout(r, 200));
    }
    const seen = new Set<string>();
    const stopWatch = d.watch((keys) => keys.forEach((k) => seen.add(k)));
    await d.touchMember({ state: 'running', role: 'primary' });
    expect(await d.attemptToAcquireLeader()).toBe(true);
    await other.setConfig({ ttl: 10 });
    await until(() => seen.has('config'), 5000, 'the watch to start');
    const cut = endpoints[0]!;
    // Prefer the member about to be cut off, as a client on its host would.
    d.client.pool.succeeded(cut);
    expect(d.client.pool.current()).toBe(cut);

    await lab.split(['e1'], ['e2', 'e3']);
    await checkFailsFast(d, other, seen, cut);

    await lab.heal('e1');
    await lab.heal('e2');
    await lab.heal('e3');
    await until(() => !d.client.pool.isSuspect(cut), 20_000, 'the member to be trusted again');
    await stopWatch();
  }, 90_000);
});

/**
 * failsafe_mode through the router, with real processes: three nodes and a router, each reaching
 * etcd through its own TCP proxy. With every proxy suspended (no node and no router can read
 * etcd), the primary stays writable while every member confirms it over POST /failsafe, and the
 * router keeps routing writes to it past the ttl because its agent says primary + failsafe active.
 * Once one replica's agent stops, the primary's next failsafe round fails, it demotes itself, and
 * the router stops routing writes within a gross bound (ttl + a few seconds). Then a primary
 * in failsafe mode whose agent hangs (SIGSTOP: nothing demotes or fences its PostgreSQL, which
 * still takes writes) is no longer confirmed, and the router stops routing to it at once.
 *
 * Two `VipManager`s run beside them on the same etcd, cut off with it: one in leader mode for the
 * leader's node, one in router mode following the router above. Their interface is a recorder
 * (adding a real address needs a network namespace; test/vip covers `ip` itself): both keep the
 * address while the primary confirms failsafe mode, and drop it once it stops.
 */
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { VipConfig } from '../../src/config/types.js';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { PRIMARY_ANSWER_TIMEOUT_MS } from '../../src/ha/failsafe-probe.js';
import { MISSES_BEFORE_SILENT } from '../../src/ha/failsafe-view.js';
import { probeHttp } from '../../src/vip/health.js';
import type { AddressControl } from '../../src/vip/iproute.js';
import { VipManager } from '../../src/vip/manager.js';
import { SCOPE } from '../support/cluster.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { client, one, startTestRouter, type TestRouter } from './helpers.js';

const TTL = 10;
let c: TestCluster;
let router: TestRouter;
let routerEtcd: TcpProxy;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  c = await startCluster({
    nodes: 3,
    ttl: TTL,
    loopWait: 1,
    retryTimeout: 3,
    proxyEtcd: true,
    edit: (cfg) => {
      ((cfg.bootstrap as Record<string, unknown>).dcs as Record<string, unknown>).failsafe_mode = true;
    },
  });
  cleanups.unshift(() => c.stop());
  for (const n of c.nodes) c.startAgent(n.name);
  routerEtcd = await startTcpProxy('127.0.0.1', Number(c.etcd.endpoints[0]!.split(':')[1]));
  cleanups.unshift(() => routerEtcd.close());
  router = await startTestRouter([routerEtcd.endpoint], { wait_timeout: 2, check_interval: 0.5 });
  cleanups.unshift(() => router.stop());
}, 120_000);

afterAll(async () => {
  for (const c of cleanups) await c().catch((err: unknown) => console.error('cleanup failed', err));
}, 120_000);

/** An interface that records the address being added and removed. */
function recorder(label: string) {
  const events: Array<{ at: number; what: 'add' | 'del' }> = [];
  let present = false;
  const nic: AddressControl = {
    label,
    preflight: () => Promise.resolve(),
    inspect: () => Promise.resolve({ present, tentative: false, dadFailed: false }),
    add: () => {
      present = true;
      events.push({ at: Date.now(), what: 'add' });
      return Promise.resolve();
    },
    renew: () => Promise.resolve(),
    remove: () => {
      if (present) events.push({ at: Date.now(), what: 'del' });
      present = false;
      return Promise.resolve();
    },
    announce: () => undefined,
    close: () => Promise.resolve(),
  };
  return { nic, events, present: () => present };
}

/** A VIP for `me` on its own etcd client through `etcdProxy`. */
async function startVip(me: string, mode: 'leader' | 'router', address: string, etcdProxy: TcpProxy) {
  const config: VipConfig = {
    address,
    family: 4,
    prefix: 32,
    interface: 'dummy0',
    mode,
    ttl: TTL,
    check_interval: 1,
    fall: 1,
    rise: 1,
    arp_count: 0,
  };
  const store = new EtcdDcs({
    hosts: [etcdProxy.endpoint],
    namespace: '/service/',
    scope: SCOPE,
    name: me,
    ttl: TTL,
    requestTimeoutMs: 2500,
  });
  const rec = recorder(`${address} (${mode} mode)`);
  // The manager's log, kept to explain a failure.
  const log: string[] = [];
  const sink = {
    write: (line: string) => {
      const o = JSON.parse(line) as { time: number; msg: string };
      log.push(`${new Date(o.time).toISOString()} ${o.msg}`);
    },
  };
  const statusUrl = `http://127.0.0.1:${router.statusPort}/status`;
  const manager = new VipManager({
    config,
    me,
    store,
    net: rec.nic,
    log: pino({ level: 'info' }, sink),
    ...(mode === 'router' ? { probe: () => probeHttp(statusUrl, 1000) } : {}),
  });
  await manager.start();
  cleanups.unshift(async () => {
    await manager.stop();
    await store.close({ revokeLease: true });
  });
  return { manager, rec, log, label: `${address} (${mode} mode, ${me})` };
}

/** The status of `GET /primary` on a node's agent; null when it does not answer. */
async function primaryStatus(name: string): Promise<number | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${c.node(name).apiPort}/primary`, {
      signal: AbortSignal.timeout(3000),
    });
    await res.body?.cancel();
    return res.status;
  } catch {
    return null;
  }
}

const nameOfPort = (port: number) => c.nodes.find((n) => n.pgPort === port)?.name;

/** New connections through the router's read-write port, each inserting one row. */
function writer() {
  let stop = false;
  const ok: Array<{ at: number; node: string }> = [];
  const failed: Array<{ at: number; err: string }> = [];
  const loop = (async () => {
    while (!stop) {
      try {
        const r = await one<{ port: number }>(
          router.rw,
          "insert into fs (v) values ('x') returning inet_server_port() as port",
          { timeoutMs: 5000 },
        );
        ok.push({ at: Date.now(), node: nameOfPort(r.port)! });
      } catch (err) {
        failed.push({ at: Date.now(), err: (err as Error).message });
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    ok,
    failed,
    async stop() {
      stop = true;
      await loop;
    },
  };
}

it('routes writes to a failsafe primary past the ttl without etcd, and stops once failsafe stops confirming', async () => {
  const state = await c.waitHealthy(2, 90_000);
  const leader = state.leader!.name;
  await c.query(leader, 'create table fs (id serial primary key, v text)');
  await waitFor(
    'the failsafe key listing all three members',
    async () => Object.keys((await c.readCluster()).failsafe ?? {}).length === 3,
    30_000,
  );
  await waitFor('the router routing writes', () =>
    Promise.resolve(router.router.status().primary === leader),
  );
  const vipEtcd = await startTcpProxy('127.0.0.1', Number(c.etcd.endpoints[0]!.split(':')[1]));
  cleanups.unshift(() => vipEtcd.close());
  const replica = c.nodes.find((n) => n.name !== leader)!.name;
  const vips = [
    await startVip(leader, 'leader', '10.213.0.100', vipEtcd),
    await startVip(replica, 'router', '10.213.0.101', vipEtcd),
  ];
  const session = await client(router.rw);
  const w = writer();
  const proxies = [...c.nodes.map((n) => n.proxy!), routerEtcd, vipEtcd];
  try {
    await waitFor('writes through the router', () => Promise.resolve(w.ok.length > 5));
    await waitFor('both VIPs up', () => Promise.resolve(vips.every((v) => v.rec.present())), 20_000);
    const fencedBefore = router.router.stats.fenced;

    // etcd unreachable for every node and for the router.
    const cutAt = Date.now();
    for (const p of proxies) p.suspend();
    await new Promise((r) => setTimeout(r, 2.5 * TTL * 1000));
    const phase1 = w.ok.filter((x) => x.at > cutAt);
    const lastOk = phase1.at(-1)?.at ?? cutAt;
    console.log(
      `etcd cut: ${phase1.length} writes through the router in ${Date.now() - cutAt} ms, last ${lastOk - cutAt} ms after the cut, ` +
        `failures ${JSON.stringify(w.failed.filter((f) => f.at > cutAt).slice(0, 5))}`,
    );
    expect(w.failed.filter((f) => f.at > cutAt)).toEqual([]);
    expect(lastOk - cutAt).toBeGreaterThan(2 * TTL * 1000);
    expect(phase1.every((x) => x.node === leader)).toBe(true);
    // The idle session was never fenced, and still writes to the same primary.
    expect(router.router.stats.fenced).toBe(fencedBefore);
    const port = (await session.query<{ p: number }>('select inet_server_port() as p')).rows[0]!.p;
    expect(nameOfPort(port)).toBe(leader);
    const st = router.router.status();
    expect(st.etcd.reachable).toBe(false);
    expect(st.etcd.failsafe).toMatch(/failsafe/);
    // The leader key expired in etcd long ago (read directly, not through a proxy).
    expect((await c.readCluster()).leader).toBeNull();
    // Both VIPs stayed, past their keys' deadlines.
    for (const v of vips) {
      const dels = v.rec.events.filter((e) => e.what === 'del');
      expect(
        dels.map((e) => e.at - cutAt),
        `${v.label} dropped (ms after the cut ${new Date(cutAt).toISOString()}); its log:\n${v.log.join('\n')}`,
      ).toEqual([]);
      expect(v.rec.present()).toBe(true);
      expect(v.manager.status().failsafe).toMatch(/failsafe/);
    }

    // One replica's agent stops: the primary's next failsafe round fails and it demotes itself.
    const stopAt = Date.now();
    await c.stopAgent(replica, 'SIGKILL');
    await waitFor(
      `${leader} demoted`,
      async () => (await primaryStatus(leader)) === 503,
      (TTL + 5) * 1000,
      100,
    );
    // On a loaded machine an answer may also time out earlier: the router then stops at once, and
    // may route again on a later confirmation; once the agent has demoted, none can come.
    await waitFor(
      'the router refusing writes',
      () => Promise.resolve(router.router.status().primary === null),
      5000,
      50,
    );
    const fencedAt = Date.now();
    const lastWrite = w.ok.at(-1)!.at;
    console.log(
      `replica agent stopped: router stopped routing writes after ${fencedAt - stopAt} ms, ` +
        `last write through it ${lastWrite - stopAt} ms after the stop; ` +
        `reason: ${router.router.status().noPrimaryBecause}`,
    );
    expect(fencedAt - stopAt).toBeLessThan((TTL + 5) * 1000);
    await waitFor(
      'both VIPs dropped',
      () => Promise.resolve(vips.every((v) => !v.rec.present())),
      10_000,
      50,
    );
    for (const v of vips) {
      const dropped = v.rec.events.find((e) => e.what === 'del')!.at;
      console.log(`${v.rec.nic.label}: dropped ${dropped - stopAt} ms after the agent stopped`);
      expect(dropped - stopAt).toBeLessThan((TTL + 5) * 1000);
    }
    // Writes through the router stay refused while etcd is away.
    const refusedFrom = Date.now();
    await new Promise((r) => setTimeout(r, 5000));
    expect(w.ok.filter((x) => x.at > refusedFrom + 500)).toEqual([]);
    expect(w.failed.filter((f) => f.at > refusedFrom).length).toBeGreaterThan(0);
  } finally {
    await w.stop();
    await session.end().catch(() => undefined);
    for (const p of proxies) p.resume();
  }
}, 180_000);

it("stops routing writes once a failsafe primary's agent stops answering, although its PostgreSQL still takes writes", async () => {
  // The previous test killed one agent and the old primary demoted itself; etcd is back.
  for (const n of c.nodes) if (!n.agent) c.startAgent(n.name);
  const state = await c.waitHealthy(2, 120_000);
  const leader = state.leader!.name;
  await waitFor(
    'the failsafe key listing all three members',
    async () => Object.keys((await c.readCluster()).failsafe ?? {}).length === 3,
    30_000,
  );
  await waitFor(
    'the router routing writes',
    () => Promise.resolve(router.router.status().primary === leader),
    30_000,
  );
  const proxies = [...c.nodes.map((n) => n.proxy!), routerEtcd];
  const agent = c.node(leader).agent!;
  try {
    for (const p of proxies) p.suspend();
    await new Promise((r) => setTimeout(r, (TTL + 5) * 1000));
    expect(router.router.status().primary).toBe(leader);
    expect(router.router.status().etcd.failsafe).toMatch(/failsafe/);

    agent.kill('SIGSTOP');
    const stoppedAt = Date.now();
    await waitFor(
      'the router refusing writes',
      () => Promise.resolve(router.router.status().primary === null),
      15_000,
      50,
    );
    const fencedAt = Date.now();
    console.log(
      `primary's agent stopped: router stopped routing writes after ${fencedAt - stoppedAt} ms; ` +
        `reason: ${router.router.status().noPrimaryBecause}`,
    );
    expect(router.router.status().noPrimaryBecause).toMatch(/no answer/);
    // Two missed answers in a row (each a timeout, a check_interval of 0.5 s apart), and slack.
    expect(fencedAt - stoppedAt).toBeLessThan(
      MISSES_BEFORE_SILENT * (PRIMARY_ANSWER_TIMEOUT_MS + 500) + 3000,
    );
    // Its PostgreSQL still takes writes: the router did the cutting.
    const direct = await c.query<{ ro: boolean }>(leader, 'select pg_is_in_recovery() as ro');
    expect(direct[0]!.ro).toBe(false);
  } finally {
    agent.kill('SIGCONT');
    for (const p of proxies) p.resume();
  }
}, 180_000);

/**
 * `pgha router` against a real three-node cluster (etcd, pgha agents, PostgreSQL with TLS on):
 * routing on both ports, cancel, TLS pass-through, bad input, status, etcd loss, switchover.
 */
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { computeTopology } from '../../src/router/topology.js';
import { SCOPE, startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor, within } from '../support/postgres.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { cancelSleep, client, makeCertificate, one, startTestRouter, type TestRouter } from './helpers.js';
import { isStreamingMember } from '../../src/dcs/types.js';
import { fullGc } from '../../src/testing/gc.js';

let cluster: TestCluster;
let router: TestRouter;
const cleanups: Array<() => Promise<void>> = [];

const portOf = (name: string) => cluster.node(name).pgPort;
const nameOfPort = (port: number) => cluster.nodes.find((n) => n.pgPort === port)?.name;

beforeAll(async () => {
  const certDir = join('/tmp', `pgha-router-certs-${process.pid}`);
  cleanups.push(() => Promise.resolve(rmSync(certDir, { recursive: true, force: true })));
  const { cert, key } = makeCertificate(certDir);
  cluster = await startCluster({
    nodes: 3,
    ttl: 8,
    loopWait: 1,
    retryTimeout: 3,
    edit: (cfg) => {
      const pg = cfg.postgresql as { parameters: Record<string, unknown> };
      Object.assign(pg.parameters, { ssl: 'on', ssl_cert_file: cert, ssl_key_file: key });
    },
  });
  cleanups.unshift(() => cluster.stop());
  for (const n of cluster.nodes) cluster.startAgent(n.name);
  await cluster.waitHealthy(2);
  router = await startTestRouter(cluster.etcd.endpoints);
  cleanups.unshift(() => router.stop());
}, 180_000);

afterAll(async () => {
  for (const c of cleanups) await c().catch((err: unknown) => console.error('cleanup failed', err));
}, 120_000);

describe('pgha router', () => {
  it('sends the read-write port to the primary and spreads the read-only port over replicas', async () => {
    const leader = (await cluster.readCluster()).leader!.name;
    const rw = await one<{ port: number; ro: boolean }>(
      router.rw,
      'select inet_server_port() as port, pg_is_in_recovery() as ro',
    );
    expect(nameOfPort(rw.port)).toBe(leader);
    expect(rw.ro).toBe(false);
    // The router may still wait for the replicas to be streaming in its view.
    await waitFor('two replicas in the router', () =>
      Promise.resolve(router.router.status().replicas.length === 2),
    );
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = await one<{ port: number; ro: boolean }>(
        router.ro,
        'select inet_server_port() as port, pg_is_in_recovery() as ro',
      );
      expect(r.ro).toBe(true);
      seen.add(nameOfPort(r.port)!);
    }
    expect(seen.size).toBe(2);
    expect(seen.has(leader)).toBe(false);
  });

  it('routes a cancel request to the backend that owns the session, on both ports', async () => {
    for (const port of [router.rw, router.ro]) {
      const c = await client(port);
      try {
        const { code, ms } = await cancelSleep(port, c);
        expect(code).toBe('57014');
        expect(ms).toBeLessThan(5000);
      } finally {
        await c.end().catch(() => undefined);
      }
    }
    expect(router.router.stats.cancels.routed).toBeGreaterThanOrEqual(2);
  });

  it('passes SSL through end to end (sslmode=require), and cancels TLS sessions too', async () => {
    for (const port of [router.rw, router.ro]) {
      const row = await one<{ ssl: boolean }>(
        port,
        'select ssl from pg_stat_ssl where pid = pg_backend_pid()',
        { ssl: true },
      );
      expect(row.ssl).toBe(true);
    }
    // The router cannot read a TLS session's cancel key: the request goes to every member.
    const c = await client(router.rw, { ssl: true });
    try {
      expect((await cancelSleep(router.rw, c)).code).toBe('57014');
    } finally {
      await c.end().catch(() => undefined);
    }
    expect(router.router.stats.cancels.broadcast).toBeGreaterThanOrEqual(1);
  });

  it('relays in JavaScript when data_path is javascript: queries, SSL and cancel', async () => {
    const js = await startTestRouter(cluster.etcd.endpoints, { data_path: 'javascript' });
    try {
      expect(js.router.status().dataPath).toBe('javascript');
      for (const ssl of [false, true]) {
        const c = await client(js.rw, { ssl });
        try {
          const big = (await c.query<{ s: string }>("select repeat('x', 1000000) as s")).rows[0]!.s;
          expect(big.length).toBe(1_000_000);
          expect((await cancelSleep(js.rw, c)).code).toBe('57014');
          expect(js.router.status().sessions.list.map((s) => s.dataPath)).toEqual(['javascript']);
        } finally {
          await c.end().catch(() => undefined);
        }
      }
    } finally {
      await js.stop();
    }
  });

  it('closes clients that send garbage or a huge startup packet, and nobody else', async () => {
    const bystander = await client(router.rw);
    try {
      const huge = Buffer.alloc(20_000, 0x61);
      huge.writeInt32BE(20_000, 0);
      huge.writeInt32BE(196608, 4);
      for (const bad of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), huge, Buffer.alloc(64, 0xff)]) {
        const s = connect(router.rw, '127.0.0.1');
        s.on('error', () => undefined);
        await once(s, 'connect');
        s.write(bad);
        s.resume();
        const closed = await Promise.race([
          once(s, 'close').then(() => true),
          new Promise((r) => setTimeout(() => r(false), 3000)),
        ]);
        expect(closed).toBe(true);
      }
      expect((await bystander.query('select 1 as x')).rows[0]).toEqual({ x: 1 });
    } finally {
      await bystander.end().catch(() => undefined);
    }
  });

  // pgha_router_bytes_total is a counter: it counts every relayed byte and never goes down, also
  // when a session ends (its bytes move from the open sessions to the closed ones' total).
  it('counts every relayed byte, while a session is open and after it ended', async () => {
    const bytes = async (): Promise<{ fromClients: number; toClients: number; open: number }> => {
      const st = (await (await fetch(`http://127.0.0.1:${router.statusPort}/status`)).json()) as {
        bytes: { fromClients: number; toClients: number };
        sessions: { open: number };
      };
      return { ...st.bytes, open: st.sessions.open };
    };
    const before = await bytes();
    const c = await client(router.rw);
    let open: Awaited<ReturnType<typeof bytes>>;
    try {
      await c.query("select length($1::text) as n, repeat('x', 300000) as big", ['y'.repeat(100_000)]);
      open = await bytes();
      expect(open.fromClients - before.fromClients).toBeGreaterThanOrEqual(100_000);
      expect(open.toClients - before.toClients).toBeGreaterThanOrEqual(300_000);
    } finally {
      await c.end().catch(() => undefined);
    }
    await waitFor('the session to end', async () => (await bytes()).open < open.open, 10_000, 50);
    const after = await bytes();
    expect(after.fromClients).toBeGreaterThanOrEqual(open.fromClients);
    expect(after.toClients).toBeGreaterThanOrEqual(open.toClients);
  });

  it('reports backends, sessions and bytes on /status and Prometheus metrics on /metrics', async () => {
    const c = await client(router.rw);
    try {
      await c.query('select 1');
      const status = (await (await fetch(`http://127.0.0.1:${router.statusPort}/status`)).json()) as {
        primary: string;
        backends: Array<{ name: string; role: string; sessions: { rw: number } }>;
        sessions: { open: number; list: Array<{ dataPath: string | null }> };
        bytes: { fromClients: number; toClients: number };
        lastTopologyChange: { to: string };
        dataPath: string;
      };
      const leader = (await cluster.readCluster()).leader!.name;
      expect(status.primary).toBe(leader);
      expect(status.backends.find((b) => b.name === leader)).toMatchObject({ role: 'primary' });
      expect(status.backends.find((b) => b.name === leader)!.sessions.rw).toBeGreaterThanOrEqual(1);
      expect(status.sessions.open).toBeGreaterThanOrEqual(1);
      // `npm test` builds the native relay, so the default data path (auto) is native.
      expect(status.dataPath).toBe('native');
      expect(status.sessions.list.map((s) => s.dataPath)).toContain('native');
      expect(status.bytes.fromClients).toBeGreaterThan(0);
      expect(status.lastTopologyChange.to).toBe(leader);
      const metrics = await (await fetch(`http://127.0.0.1:${router.statusPort}/metrics`)).text();
      expect(metrics).toMatch(/pgha_router_primary_up\{scope="demo"\} 1/);
      expect(metrics).toMatch(/pgha_router_sessions\{backend="pg\d",port="rw",scope="demo"\} [1-9]/);
      expect(metrics).toMatch(/pgha_router_bytes_total\{direction="in",scope="demo"\} [1-9]/);
      const health = await fetch(`http://127.0.0.1:${router.statusPort}/health`);
      expect(health.status).toBe(200);
    } finally {
      await c.end().catch(() => undefined);
    }
  });

  it('keeps routing while etcd is unreachable until the lease could have expired, then stops writes', async () => {
    const etcdPort = Number(cluster.etcd.endpoints[0]!.split(':')[1]);
    const proxy: TcpProxy = await startTcpProxy('127.0.0.1', etcdPort);
    cleanups.unshift(() => proxy.close());
    const cut = await startTestRouter([proxy.endpoint], { wait_timeout: 1, check_interval: 0.2 });
    cleanups.unshift(() => cut.stop());
    await waitFor('the second router to see the primary', () =>
      Promise.resolve(cut.router.status().primary !== null),
    );
    const ttlMs = 8000;
    const session = await client(cut.rw);
    const sessionClosed = new Promise<number>((resolve) => session.on('end', () => resolve(Date.now())));
    // Every step is bounded, and a miss shows the router's view and its sessions.
    const view = () => {
      const st = cut.router.status();
      return { primary: st.primary, noPrimaryBecause: st.noPrimaryBecause, sessions: st.sessions.list };
    };
    const step = <T>(what: string, ms: number, p: Promise<T>) => within(what, ms, p, view);
    try {
      proxy.suspend();
      const suspendedAt = Date.now();
      // Still routing writes before the deadline.
      const before = await step(
        'a write through the router before the deadline',
        ttlMs - 2000,
        one<{ ro: boolean }>(cut.rw, 'select pg_is_in_recovery() as ro'),
      );
      expect(before.ro).toBe(false);
      // Then the session is fenced and new writes are refused, with the reason. Garbage
      // collections meanwhile must not take the deadline of the fenced session's wait for a primary.
      const collecting = setInterval(fullGc, 250);
      const closedAt = await step(
        'the session to be closed at the deadline',
        ttlMs + 5000,
        sessionClosed,
      ).finally(() => clearInterval(collecting));
      expect(closedAt - suspendedAt).toBeLessThan(ttlMs + 1500);
      expect(closedAt - suspendedAt).toBeGreaterThan(ttlMs - 1500);
      await expect(
        step('a refusal of new writes', 10_000, one(cut.rw, 'select 1', { timeoutMs: 5000 })),
      ).rejects.toMatchObject({ code: '57P03' });
      expect(cut.router.status().noPrimaryBecause).toMatch(/etcd unreachable/);
      // Reads from replicas go on.
      const read = await step(
        'a read from a replica',
        10_000,
        one<{ ro: boolean }>(cut.ro, 'select pg_is_in_recovery() as ro'),
      );
      expect(read.ro).toBe(true);
      proxy.resume();
      await waitFor(
        'writes to come back',
        () => Promise.resolve(cut.router.status().primary !== null),
        20_000,
      );
      const after = await step(
        'a write once etcd is back',
        10_000,
        one<{ ro: boolean }>(cut.rw, 'select pg_is_in_recovery() as ro'),
      );
      expect(after.ro).toBe(false);
    } finally {
      proxy.resume();
      await within('the session to end', 5000, session.end()).catch(() => undefined);
    }
  });

  it('moves the read-only sessions of a replica that stays unfit for replica_grace to another, and only those', async () => {
    const strict = await startTestRouter(cluster.etcd.endpoints, { replica_grace: 1 });
    const sessions: Array<Awaited<ReturnType<typeof client>>> = [];
    try {
      await waitFor('two replicas in the second router', () =>
        Promise.resolve(strict.router.status().replicas.length === 2),
      );
      sessions.push(await client(strict.ro), await client(strict.ro));
      const names: string[] = [];
      for (const s of sessions) {
        s.on('error', () => undefined);
        const { p } = (await s.query<{ p: number }>('select inet_server_port() as p')).rows[0]!;
        names.push(nameOfPort(p)!);
      }
      expect(new Set(names).size).toBe(2); // round-robin: one session on each replica
      const [victim, other] = names as [string, string];
      // A session of the file's router (default replica_grace, 10 s) on the same replica.
      let patient: Awaited<ReturnType<typeof client>> | undefined;
      for (let i = 0; i < 2 && !patient; i++) {
        const c = await client(router.ro);
        sessions.push(c);
        c.on('error', () => undefined);
        const { p } = (await c.query<{ p: number }>('select inet_server_port() as p')).rows[0]!;
        if (nameOfPort(p) === victim) patient = c;
      }
      expect(patient).toBeDefined();
      const ended = new Promise<string>((resolve) => sessions[0]!.on('end', () => resolve('ended')));
      const agent = cluster.node(victim).agent!;
      // The agent hangs: its member key expires with its lease (ttl 8 s) while its PostgreSQL still
      // serves reads, as when HAProxy's checks of a replica fail.
      agent.kill('SIGSTOP');
      const stoppedAt = Date.now();
      try {
        // The session on the unfit replica moves to the other one, without an error.
        let movedAt = 0;
        await waitFor(
          'the session on the unfit replica to move',
          async () => {
            const { p } = (await sessions[0]!.query<{ p: number }>('select inet_server_port() as p'))
              .rows[0]!;
            if (nameOfPort(p) !== other) return false;
            movedAt = Date.now();
            return true;
          },
          8000 + 1000 + 5000,
        );
        expect(movedAt - stoppedAt).toBeGreaterThan(1000);
        expect(await Promise.race([ended, Promise.resolve('open')])).toBe('open');
        expect(strict.router.stats.replicaCut).toBe(1);
        expect(strict.router.stats.moved).toBe(1);
        // The session on the healthy replica is untouched, and new reads go there.
        expect(
          nameOfPort((await sessions[1]!.query<{ p: number }>('select inet_server_port() as p')).rows[0]!.p),
        ).toBe(other);
        const r = await one<{ port: number }>(strict.ro, 'select inet_server_port() as port');
        expect(nameOfPort(r.port)).toBe(other);
        const metrics = await (await fetch(`http://127.0.0.1:${strict.statusPort}/metrics`)).text();
        expect(metrics).toMatch(/^pgha_router_replica_sessions_cut_total\{scope="demo"\} 1$/m);
      } finally {
        agent.kill('SIGCONT');
      }
      await cluster.waitHealthy(2);
      // The replica came back within the file's router's grace: its session there was kept.
      const { p } = (await patient!.query<{ p: number }>('select inet_server_port() as p')).rows[0]!;
      expect(nameOfPort(p)).toBe(victim);
      expect(router.router.stats.replicaCut).toBe(0);
    } finally {
      for (const s of sessions) await s.end().catch(() => undefined);
      await strict.stop();
    }
  }, 120_000);

  it('reroutes on switchover: old sessions move, new connections wait and reach the new primary fast', async () => {
    const before = await cluster.readCluster();
    const old = before.leader!.name;
    const candidate = before.members.find((m) => m.name !== old && isStreamingMember(m.data))!.name;
    const oldSession = await client(router.rw);

    // An independent watcher: when does etcd first show the candidate as a usable primary?
    const watcher = new EtcdDcs({
      hosts: cluster.etcd.endpoints,
      namespace: '/service/',
      scope: SCOPE,
      name: 'test-switchover-watch',
      ttl: 10,
    });
    let etcdAt: number | null = null;
    const stopWatch = watcher.watch(() => {
      void watcher.readCluster().then((c) => {
        if (etcdAt === null && computeTopology(c, { maxLagBytes: null }).primary?.name === candidate)
          etcdAt = Date.now();
      });
    });
    let routerAt: number | null = null;
    router.router.onChange = (ch) => {
      if (ch.to === candidate && routerAt === null) routerAt = Date.now();
    };
    // Writers that keep opening connections through the switchover: none may fail.
    let stop = false;
    const errors: unknown[] = [];
    const landed = new Set<string>();
    const writers = [1, 2, 3].map(async () => {
      while (!stop) {
        try {
          // New connections wait while the routers drain and the old primary stops: a client
          // gives the router as long as its wait_timeout.
          const r = await one<{ port: number }>(
            router.rw,
            'select inet_server_port() as port, txid_current()',
            { timeoutMs: 40_000 },
          );
          landed.add(nameOfPort(r.port)!);
        } catch (err) {
          errors.push(err);
        }
      }
    });
    try {
      const dcs = new EtcdDcs({
        hosts: cluster.etcd.endpoints,
        namespace: '/service/',
        scope: SCOPE,
        name: 'test-switchover',
        ttl: 10,
      });
      await dcs.setFailover({ leader: old, member: candidate });
      await dcs.close();
      await waitFor('the router to follow the switchover', () => Promise.resolve(routerAt !== null), 60_000);
      // The session opened on the old primary goes on on the new one.
      await waitFor(
        'the old session to move to the new primary',
        async () =>
          nameOfPort((await oldSession.query<{ p: number }>('select inet_server_port() as p')).rows[0]!.p) ===
          candidate,
        20_000,
      );
      await waitFor(
        'a write to land on the new primary',
        () => Promise.resolve(landed.has(candidate)),
        20_000,
      );
    } finally {
      stop = true;
      await Promise.all(writers);
      router.router.onChange = null;
      await stopWatch();
      await watcher.close();
      await oldSession.end().catch(() => undefined);
    }
    // A connection already past its startup on the old primary when it stopped (or was cut) may fail:
    // during its query, or, when the cut came between connect and query, at the query (node-postgres:
    // "not queryable"). No new connection may be refused ("the database system is shutting down" is
    // retried by the router).
    const cut =
      /Connection terminated unexpectedly|terminating connection|connection error and is not queryable/i;
    const unexpected = errors.map((e) => String((e as Error).message)).filter((m) => !cut.test(m));
    expect(unexpected).toEqual([]);
    expect(etcdAt).not.toBeNull();
    console.log(
      `switchover ${old} → ${candidate}: router followed ${routerAt! - etcdAt!} ms after etcd showed the new primary; ` +
        `new-connection writers landed on ${[...landed].join(', ')}, ${errors.length} errors`,
    );
    // The 100 ms goal is measured and printed above; the assertion is only a gross bound, so a
    // loaded CI machine does not turn a slow scheduler into a failure.
    expect(routerAt! - etcdAt!).toBeLessThan(1000);
    const rw = await one<{ port: number }>(router.rw, 'select inet_server_port() as port');
    expect(nameOfPort(rw.port)).toBe(candidate);
    expect(portOf(candidate)).toBe(rw.port);
  });
});

/**
 * Helpers for the router's end-to-end tests: clients through the router, cancel requests built by
 * hand (as libpq sends them), a self-signed certificate for PostgreSQL, and an in-process router.
 */
import { once } from 'node:events';
import { chmodSync, mkdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import pg from 'pg';
import type { ListenAddress, PghaConfig } from '../../src/config/types.js';
import { startRouter, parseRouterSection, type RunningRouter } from '../../src/router/command.js';
import { cancelRequest } from '../../src/router/protocol.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { isStreamingMember } from '../../src/dcs/types.js';
import { SCOPE, type TestCluster } from '../support/cluster.js';
import { freePorts } from '../support/net.js';
import { giveTo, selfSigned } from '../support/tls.js';

export const PASSWORD = 'test-pw';

export interface ClientOptions {
  ssl?: boolean;
  timeoutMs?: number;
}

/** Connects as the superuser through `port`; the caller ends it. */
export async function client(port: number, opts: ClientOptions = {}): Promise<pg.Client> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password: PASSWORD,
    database: 'postgres',
    connectionTimeoutMillis: opts.timeoutMs ?? 10_000,
    ssl: opts.ssl ? { rejectUnauthorized: false } : false,
  });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** Runs one query on a fresh connection through `port` and returns the first row. */
export async function one<T extends Record<string, unknown>>(
  port: number,
  sql: string,
  opts: ClientOptions = {},
): Promise<T> {
  const c = await client(port, opts);
  try {
    return (await c.query<T>(sql)).rows[0]!;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * Sends a CancelRequest for `c`'s session to `port`, as libpq does (over TLS, after an SSLRequest
 * answered `S`, with `tls`), and waits for the close.
 */
async function sendCancel(port: number, c: pg.Client, tls: boolean): Promise<void> {
  const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
  const secret = Buffer.alloc(4);
  secret.writeInt32BE(secretKey);
  let s: Socket = connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await once(s, 'connect');
  if (tls) {
    const sslRequest = Buffer.alloc(8);
    sslRequest.writeInt32BE(8, 0);
    sslRequest.writeInt32BE(80877103, 4);
    s.write(sslRequest);
    const [answer] = (await once(s, 'data')) as [Buffer];
    if (answer.toString() !== 'S') throw new Error(`SSLRequest answered ${answer.toString()}`);
    s = tlsConnect({ socket: s, rejectUnauthorized: false });
    s.on('error', () => undefined);
    await once(s, 'secureConnect');
  }
  s.end(cancelRequest({ pid: processID, secret }));
  s.resume();
  await once(s, 'close');
}

/**
 * Starts a 30 s query on `c`, cancels it through `port` 300 ms later (the CancelRequest over TLS
 * with `tls`), and returns the SQLSTATE the query failed with (undefined if it did not fail) and
 * how long the query lasted.
 */
export async function cancelSleep(
  port: number,
  c: pg.Client,
  opts: { tls?: boolean } = {},
): Promise<{ code?: string; ms: number }> {
  const started = Date.now();
  const q = c.query('select pg_sleep(30)').then(
    () => null,
    (err: { code?: string }) => err,
  );
  await new Promise((r) => setTimeout(r, 300));
  await sendCancel(port, c, opts.tls ?? false);
  const err = await q;
  return { ...(err?.code !== undefined ? { code: err.code } : {}), ms: Date.now() - started };
}

/** Writes a self-signed certificate and key PostgreSQL will accept (owned by its OS user, 0600). */
export function makeCertificate(dir: string): { cert: string; key: string } {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const made = selfSigned(dir, 'server', '/CN=localhost');
  chmodSync(made.key, 0o600);
  chmodSync(made.cert, 0o644);
  giveTo('postgres', dir, ['server.crt', 'server.key']);
  return made;
}

export interface TestRouter extends RunningRouter {
  rw: number;
  ro: number;
  statusPort: number;
}

/** Starts an in-process router for the test cluster on free loopback ports. */
export async function startTestRouter(
  etcdHosts: string[],
  router: Record<string, unknown> = {},
  opts: { logger?: Logger } = {},
): Promise<TestRouter> {
  const [rw, ro, st] = await freePorts(3);
  const at = (port: number): ListenAddress => ({ hosts: ['127.0.0.1'], port });
  const rc = parseRouterSection({ wait_timeout: 40, check_interval: 0.5, ...router });
  rc.listen = at(rw!);
  rc.replica_listen = at(ro!);
  rc.status_listen = at(st!);
  const config = {
    scope: SCOPE,
    namespace: '/service/',
    name: 'router',
    etcd: { hosts: etcdHosts, protocol: 'http' },
    log: { type: 'plain', level: 'INFO' },
    // The test cluster's superuser: the router reads role verifiers with it to move sessions.
    postgresql: { authentication: { superuser: { username: 'postgres', password: PASSWORD } } },
    router: rc,
  } as unknown as PghaConfig;
  const logger =
    opts.logger ??
    createLogger({
      level: process.env.PGHA_TEST_ROUTER_LOG ?? 'silent',
      base: { router: 'test' },
    });
  const running = await startRouter(config, logger);
  return { ...running, rw: rw!, ro: ro!, statusPort: running.status!.port };
}

/**
 * Asks for a switchover to a streaming replica through the `failover` key, as `pgha ctl switchover`
 * does; returns the old leader and the candidate.
 */
export async function requestSwitchover(
  cluster: TestCluster,
  healthyWithinMs?: number,
): Promise<{ old: string; candidate: string }> {
  const state = await cluster.waitHealthy(2, healthyWithinMs);
  const old = state.leader!.name;
  const candidate = state.members.find((m) => m.name !== old && isStreamingMember(m.data))!.name;
  const dcs = new EtcdDcs({
    hosts: cluster.etcd.endpoints,
    namespace: '/service/',
    scope: SCOPE,
    name: 'test',
    ttl: 10,
  });
  try {
    await dcs.setFailover({ leader: old, member: candidate });
  } finally {
    await dcs.close();
  }
  return { old, candidate };
}

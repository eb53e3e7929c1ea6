/**
 * Sessions move with the primary when the router terminates their TLS (`router.tls`), and when
 * their role authenticates with MD5 or a cleartext password, on a real three-node cluster behind
 * an in-process router:
 * - a TLS session keeps its client connection, SET values and prepared statements through a
 *   switchover and then a kill -9 of the primary, and sees no error while idle; a cancel through
 *   the router, sent plain or over TLS, then reaches its new backend;
 * - idle sessions of an `md5` role (its password stored as an MD5 hash) and of a `password` role
 *   move on a switchover with no error.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/util/log.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import { makeCa } from '../support/tls.js';
import { PASSWORD, cancelSleep, requestSwitchover, startTestRouter, type TestRouter } from './helpers.js';

let cluster: TestCluster;
let router: TestRouter;
let ca: string;
const logs: Array<Record<string, unknown>> = [];
const cleanups: Array<() => Promise<void>> = [];

const MD5_ROLE = 'md5_user';
const CLEARTEXT_ROLE = 'cleartext_user';
const ROLE_PASSWORD = 'role-pw';

const nameOfPort = (port: number) => cluster.nodes.find((n) => n.pgPort === port)?.name;

beforeAll(async () => {
  cluster = await startCluster({
    nodes: 3,
    ttl: 8,
    loopWait: 1,
    retryTimeout: 3,
    edit: (cfg) => {
      // The agent writes pg_hba.conf from this on every node, replicas included.
      (cfg.postgresql as Record<string, unknown>).pg_hba = [
        'local all all trust',
        'host replication replicator 127.0.0.1/32 scram-sha-256',
        `host all ${MD5_ROLE} 127.0.0.1/32 md5`,
        `host all ${CLEARTEXT_ROLE} 127.0.0.1/32 password`,
        'host all all 127.0.0.1/32 scram-sha-256',
      ];
    },
  });
  cleanups.unshift(() => cluster.stop());
  for (const n of cluster.nodes) cluster.startAgent(n.name);
  const state = await cluster.waitHealthy(2);
  await cluster.query(
    state.leader!.name,
    `SET password_encryption = 'md5'; CREATE ROLE ${MD5_ROLE} LOGIN PASSWORD '${ROLE_PASSWORD}'; ` +
      `RESET password_encryption; CREATE ROLE ${CLEARTEXT_ROLE} LOGIN PASSWORD '${ROLE_PASSWORD}'`,
  );

  const dir = mkdtempSync(join(tmpdir(), 'pgha-router-tls-'));
  cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
  makeCa(dir, ['router']);
  ca = join(dir, 'ca.crt');
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n'))
        if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  router = await startTestRouter(
    cluster.etcd.endpoints,
    {
      drain_timeout: 2,
      wait_timeout: 60,
      tls: { certificate: join(dir, 'router.crt'), key: join(dir, 'router.key') },
    },
    { logger: createLogger({ type: 'json', level: 'debug', destination: sink }) },
  );
  cleanups.unshift(() => router.stop());
  await waitFor(
    'the router to register in etcd',
    async () => ((await cluster.readCluster()).routers ?? []).length === 1,
  );
}, 180_000);

afterAll(async () => {
  for (const c of cleanups) await c().catch((err: unknown) => console.error('cleanup failed', err));
}, 120_000);

const switchover = () => requestSwitchover(cluster, 60_000);

interface Watched {
  c: pg.Client;
  /** Errors and ends of its connection, as they came. */
  events: string[];
}

/** Connects through the router, with TLS verified against the test CA when `ssl`. */
async function connect(user: string, password: string, ssl: boolean): Promise<Watched> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: router.rw,
    user,
    password,
    database: 'postgres',
    connectionTimeoutMillis: 10_000,
    ssl: ssl ? { ca: readCa(), servername: 'localhost' } : false,
  });
  const events: string[] = [];
  c.on('error', (err) => events.push(`error: ${err.message}`));
  c.on('end', () => events.push('end'));
  await c.connect();
  return { c, events };
}

let caText: string | null = null;
function readCa(): string {
  caText ??= readFileSync(ca, 'utf8');
  return caText;
}

const port = async (c: pg.Client) =>
  (await c.query<{ p: number }>('select inet_server_port() as p')).rows[0]!.p;
const setting = async (c: pg.Client, name: string) =>
  (await c.query<{ v: string }>(`select current_setting('${name}') as v`)).rows[0]!.v;

/** Waits until the router logged `n` more moves than at `from`. */
async function movesSince(from: number, n: number): Promise<void> {
  await waitFor(
    `${n} session(s) to move`,
    () => Promise.resolve(logs.slice(from).filter((l) => l.msg === 'session moved').length >= n),
    60_000,
  );
}

/** The router's log lines about cuts and ends since `from`, for a failure message. */
const cutsSince = (from: number) =>
  JSON.stringify(logs.slice(from).filter((l) => /session cut|session ended|cannot move/.test(String(l.msg))));

describe('sessions move with the primary', () => {
  it('a TLS session the router terminates keeps its connection, settings and prepared statements through a switchover and a kill -9 failover', async () => {
    const { c, events } = await connect('postgres', PASSWORD, true);
    expect(router.router.status().sessions.list.some((s) => s.phase === 'relayed')).toBe(true);
    await c.query("SET datestyle TO 'ISO, YMD'");
    await c.query("SET statement_timeout = '1h'");
    await c.query("SET application_name = 'over-tls'");
    await c.query('PREPARE doubled (int) AS SELECT $1 * 2 AS x');
    const named = { name: 'plus_one', text: 'select $1::int + 1 as x', values: [1] };
    expect((await c.query<{ x: number }>(named)).rows[0]!.x).toBe(2);
    const checkState = async () => {
      expect(await setting(c, 'DateStyle')).toBe('ISO, YMD');
      expect(await setting(c, 'statement_timeout')).toBe('1h');
      expect(await setting(c, 'application_name')).toBe('over-tls');
      expect((await c.query<{ x: number }>('EXECUTE doubled(21)')).rows[0]!.x).toBe(42);
      expect((await c.query<{ x: number }>({ ...named, values: [41] })).rows[0]!.x).toBe(42);
      expect((await c.query<{ ro: boolean }>('select pg_is_in_recovery() as ro')).rows[0]!.ro).toBe(false);
    };

    // Switchover: the idle session is held, then moves; its next statement runs on the new primary.
    let from = logs.length;
    const { old, candidate } = await switchover();
    await movesSince(from, 1).catch((err: Error) => {
      throw new Error(`${err.message}; ${cutsSince(from)}`);
    });
    expect(events).toEqual([]);
    expect(nameOfPort(await port(c))).toBe(candidate);
    await checkState();
    console.log(`switchover ${old} → ${candidate}: the TLS session moved`);

    // Failover: the primary's agent and postmaster are killed; the idle session moves.
    await cluster.waitHealthy(1, 60_000);
    from = logs.length;
    const before = await port(c);
    const killed = nameOfPort(before)!;
    const killedAt = Date.now();
    await cluster.stopAgent(killed, 'SIGKILL');
    await cluster.killPostmaster(killed);
    await movesSince(from, 1).catch((err: Error) => {
      throw new Error(`${err.message}; ${cutsSince(from)}`);
    });
    expect(events).toEqual([]);
    const after = await port(c);
    expect(after).not.toBe(before);
    await checkState();
    console.log(
      `failover: the TLS session went on on ${nameOfPort(after)} ${Date.now() - killedAt} ms after the kill of ${killed}`,
    );
    // A cancel through the router reaches the session's new backend, sent plain or over TLS.
    for (const tls of [false, true]) {
      const { code, ms } = await cancelSleep(router.rw, c, { tls });
      expect(code, `cancel${tls ? ' over TLS' : ''}`).toBe('57014');
      expect(ms).toBeLessThan(5000);
    }
    expect(router.router.stats.cut).toEqual({});
    await c.end();
    // The killed node comes back as a replica, for the next test.
    cluster.startAgent(killed);
  }, 150_000);

  it('idle sessions of md5 and password roles move on a switchover with no error', async () => {
    const sessions = [
      { ...(await connect(MD5_ROLE, ROLE_PASSWORD, false)), role: MD5_ROLE },
      { ...(await connect(CLEARTEXT_ROLE, ROLE_PASSWORD, false)), role: CLEARTEXT_ROLE },
      { ...(await connect(MD5_ROLE, ROLE_PASSWORD, true)), role: `${MD5_ROLE} over TLS` },
      { ...(await connect(CLEARTEXT_ROLE, ROLE_PASSWORD, true)), role: `${CLEARTEXT_ROLE} over TLS` },
    ];
    const old = (await cluster.waitHealthy(2, 60_000)).leader!.name;
    // The md5 role's password is stored as an MD5 hash, so pg_hba's md5 method asks for MD5 (not SCRAM).
    const [stored] = await cluster.query<{ p: string }>(
      old,
      'select rolpassword as p from pg_authid where rolname = $1',
      [MD5_ROLE],
    );
    expect(stored!.p).toMatch(/^md5/);
    for (const s of sessions) {
      await s.c.query(`SET application_name = '${s.role}'`);
      expect(nameOfPort(await port(s.c)), s.role).toBe(old);
    }
    const from = logs.length;
    const { candidate } = await switchover();
    await movesSince(from, sessions.length).catch((err: Error) => {
      throw new Error(`${err.message}; ${cutsSince(from)}`);
    });
    for (const s of sessions) {
      expect(s.events, s.role).toEqual([]);
      expect(nameOfPort(await port(s.c)), s.role).toBe(candidate);
      expect(await setting(s.c, 'application_name')).toBe(s.role);
      await s.c.end();
    }
  }, 150_000);
});

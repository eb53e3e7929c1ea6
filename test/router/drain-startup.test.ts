/**
 * A switchover's drain covers the sessions still starting when it begins. The invariant: while a
 * drain of primary X runs, no session the router routed to X starts a new transaction there — those
 * that were authenticating (or being handed to the relay) when the drain began included: once their
 * startup ends they are held like the others and move with them to the new primary. Without it such
 * a session relays its first statements to the primary that is about to stop, and a transaction it
 * opens there is cut by the fence.
 *
 * Real PostgreSQL servers and a real router on each data path; etcd's side is a plain object, so the
 * drain can be made to begin while a client is half way through its authentication (the client's
 * password callback waits for it). A client that sends its first statement right behind its
 * password, before the server has said it is ready, is held the same way; and a session the drain
 * waits for that ends does not keep the drain waiting.
 */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyCluster } from '../../src/dcs/keys.js';
import type { ClusterState, DrainKey, Member } from '../../src/dcs/types.js';
import { nativeRelay } from '../../src/router/native.js';
import { message, startupMessage } from '../../src/router/protocol.js';
import { Router } from '../../src/router/router.js';
import { createLogger } from '../../src/util/log.js';
import { freePort } from '../support/net.js';
import { createPgTestBase, TEST_AUTH, waitFor, within, type PgTestBase } from '../support/postgres.js';

let base: PgTestBase;
const ports: Record<string, number> = {};
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  base = createPgTestBase();
  cleanups.unshift(() => base.cleanup());
  for (const name of ['a', 'b']) {
    // A cleartext password: the router sees it and can repeat it when the session moves.
    const pgHba = ['local all all trust', 'host all all 127.0.0.1/32 password'];
    const { cfg, pg: p } = await base.primary(name, { scope: 'drain-startup', pgHba });
    cleanups.unshift(() => p.close());
    ports[name] = cfg.listen.port;
  }
}, 120_000);

afterAll(async () => {
  for (const c of cleanups) await c().catch((err: unknown) => console.error('cleanup failed', err));
}, 60_000);

function member(name: string, role: 'primary' | 'replica'): Member {
  return {
    name,
    modRevision: '1',
    lease: '1',
    data: {
      conn_url: `postgres://127.0.0.1:${ports[name]}/postgres`,
      api_url: `http://127.0.0.1:9/patroni`,
      role,
      state: role === 'primary' ? 'running' : 'streaming',
      xlog_location: 1,
    },
  };
}

function cluster(leader: string, drain: DrainKey | null, revision: number): ClusterState {
  return {
    ...emptyCluster(String(revision)),
    initialize: '1',
    config: { value: { ttl: 30 }, modRevision: '1' },
    leader: { name: leader, modRevision: String(revision), lease: '1' },
    members: ['a', 'b'].map((n) => member(n, n === leader ? 'primary' : 'replica')),
    drain,
  };
}

/** The router's view of etcd: `state` is what a read returns; `changed()` is a watch event. */
function source() {
  let onChange: ((keys: string[]) => void) | null = null;
  const src = {
    state: cluster('a', null, 2),
    readCluster: () => Promise.resolve(src.state),
    watch: (cb: (keys: string[]) => void) => {
      onChange = cb;
      return () => Promise.resolve();
    },
    changed: () => onChange?.(['leader']),
  };
  return src;
}

/** A promise and the function that settles it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => undefined as void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

type DataPath = 'javascript' | 'native';

/** A router on `dataPath` in front of a and b, its log lines, and the plain object it reads etcd from. */
async function startRouter(dataPath: DataPath) {
  if (dataPath === 'native' && nativeRelay() instanceof Error)
    throw new Error('the native relay is not built');
  const src = source();
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n'))
        if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const port = await freePort();
  const router = new Router({
    source: src,
    logger: createLogger({ type: 'json', level: 'info', destination: sink }),
    listen: { hosts: ['127.0.0.1'], port },
    balance: 'round-robin',
    maxLagBytes: null,
    fallbackToPrimary: false,
    waitTimeoutMs: 20_000,
    connectTimeoutMs: 3000,
    checkIntervalMs: 60_000,
    verifyPrimary: false,
    dataPath,
    drainTimeoutMs: 10_000,
  });
  cleanups.unshift(() => router.stop());
  await router.start();
  await waitFor('the router to route writes to a', () => Promise.resolve(router.status().primary === 'a'));
  const clients: pg.Client[] = [];
  cleanups.unshift(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
  });
  const client = (password: () => Promise<string> = () => Promise.resolve(TEST_AUTH.superuser.password)) => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port,
      user: TEST_AUTH.superuser.username,
      database: 'postgres',
      password,
    });
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };
  return {
    router,
    logs,
    port,
    client,
    /** The switchover from a to b begins: a's agent writes the drain key. */
    async beginDrain() {
      src.state = cluster('a', { id: 'switchover-1', from: 'a', to: 'b' }, 3);
      src.changed();
      await waitFor('the router to begin the drain', () => Promise.resolve(router.status().drain !== null));
    },
    /** a has stopped, b runs as the leader, the drain key is gone. */
    switchToB() {
      src.state = cluster('b', null, 4);
      src.changed();
    },
    drained: () => logs.find((l) => l.msg === 'switchover: drained'),
    moved: () => logs.filter((l) => l.msg === 'session moved').length,
    cuts: () => logs.filter((l) => String(l.msg).startsWith('session cut')).map((l) => l.msg),
  };
}

const serverOf = async (c: pg.Client) =>
  (await c.query<{ port: number }>('select inet_server_port() as port')).rows[0]!.port;

/** 'waiting' if `p` is still pending after `ms`, else which server answered. */
async function stillWaiting(p: Promise<number>, ms = 500): Promise<string> {
  let got: number | null = null;
  void p.then((v) => (got = v)).catch(() => undefined);
  await new Promise((r) => setTimeout(r, ms));
  return got === null ? 'waiting' : got === ports.a ? 'ran on a' : 'ran on b';
}

const cases = [
  { dataPath: 'javascript', busy: false },
  { dataPath: 'javascript', busy: true },
  { dataPath: 'native', busy: false },
  { dataPath: 'native', busy: true },
] as const;

describe.each(cases)(
  'drain on the $dataPath data path (another session busy: $busy)',
  ({ dataPath, busy }) => {
    it('holds a session that was authenticating when the drain began and moves it to the new primary', async () => {
      const r = await startRouter(dataPath);
      // With a transaction open on a, the drain waits for it and has not answered yet when the
      // late session's startup ends; without one, it answered at once.
      const other = busy ? r.client() : null;
      if (other) {
        await other.connect();
        expect(await serverOf(other)).toBe(ports.a);
        await other.query('BEGIN');
      }

      const authenticating = gate();
      const drainBegun = gate();
      // The password is asked once the server wants it: the session is in its startup, on a.
      const late = r.client(async () => {
        authenticating.open();
        await drainBegun.wait;
        return TEST_AUTH.superuser.password;
      });
      const connected = late.connect();
      await within('the client to be asked for its password', 10_000, authenticating.wait);
      await r.beginDrain();
      drainBegun.open();
      await within('the client to connect', 10_000, connected);

      // Its first statement must wait for the new primary, not run on a.
      const answer = serverOf(late);
      expect(await stillWaiting(answer)).toBe('waiting');

      if (other) {
        // The transaction ends; the drain answers with both sessions held.
        await other.query('COMMIT');
        await waitFor('the drain to answer', () => Promise.resolve(r.drained() !== undefined));
        expect(r.drained()?.held).toBe(2);
      }

      r.switchToB();
      expect(await within('the statement to be answered', 15_000, answer)).toBe(ports.b);
      if (other) expect(await serverOf(other)).toBe(ports.b);
      expect(r.moved()).toBe(busy ? 2 : 1);
      expect(r.cuts()).toEqual([]);
    }, 60_000);
  },
);

/** Reads protocol messages from a raw socket. */
function messages(sock: Socket) {
  let buf = Buffer.alloc(0);
  const waiters: Array<() => void> = [];
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (const w of waiters.splice(0)) w();
  });
  return {
    /** The next message whose type is in `types` (others are skipped). */
    async next(types: string): Promise<{ type: string; body: Buffer }> {
      for (;;) {
        while (buf.length >= 5 && buf.length >= buf.readInt32BE(1) + 1) {
          const len = buf.readInt32BE(1);
          const m = { type: String.fromCharCode(buf[0]!), body: buf.subarray(5, len + 1) };
          buf = buf.subarray(len + 1);
          if (types.includes(m.type)) return m;
        }
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
}

describe.each(['javascript', 'native'] as const)('drain on the %s data path', (dataPath) => {
  it('holds a statement a client sent right behind its password, before the server was ready', async () => {
    const r = await startRouter(dataPath);
    const sock = connect(r.port, '127.0.0.1');
    cleanups.unshift(() => Promise.resolve(void sock.destroy()));
    await once(sock, 'connect');
    const read = messages(sock);
    sock.write(startupMessage({ user: TEST_AUTH.superuser.username, database: 'postgres' }));
    const auth = await within('the password request', 10_000, read.next('RE'));
    expect([auth.type, auth.body.readInt32BE(0)]).toEqual(['R', 3]);

    await r.beginDrain();
    // The password and the first statement in one packet: the statement reaches the router while
    // the session is still in its startup.
    sock.write(
      Buffer.concat([
        message('p', Buffer.from(`${TEST_AUTH.superuser.password}\0`)),
        message('Q', Buffer.from('select inet_server_port()\0')),
      ]),
    );
    const row = read.next('DE').then((m) => {
      if (m.type === 'E') throw new Error(`error: ${m.body.toString('latin1')}`);
      return Number(m.body.subarray(6, 6 + m.body.readInt32BE(2)).toString());
    });
    expect(await stillWaiting(row)).toBe('waiting');
    r.switchToB();
    expect(await within('the statement to be answered', 15_000, row)).toBe(ports.b);
    expect(r.moved()).toBe(1);
  }, 60_000);

  it('answers at once when a session it waits for ends', async () => {
    const r = await startRouter(dataPath);
    const busy = r.client();
    await busy.connect();
    await busy.query('BEGIN');
    await r.beginDrain();
    expect(r.drained()).toBeUndefined();
    const ended = performance.now();
    await busy.end();
    await waitFor('the drain to answer', () => Promise.resolve(r.drained() !== undefined), 10_000, 20);
    // drain_timeout is 10 s: the answer did not wait for it.
    expect(performance.now() - ended).toBeLessThan(3000);
    expect(r.drained()?.held).toBe(0);
  }, 60_000);
});

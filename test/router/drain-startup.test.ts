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
 * password callback waits for it).
 */
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyCluster } from '../../src/dcs/keys.js';
import type { ClusterState, DrainKey, Member } from '../../src/dcs/types.js';
import { Postgres } from '../../src/postgres/postgres.js';
import { nativeRelay } from '../../src/router/native.js';
import { Router } from '../../src/router/router.js';
import { createLogger } from '../../src/util/log.js';
import { freePort } from '../support/net.js';
import { createPgTestBase, TEST_AUTH, waitFor, within, type PgTestBase } from '../support/postgres.js';

let base: PgTestBase;
const servers: Postgres[] = [];
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
    servers.push(p);
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
      const clients: pg.Client[] = [];
      const client = (password: () => Promise<string>) => {
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
      const serverOf = async (c: pg.Client) =>
        (await c.query<{ port: number }>('select inet_server_port() as port')).rows[0]!.port;
      try {
        await router.start();
        await waitFor('the router to route writes to a', () =>
          Promise.resolve(router.status().primary === 'a'),
        );
        // With a transaction open on a, the drain waits for it and has not answered yet when the
        // late session's startup ends; without one, it answered at once.
        const other = busy ? client(() => Promise.resolve(TEST_AUTH.superuser.password)) : null;
        if (other) {
          await other.connect();
          expect(await serverOf(other)).toBe(ports.a);
          await other.query('BEGIN');
        }

        const authenticating = gate();
        const drainBegun = gate();
        // The password is asked once the server wants it: the session is in its startup, on a.
        const late = client(async () => {
          authenticating.open();
          await drainBegun.wait;
          return TEST_AUTH.superuser.password;
        });
        const connected = late.connect();
        await within('the client to be asked for its password', 10_000, authenticating.wait);

        // The switchover from a to b begins: a's agent writes the drain key.
        src.state = cluster('a', { id: 'switchover-1', from: 'a', to: 'b' }, 3);
        src.changed();
        await waitFor('the router to begin the drain', () => Promise.resolve(router.status().drain !== null));
        drainBegun.open();
        await within('the client to connect', 10_000, connected);

        // Its first statement must wait for the new primary, not run on a.
        const answer = serverOf(late);
        let early: number | null = null;
        void answer.then((p) => (early = p)).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 500));
        expect(early === null ? 'waiting' : early === ports.a ? 'ran on a' : 'ran on b').toBe('waiting');

        if (other) {
          // The transaction ends; the drain answers with both sessions held.
          await other.query('COMMIT');
          await waitFor('the drain to answer', () =>
            Promise.resolve(logs.some((l) => l.msg === 'switchover: drained')),
          );
          expect(logs.find((l) => l.msg === 'switchover: drained')?.held).toBe(2);
        }

        // a has stopped, b runs as the leader, the drain key is gone.
        src.state = cluster('b', null, 4);
        src.changed();
        expect(await within('the statement to be answered', 15_000, answer)).toBe(ports.b);
        if (other) expect(await serverOf(other)).toBe(ports.b);
        expect(logs.filter((l) => l.msg === 'session moved').length).toBe(busy ? 2 : 1);
        expect(logs.filter((l) => String(l.msg).startsWith('session cut')).map((l) => l.msg)).toEqual([]);
      } finally {
        for (const c of clients) await c.end().catch(() => undefined);
        await router.stop();
      }
    }, 60_000);
  },
);

/**
 * The router's fence covers a session between its pick and its first byte. A session picks its
 * server, then connects (a new session: TCP; a moving one: TCP, authentication and the replay of its
 * settings). When the router's primary changes meanwhile, `setPrimary` does not see the session on
 * the old server yet, as it is not registered there. The invariant: a session sends client bytes
 * to a server only if, once connected and before sending, that server was where its port's
 * sessions go (`SessionHost.serves`); from then on it is registered there and the fence reaches
 * it. Otherwise a write could be acknowledged by a primary the router had already stopped routing
 * to, perhaps one that is being demoted and whose last writes a rewind will discard.
 *
 * Checked with real PostgreSQL servers and real sockets; the host is a plain object standing in for
 * the router, so the change can be made to fall exactly between the pick and the link.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Backend } from '../../src/router/topology.js';
import { Session, type PortKind, type SessionHost } from '../../src/router/session.js';
import { createPgTestBase, TEST_AUTH, type PgTestBase } from '../support/postgres.js';

let base: PgTestBase;
const backends: Backend[] = [];
let listener: Server;
let listenPort = 0;
const cleanups: Array<() => Promise<void>> = [];

/**
 * The router's side, reduced to what decides where sessions go: `current` is its primary; the
 * next picks come from `script` (each may change `current` as it is handed out, as a topology
 * change landing while the session connects), then from `current`.
 */
const router = {
  current: null as Backend | null,
  script: [] as Array<{ give: Backend; thenCurrent: Backend | null }>,
  sessions: new Set<Session>(),
  picks: [] as string[],
  /** What `Router.setPrimary` does: the sessions on the old primary stop where they stand and move. */
  setPrimary(next: Backend | null) {
    const old = this.current;
    this.current = next;
    if (!old) return;
    for (const s of [...this.sessions]) if (s.backend?.name === old.name) s.fence('primary changed');
  },
};

function host(): SessionHost {
  return {
    pick: (_port: PortKind, signal: AbortSignal) => {
      const step = router.script.shift();
      if (step) {
        router.picks.push(step.give.name);
        router.setPrimary(step.thenCurrent);
        return Promise.resolve({ backend: step.give, role: 'primary' as const });
      }
      return new Promise((resolve, reject) => {
        const poll = () => {
          if (signal.aborted) return reject(new Error('no primary in time'));
          if (!router.current) return setTimeout(poll, 20);
          router.picks.push(router.current.name);
          resolve({ backend: router.current, role: 'primary' });
        };
        poll();
      });
    },
    connectFailed: () => undefined,
    register: (s) => router.sessions.add(s),
    keyLearned: () => undefined,
    unregister: (s) => router.sessions.delete(s),
    cancel: () => undefined,
    connectTimeoutMs: 3000,
    startupTimeoutMs: 10_000,
    waitTimeoutMs: 10_000,
    relay: null,
    tls: null,
    secrets: null,
    members: (first) => (first ? [first, ...backends.filter((b) => b.name !== first.name)] : backends),
    serves: (b) => b.name === router.current?.name,
    relaying: () => undefined,
    draining: () => false,
    held: () => undefined,
    moved: () => undefined,
    cut: () => undefined,
    debug: () => undefined,
    warn: () => undefined,
  };
}

beforeAll(async () => {
  base = createPgTestBase();
  cleanups.unshift(() => base.cleanup());
  for (const name of ['a', 'b']) {
    // Trust over loopback: a moving session re-authenticates with nothing to repeat.
    const pgHba = ['local all all trust', 'host all all 127.0.0.1/32 trust'];
    const { cfg, pg: p } = await base.primary(name, { scope: 'pick-race', pgHba });
    cleanups.unshift(() => p.close());
    backends.push({ name, host: '127.0.0.1', port: cfg.listen.port });
  }
  listener = createServer((sock: Socket) => void new Session('rw', sock, host()).run());
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  listenPort = (listener.address() as { port: number }).port;
  cleanups.unshift(async () => {
    for (const s of [...router.sessions]) s.close();
    await new Promise<void>((r) => listener.close(() => r()));
  });
}, 120_000);

afterAll(async () => {
  for (const c of cleanups) await c().catch((err: unknown) => console.error('cleanup failed', err));
}, 60_000);

const A = () => backends[0]!;
const B = () => backends[1]!;
const nameOfPort = (port: number) => backends.find((b) => b.port === port)?.name;

async function connectThrough(): Promise<pg.Client> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: listenPort,
    user: TEST_AUTH.superuser.username,
    database: 'postgres',
    connectionTimeoutMillis: 10_000,
  });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

async function serverOf(c: pg.Client): Promise<string | undefined> {
  const r = await c.query<{ port: number }>('select inet_server_port() as port');
  return nameOfPort(r.rows[0]!.port);
}

it('a new session whose primary changed while it connected goes to the new primary', async () => {
  router.setPrimary(A());
  // The pick hands out a; before the connection to it is up, the router moves to b.
  router.picks = [];
  router.script.push({ give: A(), thenCurrent: B() });
  const c = await connectThrough();
  try {
    expect(await serverOf(c), `picks ${router.picks.join(', ')}`).toBe('b');
  } finally {
    await c.end().catch(() => undefined);
  }
}, 30_000);

it('a moving session whose primary changed again while it re-attached goes to the latest primary', async () => {
  router.setPrimary(A());
  const c = await connectThrough();
  try {
    expect(await serverOf(c)).toBe('a');
    // The router moves to b and fences a's sessions; while this one attaches to b, it moves back to a.
    router.picks = [];
    router.script.push({ give: B(), thenCurrent: A() });
    router.setPrimary(B());
    expect(await serverOf(c), `picks ${router.picks.join(', ')}`).toBe('a');
  } finally {
    await c.end().catch(() => undefined);
  }
}, 30_000);

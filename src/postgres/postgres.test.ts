/**
 * The local server's one-off connections (advancing a slot) against a fake server that accepts
 * connections and never answers: a cancelled call settles at once, whatever state its connection
 * was in.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { PostgresqlConfig } from '../config/types.js';
import { fullGc } from '../testing/gc.js';
import { quietServer, type QuietServer } from '../testing/quiet-server.js';
import { Postgres } from './postgres.js';

let server: QuietServer | null = null;

afterEach(async () => {
  await server?.close();
  server = null;
});

/** A server that takes connections and says nothing: a client stays in its connect phase. */
async function silentServer(): Promise<number> {
  server = await quietServer();
  return server.port;
}

/**
 * A server that lets every client in (AuthenticationOk, ReadyForQuery) and then answers nothing:
 * a query on it runs until its timeout ends it.
 */
async function mutedServer(): Promise<number> {
  server = await quietServer(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0, 0x5a, 0, 0, 0, 5, 0x49]));
  return server.port;
}

function node(port: number): Postgres {
  const cfg = {
    data_dir: '/nonexistent/pgha-test/data',
    bin_dir: '/nonexistent/bin',
    listen: { hosts: ['127.0.0.1'], port },
    authentication: { superuser: { username: 'postgres', password: 'x', sslmode: 'disable' } },
  } as unknown as PostgresqlConfig;
  return new Postgres(cfg, { name: 'n1' });
}

describe('a cancelled call on its own connection', () => {
  it('settles when cancelled while its connection is still being made', async () => {
    const port = await silentServer();
    const ac = new AbortController();
    const started = Date.now();
    const res = node(port).advanceSlot('cdc', 'postgres', 0x1000000, ac.signal);
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    const settled = await Promise.race([res, new Promise((r) => setTimeout(() => r('pending'), 2000))]);
    expect(settled).toMatchObject({ ok: false, walGone: false });
    // Well before the connect timeout would have ended it.
    expect(Date.now() - started).toBeLessThan(1500);
  });
});

describe('a query that gets no answer', () => {
  it('ends at its timeout, also when a garbage collection runs while it waits', async () => {
    const port = await mutedServer();
    const pg = node(port);
    const started = Date.now();
    const res = pg.query('select 1', [], new AbortController().signal, 400).then(
      () => 'answered',
      (e: Error) => e.message,
    );
    await new Promise((r) => setTimeout(r, 100));
    fullGc();
    const settled = await Promise.race([res, new Promise((r) => setTimeout(() => r('pending'), 3000))]);
    expect(settled).toMatch(/timed out after 400 ms/);
    expect(Date.now() - started).toBeLessThan(2000);
    await pg.close();
  });
});

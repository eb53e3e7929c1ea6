/**
 * A postmaster killed while a backend runs a long statement: the backend lives on until the
 * statement ends (it notices its postmaster's death only when it next waits) and keeps the shared
 * memory attached, so PostgreSQL refuses to start meanwhile. The agent's start waits for such
 * leftovers (src/postgres/leftovers.ts) instead of failing, which would count as a PostgreSQL that
 * cannot start and make a leader release its key. Real PostgreSQL 15.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PostgresqlConfig } from '../../src/config/types.js';
import { Postgres } from '../../src/postgres/postgres.js';
import { busyBackend, createPgTestBase, waitGone, type PgTestBase } from '../support/postgres.js';

let base: PgTestBase;
let cfg: PostgresqlConfig;
let server: Postgres;
let busy: Awaited<ReturnType<typeof busyBackend>> | null = null;

beforeAll(async () => {
  base = createPgTestBase();
  ({ cfg, pg: server } = await base.primary('n1', { scope: 'leftovers' }));
}, 60_000);

afterAll(async () => {
  await busy?.end();
  await server?.close();
  await base?.cleanup();
}, 60_000);

it('starts once the backends of a killed postmaster have finished their statements', async () => {
  // Busy for 4 s without ever waiting: it cannot notice its postmaster's death before the end.
  busy = await busyBackend(server, cfg, 4);
  await server.close();
  const pid = (await server.postmasterPid())!;
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  await waitGone([pid]);
  await server.start(30_000);
  const startedAfter = Date.now() - killedAt;
  console.log(`started ${startedAfter} ms after the kill; the busy statement ${await busy.outcome}`);
  expect(await server.status()).not.toBeNull();
  // It waited for the busy backend: its statement ran on for some 4 s after the kill.
  expect(startedAfter).toBeGreaterThan(1500);
}, 60_000);

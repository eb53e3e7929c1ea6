/**
 * The agent's own session to its PostgreSQL doubles as a crash detector: when the server goes away
 * under it (a killed postmaster, a terminated backend), `onConnectionLost` listeners hear of it at
 * once, so the HA loop can act without waiting out loop_wait (10 s in Patroni's default). Ending
 * the session itself (`close`, or a stop the agent asked for) is not a loss. Real PostgreSQL 15.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PostgresqlConfig } from '../../src/config/types.js';
import { Postgres } from '../../src/postgres/postgres.js';
import { createPgTestBase, killPostmaster, waitFor, type PgTestBase } from '../support/postgres.js';

let base: PgTestBase;
let cfg: PostgresqlConfig;
let pg: Postgres;
const lost: number[] = [];

beforeAll(async () => {
  base = createPgTestBase();
  ({ cfg, pg } = await base.primary('n1', { scope: 'lost' }));
  pg.onConnectionLost(() => lost.push(Date.now()));
}, 60_000);

afterAll(async () => {
  await pg?.close();
  await base?.cleanup();
}, 60_000);

it('is not told of the session the agent ends itself, nor of a stop it asked for', async () => {
  expect(await pg.status()).not.toBeNull();
  await pg.close();
  expect(await pg.status()).not.toBeNull();
  await pg.stop('fast', 30_000);
  await pg.start(30_000);
  expect(await pg.status()).not.toBeNull();
  // Status reads while the agent stops the server: a session opened meanwhile ends with the stop.
  const reads = Array.from({ length: 40 }, (_, i) =>
    new Promise((r) => setTimeout(r, i * 5)).then(() => pg.status().catch(() => null)),
  );
  await pg.stop('fast', 30_000);
  await Promise.all(reads);
  await pg.start(30_000);
  expect(await pg.status()).not.toBeNull();
  await new Promise((r) => setTimeout(r, 500));
  expect(lost).toEqual([]);
}, 60_000);

it('is not told when the server ends the idle session for idle_session_timeout', async () => {
  await pg.query("alter system set idle_session_timeout = '300ms'");
  await pg.query('select pg_reload_conf()');
  try {
    await pg.close(); // a new session, which takes the setting
    expect(await pg.status()).not.toBeNull();
    await new Promise((r) => setTimeout(r, 1200));
    expect(await pg.status()).not.toBeNull();
    expect(lost).toEqual([]);
  } finally {
    await pg.query('alter system reset idle_session_timeout');
    await pg.query('select pg_reload_conf()');
  }
}, 60_000);

it('is told at once when the postmaster is killed under an open session', async () => {
  expect(await pg.status()).not.toBeNull();
  const pid = (await pg.postmasterPid())!;
  const killedAt = Date.now();
  await killPostmaster(pid);
  await waitFor('the lost session to be reported', () => Promise.resolve(lost.length > 0), 10_000, 20);
  expect(lost).toHaveLength(1);
  console.log(`connection loss reported ${lost[0]! - killedAt} ms after the kill`);
  // The next status reads a fresh session once the server is back, and a loss of that one counts too.
  await pg.start(30_000);
  expect(await pg.status()).not.toBeNull();
  const [backend] = await pg.query<{ pid: number }>('select pg_backend_pid() as pid');
  const other = new Postgres(cfg, { name: 'n1', scope: 'lost' });
  try {
    await other.query('select pg_terminate_backend($1)', [backend!.pid]);
  } finally {
    await other.close();
  }
  await waitFor('the terminated session to be reported', () => Promise.resolve(lost.length > 1), 10_000, 20);
  expect(lost).toHaveLength(2);
}, 60_000);

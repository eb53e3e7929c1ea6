/**
 * synchronous_mode with real processes: the leader names one synchronous standby in
 * synchronous_standby_names and in the sync key; when the leader dies, only that standby may
 * take over, and every acknowledged commit is on it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({
    nodes: 3,
    ttl: 10,
    loopWait: 1,
    retryTimeout: 3,
    dcs: { synchronous_mode: true },
  });
  for (const n of c.nodes) c.startAgent(n.name);
});

afterAll(async () => {
  await c?.stop();
});

it('keeps one synchronous standby and fails over only to it, losing no acknowledged commit', async () => {
  const state = await c.waitHealthy(2, 90_000);
  const leader = state.leader!.name;
  const syncState = await waitFor(
    'a synchronous standby in the sync key',
    async () => {
      const s = await c.readCluster();
      return s.sync?.leader === leader && s.sync.sync_standby ? s : null;
    },
    30_000,
  );
  const standby = syncState.sync!.sync_standby!;
  expect(standby.split(',')).toHaveLength(1);
  const [ssn] = await c.query<{ synchronous_standby_names: string }>(
    leader,
    'SHOW synchronous_standby_names',
  );
  expect(ssn?.synchronous_standby_names).toBe(`FIRST 1 (${standby})`);
  const rep = await c.query<{ application_name: string; sync_state: string }>(
    leader,
    'SELECT application_name, sync_state FROM pg_stat_replication',
  );
  expect(rep.find((r) => r.application_name === standby)?.sync_state).toBe('sync');

  await c.query(leader, 'CREATE TABLE z (id int PRIMARY KEY)');
  let acked = 0;
  for (let i = 1; i <= 200; i++) {
    await c.query(leader, 'INSERT INTO z VALUES ($1)', [i]);
    acked = i;
  }
  await c.stopAgent(leader, 'SIGKILL');
  await c.killPostmaster(leader);
  const next = await waitFor(
    'a new leader',
    async () => {
      const s = await c.readCluster();
      return s.leader && s.leader.name !== leader ? s.leader.name : null;
    },
    30_000,
  );
  expect(next).toBe(standby);
  const rows = await c.query<{ n: string }>(next, 'SELECT count(*) AS n FROM z');
  expect(Number(rows[0]?.n)).toBe(acked);
});

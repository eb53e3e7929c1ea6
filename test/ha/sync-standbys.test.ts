/**
 * Which standbys the leader makes synchronous, with real processes: the sync key lists them
 * sorted and comma-separated (as Patroni writes it) with synchronous_node_count 2, and with
 * maximum_lag_on_syncnode a synchronous standby whose replay is stuck (synchronous_commit
 * remote_apply) is replaced by one that keeps up — also in maintenance mode, which must not keep
 * the new synchronous_commit from reaching PostgreSQL.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

let c: TestCluster;
let leader = '';

beforeAll(async () => {
  c = await startCluster({
    nodes: 3,
    ttl: 10,
    loopWait: 1,
    retryTimeout: 3,
    dcs: { synchronous_mode: true },
  });
  // pg1 leads; pg3 joins first and becomes the synchronous standby, then pg2 joins.
  c.startAgent('pg1');
  leader = (await c.waitHealthy(0, 60_000)).leader!.name;
  c.startAgent('pg3');
  await waitSyncKey('pg3', 60_000);
  c.startAgent('pg2');
  await c.waitHealthy(2, 90_000);
});

afterAll(async () => {
  await c?.stop();
});

async function patchConfig(body: unknown): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${c.node(leader).apiPort}/config`, {
    method: 'PATCH',
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
}

const syncStandby = async () => {
  const s = await c.readCluster();
  return s.sync?.leader === leader ? s.sync.sync_standby : null;
};

async function waitSyncKey(value: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(`sync_standby = ${value}`, async () => (await syncStandby()) === value, timeoutMs);
}

it('lists two synchronous standbys sorted, as Patroni writes the key', async () => {
  expect(leader).toBe('pg1');
  await patchConfig({ synchronous_node_count: 2 });
  await waitSyncKey('pg2,pg3');
  const [ssn] = await c.query<{ synchronous_standby_names: string }>(
    leader,
    'SHOW synchronous_standby_names',
  );
  expect(ssn?.synchronous_standby_names).toBe('FIRST 2 (pg2,pg3)');
  await patchConfig({ synchronous_node_count: 1 });
  await waitFor(
    'one synchronous standby',
    async () => (await syncStandby())?.split(',').length === 1,
    30_000,
  );
});

it('replaces a synchronous standby whose replay lags past maximum_lag_on_syncnode, in pause too', async () => {
  const stuck = (await syncStandby())!;
  const other = c.nodes.map((n) => n.name).find((n) => n !== leader && n !== stuck)!;
  await patchConfig({
    pause: true,
    maximum_lag_on_syncnode: 1_000_000,
    postgresql: { parameters: { synchronous_commit: 'remote_apply' } },
  });
  await waitFor(
    'synchronous_commit = remote_apply on the leader',
    async () => {
      const [r] = await c.query<{ synchronous_commit: string }>(leader, 'SHOW synchronous_commit');
      return r?.synchronous_commit === 'remote_apply';
    },
    15_000,
  );
  await c.query(stuck, 'SELECT pg_wal_replay_pause()');
  const client = new pg.Client(c.connection(leader));
  await client.connect();
  try {
    // Committed locally, so the load does not wait for the stuck standby; about 10 MB of WAL.
    await client.query('SET synchronous_commit TO local');
    await client.query('CREATE TABLE load (id int, pad text)');
    await client.query("INSERT INTO load SELECT g, repeat('x', 100) FROM generate_series(1, 60000) g");
  } finally {
    await client.end();
  }
  await waitSyncKey(other);
  await c.query(stuck, 'SELECT pg_wal_replay_resume()');
  // Caught up again, the former one stays asynchronous: the key keeps the standby it has.
  await waitFor(
    `${stuck} caught up`,
    async () => {
      const rows = await c.query<{ application_name: string; lag: string }>(
        leader,
        'SELECT application_name, pg_current_wal_lsn() - replay_lsn AS lag FROM pg_stat_replication',
      );
      return Number(rows.find((r) => r.application_name === stuck)?.lag ?? -1) === 0;
    },
    30_000,
  );
  await new Promise((r) => setTimeout(r, 3000));
  expect(await syncStandby()).toBe(other);
  const rep = await c.query<{ application_name: string; sync_state: string }>(
    leader,
    'SELECT application_name, sync_state FROM pg_stat_replication',
  );
  expect(Object.fromEntries(rep.map((r) => [r.application_name, r.sync_state]))).toEqual({
    [other]: 'sync',
    [stuck]: 'async',
  });
  await patchConfig({
    pause: null,
    maximum_lag_on_syncnode: -1,
    postgresql: { parameters: { synchronous_commit: 'on' } },
  });
});

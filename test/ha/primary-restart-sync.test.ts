/**
 * The leader's postmaster is killed in synchronous mode; its agent starts PostgreSQL again in
 * place. The synchronous standby lost its connection in the crash, and PostgreSQL retries streaming
 * only after wal_retrieve_retry_interval (5 s by default; 30 s here), so commits on the restarted
 * primary wait for a standby that is not there until the leader's loop names none. The agent looks
 * at once after the start instead of at its next cycle (loop_wait later: 20 s here; Patroni waits
 * for its next cycle too). Invariant kept: a commit acknowledged without the standby is one the
 * sync key no longer promises on it.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

const LOOP_WAIT = 20;

let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({
    nodes: 2,
    ttl: 10,
    loopWait: 1,
    retryTimeout: 3,
    dcs: { synchronous_mode: true },
    dcsParameters: { wal_retrieve_retry_interval: '30s' },
  });
  for (const n of c.nodes) c.startAgent(n.name);
});

afterAll(async () => {
  await c?.stop();
});

it('commits go on within seconds after the leader restarts its killed postmaster', async () => {
  await c.waitHealthy(1, 90_000);
  const { leader, standby } = await c.syncPair();
  await c.query(leader, 'CREATE TABLE restarted (id int PRIMARY KEY)');
  await c.query(leader, 'INSERT INTO restarted VALUES (1)');

  // A slow loop from now on: a commit left to the next cycle would wait LOOP_WAIT seconds.
  await c.patchConfig(leader, { ttl: 60, loop_wait: LOOP_WAIT, retry_timeout: 10 });
  await new Promise((r) => setTimeout(r, 2000));

  const pid = c.postmasterPid(leader)!;
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  const waitedMs = await waitFor(
    'a commit on the restarted leader',
    async () => {
      const client = new pg.Client({ ...c.connection(leader), query_timeout: 60_000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
      } catch {
        return null;
      }
      try {
        await client.query('INSERT INTO restarted VALUES (2) ON CONFLICT DO NOTHING');
        return Date.now() - killedAt;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    60_000,
  );
  const sync = (await c.readCluster()).sync;
  console.log(
    `commit on ${leader} acknowledged ${waitedMs} ms after its postmaster was killed (loop_wait ${LOOP_WAIT}); ` +
      `sync key then: ${JSON.stringify(sync)}`,
  );
  // A gross bound, far below loop_wait and the standby's retry interval.
  expect(waitedMs).toBeLessThan(8000);
  // Acknowledged without the standby, which has not streamed since the crash: the key must no
  // longer name it (a failover would otherwise pick a node that lacks the commit).
  const streaming = await c.query(
    leader,
    `SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`,
    [standby],
  );
  if (streaming.length === 0) expect(sync?.sync_standby ?? null).toBeNull();
});

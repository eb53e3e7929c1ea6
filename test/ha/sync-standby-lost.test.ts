/**
 * A synchronous standby that dies (kill -9 of its agent and postmaster) while the leader's loop
 * sleeps: commits on the leader wait for it until the leader names another standby. The leader
 * notices the standby's walsender is gone within a fraction of a second and looks at once, so
 * commits go on within seconds whatever loop_wait is (Patroni waits for its next cycle: up to
 * loop_wait, 10 s by default). The waiting commit had reached the next standby already, which
 * answers only when new WAL arrives: the leader writes one small record once it names it, so the
 * commit is released then, not at the standby's next status report (wal_receiver_status_interval,
 * set to a minute here). Then a synchronous standby that falls silent (its postgres processes and
 * its agent stopped with SIGSTOP: the connection stays open, as when a host freezes or loses its
 * cable, so PostgreSQL keeps it until wal_sender_timeout, a minute): the leader stops counting it
 * once it has answered nothing for 2 s while WAL waited and the other standby answered (5 s when no
 * other standby answers: the model's scenarios, src/ha/model/scenario.test.ts). Invariant kept: a commit acknowledged
 * after the change is on the new synchronous standby. Last, the watch's own session goes when
 * synchronous mode is switched off.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { signalPid } from '../../src/util/process.js';
import { childPids, waitFor } from '../support/postgres.js';

/** The loop's pace once the cluster is up: a commit that waited for the next cycle would wait this long. */
const LOOP_WAIT = 20;

let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({
    nodes: 3,
    ttl: 10,
    loopWait: 1,
    retryTimeout: 3,
    dcs: { synchronous_mode: true },
    // A quiet standby answers its primary only this often (PostgreSQL's default is 10 s): a
    // commit released only by such an answer would wait up to a minute.
    dcsParameters: { wal_receiver_status_interval: '60s' },
  });
  for (const n of c.nodes) c.startAgent(n.name);
});

afterAll(async () => {
  await c?.stop();
});

/** The leader, its synchronous standby (once the sync key names one) and the third node. */
async function syncRoles(): Promise<{ leader: string; standby: string; other: string }> {
  const { leader, standby } = await c.syncPair();
  return { leader, standby, other: c.nodes.map((n) => n.name).find((n) => n !== leader && n !== standby)! };
}

it('commits go on within seconds after the synchronous standby dies, on the next standby', async () => {
  await c.waitHealthy(2, 90_000);
  const { leader, standby, other } = await syncRoles();
  await c.query(leader, 'CREATE TABLE lost_standby (id int PRIMARY KEY)');
  await c.query(leader, 'INSERT INTO lost_standby VALUES (1)');

  // A slow loop from now on. The change of the `config` key wakes every agent once; after that
  // the leader's next cycle is LOOP_WAIT seconds away.
  await c.patchConfig(leader, { ttl: 30, loop_wait: LOOP_WAIT });
  await new Promise((r) => setTimeout(r, 2000));

  const client = new pg.Client({ ...c.connection(leader), query_timeout: 60_000 });
  await client.connect();
  await c.stopAgent(standby, 'SIGKILL');
  // The commit starts at the kill: it waits for the dead standby until the leader names another.
  const killedAt = Date.now();
  const killed = c.killPostmaster(standby);
  let waitedMs: number;
  try {
    await client.query('INSERT INTO lost_standby VALUES (2)');
    waitedMs = Date.now() - killedAt;
  } finally {
    await client.end();
    await killed;
  }
  console.log(
    `commit on ${leader} acknowledged ${waitedMs} ms after ${standby} was killed (loop_wait ${LOOP_WAIT})`,
  );
  // A gross bound, far below loop_wait and wal_receiver_status_interval.
  expect(waitedMs).toBeLessThan(5000);

  // The key names the new standby a step after the list does (sync.ts): a moment later.
  await waitFor(
    `the sync key to name ${other}`,
    async () => (await c.readCluster()).sync?.sync_standby === other,
    5000,
  );
  const [ssn] = await c.query<{ synchronous_standby_names: string }>(
    leader,
    'SHOW synchronous_standby_names',
  );
  expect(ssn?.synchronous_standby_names).toBe(`FIRST 1 (${other})`);
  // Acknowledged in synchronous mode: flushed on the new standby, so replayed there soon.
  await waitFor(
    'row 2 on the new synchronous standby',
    async () => (await c.query(other, 'SELECT 1 FROM lost_standby WHERE id = 2')).length === 1,
    10_000,
  );
});

it('a synchronous standby that falls silent is replaced after 2 s, not at wal_sender_timeout', async () => {
  // The standby killed above comes back; the other one is the synchronous standby now.
  const back = c.nodes.map((n) => n.name).find((n) => !c.node(n).agent)!;
  c.startAgent(back);
  await c.waitHealthy(2, 90_000);
  const { leader, standby, other } = await syncRoles();
  await waitFor(
    `${other} streaming from ${leader}`,
    async () =>
      (
        await c.query(
          leader,
          `SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`,
          [other],
        )
      ).length === 1,
    30_000,
  );

  const postmaster = c.postmasterPid(standby)!;
  const frozen = [c.node(standby).agent!.pid!, postmaster, ...childPids(postmaster)];
  const client = new pg.Client({ ...c.connection(leader), query_timeout: 90_000 });
  await client.connect();
  let waitedMs: number;
  try {
    for (const pid of frozen) signalPid(pid, 'SIGSTOP');
    const frozenAt = Date.now();
    await client.query('INSERT INTO lost_standby VALUES (3)');
    waitedMs = Date.now() - frozenAt;
  } finally {
    for (const pid of frozen) signalPid(pid, 'SIGCONT');
    await client.end();
  }
  console.log(`commit on ${leader} acknowledged ${waitedMs} ms after ${standby} froze`);
  // Far below wal_sender_timeout (60 s) and the frozen agent's lease (ttl 30); below the 5 s a
  // standby gets when no other one answers; not before the 2 s of silence.
  expect(waitedMs).toBeLessThan(4500);
  expect(waitedMs).toBeGreaterThanOrEqual(2000);
  // The key names the new standby a step after the list does (sync.ts): a moment later.
  await waitFor(
    `the sync key to name ${other}`,
    async () => (await c.readCluster()).sync?.sync_standby === other,
    5000,
  );
  await waitFor(
    'row 3 on the new synchronous standby',
    async () => (await c.query(other, 'SELECT 1 FROM lost_standby WHERE id = 3')).length === 1,
    10_000,
  );
});

it('leaving synchronous mode closes the watch session', async () => {
  const { leader } = await syncRoles();
  const watchSessions = async () =>
    (await c.query(leader, `SELECT 1 FROM pg_stat_activity WHERE application_name = 'pgha standby watch'`))
      .length;
  await waitFor('the standby watch session', async () => (await watchSessions()) === 1, 10_000);
  await c.patchConfig(leader, { synchronous_mode: false });
  // Nothing to watch: no idle session left behind on the primary.
  await waitFor('no standby watch session', async () => (await watchSessions()) === 0, 10_000);
});

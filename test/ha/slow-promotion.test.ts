/**
 * A promotion that takes longer than ttl must not be cut short by the leader's own fence: the new
 * leader keeps its lease while PostgreSQL finishes recovery, as Patroni renews the key from its HA
 * loop while the promotion runs in the background.
 *
 * The slow promotion is made deterministic by stopping (SIGSTOP) the winning replica's startup
 * process, the one that replays WAL and carries out a promotion: `pg_promote()` then only signals
 * it, and `pg_is_in_recovery()` stays true until the process is continued (SIGCONT). The test
 * checks that this holds (the server stays in recovery while held). Which replica wins is made
 * deterministic too: pg3 loses its replication connection before the last rows, so pg2 is ahead.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { signalPid } from '../../src/util/process.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import {
  auxiliaryPid,
  cutReplication,
  describeLeaderSamples,
  isPostgresPid,
  logLines,
  processState,
  sleep,
  tryQuery,
  watchLeader,
} from '../support/ha-probes.js';

const TTL = 10;
/** How long the promotion is held: past the point where a lease renewed only by completed HA cycles runs out. */
const HOLD_MS = 2 * TTL * 1000;
let c: TestCluster;
let stoppedStartup: number | null = null;

beforeAll(async () => {
  c = await startCluster({ nodes: 3, ttl: TTL, loopWait: 1, retryTimeout: 3 });
  // pg1 bootstraps alone, so the roles below are known in advance.
  c.startAgent('pg1');
  await waitFor('pg1 to lead', async () => (await c.readCluster()).leader?.name === 'pg1', 60_000);
  c.startAgent('pg2');
  c.startAgent('pg3');
  await c.waitHealthy(2, 90_000);
});

afterAll(async () => {
  if (stoppedStartup !== null) signalPid(stoppedStartup, 'SIGCONT');
  await c?.stop();
});

async function rows(name: string): Promise<number> {
  return Number((await c.query<{ n: string }>(name, 'SELECT count(*) AS n FROM t'))[0]?.n);
}

it('a new leader whose promotion takes 2 × ttl keeps the leader key and its PostgreSQL, then takes writes', async () => {
  await c.query('pg1', 'CREATE TABLE t (id serial PRIMARY KEY, v text)');
  for (const n of ['pg2', 'pg3']) await waitFor(`table t on ${n}`, async () => (await rows(n)) === 0, 20_000);
  await cutReplication(c, 'pg1', 'pg3');
  await c.query('pg1', "INSERT INTO t (v) SELECT 'row ' || g FROM generate_series(1, 100) g");
  await waitFor('the rows on pg2', async () => (await rows('pg2')) === 100, 20_000);

  const postmaster = c.postmasterPid('pg2')!;
  const startup = auxiliaryPid(postmaster, 'startup');
  expect(startup, "pg2's startup process").not.toBeNull();
  process.kill(startup!, 'SIGSTOP');
  stoppedStartup = startup;

  const since = Date.now();
  const watch = watchLeader(c);
  const problems: string[] = [];
  let tookKeyAt = 0;
  try {
    try {
      await c.stopAgent('pg1', 'SIGKILL');
      await c.killPostmaster('pg1');
      await waitFor(
        'pg2 to take the leader key',
        async () => {
          const leader = (await c.readCluster()).leader?.name;
          if (leader === 'pg3') throw new Error('pg3 took the leader key');
          return leader === 'pg2';
        },
        3 * TTL * 1000,
      );
      tookKeyAt = Date.now();

      // Promotion is held: the key must stay with pg2 and its PostgreSQL must stay up the whole time.
      while (Date.now() - tookKeyAt < HOLD_MS) {
        const at = `${((Date.now() - since) / 1000).toFixed(1)}s`;
        if (c.postmasterPid('pg2') !== postmaster || !isPostgresPid(postmaster))
          problems.push(`${at}: pg2's postmaster ${postmaster} is gone`);
        const r = await c
          .query<{ r: boolean }>('pg2', 'SELECT pg_is_in_recovery() AS r')
          .catch((err: Error) => err);
        if (r instanceof Error) problems.push(`${at}: pg2 does not answer: ${r.message}`);
        else if (r[0]?.r !== true)
          problems.push(`${at}: pg2 left recovery although its startup process is stopped`);
        if (processState(startup!) !== 'T')
          problems.push(`${at}: pg2's startup process is no longer stopped`);
        if (problems.length > 0) break;
        await sleep(500);
      }
    } finally {
      signalPid(startup!, 'SIGCONT');
      stoppedStartup = null;
    }
    if (problems.length === 0)
      await waitFor(
        'pg2 to take writes once its promotion can finish',
        async () => (await tryQuery(c, 'pg2', "INSERT INTO t (v) VALUES ('promoted')")) === null,
        3 * TTL * 1000,
      ).catch((err: Error) => problems.push(err.message));
  } finally {
    await watch.stop();
  }
  const afterTakeover = watch.samples.filter((s) => s.at >= tookKeyAt);
  const context =
    `leader key since pg1 died: ${describeLeaderSamples(watch.samples, since)}\npg2's log:\n` +
    logLines(c.node('pg2').logPath, /promot|renew|lease|stopping|leader key/i);
  expect(problems, context).toEqual([]);
  expect(afterTakeover.length).toBeGreaterThan(0);
  expect(
    afterTakeover.filter((s) => s.leader !== 'pg2'),
    `every reading of the leader key after pg2 took it; ${context}`,
  ).toEqual([]);
  expect(watch.holders().has('pg3'), context).toBe(false);
  expect(c.postmasterPid('pg2')).toBe(postmaster);
  const ro = await c.query<{ r: boolean }>('pg2', 'SELECT pg_is_in_recovery() AS r');
  expect(ro[0]?.r).toBe(false);
});

/**
 * `tags: {failover_priority: 0}` means "never promote", as in Patroni, which treats a priority of
 * zero or less like `nofailover` (when `nofailover` itself is not set). Three nodes: pg1 leads
 * (started first), pg2 has failover_priority 1, pg3 has failover_priority 0 and no nofailover tag.
 * pg3 must never take the leader key: not when it is further ahead than pg2, and not when it is the
 * only member left alive (a second cluster, where pg2 is not running and pg1 crashes).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../../src/util/process.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import {
  cutReplication,
  describeLeaderSamples,
  logLines,
  sleep,
  tryQuery,
  watchLeader,
} from '../support/ha-probes.js';

const TTL = 10;

/**
 * pg1 bootstraps alone and leads; then the `replicas` join (pg2 with failover_priority 1, pg3 with
 * failover_priority 0). Table `t` exists on every running member when this returns.
 */
async function startTagged(replicas: string[]): Promise<TestCluster> {
  const c = await startCluster({
    nodes: 3,
    ttl: TTL,
    loopWait: 1,
    retryTimeout: 3,
    edit: (cfg, name) => {
      const tags = cfg.tags as Record<string, unknown>;
      // Patroni lets an explicit nofailover win over failover_priority: leave it out.
      if (name === 'pg3') {
        delete tags.nofailover;
        tags.failover_priority = 0;
      }
      if (name === 'pg2') tags.failover_priority = 1;
    },
  });
  c.startAgent('pg1');
  await waitFor(
    'pg1 to lead',
    async () => {
      const s = await c.readCluster();
      return s.leader?.name === 'pg1' && s.members.find((m) => m.name === 'pg1')?.data.state === 'running';
    },
    60_000,
  );
  for (const r of replicas) c.startAgent(r);
  await c.waitHealthy(replicas.length, 90_000);
  await c.query('pg1', 'CREATE TABLE t (id serial PRIMARY KEY, v text)');
  for (const r of replicas) await waitFor(`table t on ${r}`, async () => (await rows(c, r)) === 0, 20_000);
  return c;
}

async function rows(c: TestCluster, name: string): Promise<number> {
  return Number((await c.query<{ n: string }>(name, 'SELECT count(*) AS n FROM t'))[0]?.n);
}

/** Kills a node as a machine crash would: its agent, then its postmaster, both with SIGKILL. */
async function crash(c: TestCluster, name: string): Promise<void> {
  await c.stopAgent(name, 'SIGKILL');
  await c.killPostmaster(name);
}

describe('the leader dies while the failover_priority 0 replica is the most advanced', () => {
  let c: TestCluster;

  beforeAll(async () => {
    c = await startTagged(['pg2', 'pg3']);
  });

  afterAll(async () => {
    await c?.stop();
  });

  it('promotes the priority-1 replica, never the priority-0 one', async () => {
    // pg2 loses its replication connection, so pg3 alone receives the last rows: pg3 ends up ahead.
    await cutReplication(c, 'pg1', 'pg2');
    await c.query('pg1', "INSERT INTO t (v) SELECT 'row ' || g FROM generate_series(1, 200) g");
    await waitFor('the rows on pg3', async () => (await rows(c, 'pg3')) === 200, 20_000);
    expect(await rows(c, 'pg2')).toBe(0);
    const since = Date.now();
    const watch = watchLeader(c);
    let leader: string;
    try {
      await crash(c, 'pg1');
      leader = await waitFor(
        'a new leader that takes writes',
        async () => {
          const name = (await c.readCluster()).leader?.name;
          if (!name || name === 'pg1') return null;
          return (await tryQuery(c, name, "INSERT INTO t (v) VALUES ('new leader')")) === null ? name : null;
        },
        3 * TTL * 1000,
      );
      // A few more cycles: pg3 must not take the key later either.
      await sleep(3000);
    } finally {
      await watch.stop();
    }
    expect(
      watch.holders().has('pg3'),
      `leader key since the crash: ${describeLeaderSamples(watch.samples, since)}\npg3's log:\n` +
        logLines(c.node('pg3').logPath, /leader key|promot|race|nofailover|priority/i),
    ).toBe(false);
    expect(leader).toBe('pg2');
    expect((await c.readCluster()).leader?.name).toBe('pg2');
  });
});

describe('only the failover_priority 0 replica is left alive', () => {
  let c: TestCluster;

  beforeAll(async () => {
    // pg2 is not running in this case: the leader's only replica is pg3.
    c = await startTagged(['pg3']);
  });

  afterAll(async () => {
    await c?.stop();
  });

  it('no member takes the leader key for 2 × ttl, and pg3 stays a replica', async () => {
    const since = Date.now();
    const watch = watchLeader(c);
    try {
      await crash(c, 'pg1');
      await sleep(2 * TTL * 1000);
    } finally {
      await watch.stop();
    }
    const holders = [...watch.holders()].filter((n) => n !== 'pg1');
    expect(
      holders,
      `leader key since pg1 died: ${describeLeaderSamples(watch.samples, since)}\npg3's log:\n` +
        logLines(c.node('pg3').logPath, /leader key|promot|race|nofailover|priority/i),
    ).toEqual([]);
    expect(isAlive(c.node('pg3').agent!)).toBe(true);
    const ro = await c.query<{ r: boolean }>('pg3', 'SELECT pg_is_in_recovery() AS r');
    expect(ro[0]?.r, 'pg3 still in recovery').toBe(true);
  });
});

/**
 * A leader whose PostgreSQL went down must not hold the cluster hostage. As in Patroni: with
 * `primary_start_timeout: 0` a crashed leader fails over at once, without trying a restart in
 * place, when another member can take over; and with a restart in place allowed, a failed start
 * releases the leader key so a healthy replica leads (Patroni's `post_recover`).
 *
 * One two-node cluster: it bootstraps with `primary_start_timeout: 0` in bootstrap.dcs for the
 * first case; the second case sets it back to Patroni's default (300) over `PATCH /config`.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { isAlive } from '../../src/util/process.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import { describeLeaderSamples, logLines, sleep, tryQuery, watchLeader } from '../support/ha-probes.js';
import { isStreamingMember } from '../../src/dcs/types.js';

const TTL = 10;
let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({
    nodes: 2,
    ttl: TTL,
    loopWait: 1,
    retryTimeout: 3,
    edit: (cfg) => {
      (cfg.bootstrap as { dcs: Record<string, unknown> }).dcs.primary_start_timeout = 0;
    },
  });
  for (const n of c.nodes) c.startAgent(n.name);
  const state = await c.waitHealthy(1, 90_000);
  const leader = state.leader!.name;
  const replica = c.nodes.find((n) => n.name !== leader)!.name;
  await c.query(leader, 'CREATE TABLE t (id serial PRIMARY KEY, v text)');
  await waitFor(
    `table t on ${replica}`,
    async () => (await c.query(replica, "SELECT to_regclass('t') AS t"))[0]?.t !== null,
    20_000,
  );
});

afterAll(async () => {
  await c?.stop();
});

/**
 * Waits until a member other than `old` holds the leader key and takes an INSERT; returns its
 * name. On timeout the error shows the leader key's holders since `since` and `old`'s log.
 */
async function otherLeaderWritable(old: string, since: number, logPattern: RegExp): Promise<string> {
  const watch = watchLeader(c);
  try {
    return await waitFor(
      `a member other than ${old} to hold the leader key and take writes`,
      async () => {
        const name = (await c.readCluster()).leader?.name;
        if (!name || name === old) return null;
        return (await tryQuery(c, name, "INSERT INTO t (v) VALUES ('new leader')")) === null ? name : null;
      },
      3 * TTL * 1000,
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}\nleader key since the crash: ${describeLeaderSamples(watch.samples, since)}\n` +
        `${old}'s log:\n${logLines(c.node(old).logPath, logPattern)}`,
      { cause: err },
    );
  } finally {
    await watch.stop();
  }
}

it('with primary_start_timeout 0, a crashed leader fails over at once and rejoins as a replica', async () => {
  const leader = (await c.waitHealthy(1, 60_000)).leader!.name;
  const crashedAt = Date.now();
  // Only the postmaster dies: the agent keeps running and must hand over instead of restarting it.
  await c.killPostmaster(leader);
  const newLeader = await otherLeaderWritable(leader, crashedAt, /in place|leader lock|leader key|promot/i);
  expect(isAlive(c.node(leader).agent!)).toBe(true);

  await waitFor(
    `${leader} streaming from ${newLeader}`,
    async () => {
      const s = await c.readCluster();
      const m = s.members.find((x) => x.name === leader);
      return s.leader?.name === newLeader && m?.data.role === 'replica' && isStreamingMember(m.data);
    },
    90_000,
  );
  const ro = await c.query<{ r: boolean }>(leader, 'SELECT pg_is_in_recovery() AS r');
  expect(ro[0]?.r).toBe(true);
});

it('a leader whose PostgreSQL cannot start releases the leader key, and the healthy replica leads', async () => {
  const leader = (await c.waitHealthy(1, 90_000)).leader!.name;
  // Restarting a crashed primary in place is allowed again (Patroni's default timeout).
  const api = c.node(leader).apiPort;
  const res = await fetch(`http://127.0.0.1:${api}/config`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ primary_start_timeout: 300 }),
  });
  expect(res.status, await res.text()).toBe(200);
  expect((await c.readCluster()).config?.value.primary_start_timeout).toBe(300);
  await sleep(3000); // a few loops: every agent runs with the new value

  // An invalid setting makes every start fail at once (FATAL: invalid value for parameter).
  appendFileSync(join(c.node(leader).dataDir, 'postgresql.auto.conf'), "work_mem = 'nonsense'\n");
  const crashedAt = Date.now();
  await c.killPostmaster(leader);
  // Patroni: one failed start (a few seconds), the key deleted, the replica wins the race.
  const newLeader = await otherLeaderWritable(
    leader,
    crashedAt,
    /start_primary|FATAL|leader key|leader lock/i,
  );
  const state = await c.readCluster();
  expect(state.leader?.name).toBe(newLeader);
  const ro = await c.query<{ r: boolean }>(newLeader, 'SELECT pg_is_in_recovery() AS r');
  expect(ro[0]?.r).toBe(false);
  // The old leader's agent keeps running (it keeps trying to start its PostgreSQL as a replica).
  expect(isAlive(c.node(leader).agent!)).toBe(true);
});

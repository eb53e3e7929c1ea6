/**
 * Quorum commit (`synchronous_mode: quorum`) with real processes, as Patroni 4 runs it: the leader
 * lists every streaming member as `ANY 1 (...)` and keeps the `sync` key in Patroni's format
 * (quorum = voters − synchronous nodes). When the leader dies, a member must see enough voters
 * whose PostgreSQL runs to be sure it holds every acknowledged commit: a voter whose server is
 * down is not a vote, so the last replica standing waits instead of promoting with commits only
 * that voter may hold.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

const TTL = 6;
let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({
    nodes: 3,
    ttl: TTL,
    loopWait: 1,
    retryTimeout: 2,
    dcs: { synchronous_mode: 'quorum' },
  });
  for (const n of c.nodes) c.startAgent(n.name);
});

afterAll(async () => {
  await c?.stop();
});

it('keeps the sync key in Patroni 4 format and waits for a voter whose PostgreSQL is down', async () => {
  const state = await c.waitHealthy(2, 90_000);
  const leader = state.leader!.name;
  const others = c.nodes.map((n) => n.name).filter((n) => n !== leader);
  const voters = [...others].sort().join(',');
  await waitFor(
    'the sync key listing both replicas with quorum 1',
    async () => {
      const s = (await c.readCluster()).sync;
      return s?.leader === leader && s.sync_standby === voters && s.quorum === 1 ? s : null;
    },
    30_000,
  );
  // The key and synchronous_standby_names change one after the other (each intermediate state keeps
  // |voters ∪ sync| ≤ quorum + numsync, src/ha/quorum.test.ts): the setting follows within a cycle.
  await waitFor(
    `synchronous_standby_names = ANY 1 (${voters})`,
    async () => {
      const [ssn] = await c.query<{ s: string }>(leader, 'SELECT current_setting($1) AS s', [
        'synchronous_standby_names',
      ]);
      return ssn?.s === `ANY 1 (${voters})`;
    },
    15_000,
  );
  await c.query(leader, 'CREATE TABLE q (id int PRIMARY KEY)');
  for (let i = 1; i <= 50; i++) await c.query(leader, 'INSERT INTO q VALUES ($1)', [i]);

  // One voter's server stops and cannot start again; the leader dies before it can change the
  // key. The other voter alone cannot tell it holds every acknowledged commit.
  const [down, last] = others as [string, string];
  appendFileSync(join(c.node(down).dataDir, 'postgresql.auto.conf'), "\nwork_mem = 'nonsense'\n");
  await c.stopAgent(leader, 'SIGKILL');
  await Promise.all([c.killPostmaster(leader), c.killPostmaster(down)]);
  const held: string[] = [];
  const until = Date.now() + 3 * TTL * 1000;
  while (Date.now() < until) {
    const name = (await c.readCluster()).leader?.name;
    if (name && name !== leader) held.push(name);
    await new Promise((r) => setTimeout(r, 250));
  }
  expect(held).toEqual([]);
  const [rec] = await c.query<{ r: boolean }>(last, 'SELECT pg_is_in_recovery() AS r');
  expect(rec?.r).toBe(true);

  // The voter comes back: now a member sees a quorum, one is promoted, nothing acknowledged is lost.
  const auto = join(c.node(down).dataDir, 'postgresql.auto.conf');
  writeFileSync(auto, readFileSync(auto, 'utf8').replace("work_mem = 'nonsense'", ''));
  const newLeader = await waitFor(
    'a new leader once the voter is back',
    async () => {
      const name = (await c.readCluster()).leader?.name;
      if (!name || name === leader) return null;
      const [r] = await c.query<{ r: boolean }>(name, 'SELECT pg_is_in_recovery() AS r').catch(() => []);
      return r?.r === false ? name : null;
    },
    60_000,
  );
  const [n] = await c.query<{ n: string }>(newLeader, 'SELECT count(*)::text AS n FROM q');
  expect(n?.n).toBe('50');
});

/**
 * failsafe_mode and permanent logical slots with real processes: while no agent can reach etcd, the
 * leader keeps running (every member confirms it over POST /failsafe) and a consumer keeps reading
 * its logical slot; the replica's copy of that slot must keep following the consumer's confirmed
 * position, so that a failover after the outage would not hand the consumer changes it already read.
 * The leader sends the positions with POST /failsafe; the replica advances its copy no further than
 * what it has replayed now (not when it last heard from etcd).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

const TTL = 10;
let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({
    nodes: 2,
    ttl: TTL,
    loopWait: 1,
    retryTimeout: 3,
    proxyEtcd: true,
    edit: (cfg) => {
      const dcs = (cfg.bootstrap as { dcs: Record<string, unknown> }).dcs;
      dcs.failsafe_mode = true;
      dcs.slots = { cdc: { type: 'logical', database: 'postgres', plugin: 'test_decoding' } };
      const params = (dcs.postgresql as { parameters: Record<string, unknown> }).parameters;
      params.wal_level = 'logical';
    },
  });
  for (const n of c.nodes) c.startAgent(n.name);
});

afterAll(async () => {
  await c?.stop();
});

async function confirmed(name: string): Promise<string | null> {
  const rows = await c
    .query<{ lsn: string | null }>(
      name,
      "SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'cdc'",
    )
    .catch(() => []);
  return rows[0]?.lsn ?? null;
}

/** A consumer reading every change and confirming it; returns how many rows of t it saw. */
async function consume(name: string): Promise<number> {
  const rows = await c.query<{ data: string }>(
    name,
    "SELECT data FROM pg_logical_slot_get_changes('cdc', NULL, NULL)",
  );
  return rows.filter((r) => r.data.startsWith('table public.t: INSERT')).length;
}

it("keeps the replica's copy of a logical slot at the consumer's position while etcd is down", async () => {
  const state = await c.waitHealthy(1, 120_000);
  const leader = state.leader!.name;
  const replica = c.nodes.find((n) => n.name !== leader)!.name;
  await waitFor('the leader to create cdc', async () => (await confirmed(leader)) !== null, 30_000);
  await c.query(leader, 'CREATE TABLE t (id int PRIMARY KEY)');
  await c.query(leader, 'INSERT INTO t SELECT generate_series(1, 20)');
  // Move the slot past a snapshot the replica's WAL holds, so that its copy is usable (see
  // logical-slots.test.ts), and wait for the copy to follow.
  await c.query(leader, 'CHECKPOINT');
  expect(await consume(leader)).toBe(20);
  await c.query(leader, 'CHECKPOINT');
  await consume(leader);
  const before = await confirmed(leader);
  await waitFor(
    `${replica}'s copy of cdc at ${before}`,
    async () => (await confirmed(replica)) === before,
    90_000,
  );
  await waitFor(
    'the failsafe key listing both members',
    async () => Object.keys((await c.readCluster()).failsafe ?? {}).length === 2,
    30_000,
  );

  for (const n of c.nodes) n.proxy!.suspend();
  try {
    // Past ttl nobody can have renewed anything in etcd: the leader runs on its members' word.
    await waitFor(
      `${leader} in failsafe mode`,
      async () => {
        const res = await fetch(`http://127.0.0.1:${c.node(leader).apiPort}/primary`, {
          signal: AbortSignal.timeout(5_000),
        }).catch(() => null);
        const body = res ? ((await res.json()) as Record<string, unknown>) : {};
        return res?.status === 200 && body.failsafe_mode_is_active === true;
      },
      (TTL + 15) * 1000,
    );
    await waitFor(
      'the leader key to expire in etcd',
      async () => (await c.readCluster()).leader === null,
      (TTL + 5) * 1000,
    );
    await c.query(leader, 'INSERT INTO t SELECT generate_series(21, 60)');
    expect(await consume(leader)).toBe(40);
    const during = await confirmed(leader);
    expect(during).not.toBe(before);
    await waitFor(
      `${replica}'s copy of cdc to follow the consumer to ${during} while etcd is down`,
      async () => (await confirmed(replica)) === during,
      20_000,
    );
  } finally {
    for (const n of c.nodes) n.proxy!.resume();
  }
});

/**
 * Permanent logical slots across failovers, with real etcd, agents and PostgreSQL: the leader
 * creates the slot the dynamic configuration names, replicas keep copies at the position the leader
 * publishes, and a consumer that confirmed changes on the old primary reads on the new one exactly
 * what it had not confirmed. The crashed former primary, rewound (pg_rewind removes every slot),
 * gets a fresh copy. A primary stopped cleanly and back as a replica loses the logical slot that is
 * neither permanent nor in ignore_slots and keeps the ignored one. Last, a replica that leaves keeps
 * its slot on the leader (and the other replica) for member_slots_ttl, and no longer.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseLsn } from '../../src/postgres/lsn.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import { isPrimaryRole } from '../../src/ha/rules.js';

const TTL = 8;
const MEMBER_SLOTS_TTL = 15;
let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({
    nodes: 3,
    ttl: TTL,
    loopWait: 1,
    retryTimeout: 3,
    edit: (cfg) => {
      const dcs = (cfg.bootstrap as { dcs: Record<string, unknown> }).dcs;
      dcs.slots = { cdc: { type: 'logical', database: 'postgres', plugin: 'test_decoding' } };
      dcs.ignore_slots = [{ name: 'kept', type: 'logical' }];
      dcs.member_slots_ttl = MEMBER_SLOTS_TTL;
      const params = (dcs.postgresql as { parameters: Record<string, unknown> }).parameters;
      params.wal_level = 'logical';
    },
  });
  for (const n of c.nodes) c.startAgent(n.name);
});

afterAll(async () => {
  await c?.stop();
});

type Slot = { slot_name: string; slot_type: string; confirmed_flush_lsn: string | null };

async function slots(name: string): Promise<Slot[]> {
  return c.query<Slot>(
    name,
    'SELECT slot_name::text, slot_type, confirmed_flush_lsn::text FROM pg_replication_slots ORDER BY 1',
  );
}

async function confirmed(name: string, slot: string): Promise<string | null> {
  const s = (await slots(name).catch(() => [])).find((x) => x.slot_name === slot);
  return s?.confirmed_flush_lsn ?? null;
}

/** Consumes the slot with SQL (as a consumer confirming as it goes) and returns the ids inserted into t. */
async function consume(name: string): Promise<number[]> {
  const rows = await c.query<{ data: string }>(
    name,
    "SELECT data FROM pg_logical_slot_get_changes('cdc', NULL, NULL)",
  );
  return rows.flatMap((r) => {
    const m = /^table public\.t: INSERT: id\[integer\]:(\d+)/.exec(r.data);
    return m ? [Number(m[1])] : [];
  });
}

/**
 * The consumer reads on `leader` after a checkpoint (a snapshot decoding can start from) until every
 * replica's copy of cdc is at the position it confirmed and the status key publishes it; how soon
 * the copies are usable depends on when the slot moves past the replicas' oldest WAL, so it may take
 * a few rounds. Returns the ids of t the consumer read meanwhile.
 */
async function settleCopies(leader: string, replicas: string[]): Promise<number[]> {
  const read: number[] = [];
  const deadline = Date.now() + 120_000;
  for (;;) {
    await c.query(leader, 'CHECKPOINT');
    read.push(...(await consume(leader)));
    const target = await confirmed(leader, 'cdc');
    const settled = await waitFor(
      `the copies of cdc on ${replicas.join(', ')} and the status key at ${target}`,
      async () => {
        if ((await c.readCluster()).status?.slots?.cdc !== parseLsn(target!)) return false;
        for (const r of replicas) if ((await confirmed(r, 'cdc')) !== target) return false;
        return true;
      },
      15_000,
    ).catch((err: unknown) => {
      if (Date.now() > deadline) throw err;
      return false;
    });
    if (settled) return read;
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

let oldLeader = '';
let newLeader = '';

it('a consumer of a permanent logical slot carries on on the new leader after a failover, losing and repeating nothing it confirmed', async () => {
  const state = await c.waitHealthy(2, 120_000);
  oldLeader = state.leader!.name;
  const replicas = c.nodes.map((n) => n.name).filter((n) => n !== oldLeader);
  await waitFor(
    `${oldLeader} to create the permanent slot cdc`,
    async () => (await confirmed(oldLeader, 'cdc')) !== null,
    30_000,
  );
  await c.query(oldLeader, 'CREATE TABLE t (id int PRIMARY KEY)');
  await c.query(oldLeader, 'INSERT INTO t SELECT generate_series(1, 50)');
  // The slot was made before the replicas cloned, so decoding it starts in WAL they never had: a
  // copy is useful only once the consumer has moved it past a snapshot they have. A checkpoint
  // logs one (a busy primary logs one every 15 s); the agents copy the slot once it has moved.
  expect(await settleCopies(oldLeader, replicas)).toEqual(range(1, 50));
  // Changes the consumer has not read yet.
  await c.query(oldLeader, 'INSERT INTO t SELECT generate_series(51, 80)');
  await new Promise((r) => setTimeout(r, 2000));
  const target = await confirmed(oldLeader, 'cdc');
  for (const r of replicas) expect(await confirmed(r, 'cdc')).toBe(target);
  expect((await slots(oldLeader)).map((s) => s.slot_name)).toEqual(['cdc', ...replicas].sort());

  // Failover: the leader's agent and PostgreSQL die at once.
  await c.stopAgent(oldLeader, 'SIGKILL');
  await c.killPostmaster(oldLeader);
  const after = await waitFor(
    'another member to lead',
    async () => {
      const s = await c.readCluster();
      const l = s.leader?.name;
      const m = s.members.find((x) => x.name === l);
      return l &&
        l !== oldLeader &&
        m?.data.state === 'running' &&
        ['primary', 'master'].includes(String(m.data.role))
        ? l
        : null;
    },
    60_000,
  );
  newLeader = after;
  await waitFor(
    `${newLeader} to accept writes`,
    async () => {
      const r = await c.query<{ r: boolean }>(newLeader, 'SELECT pg_is_in_recovery() AS r').catch(() => null);
      return r?.[0]?.r === false;
    },
    30_000,
  );
  expect(await consume(newLeader)).toEqual(range(51, 80));
  await c.query(newLeader, 'INSERT INTO t SELECT generate_series(81, 90)');
  expect(await consume(newLeader)).toEqual(range(81, 90));
}, 400_000); // the sum of its waits' bounds: a slow machine may use much of each

it('the crashed former primary rejoins, rewound, with a fresh copy of cdc', async () => {
  c.startAgent(oldLeader);
  const target = await confirmed(newLeader, 'cdc');
  await waitFor(
    `${oldLeader} to rejoin as a replica with cdc at ${target}`,
    async () => (await confirmed(oldLeader, 'cdc')) === target,
    60_000,
  );
  await c.waitHealthy(2, 60_000);
}, 150_000);

it('a primary stopped and back as a replica drops the logical slot nobody configured and keeps the ignored one', async () => {
  // A logical slot nobody configured, and one ignore_slots names: the primary keeps both.
  await c.query(newLeader, "SELECT pg_create_logical_replication_slot('stray', 'test_decoding')");
  await c.query(newLeader, "SELECT pg_create_logical_replication_slot('kept', 'test_decoding')");
  // The rewound former primary's WAL begins after cdc's decoding start: move the slot past a
  // snapshot it has (as in the first test) so that its copy is usable.
  const others = c.nodes.map((n) => n.name).filter((n) => n !== newLeader);
  expect(await settleCopies(newLeader, others)).toEqual([]);
  await c.query(newLeader, 'INSERT INTO t SELECT generate_series(91, 100)');
  await new Promise((r) => setTimeout(r, 2000));
  expect((await slots(newLeader)).map((s) => s.slot_name)).toEqual(expect.arrayContaining(['kept', 'stray']));

  const stopped = newLeader;
  await c.stopAgent(stopped);
  newLeader = await waitFor(
    'another member to lead',
    async () => {
      const s = await c.readCluster();
      const l = s.leader?.name;
      const m = s.members.find((x) => x.name === l);
      return l && l !== stopped && m?.data.state === 'running' && isPrimaryRole(m.data.role) ? l : null;
    },
    60_000,
  );
  await waitFor(
    `${newLeader} to accept writes`,
    async () => {
      const r = await c.query<{ r: boolean }>(newLeader, 'SELECT pg_is_in_recovery() AS r').catch(() => null);
      return r?.[0]?.r === false;
    },
    30_000,
  );
  // The consumer carries on here too.
  expect(await consume(newLeader)).toEqual(range(91, 100));

  c.startAgent(stopped);
  await waitFor(
    `${stopped} to rejoin as a replica without stray, with kept and cdc`,
    async () => {
      const s = await slots(stopped).catch(() => null);
      const names = s?.map((x) => x.slot_name) ?? [];
      const r = await c.query<{ r: boolean }>(stopped, 'SELECT pg_is_in_recovery() AS r').catch(() => null);
      return (
        r?.[0]?.r === true && names.includes('kept') && names.includes('cdc') && !names.includes('stray')
      );
    },
    60_000,
  );
  await c.waitHealthy(2, 60_000);
});

it('the leader keeps the slot of a member that left for member_slots_ttl, then drops it', async () => {
  const [leaving, staying] = c.nodes.map((n) => n.name).filter((n) => n !== newLeader) as [string, string];
  await c.stopAgent(leaving);
  const gone = Date.now();
  await waitFor(
    `${leaving}'s member key to go`,
    async () => !(await c.readCluster()).members.some((m) => m.name === leaving),
    30_000,
  );
  expect((await c.readCluster()).status?.retain_slots).toContain(leaving);
  // Well inside the retention it is still there, on the leader and on the other replica.
  await new Promise((r) => setTimeout(r, Math.max(0, gone + (MEMBER_SLOTS_TTL * 1000) / 2 - Date.now())));
  expect((await slots(newLeader)).map((s) => s.slot_name)).toContain(leaving);
  expect((await slots(staying)).map((s) => s.slot_name)).toContain(leaving);
  await waitFor(
    `${leaving}'s slot to be dropped on ${newLeader} and ${staying}`,
    async () =>
      !(await slots(newLeader)).some((s) => s.slot_name === leaving) &&
      !(await slots(staying)).some((s) => s.slot_name === leaving),
    MEMBER_SLOTS_TTL * 1000 + 20_000,
  );
  expect(Date.now() - gone).toBeGreaterThanOrEqual(MEMBER_SLOTS_TTL * 1000 - 2000);
  expect((await c.readCluster()).status?.retain_slots ?? []).not.toContain(leaving);
});

/**
 * Replication slots on a former primary: as leader it kept one physical slot per member; after a
 * switchover it is a replica, and slots it no longer serves must not stay behind with their
 * restart_lsn frozen at the switchover, or its pg_wal grows without bound. As Patroni, a replica
 * drops member slots it does not serve, or advances them with the leader's positions.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { formatLsn, parseLsn } from '../../src/postgres/lsn.js';
import { CLI, startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import { isStreamingMember } from '../../src/dcs/types.js';

const TTL = 8;
/** How far behind the leader's current position a kept slot may be: one WAL segment. */
const SLACK = 16 * 1024 * 1024;
let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({ nodes: 3, ttl: TTL, loopWait: 1, retryTimeout: 3 });
  for (const n of c.nodes) c.startAgent(n.name);
});

afterAll(async () => {
  await c?.stop();
});

type Slot = {
  slot_name: string;
  restart_lsn: string | null;
  active: boolean;
};

async function physicalSlots(name: string): Promise<Slot[]> {
  return c.query<Slot>(
    name,
    "SELECT slot_name::text, restart_lsn::text, active FROM pg_replication_slots WHERE slot_type = 'physical'",
  );
}

async function currentLsn(name: string): Promise<number> {
  const r = await c.query<{ lsn: string }>(name, 'SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(r[0]!.lsn);
}

it('after a switchover the former primary keeps no replication slot with a restart_lsn frozen at the switchover', async () => {
  const state = await c.waitHealthy(2, 120_000);
  const old = state.leader!.name;
  const candidate = c.nodes.map((n) => n.name).find((n) => n !== old)!;
  await c.query(old, 'CREATE TABLE w (id serial PRIMARY KEY, pad text)');
  // As leader it holds a slot for each of the other two members.
  await waitFor(
    `${old} to hold a slot for each other member`,
    async () => (await physicalSlots(old)).filter((s) => s.restart_lsn !== null).length === 2,
    30_000,
  );

  // Exits non-zero (and execFileSync throws) when the switchover is refused.
  execFileSync(
    process.execPath,
    [
      CLI,
      'ctl',
      '-c',
      c.node(old).configPath,
      'switchover',
      '--force',
      '--leader',
      old,
      '--candidate',
      candidate,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  await waitFor(
    `${candidate} to lead with ${old} streaming from it`,
    async () => {
      const s = await c.readCluster();
      return (
        s.leader?.name === candidate &&
        s.members.find((m) => m.name === candidate)?.data.state === 'running' &&
        s.members.filter((m) => m.name !== candidate && isStreamingMember(m.data)).length === 2
      );
    },
    90_000,
  );
  const switchedAt = await currentLsn(candidate);
  console.log(`switchover ${old} -> ${candidate} at ${formatLsn(switchedAt)}`);

  // The new leader writes four WAL segments' worth (switching segments after each write).
  for (let i = 0; i < 4; i++) {
    await c.query(candidate, "INSERT INTO w (pad) SELECT repeat('x', 100) FROM generate_series(1, 1000)");
    await c.query(candidate, 'SELECT pg_switch_wal()');
  }
  await c.query(candidate, "INSERT INTO w (pad) VALUES ('last')");
  const wrote = await currentLsn(candidate);
  expect(wrote - switchedAt).toBeGreaterThan(3 * SLACK);

  // Within a gross bound, every physical slot on the former primary is gone or has followed the
  // leader to within a segment of where it is now.
  await waitFor(
    `no slot on ${old} held back near the switchover point ${formatLsn(switchedAt)} (leader ${candidate} at ${formatLsn(wrote)})`,
    async () => {
      const slots = await physicalSlots(old);
      const behind = slots.filter((s) => s.restart_lsn !== null && parseLsn(s.restart_lsn) < wrote - SLACK);
      if (behind.length > 0) throw new Error(`slots on ${old}: ${JSON.stringify(slots)}`);
      return true;
    },
    60_000,
    1000,
  );
  // The former primary still replicates (the slots went without breaking anything).
  await waitFor(
    `${old} to replay the new leader's writes`,
    async () => {
      const r = await c.query<{ n: string }>(old, "SELECT count(*) AS n FROM w WHERE pad = 'last'");
      return Number(r[0]?.n) === 1;
    },
    30_000,
  );
}, 400_000);

/**
 * `check_timeline: true`, as Patroni honours it: a member whose timeline is behind the cluster's last
 * known timeline (the `history` key) may not take the leader key. The scenario: A leads; A crashes
 * (agent and postmaster SIGKILLed); B is promoted to timeline 2 and takes 50 acknowledged rows,
 * which C (tagged nofailover) streams; B crashes too; A's agent comes back. A is on timeline 1 and
 * lacks B's rows, so it must not lead: Patroni logs "My timeline 1 is behind last known cluster
 * timeline 2" and promotes nobody. When B's agent is back, B leads with its rows and A rejoins it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { primaryStartsInServerLog, RoleSampler } from '../support/observe.js';
import { waitFor } from '../support/postgres.js';
import { isStreamingMember } from '../../src/dcs/types.js';
import { isPrimaryRole } from '../../src/ha/rules.js';

const TTL = 8;
const A = 'pg1';
const B = 'pg2';
const C = 'pg3';
let c: TestCluster;
let roles: RoleSampler | null = null;

beforeAll(async () => {
  c = await startCluster({
    nodes: 3,
    ttl: TTL,
    loopWait: 1,
    retryTimeout: 3,
    edit(cfg, name) {
      const bootstrap = cfg.bootstrap as { dcs: Record<string, unknown> };
      bootstrap.dcs.check_timeline = true;
      if (name === C) (cfg.tags as Record<string, unknown>).nofailover = true;
    },
  });
  // A bootstraps the cluster and leads; B and C clone from it.
  c.startAgent(A);
  await waitFor(
    `${A} to lead`,
    async () => {
      const s = await c.readCluster();
      return s.leader?.name === A && s.members.find((m) => m.name === A)?.data.state === 'running';
    },
    90_000,
  );
  c.startAgent(B);
  c.startAgent(C);
});

afterAll(async () => {
  await roles?.stop().catch(() => undefined);
  await c?.stop();
});

const serverLog = (name: string) => `${c.node(name).dataDir}.log`;

async function rows(name: string): Promise<number> {
  const r = await c.query<{ n: string }>(name, 'SELECT count(*) AS n FROM t');
  return Number(r[0]?.n);
}

/** The timeline a primary writes on (the checkpoint's may still be the previous one after a promotion). */
async function timeline(name: string): Promise<number> {
  const r = await c.query<{ f: string }>(name, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS f');
  return parseInt(r[0]?.f.slice(0, 8) ?? '', 16);
}

/** Waits until `name`'s REST API answers (its agent is up again). */
async function agentUp(name: string): Promise<void> {
  await waitFor(
    `${name}'s REST API`,
    async () => {
      const res = await fetch(`http://127.0.0.1:${c.node(name).apiPort}/patroni`, {
        signal: AbortSignal.timeout(1000),
      });
      return res.status > 0;
    },
    30_000,
  );
}

it('a member behind the last known cluster timeline does not take the leader key; the member that is not rejoins', async () => {
  const first = await c.waitHealthy(2, 120_000);
  expect(first.leader?.name).toBe(A);
  await c.query(A, 'CREATE TABLE t (id int PRIMARY KEY)');
  await waitFor(`table t on ${C}`, async () => (await rows(C)) === 0);

  // A crashes; B (C is tagged nofailover) is promoted to timeline 2.
  await c.stopAgent(A, 'SIGKILL');
  await c.killPostmaster(A);
  await waitFor(
    `${B} to lead as primary`,
    async () => {
      const s = await c.readCluster();
      const m = s.members.find((x) => x.name === B);
      return (
        s.leader?.name === B && m !== undefined && isPrimaryRole(m.data.role) && m.data.state === 'running'
      );
    },
    (TTL + 30) * 1000,
  );
  expect(await timeline(B)).toBe(2);
  // 50 rows acknowledged one by one by B, and streamed to C.
  for (let id = 1; id <= 50; id++) await c.query(B, 'INSERT INTO t VALUES ($1)', [id]);
  await waitFor(`50 rows on ${C}`, async () => (await rows(C)) === 50, 30_000);
  await waitFor(
    `the history key to record timeline 1's end`,
    async () => (await c.readCluster()).history.some((h) => h[0] === 1),
    30_000,
  );

  // B crashes too; its leader key goes (released by C's fast_failover, or at the end of its lease).
  // A comes back on timeline 1, without B's rows, to a cluster with no leader.
  await c.stopAgent(B, 'SIGKILL');
  await c.killPostmaster(B);
  await waitFor(
    `${B}'s leader key to go`,
    async () => (await c.readCluster()).leader === null,
    (TTL + 15) * 1000,
  );
  const primaryStartsOfA = primaryStartsInServerLog(serverLog(A));
  roles = new RoleSampler({ [A]: () => c.connection(A), [C]: () => c.connection(C) });
  roles.start();
  c.startAgent(A);
  await agentUp(A);

  // For 2 × ttl: nobody holds the leader key, and neither A nor C runs as a writable primary.
  const holders = new Set<string>();
  const until = Date.now() + 2 * TTL * 1000 + 2000;
  while (Date.now() < until) {
    holders.add((await c.readCluster()).leader?.name ?? '(none)');
    await new Promise((r) => setTimeout(r, 250));
  }
  await roles.stop();
  expect(
    [...holders].filter((h) => h !== '(none)'),
    'leader key holders after A came back',
  ).toEqual([]);
  expect(roles.writableSightings(), 'A or C seen running as a writable primary').toEqual([]);
  expect(primaryStartsInServerLog(serverLog(A)), "A's server log: opened for writes").toBe(primaryStartsOfA);
  expect(await rows(C), "C keeps B's rows").toBe(50);

  // B comes back: it leads with its rows, and A (after pg_rewind) and C stream from it.
  c.startAgent(B);
  const healed = await waitFor(
    `${B} leading with ${A} and ${C} streaming on its timeline`,
    async () => {
      const s = await c.readCluster();
      const lead = s.members.find((m) => m.name === s.leader?.name);
      const tl = lead?.data.timeline;
      const streaming = s.members.filter((m) => m.name !== lead?.name && isStreamingMember(m.data));
      return s.leader?.name === B &&
        lead?.data.state === 'running' &&
        streaming.length === 2 &&
        streaming.every((m) => m.data.timeline === tl)
        ? s
        : null;
    },
    180_000,
  );
  expect(healed.leader?.name).toBe(B);
  expect(await rows(B)).toBe(50);
  await waitFor(`B's 50 rows on ${A}`, async () => (await rows(A)) === 50, 30_000);
  expect(await rows(C)).toBe(50);
}, 600_000);

/**
 * A standby cluster (`standby_cluster` in the dynamic configuration), as Patroni runs one: a second
 * pgha cluster with its own etcd replicates from the first. Its leader (the standby leader) holds
 * the leader key but streams from `standby_cluster.host:port`; its other member cascades from the
 * standby leader. Invariant: while the section is set, no member of the standby cluster answers
 * `pg_is_in_recovery() = false`. `pgha ctl promote-cluster` (which removes the section over
 * `PATCH /config`, as patronictl 4 does) promotes the standby leader, and the other member follows it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLI, startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import { RoleSampler } from '../support/observe.js';
import { logLines } from '../support/ha-probes.js';

const run = promisify(execFile);
let a: TestCluster;
let b: TestCluster;
let roles: RoleSampler;

const rows = async (c: TestCluster, node: string): Promise<number> =>
  Number((await c.query<{ n: string }>(node, 'SELECT count(*) AS n FROM shipped'))[0]?.n);

beforeAll(async () => {
  a = await startCluster({ nodes: 1 });
  a.startAgent('pg1');
  await a.waitHealthy(0, 90_000);
  await a.query('pg1', 'CREATE TABLE shipped (x int)');
  await a.query('pg1', 'INSERT INTO shipped SELECT generate_series(1, 100)');
  const sourcePort = a.node('pg1').pgPort;
  b = await startCluster({
    nodes: 2,
    edit: (cfg) => {
      const dcs = (cfg.bootstrap as { dcs: Record<string, unknown> }).dcs;
      dcs.standby_cluster = { host: '127.0.0.1', port: sourcePort };
    },
  });
  roles = new RoleSampler({ pg1: () => b.connection('pg1'), pg2: () => b.connection('pg2') });
  roles.start();
  b.startAgent('pg1');
  b.startAgent('pg2');
}, 120_000);

afterAll(async () => {
  await roles?.stop();
  await b?.stop();
  await a?.stop();
});

it('runs a standby leader that streams from the source and a member that cascades from it', async () => {
  const state = await waitFor(
    'a standby leader and a streaming member',
    async () => {
      const s = await b.readCluster();
      const lead = s.members.find((m) => m.name === s.leader?.name);
      const other = s.members.find((m) => m.name !== s.leader?.name);
      return lead?.data.role === 'standby_leader' && other?.data.state === 'running' ? s : null;
    },
    120_000,
  );
  const leader = state.leader!.name;
  const other = leader === 'pg1' ? 'pg2' : 'pg1';
  await a.query('pg1', 'INSERT INTO shipped SELECT generate_series(101, 150)');
  for (const n of [leader, other])
    await waitFor(`rows from the source on ${n}`, async () => (await rows(b, n)) === 150, 30_000);
  const upstream = await b.query<{ port: number }>(
    leader,
    "SELECT sender_port AS port FROM pg_stat_wal_receiver WHERE status = 'streaming'",
  );
  expect(upstream).toEqual([{ port: a.node('pg1').pgPort }]);
  const cascade = await b.query<{ port: number }>(
    other,
    "SELECT sender_port AS port FROM pg_stat_wal_receiver WHERE status = 'streaming'",
  );
  expect(cascade).toEqual([{ port: b.node(leader).pgPort }]);
  const health = await fetch(`http://127.0.0.1:${b.node(leader).apiPort}/standby-leader`);
  expect(health.status).toBe(200);
  const primary = await fetch(`http://127.0.0.1:${b.node(leader).apiPort}/primary`);
  expect(primary.status).toBe(503);
  expect(roles.writableSightings(), 'a member of the standby cluster ran writable').toEqual([]);
}, 180_000);

it('pgha ctl promote-cluster promotes the standby leader, and the other member follows it', async () => {
  const leader = (await b.readCluster()).leader!.name;
  const other = leader === 'pg1' ? 'pg2' : 'pg1';
  await roles.stop();
  const ctl = (...args: string[]) =>
    run(process.execPath, [CLI, 'ctl', '-c', b.node(other).configPath, ...args]);
  await expect(ctl('demote-cluster', '--force')).rejects.toThrow(
    /At least --host, --port or --restore-command should be specified/,
  );
  await expect(ctl('demote-cluster', '--force', '--port', '1')).rejects.toThrow(
    /Cluster is already in the required state/,
  );
  const promoted = await ctl('promote-cluster', '--force');
  expect(promoted.stdout).toMatch(/cluster is successfully promoted/);
  await waitFor(
    `${leader} writable`,
    async () => (await b.query<{ r: boolean }>(leader, 'SELECT pg_is_in_recovery() AS r'))[0]?.r === false,
    60_000,
  ).catch((e: Error) => {
    throw new Error(`${e.message}\n${logLines(b.node(leader).logPath, /promot|standby/i)}`);
  });
  await b.query(leader, 'INSERT INTO shipped SELECT generate_series(151, 160)');
  await waitFor(`${other} follows the promoted leader`, async () => (await rows(b, other)) === 160, 60_000);
  const s = await b.waitHealthy(1, 60_000);
  expect(s.leader?.name).toBe(leader);
  expect(await rows(a, 'pg1')).toBe(150);
}, 180_000);

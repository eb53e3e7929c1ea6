/**
 * failsafe_mode with real processes: a leader cut off from etcd keeps taking writes while every
 * member confirms it over POST /failsafe, and nobody else is promoted; once one member cannot
 * confirm, it stops taking writes before its lease could have expired for anyone else.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

const TTL = 10;
let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({
    nodes: 3,
    ttl: TTL,
    loopWait: 1,
    retryTimeout: 3,
    proxyEtcd: true,
    edit: (cfg) => {
      ((cfg.bootstrap as Record<string, unknown>).dcs as Record<string, unknown>).failsafe_mode = true;
    },
  });
  for (const n of c.nodes) c.startAgent(n.name);
});

afterAll(async () => {
  await c?.stop();
});

async function writable(name: string): Promise<boolean> {
  try {
    await c.query(name, 'INSERT INTO fs (v) VALUES ($1)', [name]);
    return true;
  } catch {
    return false;
  }
}

it('keeps a leader cut off from etcd writable while all members confirm it, with no failover', async () => {
  const state = await c.waitHealthy(2, 90_000);
  const leader = state.leader!.name;
  await c.query(leader, 'CREATE TABLE fs (id serial PRIMARY KEY, v text)');
  await waitFor(
    'the failsafe key listing all three members',
    async () => Object.keys((await c.readCluster()).failsafe ?? {}).length === 3,
    30_000,
  );
  const others = c.nodes.filter((n) => n.name !== leader).map((n) => n.name);

  c.node(leader).proxy!.suspend();
  const until = Date.now() + 2.5 * TTL * 1000;
  let failed = 0;
  while (Date.now() < until) {
    if (!(await writable(leader))) failed++;
    for (const o of others) expect(await writable(o)).toBe(false);
    await new Promise((r) => setTimeout(r, 250));
  }
  expect(failed).toBe(0);
  // The leader key expired in etcd long ago, yet the replicas did not race.
  const during = await c.readCluster();
  expect(during.leader).toBeNull();
  expect(during.history).toEqual(state.history);

  c.node(leader).proxy!.resume();
  const after = await waitFor('the leader key back on the old leader', async () => {
    const s = await c.readCluster();
    return s.leader?.name === leader ? s : null;
  });
  expect(after.history).toEqual(state.history);
  await c.waitHealthy(2, 30_000);
});

it('stops taking writes within ttl once a member cannot confirm the leader', async () => {
  const state = await c.waitHealthy(2, 30_000);
  const leader = state.leader!.name;
  const silent = c.nodes.find((n) => n.name !== leader)!.name;
  await c.stopAgent(silent, 'SIGKILL');

  const cutAt = Date.now();
  c.node(leader).proxy!.suspend();
  let lastWrite = cutAt;
  await waitFor(
    `${leader} refusing writes`,
    async () => {
      if (await writable(leader)) {
        lastWrite = Date.now();
        return false;
      }
      return true;
    },
    (TTL + 5) * 1000,
    100,
  );
  expect(lastWrite - cutAt).toBeLessThan(TTL * 1000);
  c.node(leader).proxy!.resume();
  c.startAgent(silent);
  await c.waitHealthy(2, 90_000);
});

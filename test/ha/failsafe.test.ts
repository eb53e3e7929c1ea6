/**
 * failsafe_mode with real processes: a leader cut off from etcd keeps taking writes while every
 * member confirms it over POST /failsafe, and nobody else is promoted, every member's REST API saying
 * failsafe_mode_is_active; once one member cannot confirm, it demotes itself to a read-only standby
 * (as Patroni) before its lease could have expired for anyone else.
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

async function api(name: string, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${c.node(name).apiPort}${path}`, {
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

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
  try {
    const until = Date.now() + 2.5 * TTL * 1000;
    let failed = 0;
    while (Date.now() < until) {
      if (!(await writable(leader))) failed++;
      for (const o of others) expect(await writable(o)).toBe(false);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(failed).toBe(0);
    // Every member says failsafe mode is active: the leader (confirmed) and the replicas (it calls them).
    const primary = await api(leader, '/primary');
    expect([primary.status, primary.body.failsafe_mode_is_active]).toEqual([200, true]);
    for (const o of others) expect((await api(o, '/replica')).body.failsafe_mode_is_active).toBe(true);
    // The leader key expired in etcd long ago, yet the replicas did not race.
    const during = await c.readCluster();
    expect(during.leader).toBeNull();
    expect(during.history).toEqual(state.history);
  } finally {
    c.node(leader).proxy!.resume();
  }
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
  try {
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
    // As Patroni: it demoted itself to a read-only standby instead of leaving PostgreSQL stopped.
    await waitFor(
      `${leader} running read-only`,
      async () => (await c.query<{ r: boolean }>(leader, 'SELECT pg_is_in_recovery() AS r'))[0]?.r === true,
      20_000,
    );
    const primary = await api(leader, '/primary');
    expect([primary.status, primary.body.failsafe_mode_is_active, primary.body.role]).toEqual([
      503,
      undefined,
      'replica',
    ]);
  } finally {
    c.node(leader).proxy!.resume();
  }
  c.startAgent(silent);
  await c.waitHealthy(2, 90_000);
});

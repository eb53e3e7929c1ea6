/**
 * Fencing with real processes: the leader's agent is cut off from etcd (its TCP proxy suspended).
 * It must stop taking writes before any other node is promoted, then rejoin once etcd is back.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import { isStreamingMember } from '../../src/dcs/types.js';

const TTL = 10;
let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({ nodes: 3, ttl: TTL, loopWait: 1, retryTimeout: 3, proxyEtcd: true });
  for (const n of c.nodes) c.startAgent(n.name);
});

afterAll(async () => {
  await c?.stop();
});

async function tryInsert(name: string, v: string): Promise<boolean> {
  try {
    await c.query(name, 'INSERT INTO f (v) VALUES ($1)', [v]);
    return true;
  } catch {
    return false;
  }
}

it('a leader cut off from etcd demotes itself before another node is promoted', async () => {
  const state = await c.waitHealthy(2, 90_000);
  const old = state.leader!.name;
  await c.query(
    old,
    'CREATE TABLE f (id serial PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())',
  );

  let lastOldWrite = 0;
  let firstNewWrite = 0;
  let newLeader = '';
  const others = c.nodes.filter((n) => n.name !== old).map((n) => n.name);
  let writing = true;
  const oldWriter = (async () => {
    while (writing) {
      if (await tryInsert(old, 'old')) lastOldWrite = Date.now();
      await new Promise((r) => setTimeout(r, 50));
    }
  })();

  const cutAt = Date.now();
  c.node(old).proxy!.suspend();
  newLeader = await waitFor(
    'a writable new leader',
    async () => {
      for (const n of others) {
        if (await tryInsert(n, 'new')) {
          firstNewWrite = Date.now();
          return n;
        }
      }
      return null;
    },
    (TTL + 15) * 1000,
  );
  writing = false;
  await oldWriter;

  expect(lastOldWrite).toBeGreaterThan(0);
  expect(lastOldWrite).toBeLessThan(firstNewWrite);
  expect(firstNewWrite - cutAt).toBeLessThan((TTL + 10) * 1000);
  expect((await c.readCluster()).leader?.name).toBe(newLeader);

  // Back in touch with etcd, the old leader follows the new one.
  c.node(old).proxy!.resume();
  await waitFor(
    `${old} streaming from ${newLeader}`,
    async () => {
      const s = await c.readCluster();
      const m = s.members.find((x) => x.name === old);
      return m !== undefined && isStreamingMember(m.data) && s.leader?.name === newLeader;
    },
    60_000,
  );
});

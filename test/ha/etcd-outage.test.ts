/**
 * etcd trouble that must not cause a failover: the etcd leader dies (an election follows) and a
 * member restarts, while the agents talk to a three-member etcd cluster.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';

const TTL = 10;
let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({ nodes: 3, ttl: TTL, loopWait: 1, retryTimeout: 3, etcdMembers: 3 });
  for (const n of c.nodes) c.startAgent(n.name);
});

afterAll(async () => {
  await c?.stop();
});

it('an etcd leader change and an etcd member restart cause no failover', async () => {
  const before = await c.waitHealthy(2, 90_000);
  const leader = before.leader!.name;
  const timeline = before.members.find((m) => m.name === leader)!.data.timeline;

  const etcdLeader = await c.etcd.leaderIndex();
  expect(etcdLeader).toBeGreaterThanOrEqual(0);
  await c.etcd.stopMember(etcdLeader, 'SIGKILL');
  await new Promise((r) => setTimeout(r, TTL * 1000));
  await c.etcd.startMember(etcdLeader);
  const other = (etcdLeader + 1) % 3;
  await c.etcd.stopMember(other);
  await new Promise((r) => setTimeout(r, 3000));
  await c.etcd.startMember(other);
  await new Promise((r) => setTimeout(r, TTL * 1000));

  const after = await c.waitHealthy(2, 30_000);
  expect(after.leader?.name).toBe(leader);
  expect(after.members.find((m) => m.name === leader)!.data.timeline).toBe(timeline);
  expect(after.history).toEqual(before.history);
  const log = readFileSync(c.node(leader).logPath, 'utf8');
  if (/could not renew/.test(log))
    console.log(
      log
        .split('\n')
        .filter((l) => !l.includes('DEBUG') || l.includes('etcd') || l.includes('lease'))
        .slice(-60)
        .join('\n'),
    );
  expect(log).not.toMatch(/demoting|could not renew the leader lease/);
});

/**
 * `move_etcd_leader`: with real agents and a three-member etcd whose members carry the nodes' names
 * (one etcd member per host, as in the seed), etcd's raft leader never stays on the primary's host
 * — not at start, not after a switchover onto the host that leads etcd — and stays put when the
 * key is off.
 *
 * Invariant: a few seconds after any change of primary, the etcd member on the primary's host
 * does not lead etcd, so losing that host costs etcd no election.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { SCOPE, startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

let c: TestCluster;
let dcs: EtcdDcs;

beforeAll(async () => {
  c = await startCluster({ nodes: 3, etcdMembers: 3, etcdNamedAfterNodes: true, ttl: 10, loopWait: 1 });
  for (const n of c.nodes) c.startAgent(n.name);
  dcs = new EtcdDcs({
    hosts: c.etcd.endpoints,
    namespace: '/service/',
    scope: SCOPE,
    name: 'test-ctl',
    ttl: 10,
  });
});

afterAll(async () => {
  await dcs?.close({ revokeLease: false }).catch(() => undefined);
  await c?.stop();
});

/** The node whose etcd member leads etcd now ('' while none does). */
async function raftLeaderNode(): Promise<string> {
  const i = await c.etcd.leaderIndex();
  return i < 0 ? '' : c.etcd.members[i]!.name;
}

/** Waits until etcd's raft leader is on some node other than `primary`, and returns that node. */
function offPrimary(primary: string): Promise<string> {
  return waitFor(
    `etcd's raft leader off ${primary}'s host`,
    async () => {
      const at = await raftLeaderNode();
      return at !== '' && at !== primary ? at : null;
    },
    15_000,
  );
}

it('keeps etcd raft leadership off the primary host, also after a switchover onto its host', async () => {
  const state = await c.waitHealthy(2, 90_000);
  const first = state.leader!.name;
  const raftAt = await offPrimary(first);

  // Switch over to the node that leads etcd: the new primary hands etcd's leadership on.
  expect((await dcs.setFailover({ leader: first, member: raftAt })).ok).toBe(true);
  await waitFor('the switchover', async () => (await c.readCluster()).leader?.name === raftAt, 30_000);
  const movedTo = await offPrimary(raftAt);
  console.log(`etcd-leader: after the switchover onto ${raftAt}, etcd's raft leader is on ${movedTo}`);
  // The new primary's agent did it (the line is written once etcd has answered the hand-over).
  await waitFor(
    `${raftAt}'s agent to report the hand-over`,
    () =>
      Promise.resolve(
        /handed etcd's raft leadership to pg\d/.test(readFileSync(c.node(raftAt).logPath, 'utf8')),
      ),
    5000,
  );
}, 150_000);

it('leaves the raft leader where it is with move_etcd_leader: false', async () => {
  const cluster = await c.readCluster();
  const primary = cluster.leader!.name;
  expect((await dcs.setConfig({ ...cluster.config!.value, move_etcd_leader: false })).ok).toBe(true);
  // Let every agent read the new configuration, then put etcd's leadership on the primary's host.
  await new Promise((r) => setTimeout(r, 3000));
  const raftAt = await raftLeaderNode();
  const endpoint = c.etcd.members.find((m) => m.name === raftAt)!.endpoint;
  const target = (await dcs.endpointStatuses(2000)).find(
    (e) => e.endpoint === c.etcd.members.find((m) => m.name === primary)!.endpoint,
  )!.status!.id;
  await dcs.moveLeader(endpoint, target);
  await waitFor(
    'etcd leadership on the primary host',
    async () => (await raftLeaderNode()) === primary,
    10_000,
  );
  await new Promise((r) => setTimeout(r, 5000));
  expect(await raftLeaderNode()).toBe(primary);
}, 60_000);

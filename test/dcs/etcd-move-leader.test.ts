/**
 * `move_etcd_leader` against a real three-member etcd with authentication on, with the cluster's
 * own user (read-write on the namespace only, no root role): etcd 3.4 answers its `MemberList`,
 * `Status` and `MoveLeader`, so the agent on the host that leads etcd hands the leadership on, and
 * an agent elsewhere asks for nothing. A hand-over asked of a member that does not lead is refused
 * with etcd's reason.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { EtcdDcs } from '../../src/dcs/etcd.js';
import { EtcdLeaderKeeper } from '../../src/ha/etcd-leader.js';
import { createLogger } from '../../src/util/log.js';
import { authStores, enableEtcdAuth, ETCD_USERS, startEtcd, type EtcdCluster } from '../support/etcd.js';
import { waitFor } from '../support/postgres.js';

let etcd: EtcdCluster;
const stores = authStores(() => etcd, 'x');

beforeAll(async () => {
  etcd = await startEtcd({ members: 3, names: ['n1', 'n2', 'n3'] });
  await enableEtcdAuth(etcd);
});

afterAll(async () => {
  await stores.closeAll(false);
  await etcd?.stop();
});

/** A keeper that acts as the agent on the host of etcd member `me` (found by name). */
function keeper(d: EtcdDcs, me: string): EtcdLeaderKeeper {
  return new EtcdLeaderKeeper({
    port: d,
    me,
    logger: createLogger({ level: 'silent' }),
    active: () => true,
    intervalMs: () => 1000,
    timeoutMs: () => 2000,
  });
}

async function leaderName(): Promise<string> {
  const i = await waitFor('an etcd raft leader', async () => {
    const at = await etcd.leaderIndex();
    return at >= 0 ? at + 1 : null;
  });
  return etcd.members[i - 1]!.name;
}

it("hands the leadership on with the cluster's own user; elsewhere nothing is asked", async () => {
  const before = await leaderName();
  const own = stores.open(ETCD_USERS.pgha.username, ETCD_USERS.pgha.password);
  const plan = await keeper(own, before).round();
  expect(plan).toMatchObject({ kind: 'move', from: before });
  const after = await waitFor('the new raft leader', async () => {
    const at = await leaderName();
    return at !== before ? at : null;
  });
  expect(plan).toMatchObject({ target: { name: after } });
  // The former leader's host: etcd's leader is elsewhere now, so nothing is asked.
  expect(await keeper(own, before).round()).toMatchObject({
    kind: 'stay',
    why: "etcd's raft leader is on another host",
  });
});

it("a hand-over asked of a member that does not lead is refused with etcd's reason", async () => {
  const own = stores.open(ETCD_USERS.pgha.username, ETCD_USERS.pgha.password);
  const leader = await leaderName();
  const other = etcd.members.find((m) => m.name !== leader)!;
  const target = (await own.endpointStatuses(2000)).find((e) => e.endpoint !== other.endpoint)!.status!.id;
  await expect(own.moveLeader(other.endpoint, target)).rejects.toThrow(
    /etcd move leader: etcdserver: not leader/,
  );
});

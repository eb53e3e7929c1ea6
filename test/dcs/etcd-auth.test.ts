/** etcd with authentication on: the agent's store works with the etcd3 section's user and password. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { authStores, enableEtcdAuth, ETCD_USERS, startEtcd, type EtcdCluster } from '../support/etcd.js';

let etcd: EtcdCluster;
const stores = authStores(() => etcd, 'n1');

beforeAll(async () => {
  etcd = await startEtcd({ members: 1 });
  await enableEtcdAuth(etcd);
});

afterAll(async () => {
  await stores.closeAll(true);
  await etcd?.stop();
});

it('reads and writes with the configured user and password', async () => {
  const d = stores.open(ETCD_USERS.pgha.username, ETCD_USERS.pgha.password);
  await d.refreshLease();
  await d.touchMember({ state: 'running', role: 'replica' });
  expect(await d.attemptToAcquireLeader()).toBe(true);
  const state = await d.readCluster();
  expect(state.leader?.name).toBe('n1');
  expect(state.members.map((m) => m.name)).toEqual(['n1']);
});

it('names the problem when the password is wrong', async () => {
  const d = stores.open('pgha', 'wrong');
  const err = await d.readCluster().then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  expect(String((err as Error).message)).toMatch(/auth|password|credentials/i);
});

/** etcd with authentication on: the agent's store works with the etcd3 section's user and password. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { run } from '../../src/util/process.js';
import { startEtcd, type EtcdCluster } from '../support/etcd.js';

let etcd: EtcdCluster;
const open: EtcdDcs[] = [];

async function etcdctl(...args: string[]): Promise<void> {
  const r = await run('etcdctl', ['--endpoints', etcd.endpoints[0]!, ...args], {
    env: { ...process.env, ETCDCTL_API: '3' },
    timeoutMs: 10_000,
  });
  expect(r.code, r.stderr + r.stdout).toBe(0);
}

beforeAll(async () => {
  etcd = await startEtcd({ members: 1 });
  await etcdctl('user', 'add', 'root', '--new-user-password', 'rootpw');
  await etcdctl('user', 'add', 'pgha', '--new-user-password', 'pgha-pw');
  await etcdctl('role', 'add', 'pgha');
  await etcdctl('role', 'grant-permission', 'pgha', '--prefix=true', 'readwrite', '/service/');
  await etcdctl('user', 'grant-role', 'pgha', 'pgha');
  await etcdctl('auth', 'enable');
});

afterAll(async () => {
  await Promise.all(open.map((d) => d.close({ revokeLease: true }).catch(() => undefined)));
  await etcd?.stop();
});

function dcs(username: string, password: string): EtcdDcs {
  const d = new EtcdDcs({
    hosts: etcd.endpoints,
    namespace: '/service/',
    scope: 'auth',
    name: 'n1',
    ttl: 10,
    username,
    password,
    requestTimeoutMs: 3000,
  });
  open.push(d);
  return d;
}

it('reads and writes with the configured user and password', async () => {
  const d = dcs('pgha', 'pgha-pw');
  await d.refreshLease();
  await d.touchMember({ state: 'running', role: 'replica' });
  expect(await d.attemptToAcquireLeader()).toBe(true);
  const state = await d.readCluster();
  expect(state.leader?.name).toBe('n1');
  expect(state.members.map((m) => m.name)).toEqual(['n1']);
});

it('names the problem when the password is wrong', async () => {
  const d = dcs('pgha', 'wrong');
  const err = await d.readCluster().then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  expect(String((err as Error).message)).toMatch(/auth|password|credentials/i);
});

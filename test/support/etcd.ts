import {
  startEtcd as startEtcdServer,
  type EtcdCluster,
  type StartEtcdOptions,
} from '../../src/util/etcd-server.js';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { run } from '../../src/util/process.js';
import { freePorts } from './net.js';

export type { EtcdCluster, EtcdMember, StartEtcdOptions } from '../../src/util/etcd-server.js';

/**
 * `startEtcd` with the tests' ports (below the kernel's ephemeral range, one slice per vitest
 * worker: see ./net.ts) unless the caller gives its own.
 */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const ports = opts.ports ?? (await freePorts((opts.members ?? 1) * 2));
  return startEtcdServer({ ...opts, ports });
}

/** The users `enableEtcdAuth` creates: `root`, and `pgha` with read-write on `/service/` only. */
export const ETCD_USERS = {
  root: { username: 'root', password: 'rootpw' },
  pgha: { username: 'pgha', password: 'pgha-pw' },
} as const;

/** Creates ETCD_USERS and turns authentication on, with etcdctl as an operator would. */
export async function enableEtcdAuth(etcd: EtcdCluster): Promise<void> {
  const { root, pgha } = ETCD_USERS;
  const steps = [
    ['user', 'add', root.username, '--new-user-password', root.password],
    ['user', 'add', pgha.username, '--new-user-password', pgha.password],
    ['role', 'add', 'pgha'],
    ['role', 'grant-permission', 'pgha', '--prefix=true', 'readwrite', '/service/'],
    ['user', 'grant-role', pgha.username, 'pgha'],
    ['auth', 'enable'],
  ];
  for (const args of steps) {
    const r = await run('etcdctl', ['--endpoints', etcd.endpoints.join(','), ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      timeoutMs: 10_000,
    });
    if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
  }
}

/**
 * Stores on `etcd` (scope `auth`, agent name `name`) for tests of authentication: `open` logs in
 * as the given user and password; `closeAll` closes every store opened, revoking its lease or not.
 */
export function authStores(
  etcd: () => EtcdCluster,
  name: string,
): { open(username: string, password: string): EtcdDcs; closeAll(revokeLease: boolean): Promise<void> } {
  const opened: EtcdDcs[] = [];
  return {
    open(username, password) {
      const d = new EtcdDcs({
        hosts: etcd().endpoints,
        namespace: '/service/',
        scope: 'auth',
        name,
        ttl: 10,
        username,
        password,
        requestTimeoutMs: 3000,
      });
      opened.push(d);
      return d;
    },
    async closeAll(revokeLease) {
      await Promise.all(opened.map((d) => d.close({ revokeLease }).catch(() => undefined)));
    },
  };
}

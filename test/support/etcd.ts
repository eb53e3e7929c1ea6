import {
  startEtcd as startEtcdServer,
  type EtcdCluster,
  type StartEtcdOptions,
} from '../../src/util/etcd-server.js';
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

import {
  startEtcd as startEtcdServer,
  type EtcdCluster,
  type StartEtcdOptions,
} from '../../src/util/etcd-server.js';
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

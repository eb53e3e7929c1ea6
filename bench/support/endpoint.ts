/**
 * How the benchmark's client reaches the primary:
 * - `haproxy`: Debian's HAProxy with Patroni's recommended settings, health-checking each agent's
 *   REST API (`OPTIONS /primary`): what the seed deployment runs, for either product;
 * - `router`: `pgha router` (pgha's own routing, following the leader key in etcd);
 * - `multihost`: no proxy, libpq-style multi-host: the client tries each node and keeps the one
 *   that is not in recovery.
 */
import { createWriteStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../test/support/net.js';
import { isAlive, startProcess, stopProcess } from '../../src/util/process.js';
import type { CleanupScope } from './cleanup.js';
import { tail, type BenchCluster } from './cluster.js';
import { startHaproxy } from './haproxy.js';
import { CLI } from './pgha-cluster.js';
import { canConnect, makeBenchDir, sleep } from './util.js';
import type { Target } from './writer.js';

export type EndpointKind = 'haproxy' | 'router' | 'multihost';

export interface Endpoint {
  kind: EndpointKind;
  /** What the report prints, e.g. "HAProxy 2.6 (inter 0.5s)". */
  label: string;
  targets: Target[];
  /** Where the proxy's configuration and log live (none for multi-host). */
  dir?: string;
}

/** True when the built CLI has `pgha router`. */
export function routerBuilt(): boolean {
  return existsSync(CLI);
}

/**
 * Parses an endpoint list such as `router,haproxy`. `auto` means, for pgha, the pgha router (when
 * built) and HAProxy, so one run compares pgha both with its own router and behind the same proxy
 * as Patroni; for Patroni, HAProxy.
 */
export function resolveKinds(list: string, product: 'patroni' | 'pgha'): EndpointKind[] {
  const out: EndpointKind[] = [];
  for (const k of list.split(',').map((x) => x.trim())) {
    if (k === 'auto') {
      if (product === 'pgha' && routerBuilt()) out.push('router');
      out.push('haproxy');
    } else if (k === 'haproxy' || k === 'router' || k === 'multihost') out.push(k);
    else throw new Error(`unknown endpoint "${k}": expected auto, haproxy, router or multihost`);
  }
  return [...new Set(out)];
}

export async function startEndpoint(
  kind: EndpointKind,
  cluster: BenchCluster,
  scope: CleanupScope,
  opts: { inter: string },
): Promise<Endpoint> {
  switch (kind) {
    case 'multihost':
      return {
        kind,
        label: 'multi-host client (read-write)',
        targets: cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.pgPort })),
      };
    case 'haproxy': {
      const dir = makeBenchDir(scope);
      const h = await startHaproxy(scope, dir, cluster.nodes, { inter: opts.inter });
      return { kind, label: `HAProxy (inter ${opts.inter})`, targets: [{ host: h.host, port: h.port }], dir };
    }
    case 'router': {
      const dir = makeBenchDir(scope);
      const port = await startRouter(scope, dir, cluster.nodes[0]!.configPath);
      return { kind, label: 'pgha router', targets: [{ host: '127.0.0.1', port }], dir };
    }
  }
}

/** `node dist/cli.js router <node yml> --listen 127.0.0.1:<port>`; returns the port once it listens. */
async function startRouter(scope: CleanupScope, dir: string, configPath: string): Promise<number> {
  if (!routerBuilt()) throw new Error('pgha is not built (dist/cli.js missing): run "npm run build"');
  const port = await freePort();
  const logPath = join(dir, 'router.log');
  const child = startProcess(process.execPath, [CLI, 'router', configPath, '--listen', `127.0.0.1:${port}`]);
  const out = createWriteStream(logPath, { flags: 'a' });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  child.on('error', () => undefined);
  scope.onExit(() => {
    if (isAlive(child)) child.kill('SIGKILL');
  });
  scope.add('stop pgha router', () => stopProcess(child, 'SIGTERM', 5000));
  const deadline = Date.now() + 15_000;
  while (!(await canConnect(port))) {
    if (!isAlive(child) || Date.now() > deadline) {
      throw new Error(`pgha router did not start; ${logPath}:\n${tail(logPath)}`);
    }
    await sleep(50);
  }
  return port;
}

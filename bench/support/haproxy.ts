/**
 * Debian's HAProxy in front of a cluster, configured as Patroni's documentation and the seed
 * deployment do: TCP mode, `OPTIONS /primary` health check against each node's REST API, and
 * `on-marked-down shutdown-sessions` so clients of a demoted node are cut off.
 */
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../test/support/net.js';
import { isAlive, startProcess, stopProcess } from '../../src/util/process.js';
import type { CleanupScope } from './cleanup.js';
import type { BenchNode } from './cluster.js';
import { tail } from './cluster.js';
import { canConnect, sleep } from './util.js';

export const HAPROXY_BIN = process.env.PGHA_BENCH_HAPROXY ?? '/usr/sbin/haproxy';

export interface HaproxyOptions {
  /** Health-check interval, HAProxy syntax (Patroni's sample: `3s`; tuned: `0.5s`). */
  inter: string;
  fall?: number;
  rise?: number;
}

export interface Haproxy {
  host: string;
  port: number;
  configPath: string;
  logPath: string;
}

/**
 * An interval in HAProxy's syntax: HAProxy 2.6 takes no fractions, so `0.5s` becomes `500ms`.
 * Throws on anything else than `<number><us|ms|s|m|h|d>` or a plain number of ms.
 */
export function haproxyTime(t: string): string {
  const m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h|d)?$/.exec(t.trim());
  if (!m) throw new Error(`not an HAProxy time: ${t}`);
  const unitMs: Record<string, number> = {
    us: 0.001,
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
    d: 86_400_000,
  };
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  return Number.isInteger(n) ? `${n}${unit}` : `${Math.round(n * unitMs[unit]!)}ms`;
}

/** The configuration text: Patroni's sample haproxy.cfg with the seed's `/primary` check. */
export function haproxyConfig(port: number, nodes: BenchNode[], opts: HaproxyOptions): string {
  return [
    'global',
    '    maxconn 100',
    'defaults',
    '    mode tcp',
    '    retries 2',
    '    timeout client 30m',
    '    timeout connect 4s',
    '    timeout server 30m',
    '    timeout check 5s',
    'listen postgres',
    `    bind 127.0.0.1:${port}`,
    '    option httpchk OPTIONS /primary',
    '    http-check expect status 200',
    `    default-server inter ${haproxyTime(opts.inter)} fall ${opts.fall ?? 3} rise ${opts.rise ?? 2} on-marked-down shutdown-sessions`,
    ...nodes.map((n) => `    server ${n.name} 127.0.0.1:${n.pgPort} maxconn 100 check port ${n.apiPort}`),
    '',
  ].join('\n');
}

/** Starts HAProxy in the foreground (`-db`) in `dir`; `scope` stops it by its pid. */
export async function startHaproxy(
  scope: CleanupScope,
  dir: string,
  nodes: BenchNode[],
  opts: HaproxyOptions,
): Promise<Haproxy> {
  const port = await freePort();
  const configPath = join(dir, 'haproxy.cfg');
  const logPath = join(dir, 'haproxy.log');
  writeFileSync(configPath, haproxyConfig(port, nodes, opts));
  const child = startProcess(HAPROXY_BIN, ['-db', '-f', configPath]);
  const out = createWriteStream(logPath, { flags: 'a' });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  child.on('error', () => undefined);
  scope.onExit(() => {
    if (isAlive(child)) child.kill('SIGKILL');
  });
  scope.add('stop HAProxy', () => stopProcess(child, 'SIGTERM', 5000));
  // Ready when the frontend accepts connections.
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (!isAlive(child) || Date.now() > deadline) {
      throw new Error(`HAProxy did not start; ${logPath}:\n${tail(logPath)}`);
    }
    await sleep(50);
  }
  return { host: '127.0.0.1', port, configPath, logPath };
}

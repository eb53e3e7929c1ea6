/**
 * `pgha demo`: a local cluster on loopback — one etcd and N agents, each managing its own
 * PostgreSQL — that runs until Ctrl-C and then stops every process it started.
 */
// The reaper (src/util/reaper.ts) runs in `pgha agent` only; the demo's children keep its stdio and cwd.
// eslint-disable-next-line no-restricted-imports
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { EtcdDcs } from '../dcs/etcd.js';
import { isStreamingMember, type ClusterState } from '../dcs/types.js';
import { PghaError, errorMessage } from '../util/errors.js';
import { startEtcd, type EtcdCluster } from '../util/etcd-server.js';
import { packageRoot } from '../util/package-root.js';
import { isAlive, runAsUser, stopProcess } from '../util/process.js';

export interface DemoOptions {
  dir: string;
  nodes: number;
  basePort: number;
  /** Stop everything and exit once the cluster is ready (used by tests and CI). */
  exitWhenReady?: boolean;
  readyTimeoutMs?: number;
  out?: (line: string) => void;
}

export const DEMO_SCOPE = 'demo';

interface DemoNode {
  name: string;
  configPath: string;
  pgPort: number;
  apiPort: number;
  process: ChildProcess | null;
  logPath: string;
}

function cliPath(): string {
  return join(packageRoot(), 'dist', 'cli.js');
}

/** The YAML for one demo node: Patroni's format, loopback addresses, fast timings. */
export function demoNodeConfig(opts: {
  name: string;
  etcd: string[];
  pgPort: number;
  apiPort: number;
  dataDir: string;
  password: string;
}): Record<string, unknown> {
  return {
    scope: DEMO_SCOPE,
    namespace: '/service/',
    name: opts.name,
    restapi: { listen: `127.0.0.1:${opts.apiPort}`, connect_address: `127.0.0.1:${opts.apiPort}` },
    etcd3: { hosts: opts.etcd },
    bootstrap: {
      dcs: {
        ttl: 10,
        loop_wait: 2,
        retry_timeout: 3,
        maximum_lag_on_failover: 1048576,
        postgresql: {
          use_pg_rewind: true,
          use_slots: true,
          parameters: {
            wal_level: 'replica',
            hot_standby: 'on',
            max_wal_senders: 10,
            max_replication_slots: 10,
            wal_keep_size: '128MB',
          },
        },
      },
      initdb: [{ encoding: 'UTF8' }, 'data-checksums'],
      pg_hba: [
        'local all all trust',
        'host replication replicator 127.0.0.1/32 scram-sha-256',
        'host all all 127.0.0.1/32 scram-sha-256',
      ],
    },
    postgresql: {
      listen: `127.0.0.1:${opts.pgPort}`,
      connect_address: `127.0.0.1:${opts.pgPort}`,
      data_dir: opts.dataDir,
      pgpass: join(dirname(opts.dataDir), 'pgpass'),
      authentication: {
        superuser: { username: 'postgres', password: opts.password },
        replication: { username: 'replicator', password: opts.password },
        rewind: { username: 'rewind_user', password: opts.password },
      },
      parameters: { unix_socket_directories: dirname(opts.dataDir) },
    },
    tags: { noloadbalance: false, clonefrom: false, nosync: false },
    log: { type: 'plain', level: 'INFO' },
  };
}

/** Creates `dir` so the PostgreSQL OS user can reach the data directories below it. */
function prepareDir(path: string): void {
  mkdirSync(path, { recursive: true });
  const pgUser = runAsUser('postgres');
  if (pgUser) {
    chownSync(path, pgUser.uid, pgUser.gid);
    chmodSync(path, 0o755);
  }
}

function ready(cluster: ClusterState, nodes: number): boolean {
  const leader = cluster.leader?.name;
  if (!leader) return false;
  const lead = cluster.members.find((m) => m.name === leader);
  const streaming = cluster.members.filter((m) => m.name !== leader && isStreamingMember(m.data));
  return lead?.data.state === 'running' && streaming.length === nodes - 1;
}

/** Waits until the router routes writes (`/health` answers 200); throws if it exits or takes 30 s. */
async function waitForRouter(child: ChildProcess, healthUrl: string, logPath: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!isAlive(child))
      throw new PghaError(
        'PGHA_DEMO_ROUTER_DIED',
        `the router exited (code ${child.exitCode}); see ${logPath}`,
      );
    const ok = await fetch(healthUrl, { signal: AbortSignal.timeout(1000) })
      .then((r) => r.status === 200)
      .catch(() => false);
    if (ok) return;
    if (Date.now() > deadline)
      throw new PghaError('PGHA_DEMO_TIMEOUT', `the router did not route writes after 30 s; see ${logPath}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** Runs the demo until SIGINT/SIGTERM (or until ready with `exitWhenReady`). */
export async function runDemo(opts: DemoOptions): Promise<ClusterState> {
  const out = opts.out ?? ((l: string) => console.log(l));
  const dir = resolve(opts.dir);
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > 9) {
    throw new PghaError('PGHA_DEMO_NODES', `--nodes: expected 1 to 9, got ${opts.nodes}`);
  }
  prepareDir(dir);
  const secretFile = join(dir, 'password');
  const password = existsSync(secretFile)
    ? readFileSync(secretFile, 'utf8').trim()
    : randomBytes(9).toString('base64url');
  writeFileSync(secretFile, password + '\n', { mode: 0o600 });

  let etcd: EtcdCluster | null = null;
  const nodes: DemoNode[] = [];
  let router: ChildProcess | null = null;
  let stopped = false;
  const stopAll = async () => {
    if (stopped) return;
    stopped = true;
    out('stopping the router, the agents (each stops its PostgreSQL) and etcd ...');
    if (router) await stopProcess(router, 'SIGTERM', 30_000);
    await Promise.all(
      nodes.map((n) => (n.process ? stopProcess(n.process, 'SIGTERM', 60_000) : Promise.resolve())),
    );
    await etcd?.stop();
    out('stopped.');
  };

  try {
    etcd = await startEtcd({
      members: 1,
      dataDir: join(dir, 'etcd'),
      keepData: true,
      ports: [opts.basePort + 2000, opts.basePort + 2001],
    });
    out(`etcd listening on ${etcd.endpoints.join(', ')} (data in ${join(dir, 'etcd')})`);
    for (let i = 1; i <= opts.nodes; i++) {
      const name = `pg${i}`;
      const nodeDir = join(dir, name);
      prepareDir(nodeDir);
      const pgPort = opts.basePort + i - 1;
      const apiPort = opts.basePort + 3000 + i - 1;
      const configPath = join(dir, `${name}.yml`);
      const cfg = demoNodeConfig({
        name,
        etcd: etcd.endpoints,
        pgPort,
        apiPort,
        dataDir: join(nodeDir, 'data'),
        password,
      });
      // No open doors: the REST API's writing endpoints (switchover, restart, reinitialize, config)
      // ask for a password, as every example configuration does. pgha ctl and patronictl read it
      // from the same file.
      (cfg.restapi as Record<string, unknown>).authentication = { username: 'admin', password };
      writeFileSync(configPath, stringify(cfg), { mode: 0o600 });
      const logPath = join(dir, `${name}.log`);
      const log = createWriteStream(logPath, { flags: 'a' });
      const child = spawn(process.execPath, [cliPath(), 'agent', configPath], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.pipe(log);
      child.stderr.pipe(log);
      nodes.push({ name, configPath, pgPort, apiPort, process: child, logPath });
      out(
        `started agent ${name}: PostgreSQL on 127.0.0.1:${pgPort}, REST API on 127.0.0.1:${apiPort}, log ${logPath}`,
      );
    }

    const watcher = new EtcdDcs({
      hosts: etcd.endpoints,
      namespace: '/service/',
      scope: DEMO_SCOPE,
      name: 'pgha-demo',
      ttl: 10,
    });
    const started = Date.now();
    const limit = opts.readyTimeoutMs ?? 120_000;
    let cluster: ClusterState | null = null;
    try {
      for (;;) {
        for (const n of nodes) {
          if (n.process && !isAlive(n.process)) {
            throw new PghaError(
              'PGHA_DEMO_AGENT_DIED',
              `agent ${n.name} exited (code ${n.process.exitCode}); see ${n.logPath}`,
            );
          }
        }
        cluster = await watcher.readCluster().catch(() => null);
        if (cluster && ready(cluster, opts.nodes)) break;
        if (Date.now() - started > limit) {
          throw new PghaError(
            'PGHA_DEMO_TIMEOUT',
            `the cluster was not ready after ${limit / 1000} s; see the logs in ${dir}`,
          );
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      await watcher.close({ revokeLease: false });
    }
    const leader = nodes.find((n) => n.name === cluster.leader?.name);
    // The seed's clients connect to the routing layer, never to a node: the router follows the
    // leader key and moves idle sessions on a switchover or failover.
    const rw = opts.basePort + 4000;
    const routerLog = join(dir, 'router.log');
    const routerOut = createWriteStream(routerLog, { flags: 'a' });
    router = spawn(
      process.execPath,
      [cliPath(), 'router', nodes[0]!.configPath, '--listen', `127.0.0.1:${rw}`].concat([
        '--replica-listen',
        `127.0.0.1:${rw + 1}`,
        '--status-listen',
        `127.0.0.1:${rw + 2}`,
      ]),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    router.stdout?.pipe(routerOut);
    router.stderr?.pipe(routerOut);
    await waitForRouter(router, `http://127.0.0.1:${rw + 2}/health`, routerLog);
    out('');
    out(
      `cluster "${DEMO_SCOPE}" is up in ${((Date.now() - started) / 1000).toFixed(1)} s: leader ${leader?.name}, ${opts.nodes - 1} streaming replica(s)`,
    );
    out('');
    out(
      `  connect (the endpoint):  psql "host=127.0.0.1 port=${rw} user=postgres password=${password} dbname=postgres"`,
    );
    out(`  read-only (replicas):    port ${rw + 1}; router status: curl http://127.0.0.1:${rw + 2}/status`);
    out(`  the primary directly:    port ${leader?.pgPort} (no failover for this connection)`);
    out(`  list the cluster:        bin/pgha ctl -c ${nodes[0]?.configPath} list`);
    out(`  with Patroni's tool:     patronictl -c ${nodes[0]?.configPath} list`);
    out(`  REST API:                curl http://127.0.0.1:${leader?.apiPort}/patroni`);
    out(`  (writing endpoints, dashboard at /ui: user admin, the same password)`);
    out(`  data, configs and logs:  ${dir}`);
    out('');
    if (opts.exitWhenReady) return cluster;
    out('press Ctrl-C to stop everything');
    await new Promise<void>((resolveWait) => {
      const onSignal = () => resolveWait();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      for (const n of nodes) {
        n.process?.once('exit', (code) => {
          if (!stopped) out(`agent ${n.name} exited (code ${code}); see ${n.logPath}`);
        });
      }
    });
    return cluster;
  } catch (err) {
    out(`demo failed: ${errorMessage(err)}`);
    throw err;
  } finally {
    await stopAll();
  }
}

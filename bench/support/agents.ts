/**
 * A 3-node HA cluster on loopback for the benchmarks, whichever agent runs it: its own etcd, one
 * agent process per node (each managing its PostgreSQL 15), all built from the same Patroni-format
 * YAML (pgha's demo config with the run's timings), so both products get identical PostgreSQL
 * settings and HA timings. The product-specific parts (binary, OS user, switchover) come from an
 * `AgentSpec`.
 */
import type { ChildProcess } from 'node:child_process';
import { chownSync, createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { demoNodeConfig, DEMO_SCOPE } from '../../src/demo/demo.js';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { startEtcd } from '../../test/support/etcd.js';
import { freePorts } from '../../test/support/net.js';
import { isAlive, startProcess, stopProcess, type OsUser } from '../../src/util/process.js';
import { cleanupScope, type CleanupScope } from './cleanup.js';
import {
  clusterReader,
  postmasterPid,
  memoryMb,
  signal,
  stopPostmasters,
  type BenchCluster,
  type BenchNode,
  type HaTimings,
} from './cluster.js';
import { log, makeBenchDir, pgUser } from './util.js';

export const PG_BIN = process.env.PGHA_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const NAMESPACE = '/service/';
const PASSWORD = 'bench-pw';

/**
 * PostgreSQL settings both benchmarked agents get: small and unsynced, as the integration tests use
 * (test/support/cluster.ts), so the comparison measures the HA logic, not the disk.
 */
export const BENCH_PG_PARAMETERS = { shared_buffers: '16MB', max_connections: 30, fsync: 'off' };

/** What differs between the products. */
export interface AgentSpec {
  product: string;
  /** Node names are `<prefix>1..3`. */
  namePrefix: string;
  /** The agent's argv for one node's YAML. */
  command(configPath: string): { file: string; args: string[] };
  /** OS user the agent runs as (null: the bench's own user). */
  user: OsUser | null;
  /** Extra environment for the agent. */
  env?: NodeJS.ProcessEnv;
  /** Requests a switchover; resolves once the request was made (or done, for tools that wait). */
  switchover(ctx: { dcs: EtcdDcs; configPath: string }, leader: string, candidate: string): Promise<string>;
}

/** Builds one node's YAML: pgha's demo config with the given timings and bench parameters. */
export function benchNodeConfig(opts: {
  name: string;
  etcd: string[];
  pgPort: number;
  apiPort: number;
  dataDir: string;
  password: string;
  timings: HaTimings;
}): Record<string, unknown> {
  const cfg = demoNodeConfig(opts);
  const dcs = (cfg.bootstrap as { dcs: Record<string, unknown> }).dcs;
  dcs.ttl = opts.timings.ttl;
  dcs.loop_wait = opts.timings.loopWait;
  dcs.retry_timeout = opts.timings.retryTimeout;
  const pgSection = cfg.postgresql as Record<string, unknown>;
  pgSection.bin_dir = PG_BIN;
  pgSection.parameters = { ...(pgSection.parameters as object), ...BENCH_PG_PARAMETERS };
  cfg.log = { level: 'INFO' };
  return cfg;
}

/** Starts etcd and three agents (does not wait for them: see `waitHealthy`). */
export async function startBenchCluster(spec: AgentSpec, timings: HaTimings): Promise<BenchCluster> {
  const scope = cleanupScope();
  try {
    return await start(scope, spec, timings);
  } catch (e) {
    await scope.close();
    throw e;
  }
}

type RunningNode = BenchNode & { proc: ChildProcess | null };

async function start(scope: CleanupScope, spec: AgentSpec, timings: HaTimings): Promise<BenchCluster> {
  const dir = makeBenchDir(scope);
  const pg = pgUser();
  const etcd = await startEtcd({ members: 1 });
  scope.add(`stop etcd (${spec.product})`, () => etcd.stop());

  const ports = await freePorts(6);
  const nodes: RunningNode[] = [];
  for (let i = 0; i < 3; i++) {
    const name = `${spec.namePrefix}${i + 1}`;
    const nodeDir = join(dir, name);
    mkdirSync(nodeDir, { mode: 0o755 });
    if (pg) chownSync(nodeDir, pg.uid, pg.gid);
    const dataDir = join(nodeDir, 'data');
    const pgPort = ports[2 * i]!;
    const apiPort = ports[2 * i + 1]!;
    const cfg = benchNodeConfig({
      name,
      etcd: etcd.endpoints,
      pgPort,
      apiPort,
      dataDir,
      password: PASSWORD,
      timings,
    });
    const configPath = join(dir, `${name}.yml`);
    writeFileSync(configPath, stringify(cfg), { mode: 0o600 });
    if (spec.user) chownSync(configPath, spec.user.uid, spec.user.gid);
    nodes.push({ name, pgPort, apiPort, dataDir, configPath, logPath: join(dir, `${name}.log`), proc: null });
  }

  // SIGTERM: each agent stops its PostgreSQL (and releases the leader key) before it exits.
  scope.add(`stop ${spec.product} nodes`, async () => {
    await Promise.all(
      nodes.map((n) => (n.proc ? stopProcess(n.proc, 'SIGTERM', 30_000) : Promise.resolve())),
    );
    await stopPostmasters(nodes.map((n) => n.dataDir));
  });
  // Last resort if the bench process dies without running its cleanup.
  scope.onExit(() => {
    for (const n of nodes) if (n.proc?.pid && isAlive(n.proc)) signal(n.proc.pid, 'SIGKILL');
    for (const n of nodes) {
      const pid = postmasterPid(n.dataDir);
      if (pid) signal(pid, 'SIGQUIT');
    }
  });

  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PATRONI')) env[k] = v;
  Object.assign(env, spec.env);
  for (const n of nodes) {
    const out = createWriteStream(n.logPath, { flags: 'a' });
    const { file, args } = spec.command(n.configPath);
    const child = startProcess(file, args, { user: spec.user, env, cwd: join(dir, n.name) });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    child.on('error', (e) => log(`${n.name}: cannot start ${file}: ${e.message}`));
    n.proc = child;
  }

  const reader = clusterReader(etcd.endpoints, NAMESPACE, DEMO_SCOPE, nodes.length - 1);
  scope.add(`close etcd reader (${spec.product})`, () => reader.dcs.close({ revokeLease: false }));

  return {
    product: spec.product,
    dir,
    nodes,
    superuser: { username: 'postgres', password: PASSWORD },
    readState: () => reader.dcs.readCluster(),
    waitHealthy: (timeoutMs) => reader.waitHealthy(timeoutMs),
    switchover: (leader, candidate) =>
      spec.switchover({ dcs: reader.dcs, configPath: nodes[0]!.configPath }, leader, candidate),
    killNode(name) {
      const n = nodes.find((x) => x.name === name);
      if (!n?.proc?.pid) throw new Error(`no running ${spec.product} node ${name}`);
      const pm = postmasterPid(n.dataDir);
      signal(n.proc.pid, 'SIGKILL');
      if (pm) signal(pm, 'SIGKILL');
    },
    agentMemory: () =>
      nodes
        .map((n) => (n.proc && isAlive(n.proc) ? memoryMb(n.name, n.proc.pid) : null))
        .filter((x) => x !== null),
    stop: () => scope.close(),
  };
}

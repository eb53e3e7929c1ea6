/**
 * A real cluster for end-to-end tests: etcd, and one `pgha agent` process per node (the built
 * CLI, as users run it), each managing its own PostgreSQL on loopback. Optionally each agent
 * reaches etcd through its own TCP proxy, so a test can cut one node off from etcd.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { demoNodeConfig } from '../../src/demo/demo.js';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { isStreamingMember, type ClusterState } from '../../src/dcs/types.js';
import { isAlive, startProcess, stopProcess } from '../../src/util/process.js';
import { startEtcd, type EtcdCluster } from './etcd.js';
import { freePorts } from './net.js';
import { createPgTestBase, killPostmaster, waitFor, type PgTestBase } from './postgres.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
import { isPrimaryRole } from '../../src/ha/rules.js';

export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
export const SCOPE = 'demo';
const PASSWORD = 'test-pw';

export interface TestNode {
  name: string;
  configPath: string;
  pgPort: number;
  apiPort: number;
  dataDir: string;
  logPath: string;
  proxy: TcpProxy | null;
  agent: ChildProcess | null;
}

export interface ClusterOptions {
  nodes?: number;
  ttl?: number;
  loopWait?: number;
  retryTimeout?: number;
  /** etcd members (default 1). */
  etcdMembers?: number;
  /** Name the etcd members after the nodes (pg1, pg2, …), as on hosts that carry one of each. */
  etcdNamedAfterNodes?: boolean;
  /** Put a TCP proxy between each agent and etcd. */
  proxyEtcd?: boolean;
  /** Dynamic settings the cluster bootstraps with (`bootstrap.dcs`), beside ttl, loop_wait and retry_timeout. */
  dcs?: Record<string, unknown>;
  /** PostgreSQL parameters the cluster bootstraps with (`bootstrap.dcs.postgresql.parameters`). */
  dcsParameters?: Record<string, unknown>;
  /** Edits each node's YAML before it is written. */
  edit?: (cfg: Record<string, unknown>, name: string) => void;
  /** A program (and its arguments) that runs each agent, such as `unshare`; the agent runs directly without it. */
  launcher?: string[];
}

export interface TestCluster {
  etcd: EtcdCluster;
  base: PgTestBase;
  nodes: TestNode[];
  node(name: string): TestNode;
  startAgent(name: string): void;
  /** Sends `signal` to the agent and waits for it to exit. */
  stopAgent(name: string, signal?: NodeJS.Signals): Promise<void>;
  readCluster(): Promise<ClusterState>;
  /** Waits until a leader runs and `replicas` other members stream; returns the state. */
  waitHealthy(replicas?: number, timeoutMs?: number): Promise<ClusterState>;
  /** Waits until the sync key names the leader and a synchronous standby; returns both. */
  syncPair(timeoutMs?: number): Promise<{ leader: string; standby: string }>;
  /**
   * Changes the dynamic configuration through `name`'s `PATCH /config` (throws unless 200) and
   * waits until its `GET /config` shows every value of `body`.
   */
  patchConfig(name: string, body: Record<string, unknown>): Promise<void>;
  /** Runs SQL on a node as the superuser; throws when it is down. */
  query<T extends Record<string, unknown> = Record<string, unknown>>(
    name: string,
    sql: string,
    params?: unknown[],
  ): Promise<T[]>;
  /** Connection settings for a node's PostgreSQL as the superuser. */
  connection(name: string): { host: string; port: number; user: string; password: string; database: string };
  postmasterPid(name: string): number | null;
  killPostmaster(name: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startCluster(opts: ClusterOptions = {}): Promise<TestCluster> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
  const count = opts.nodes ?? 3;
  const etcd = await startEtcd({
    members: opts.etcdMembers ?? 1,
    ...(opts.etcdNamedAfterNodes ? { names: Array.from({ length: count }, (_, i) => `pg${i + 1}`) } : {}),
  });
  const base = createPgTestBase();
  const nodes: TestNode[] = [];
  const watcher = new EtcdDcs({
    hosts: etcd.endpoints,
    namespace: '/service/',
    scope: SCOPE,
    name: 'test-watcher',
    ttl: 10,
  });
  const ports = await freePorts(count * 2);
  for (let i = 0; i < count; i++) {
    const name = `pg${i + 1}`;
    const pgCfg = await base.pgConfig(name);
    const proxy = opts.proxyEtcd
      ? await startTcpProxy('127.0.0.1', Number(etcd.endpoints[0]!.split(':')[1]))
      : null;
    const cfg = demoNodeConfig({
      name,
      etcd: proxy ? [proxy.endpoint] : etcd.endpoints,
      pgPort: ports[2 * i]!,
      apiPort: ports[2 * i + 1]!,
      dataDir: pgCfg.data_dir,
      password: PASSWORD,
    });
    const dcs = (cfg.bootstrap as { dcs: Record<string, unknown> }).dcs;
    dcs.ttl = opts.ttl ?? 10;
    dcs.loop_wait = opts.loopWait ?? 1;
    dcs.retry_timeout = opts.retryTimeout ?? 3;
    Object.assign(dcs, opts.dcs);
    if (opts.dcsParameters) {
      const pgDcs = (dcs.postgresql ??= {}) as { parameters?: Record<string, unknown> };
      pgDcs.parameters = { ...pgDcs.parameters, ...opts.dcsParameters };
    }
    const pgSection = cfg.postgresql as Record<string, unknown>;
    pgSection.bin_dir = pgCfg.bin_dir;
    pgSection.parameters = {
      ...(pgSection.parameters as object),
      shared_buffers: '16MB',
      max_connections: 30,
      fsync: 'off',
    };
    opts.edit?.(cfg, name);
    const configPath = join(base.dir, `${name}.yml`);
    writeFileSync(configPath, stringify(cfg));
    nodes.push({
      name,
      configPath,
      pgPort: ports[2 * i]!,
      apiPort: ports[2 * i + 1]!,
      dataDir: pgCfg.data_dir,
      logPath: join(base.dir, `${name}.log`),
      proxy,
      agent: null,
    });
  }

  const node = (name: string) => {
    const n = nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  };

  const cluster: TestCluster = {
    etcd,
    base,
    nodes,
    node,
    startAgent(name) {
      const n = node(name);
      if (n.agent && isAlive(n.agent)) throw new Error(`agent ${name} is already running`);
      const log = createWriteStream(n.logPath, { flags: 'a' });
      const command = [...(opts.launcher ?? []), process.execPath, CLI, 'agent', n.configPath];
      const child = startProcess(command[0]!, command.slice(1), {
        env: { ...process.env, PATRONI_LOG_LEVEL: 'DEBUG' },
      });
      child.stdout?.pipe(log);
      child.stderr?.pipe(log);
      n.agent = child;
    },
    async stopAgent(name, signal = 'SIGTERM') {
      const n = node(name);
      if (n.agent) await stopProcess(n.agent, signal, 60_000);
      n.agent = null;
    },
    readCluster: () => watcher.readCluster(),
    async waitHealthy(replicas = count - 1, timeoutMs = 90_000) {
      return waitFor(
        `a leader and ${replicas} streaming replicas`,
        async () => {
          const c = await watcher.readCluster();
          const leader = c.leader?.name;
          const lead = c.members.find((m) => m.name === leader);
          const streaming = c.members.filter((m) => m.name !== leader && isStreamingMember(m.data));
          return lead?.data.state === 'running' &&
            isPrimaryRole(lead.data.role) &&
            streaming.length >= replicas
            ? c
            : null;
        },
        timeoutMs,
      );
    },
    syncPair(timeoutMs = 30_000) {
      return waitFor(
        'a synchronous standby in the sync key',
        async () => {
          const s = await watcher.readCluster();
          const leader = s.leader?.name;
          return leader && s.sync?.leader === leader && s.sync.sync_standby
            ? { leader, standby: s.sync.sync_standby }
            : null;
        },
        timeoutMs,
      );
    },
    async patchConfig(name, body) {
      const url = `http://127.0.0.1:${node(name).apiPort}/config`;
      const res = await fetch(url, { method: 'PATCH', body: JSON.stringify(body) });
      if (res.status !== 200) throw new Error(`PATCH /config on ${name}: ${res.status} ${await res.text()}`);
      await waitFor(
        `${name}'s configuration to show ${JSON.stringify(body)}`,
        async () => {
          const now = (await (await fetch(url)).json()) as Record<string, unknown>;
          return Object.entries(body).every(([k, v]) => now[k] === v);
        },
        10_000,
      );
    },
    async query<T extends Record<string, unknown>>(
      name: string,
      sql: string,
      params?: unknown[],
    ): Promise<T[]> {
      const n = node(name);
      const client = new pg.Client({
        ...cluster.connection(n.name),
        connectionTimeoutMillis: 3000,
        query_timeout: 10_000,
      });
      client.on('error', () => undefined);
      await client.connect();
      try {
        return (await client.query<T>(sql, params)).rows;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    connection(name) {
      return {
        host: '127.0.0.1',
        port: node(name).pgPort,
        user: 'postgres',
        password: PASSWORD,
        database: 'postgres',
      };
    },
    postmasterPid(name) {
      const pidFile = join(node(name).dataDir, 'postmaster.pid');
      if (!existsSync(pidFile)) return null;
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    },
    async killPostmaster(name) {
      const pid = cluster.postmasterPid(name);
      if (pid) await killPostmaster(pid);
    },
    async stop() {
      await Promise.all(
        nodes.map((n) => (n.agent ? stopProcess(n.agent, 'SIGTERM', 30_000) : Promise.resolve())),
      );
      await watcher.close({ revokeLease: false }).catch(() => undefined);
      for (const n of nodes) await n.proxy?.close();
      await base.cleanup();
      await etcd.stop();
    },
  };
  return cluster;
}

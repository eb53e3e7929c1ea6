/**
 * A real pgha cluster spread over a network lab (test/support/netns.ts), laid out as in the seed:
 * each node namespace runs an etcd member, a `pgha agent` (its PostgreSQL on 5432, REST API on 8008)
 * and, optionally, a `pgha router` (5433, status on 127.0.0.1:8009); extra client namespaces sit
 * on the same bridge. Every process is the built CLI (`dist/cli.js`) or Debian's etcd, started
 * inside its node's namespace and stopped by its pid.
 *
 * ```ts
 * const c = await startNetCluster({ nodes: 3, clients: ['client'], routers: true });
 * await c.waitHealthy();
 * const leader = (await c.readCluster()).leader!.name;
 * await c.killAgent(leader); await c.killPostmaster(leader);   // a crash of the leader
 * c.startCli('pg2', ['vip', path], 'vip');                      // any other pgha process, tracked
 * await c.stop();                                              // in afterAll: everything, then the lab
 * ```
 *
 * Ports are the same in every namespace (each has its own): etcd 2379/2380, PostgreSQL 5432,
 * REST 8008, router 5433 and 8009. PostgreSQL listens on every address of its namespace (so a VIP
 * reaches it too) and pg_hba lets the whole lab subnet in with passwords. The test process reaches
 * every node through the lab's runner address.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { demoNodeConfig } from '../../src/demo/demo.js';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { isStreamingMember, type ClusterState } from '../../src/dcs/types.js';
import { isAlive, stopProcess } from '../../src/util/process.js';
import { CLI, SCOPE } from './cluster.js';
import { createNetLab, type LabHost, type NetLab } from './netns.js';
import { createPgTestBase, killPostmaster, waitFor, type PgTestBase } from './postgres.js';
import { isPrimaryRole } from '../../src/ha/rules.js';

const ETCD_BIN = process.env.PGHA_TEST_ETCD ?? '/usr/bin/etcd';
export const NET_PASSWORD = 'test-pw';
/** The ports every node namespace uses. */
export const NET_PORTS = {
  etcd: 2379,
  etcdPeer: 2380,
  pg: 5432,
  api: 8008,
  router: 5433,
  routerStatus: 8009,
};

export interface NetClusterOptions {
  /** PostgreSQL nodes (each also an etcd member). Default 3. */
  nodes?: number;
  /** Extra namespaces for clients, e.g. `['client']`. */
  clients?: string[];
  /** Start a `pgha router` on every node. */
  routers?: boolean;
  ttl?: number;
  loopWait?: number;
  retryTimeout?: number;
  /** The lab's /24 (first three octets); a free one by default. */
  subnet?: string;
  /** Edits each node's YAML before it is written (add a `vip:` section, tags, ...). */
  edit?: (cfg: Record<string, unknown>, node: string) => void;
}

export interface NetNode {
  name: string;
  host: LabHost;
  /** The node's lab address. */
  address: string;
  configPath: string;
  dataDir: string;
  etcd: ChildProcess | null;
  agent: ChildProcess | null;
  router: ChildProcess | null;
}

export interface NetCluster {
  lab: NetLab;
  base: PgTestBase;
  nodes: NetNode[];
  clients: LabHost[];
  node(name: string): NetNode;
  /** `address:2379` of every etcd member. */
  etcdEndpoints: string[];
  /** A copy of the YAML a node runs with (to derive other processes' configs from). */
  config(name: string): Record<string, unknown>;
  /** Writes `cfg` as `<base>/<file>` and returns the path. */
  writeConfig(file: string, cfg: Record<string, unknown>): string;
  /** Log file of a process started here (`<base>/<node>-<what>.log`). */
  logPath(name: string, what: string): string;

  startEtcdMember(name: string): Promise<void>;
  stopEtcdMember(name: string, signal?: NodeJS.Signals): Promise<void>;
  startAgent(name: string): void;
  /** Sends `signal` to the agent and waits for it to exit. */
  stopAgent(name: string, signal?: NodeJS.Signals): Promise<void>;
  /** SIGKILLs the agent (its PostgreSQL keeps running, as after a crash of the agent alone). */
  killAgent(name: string): Promise<void>;
  startRouter(name: string): void;
  stopRouter(name: string, signal?: NodeJS.Signals): Promise<void>;
  /**
   * Starts `node dist/cli.js <args>` inside the node's namespace (or a client's), logging to
   * `logPath(name, what)`. The cluster stops it in `stop()` unless the caller did.
   */
  startCli(name: string, args: string[], what: string): ChildProcess;

  readCluster(): Promise<ClusterState>;
  /** Waits until a leader runs and `replicas` other members stream; returns the state. */
  waitHealthy(replicas?: number, timeoutMs?: number): Promise<ClusterState>;
  /**
   * Waits until a leader runs and `replicas` others stream on its timeline, continuously for
   * `forMs` (default 5 s): right after a switchover or failover a replica may still stop to rewind,
   * so a test injecting its next fault should wait for this first. `minTimeline`: the leader's
   * timeline must be at least this (e.g. one more than before a switchover).
   */
  waitSteady(opts?: {
    replicas?: number;
    forMs?: number;
    minTimeline?: number;
    timeoutMs?: number;
  }): Promise<ClusterState>;
  /** Waits until a member other than `not` (if given) holds the leader key and runs as primary. */
  waitLeader(not?: string, timeoutMs?: number): Promise<string>;
  /** Runs SQL on a node (from the test process, over the lab) as the superuser. */
  query<T extends Record<string, unknown> = Record<string, unknown>>(name: string, sql: string): Promise<T[]>;
  connection(name: string): { host: string; port: number; user: string; password: string; database: string };
  postmasterPid(name: string): number | null;
  /** SIGKILLs the node's postmaster and waits until its children are gone. */
  killPostmaster(name: string): Promise<void>;
  /** Stops every process started here (by pid), removes the data, then the lab. */
  stop(): Promise<void>;
}

/** Starts the lab, etcd on every node, and an agent (and router) per node. Call `stop()` in afterAll. */
export async function startNetCluster(opts: NetClusterOptions = {}): Promise<NetCluster> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
  const count = opts.nodes ?? 3;
  const names = Array.from({ length: count }, (_, i) => `pg${i + 1}`);
  const lab = await createNetLab({
    hosts: [...names, ...(opts.clients ?? [])],
    ...(opts.subnet ? { subnet: opts.subnet } : {}),
  });
  const base = createPgTestBase();
  const tracked = new Set<ChildProcess>();
  const configs = new Map<string, Record<string, unknown>>();
  const nodes: NetNode[] = [];
  let watcher: EtcdDcs | null = null;

  const node = (name: string): NetNode => {
    const n = nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  };
  const logPath = (name: string, what: string) => join(base.dir, `${name}-${what}.log`);
  const launch = (h: LabHost, file: string, args: string[], log: string): ChildProcess => {
    const child = h.spawn(file, args, { env: { ...process.env } });
    const out = createWriteStream(log, { flags: 'a' });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    child.on('error', () => undefined);
    tracked.add(child);
    child.once('exit', () => tracked.delete(child));
    return child;
  };
  const stopChild = async (child: ChildProcess | null, signal: NodeJS.Signals, graceMs: number) => {
    if (child) await stopProcess(child, signal, graceMs);
  };

  const etcdEndpoints = names.map((_, i) => `${lab.hosts[i]!.address}:${NET_PORTS.etcd}`);
  const initialCluster = names
    .map((n, i) => `${n}=http://${lab.hosts[i]!.address}:${NET_PORTS.etcdPeer}`)
    .join(',');
  const token = `pgha-netns-${lab.id}-${Date.now()}`;
  const etcdStarted = new Set<string>();

  const launchEtcd = (n: NetNode): void => {
    const a = n.address;
    const dataDir = join(base.dir, `${n.name}-etcd`);
    mkdirSync(dataDir, { recursive: true });
    // As in the seed: clients on the node's address and loopback, peers on the node's address; as
    // test/support/etcd.ts, short heartbeat and election timeouts so leader changes are quick.
    const args = [
      ['--name', n.name],
      ['--data-dir', dataDir],
      ['--listen-client-urls', `http://${a}:${NET_PORTS.etcd},http://127.0.0.1:${NET_PORTS.etcd}`],
      ['--advertise-client-urls', `http://${a}:${NET_PORTS.etcd}`],
      ['--listen-peer-urls', `http://${a}:${NET_PORTS.etcdPeer}`],
      ['--initial-advertise-peer-urls', `http://${a}:${NET_PORTS.etcdPeer}`],
      ['--initial-cluster', initialCluster],
      ['--initial-cluster-state', etcdStarted.has(n.name) ? 'existing' : 'new'],
      ['--initial-cluster-token', token],
      ['--heartbeat-interval', '50'],
      ['--election-timeout', '500'],
      ['--logger', 'zap'],
      ['--log-level', 'warn'],
    ].flat();
    etcdStarted.add(n.name);
    n.etcd = launch(n.host, ETCD_BIN, args, logPath(n.name, 'etcd'));
  };
  const etcdHealthy = (n: NetNode, timeoutMs: number) =>
    waitFor(
      `etcd on ${n.name} to be healthy (log ${logPath(n.name, 'etcd')})`,
      async () => {
        if (!n.etcd || !isAlive(n.etcd))
          throw new Error(`etcd on ${n.name} exited:\n${tail(logPath(n.name, 'etcd'))}`);
        const res = await fetch(`http://${n.address}:${NET_PORTS.etcd}/health`, {
          signal: AbortSignal.timeout(1000),
        });
        return res.ok && ((await res.json()) as { health?: string }).health === 'true';
      },
      timeoutMs,
      100,
    );

  const cluster: NetCluster = {
    lab,
    base,
    nodes,
    clients: (opts.clients ?? []).map((c) => lab.host(c)),
    node,
    etcdEndpoints,
    config: (name) => structuredClone(configs.get(name) ?? {}),
    writeConfig(file, cfg) {
      const path = join(base.dir, file);
      writeFileSync(path, stringify(cfg));
      return path;
    },
    logPath,
    async startEtcdMember(name) {
      const n = node(name);
      if (n.etcd && isAlive(n.etcd)) return;
      launchEtcd(n);
      await etcdHealthy(n, 30_000);
    },
    async stopEtcdMember(name, signal = 'SIGTERM') {
      const n = node(name);
      await stopChild(n.etcd, signal, 5000);
      n.etcd = null;
    },
    startAgent(name) {
      const n = node(name);
      if (n.agent && isAlive(n.agent)) throw new Error(`agent ${name} is already running`);
      n.agent = launch(n.host, process.execPath, [CLI, 'agent', n.configPath], logPath(name, 'agent'));
    },
    async stopAgent(name, signal = 'SIGTERM') {
      const n = node(name);
      await stopChild(n.agent, signal, 60_000);
      n.agent = null;
    },
    async killAgent(name) {
      await cluster.stopAgent(name, 'SIGKILL');
    },
    startRouter(name) {
      const n = node(name);
      if (n.router && isAlive(n.router)) throw new Error(`router ${name} is already running`);
      n.router = launch(n.host, process.execPath, [CLI, 'router', n.configPath], logPath(name, 'router'));
    },
    async stopRouter(name, signal = 'SIGTERM') {
      const n = node(name);
      await stopChild(n.router, signal, 10_000);
      n.router = null;
    },
    startCli(name, args, what) {
      const h = nodes.find((x) => x.name === name)?.host ?? lab.host(name);
      return launch(h, process.execPath, [CLI, ...args], logPath(name, what));
    },
    readCluster() {
      watcher ??= new EtcdDcs({
        hosts: etcdEndpoints,
        namespace: '/service/',
        scope: SCOPE,
        name: 'test-watcher',
        ttl: 10,
        requestTimeoutMs: 3000,
      });
      return watcher.readCluster();
    },
    async waitHealthy(replicas = count - 1, timeoutMs = 120_000) {
      return waitFor(
        `a leader and ${replicas} streaming replicas`,
        async () => {
          const c = await cluster.readCluster();
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
    async waitSteady(o = {}) {
      const replicas = o.replicas ?? count - 1;
      const forMs = o.forMs ?? 5000;
      let since = 0;
      return waitFor(
        `a leader and ${replicas} replicas streaming on its timeline for ${forMs} ms`,
        async () => {
          const c = await cluster.readCluster();
          const lead = c.members.find((m) => m.name === c.leader?.name);
          const tl = Number(lead?.data.timeline);
          const ok =
            lead !== undefined &&
            isPrimaryRole(lead.data.role) &&
            lead.data.state === 'running' &&
            tl >= (o.minTimeline ?? 0) &&
            c.members.filter(
              (m) => m.name !== lead.name && isStreamingMember(m.data) && Number(m.data.timeline) === tl,
            ).length >= replicas;
          if (!ok) since = 0;
          else since ||= Date.now();
          return ok && Date.now() - since >= forMs ? c : null;
        },
        o.timeoutMs ?? 90_000,
        250,
      );
    },
    async waitLeader(not, timeoutMs = 60_000) {
      return waitFor(
        not ? `a leader other than ${not}` : 'a leader',
        async () => {
          const c = await cluster.readCluster();
          const name = c.leader?.name;
          const m = c.members.find((x) => x.name === name);
          return name &&
            name !== not &&
            m !== undefined &&
            isPrimaryRole(m.data.role) &&
            m.data.state === 'running'
            ? name
            : null;
        },
        timeoutMs,
      );
    },
    async query<T extends Record<string, unknown>>(name: string, sql: string): Promise<T[]> {
      const client = new pg.Client({
        ...cluster.connection(name),
        connectionTimeoutMillis: 3000,
        query_timeout: 10_000,
      });
      client.on('error', () => undefined);
      await client.connect();
      try {
        return (await client.query<T>(sql)).rows;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    connection(name) {
      return {
        host: node(name).address,
        port: NET_PORTS.pg,
        user: 'postgres',
        password: NET_PASSWORD,
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
      // Clients of the cluster first (routers, VIPs, anything started with startCli), then the
      // agents (which stop PostgreSQL), leftover postmasters, etcd one member at a time, the lab.
      const agents = new Set(nodes.map((n) => n.agent));
      await Promise.all(
        [...tracked]
          .filter((c) => !agents.has(c) && !nodes.some((n) => n.etcd === c))
          .map((c) => stopProcess(c, 'SIGTERM', 10_000)),
      );
      await Promise.all(nodes.map((n) => stopChild(n.agent, 'SIGTERM', 20_000)));
      await watcher?.close({ revokeLease: false }).catch(() => undefined);
      // One at a time, as test/support/etcd.ts does: a raft leader stopped together with its
      // peers waits for a leadership transfer that cannot happen.
      for (const n of [...nodes].reverse()) await stopChild(n.etcd, 'SIGTERM', 3000);
      for (const c of tracked) await stopProcess(c, 'SIGKILL', 1000);
      await base.cleanup().catch(() => undefined);
      await lab.cleanup();
    },
  };

  try {
    const subnet = lab.subnet;
    for (const [i, name] of names.entries()) {
      const host = lab.hosts[i]!;
      const pgCfg = await base.pgConfig(name);
      const cfg = demoNodeConfig({
        name,
        etcd: etcdEndpoints,
        pgPort: NET_PORTS.pg,
        apiPort: NET_PORTS.api,
        dataDir: pgCfg.data_dir,
        password: NET_PASSWORD,
      });
      const api = `${host.address}:${NET_PORTS.api}`;
      cfg.restapi = { listen: api, connect_address: api };
      const bootstrap = cfg.bootstrap as { dcs: Record<string, unknown>; pg_hba: string[] };
      bootstrap.dcs.ttl = opts.ttl ?? 10;
      bootstrap.dcs.loop_wait = opts.loopWait ?? 1;
      bootstrap.dcs.retry_timeout = opts.retryTimeout ?? 3;
      const hba = [
        ...bootstrap.pg_hba,
        `host replication replicator ${subnet} scram-sha-256`,
        `host all all ${subnet} scram-sha-256`,
      ];
      bootstrap.pg_hba = hba;
      const pgSection = cfg.postgresql as Record<string, unknown>;
      pgSection.listen = `0.0.0.0:${NET_PORTS.pg}`;
      pgSection.connect_address = `${host.address}:${NET_PORTS.pg}`;
      pgSection.bin_dir = pgCfg.bin_dir;
      pgSection.pg_hba = hba;
      pgSection.parameters = {
        ...(pgSection.parameters as object),
        shared_buffers: '16MB',
        max_connections: 30,
        fsync: 'off',
      };
      cfg.router = {
        listen: `0.0.0.0:${NET_PORTS.router}`,
        status_listen: `127.0.0.1:${NET_PORTS.routerStatus}`,
      };
      opts.edit?.(cfg, name);
      configs.set(name, cfg);
      const configPath = join(base.dir, `${name}.yml`);
      writeFileSync(configPath, stringify(cfg));
      nodes.push({
        name,
        host,
        address: host.address,
        configPath,
        dataDir: pgCfg.data_dir,
        etcd: null,
        agent: null,
        router: null,
      });
    }
    for (const n of nodes) launchEtcd(n);
    await Promise.all(nodes.map((n) => etcdHealthy(n, 30_000)));
    for (const n of nodes) cluster.startAgent(n.name);
    if (opts.routers) for (const n of nodes) cluster.startRouter(n.name);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

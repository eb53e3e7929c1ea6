/**
 * One chaos run: a three-node pgha cluster in network namespaces (test/support/netns-cluster.ts),
 * one `pgha router` in a client namespace in front of it, a writer through that router, a sampler
 * writing straight on every node, and faults from a seeded plan until the duration is over; then
 * every fault is undone, the replicas catch up, the final leader's rows are read, and the checker
 * (chaos/checker.ts) writes its verdict. Used by `npm run chaos` (chaos/run.ts) and by
 * test/chaos/chaos.test.ts.
 *
 * The router runs in its own client namespace rather than beside the agents: it then shares no
 * fate with any node (a node fault never takes the client's entry point down, so availability
 * measures pgha, not the loss of one router), it reads etcd like any client host would, and — the
 * point of the partition fault — it can still reach a primary that is cut off from its peers.
 */
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { NetCluster } from '../test/support/netns-cluster.js';
import { NET_PASSWORD, NET_PORTS, startNetCluster } from '../test/support/netns-cluster.js';
import { SCOPE } from '../test/support/cluster.js';
import { waitFor } from '../test/support/postgres.js';
import {
  check,
  DEFAULT_CHECK_OPTIONS,
  formatSummary,
  healthyAgainAt,
  type ChaosData,
  type ChaosReport,
  type FinalState,
  type SyncMode,
} from './checker.js';
import { FaultPlan, injectFault, pause, restoreEverything, type FaultEnv, type FaultKind } from './faults.js';
import { HealthMonitor, RouterWriter, SCHEMA_SQL, WRITES_TABLE, WriteSampler } from './workload.js';

export interface ChaosOptions {
  /** 32-bit seed of the fault plan. */
  seed: number;
  mode: SyncMode;
  /** No new fault starts after this much time of faults. */
  durationMs: number;
  faults: FaultKind[];
  order: 'shuffle' | 'listed';
  /** Stop after this many faults even if time is left. */
  maxFaults?: number;
  /** Pause before each fault, chosen in [min, max]. */
  gapMs: [number, number];
  ttl: number;
  loopWait: number;
  retryTimeout: number;
  nodes: number;
  writeIntervalMs: number;
  probeIntervalMs: number;
  /** How long the cluster may take to be healthy again after a fault before the run gives up. */
  recoveryTimeoutMs: number;
  outageThresholdMs: number;
  stableMs: number;
  /** Where the report, the raw data and the processes' logs go. */
  runDir: string;
  /** Also write the report here. */
  jsonPath?: string;
  /** The command that replays this run (printed and stored in the report). */
  replay: string;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** The checker's report plus what identifies the run. */
export interface FullReport extends ChaosReport {
  seed: number;
  replay: string;
  runDir: string;
  setupMs: number;
  options: Record<string, unknown>;
}

export interface ChaosResult {
  report: FullReport;
  summary: string;
  runDir: string;
  reportPath: string;
}

const DB = 'postgres';
const SUPERUSER = 'postgres';

/** Runs the faults and the checks; always stops every process and namespace it started. */
export async function runChaos(opts: ChaosOptions): Promise<ChaosResult> {
  const signal = opts.signal ?? new AbortController().signal;
  mkdirSync(opts.runDir, { recursive: true });
  const runLog = join(opts.runDir, 'run.log');
  const started = Date.now();
  let t0 = started;
  const log = (line: string) => {
    const text = `[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}`;
    appendFileSync(runLog, text + '\n');
    opts.log?.(text);
  };

  const data: ChaosData = {
    mode: opts.mode,
    nodes: Array.from({ length: opts.nodes }, (_, i) => `pg${i + 1}`),
    t0,
    writerStart: t0,
    writerEnd: 0,
    writes: [],
    probes: [],
    samples: [],
    faults: [],
    final: null,
  };
  let c: NetCluster | null = null;
  let writer: RouterWriter | null = null;
  let sampler: WriteSampler | null = null;
  let monitor: HealthMonitor | null = null;
  let setupMs = 0;
  const checkOpts = {
    ...DEFAULT_CHECK_OPTIONS,
    outageThresholdMs: opts.outageThresholdMs,
    stableMs: opts.stableMs,
  };

  /** Waits until the cluster has been healthy for `stableMs` after `from` and a write got through. */
  const waitRecovered = async (from: number, timeoutMs: number): Promise<number | null> => {
    const deadline = Date.now() + timeoutMs;
    while (!signal.aborted && Date.now() < deadline) {
      const at = healthyAgainAt(monitor!.samples, from, opts.stableMs, data.nodes, opts.mode);
      if (at !== null && writer!.lastAckAt() > from) return at;
      await pause(250, signal);
    }
    return null;
  };

  try {
    log(`seed ${opts.seed}, mode ${opts.mode}, faults ${opts.faults.join(',')}; replay: ${opts.replay}`);
    c = await startNetCluster({
      nodes: opts.nodes,
      clients: ['client'],
      routers: false,
      ttl: opts.ttl,
      loopWait: opts.loopWait,
      retryTimeout: opts.retryTimeout,
      edit: (cfg) => {
        const dcs = (cfg.bootstrap as { dcs: Record<string, unknown> }).dcs;
        dcs.synchronous_mode = opts.mode === 'on' ? true : opts.mode === 'quorum' ? 'quorum' : false;
        // A SIGSTOPped agent with a real watchdog device would reset the whole machine.
        cfg.watchdog = { mode: 'off' };
      },
    });
    const cluster = c;
    log(`lab ${cluster.lab.subnet}, data and logs in ${cluster.base.dir}`);
    await cluster.waitHealthy(opts.nodes - 1, 180_000);
    const leader = await cluster.waitLeader(undefined, 60_000);
    for (const sql of SCHEMA_SQL) await cluster.query(leader, sql);

    const client = cluster.clients[0]!;
    const routerCfg = cluster.writeConfig('client-router.yml', {
      scope: SCOPE,
      namespace: '/service/',
      etcd3: { hosts: cluster.etcdEndpoints },
      router: {
        listen: `0.0.0.0:${NET_PORTS.router}`,
        status_listen: `127.0.0.1:${NET_PORTS.routerStatus}`,
        wait_timeout: 30,
      },
      log: { type: 'plain', level: 'INFO' },
    });
    cluster.startCli('client', ['router', routerCfg], 'router');
    const creds = { user: SUPERUSER, password: NET_PASSWORD, database: DB };
    await waitFor(
      `the router in ${client.name} to reach the primary`,
      async () => {
        const pc = new pg.Client({
          host: client.address,
          port: NET_PORTS.router,
          ...creds,
          connectionTimeoutMillis: 3000,
        });
        pc.on('error', () => undefined);
        try {
          await pc.connect();
          return (await pc.query('SELECT NOT pg_is_in_recovery() AS rw')).rows[0] as { rw: boolean };
        } finally {
          await pc.end().catch(() => undefined);
        }
      },
      60_000,
      250,
    );
    setupMs = Date.now() - started;
    log(
      `cluster ready after ${(setupMs / 1000).toFixed(1)} s; leader ${leader}; router on ${client.address}:${NET_PORTS.router}`,
    );

    const byAddress = new Map(cluster.nodes.map((n) => [n.address, n.name]));
    monitor = new HealthMonitor(cluster, 500);
    sampler = new WriteSampler(
      cluster.nodes.map((n) => ({ node: n.name, host: n.address, port: NET_PORTS.pg })),
      { ...creds, intervalMs: opts.probeIntervalMs, timeoutMs: 1000 },
    );
    writer = new RouterWriter({
      ...creds,
      host: client.address,
      port: NET_PORTS.router,
      intervalMs: opts.writeIntervalMs,
      connectTimeoutMs: 35_000,
      queryTimeoutMs: 30_000,
      nodeOf: (a) => byAddress.get(a) ?? a,
    });
    t0 = Date.now();
    data.t0 = data.writerStart = t0;
    monitor.start();
    sampler.start();
    writer.start();
    if ((await waitRecovered(t0, 60_000)) === null)
      throw new Error('no healthy cluster with writes going through');

    const env: FaultEnv = { cluster, mode: opts.mode, ttl: opts.ttl, signal, log };
    const plan = new FaultPlan(opts.seed, opts.faults, opts.order, opts.gapMs);
    const endAt = Date.now() + opts.durationMs;
    let recoveredAll = true;
    while (!signal.aborted && Date.now() < endAt && data.faults.length < (opts.maxFaults ?? Infinity)) {
      const next = plan.next();
      if (await pause(next.gapMs, signal)) break;
      log(`fault ${next.n}: ${next.kind}`);
      const rec = await injectFault(next, env);
      data.faults.push(rec);
      log(`fault ${rec.n}: ${rec.detail}${rec.error ? ` — ERROR ${rec.error}` : ''}`);
      if (signal.aborted) break;
      const healthyAt = await waitRecovered(rec.restoredAt, opts.recoveryTimeoutMs);
      if (healthyAt === null) {
        recoveredAll = false;
        if (!signal.aborted)
          log(
            `fault ${rec.n}: the cluster is not healthy ${opts.recoveryTimeoutMs / 1000} s after it; no more faults`,
          );
        break;
      }
      log(`fault ${rec.n}: healthy again ${((healthyAt - rec.injectedAt) / 1000).toFixed(2)} s after it`);
    }

    if (!signal.aborted) {
      const undone = await restoreEverything(env);
      if (undone.length) log(`final: ${undone.join('; ')}`);
      // After a fault the cluster never recovered from, a shorter last chance.
      const stuck = data.faults.length > 0 && !recoveredAll;
      const healthyAt = await waitRecovered(
        Date.now(),
        stuck ? Math.min(15_000, opts.recoveryTimeoutMs) : opts.recoveryTimeoutMs,
      );
      log(healthyAt === null ? 'final: the cluster did not become healthy' : 'final: cluster healthy');
      await pause(2000, signal);
      await writer.stop();
      data.writerEnd = Date.now();
      await sampler.stop();
      data.final = await readFinal(cluster, healthyAt !== null, log);
    }
  } catch (err) {
    data.interrupted = err instanceof Error ? err.message : String(err);
    log(`error: ${data.interrupted}`);
  } finally {
    if (signal.aborted) data.interrupted ??= 'stopped before the end (SIGINT/SIGTERM, or the caller aborted)';
    await writer?.stop();
    await sampler?.stop();
    await monitor?.stop();
    if (data.writerEnd === 0) data.writerEnd = Date.now();
    data.writes = writer?.writes ?? [];
    data.probes = sampler?.probes ?? [];
    data.samples = monitor?.samples ?? [];
    if (c) {
      copyLogs(c.base.dir, join(opts.runDir, 'logs'), data.nodes);
      await c
        .stop()
        .catch((err: unknown) => log(`cleanup: ${err instanceof Error ? err.message : String(err)}`));
    }
  }

  const report: FullReport = {
    ...check(data, checkOpts),
    seed: opts.seed,
    replay: opts.replay,
    runDir: opts.runDir,
    setupMs,
    options: {
      mode: opts.mode,
      durationMs: opts.durationMs,
      faults: opts.faults,
      order: opts.order,
      maxFaults: opts.maxFaults ?? null,
      gapMs: opts.gapMs,
      ttl: opts.ttl,
      loopWait: opts.loopWait,
      retryTimeout: opts.retryTimeout,
      nodes: opts.nodes,
      writeIntervalMs: opts.writeIntervalMs,
      probeIntervalMs: opts.probeIntervalMs,
      recoveryTimeoutMs: opts.recoveryTimeoutMs,
      outageThresholdMs: opts.outageThresholdMs,
      stableMs: opts.stableMs,
    },
  };
  const summary = `${formatSummary(report)}\n\nseed ${opts.seed} — replay: ${opts.replay}\nrun directory: ${opts.runDir}`;
  const reportPath = join(opts.runDir, 'report.json');
  const json = JSON.stringify(report, null, 2) + '\n';
  writeFileSync(reportPath, json);
  if (opts.jsonPath) writeFileSync(opts.jsonPath, json);
  writeFileSync(join(opts.runDir, 'summary.txt'), summary + '\n');
  writeFileSync(join(opts.runDir, 'data.json'), JSON.stringify(data));
  return { report, summary, runDir: opts.runDir, reportPath };
}

/**
 * Waits for every replica to replay the leader's WAL, then reads the ids on every node. Without a
 * leader, the rows of the node holding the most are compared instead (so a stuck cluster still
 * says whether acknowledged rows survive somewhere).
 */
async function readFinal(c: NetCluster, healthy: boolean, log: (l: string) => void): Promise<FinalState> {
  const final: FinalState = { leader: null, source: null, healthy, ids: null, replicas: {} };
  const problems: string[] = [];
  const idsOn = async (name: string) =>
    (await c.query<{ id: string }>(name, `SELECT id FROM ${WRITES_TABLE}`)).map((r) => Number(r.id));
  try {
    const leader = (await c.readCluster()).leader?.name ?? null;
    final.leader = leader;
    if (!leader) {
      problems.push('no leader at the end');
      for (const n of c.nodes) {
        const ids = await idsOn(n.name).catch(() => null);
        if (ids && (!final.ids || ids.length > final.ids.length)) {
          final.ids = ids;
          final.source = n.name;
        }
      }
      if (final.source) log(`final: no leader; ${final.source} holds the most rows (${final.ids!.length})`);
      return final;
    }
    final.source = leader;
    const lsn = (await c.query<{ lsn: string }>(leader, 'SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn;
    final.ids = await idsOn(leader);
    for (const n of c.nodes) {
      if (n.name === leader) continue;
      try {
        await waitFor(
          `${n.name} to replay up to ${lsn}`,
          async () =>
            (
              await c.query<{ ok: boolean }>(
                n.name,
                `SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn AS ok`,
              )
            )[0]?.ok,
          30_000,
          250,
        );
        final.replicas[n.name] = await idsOn(n.name);
      } catch (err) {
        final.replicas[n.name] = null;
        problems.push(`${n.name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    log(`final: leader ${leader} holds ${final.ids.length} rows`);
  } catch (err) {
    problems.unshift(err instanceof Error ? err.message : String(err));
  } finally {
    if (problems.length) final.error = problems.join('; ');
  }
  return final;
}

/** Copies the logs (agents, etcd members, router, each PostgreSQL) out of the cluster's directory. */
function copyLogs(from: string, to: string, nodes: string[]): void {
  try {
    if (!existsSync(from)) return;
    mkdirSync(to, { recursive: true });
    for (const f of readdirSync(from)) if (f.endsWith('.log')) copyFileSync(join(from, f), join(to, f));
    for (const n of nodes) {
      const pgLog = join(from, n, 'data.log');
      if (existsSync(pgLog)) copyFileSync(pgLog, join(to, `${n}-postgresql.log`));
    }
  } catch {
    // best effort: the report matters more
  }
}

/**
 * One benchmark scenario (switchover or leader-node kill), run for real Patroni and for pgha in
 * the same process, one after the other, with the same timings: start a fresh cluster, put the
 * client endpoint in front, write continuously, cause the event, measure, tear everything down.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { cleanupAll, cleanupScope } from './cleanup.js';
import { tail, type AgentMemory, type BenchCluster, type HaTimings } from './cluster.js';
import { resolveKinds, startEndpoint, type EndpointKind } from './endpoint.js';
import { haproxyTime } from './haproxy.js';
import { startPatroniCluster } from './patroni-cluster.js';
import { startPghaCluster } from './pgha-cluster.js';
import { errorText, keepLogs, log, sleep, waitFor } from './util.js';
import { analyse, BENCH_TABLE_SQL, execOn, lostAcks, Writer } from './writer.js';

export type ScenarioKind = 'switchover' | 'failover';
type Product = 'patroni' | 'pgha';

/** Timing presets: the two columns of the reference measurements (shared/reference/patroni.md §6). */
const PRESETS: Record<string, HaTimings & { inter: string }> = {
  tuned: { ttl: 10, loopWait: 2, retryTimeout: 3, inter: '0.5s' },
  defaults: { ttl: 30, loopWait: 10, retryTimeout: 10, inter: '2s' },
};

export interface ScenarioOptions {
  runs: number;
  timings: HaTimings;
  inter: string;
  intervalMs: number;
  /** Each product with each of its endpoints, in the order they run within a run. */
  variants: { product: Product; endpoint: EndpointKind }[];
  json: boolean;
}

export interface RunResult {
  run: number;
  product: string;
  endpointKind: EndpointKind;
  /** The endpoint as the report prints it. */
  endpoint: string;
  trigger: string;
  oldLeader: string;
  newLeader: string;
  longestGapMs: number;
  /** From the event to the moment the old leader's `leader` key was seen gone / replaced, ms. */
  leaderKeyGoneMs: number | null;
  /** From the event to the moment another member was seen holding the `leader` key, ms. */
  newLeaderKeyMs: number | null;
  toLastOldWriteMs: number | null;
  toFirstWriteMs: number | null;
  baselineMs: number;
  acked: number;
  errors: number;
  lost: number;
  /** The agents' VmRSS when the cluster became healthy (start-up), mean over agents, MiB. */
  agentStartRssMb: number;
  /** Each agent's peak VmRSS from just before the event to the end of the run, mean over agents, MiB. */
  agentRssMb: number;
  /** At those peaks: the agents' own (anonymous) pages, mean over agents, MiB. */
  agentAnonMb: number;
  error?: string;
}

const USAGE = `options:
  --runs N                 runs per product and endpoint (default 3)
  --preset tuned|defaults  tuned: ttl 10, loop_wait 2, retry_timeout 3, HAProxy inter 0.5s (default)
                           defaults: ttl 30, loop_wait 10, retry_timeout 10, HAProxy inter 2s
  --ttl S --loop-wait S --retry-timeout S   override the preset's HA timings (both products)
  --inter T                HAProxy health-check interval, HAProxy syntax (e.g. 0.5s, 3s)
  --interval-ms N          pause between writes (default 10; 0 = as fast as possible)
  --pgha-endpoint LIST     comma-separated: router, haproxy, multihost, auto (default:
                           the pgha router if built, and HAProxy, each on its own cluster)
  --patroni-endpoint LIST  haproxy (default), multihost, router
  --only patroni|pgha      run one product only
  --json                   print the results as JSON too`;

/** Parses the command line shared by both scenarios. */
export function parseOptions(argv: string[]): ScenarioOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string', default: '3' },
      preset: { type: 'string', default: 'tuned' },
      ttl: { type: 'string' },
      'loop-wait': { type: 'string' },
      'retry-timeout': { type: 'string' },
      inter: { type: 'string' },
      'interval-ms': { type: 'string', default: '10' },
      'pgha-endpoint': { type: 'string', default: 'auto' },
      'patroni-endpoint': { type: 'string', default: 'haproxy' },
      only: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const preset = PRESETS[values.preset];
  if (!preset) throw new Error(`--preset: expected tuned or defaults, got ${values.preset}`);
  const num = (flag: string, v: string | undefined, fallback: number, min: number) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${flag}: expected a number >= ${min}, got ${v}`);
    return n;
  };
  if (values.only !== undefined && values.only !== 'patroni' && values.only !== 'pgha') {
    throw new Error(`--only: expected patroni or pgha, got ${values.only}`);
  }
  const products: Product[] = values.only ? [values.only] : ['patroni', 'pgha'];
  const variants = products.flatMap((product) =>
    resolveKinds(values[`${product}-endpoint`], product).map((endpoint) => ({ product, endpoint })),
  );
  const inter = values.inter ?? preset.inter;
  haproxyTime(inter); // fail early on a bad --inter
  const timings: HaTimings = {
    ttl: num('ttl', values.ttl, preset.ttl, 1),
    loopWait: num('loop-wait', values['loop-wait'], preset.loopWait, 1),
    retryTimeout: num('retry-timeout', values['retry-timeout'], preset.retryTimeout, 1),
  };
  if (timings.loopWait + 2 * timings.retryTimeout > timings.ttl) {
    log(`warning: loop_wait + 2*retry_timeout > ttl (${JSON.stringify(timings)}); Patroni would adjust it`);
  }
  return {
    runs: num('runs', values.runs, 3, 1),
    timings,
    inter,
    intervalMs: num('interval-ms', values['interval-ms'], 10, 0),
    variants,
    json: values.json,
  };
}

const START: Record<Product, (t: HaTimings) => Promise<BenchCluster>> = {
  patroni: startPatroniCluster,
  pgha: startPghaCluster,
};

/** Runs the scenario for every product and run, prints the table; exits non-zero on failure. */
export async function main(kind: ScenarioKind, argv: string[]): Promise<void> {
  let opts: ScenarioOptions;
  try {
    opts = parseOptions(argv);
  } catch (e) {
    console.error(`${errorText(e)}\n${USAGE}`);
    process.exit(2);
  }
  const results: RunResult[] = [];
  let failed = false;
  try {
    for (let run = 1; run <= opts.runs; run++) {
      for (const { product, endpoint } of opts.variants) {
        const r = await runOnce(kind, product, endpoint, run, opts);
        results.push(r);
        if (r.error) failed = true;
      }
    }
  } catch (e) {
    failed = true;
    console.error(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  } finally {
    await cleanupAll();
  }
  console.log(report(kind, opts, results));
  if (opts.json) console.log(JSON.stringify({ scenario: kind, options: opts, results }, null, 2));
  process.exitCode = failed ? 1 : 0;
}

async function runOnce(
  kind: ScenarioKind,
  product: Product,
  endpointKind: EndpointKind,
  run: number,
  opts: ScenarioOptions,
): Promise<RunResult> {
  log(`run ${run}: ${product}, ${kind}, endpoint ${endpointKind}: starting the cluster`);
  const result: RunResult = {
    run,
    product: product === 'patroni' ? 'Patroni 3.0.2' : 'pgha',
    endpointKind,
    endpoint: endpointKind,
    trigger: kind === 'failover' ? 'kill -9 agent + postmaster' : '',
    oldLeader: '',
    newLeader: '',
    longestGapMs: NaN,
    leaderKeyGoneMs: null,
    newLeaderKeyMs: null,
    toLastOldWriteMs: null,
    toFirstWriteMs: null,
    baselineMs: NaN,
    acked: 0,
    errors: 0,
    lost: NaN,
    agentStartRssMb: NaN,
    agentRssMb: NaN,
    agentAnonMb: NaN,
  };
  let cluster: BenchCluster;
  try {
    cluster = await START[product](opts.timings);
  } catch (e) {
    result.error = errorText(e);
    log(`run ${run}: ${product} FAILED to start: ${result.error}`);
    return result;
  }
  const scope = cleanupScope();
  let writer: Writer | null = null;
  let endpointDir: string | undefined;
  let leaderTimeline: ReturnType<typeof watchLeader> | null = null;
  let memory: ReturnType<typeof peakMemory> | null = null;
  try {
    const t0 = Date.now();
    const leader = await cluster.waitHealthy(180_000);
    result.oldLeader = leader;
    log(`run ${run}: ${product} healthy after ${((Date.now() - t0) / 1000).toFixed(1)} s, leader ${leader}`);
    result.agentStartRssMb = meanOf(cluster.agentMemory().map((m) => m.rss));

    const endpoint = await startEndpoint(endpointKind, cluster, scope, { inter: opts.inter });
    result.endpoint = endpoint.label;
    endpointDir = endpoint.dir;
    const su = cluster.superuser;
    const leaderNode = cluster.nodes.find((n) => n.name === leader)!;
    await execOn({ host: '127.0.0.1', port: leaderNode.pgPort }, su.username, su.password, BENCH_TABLE_SQL);

    writer = new Writer({
      targets: endpoint.targets,
      user: su.username,
      password: su.password,
      intervalMs: opts.intervalMs,
    });
    writer.start();
    await writer.waitForAcks(20, 30_000);
    await sleep(3000); // steady state before the event
    memory = peakMemory(cluster);

    const eventAt = performance.now();
    leaderTimeline = watchLeader(cluster, leader, eventAt);
    if (kind === 'switchover') {
      const candidate = cluster.nodes.find((n) => n.name !== leader)!.name;
      log(`run ${run}: switchover ${leader} -> ${candidate}`);
      result.trigger = await cluster.switchover(leader, candidate);
    } else {
      log(`run ${run}: killing ${leader} (agent and postmaster, SIGKILL)`);
      cluster.killNode(leader);
    }

    const newLeader = await waitFor(
      'a new primary',
      async () => {
        const s = await cluster.readState();
        const l = s.leader?.name;
        const m = s.members.find((x) => x.name === l);
        return l &&
          l !== leader &&
          m?.data.state === 'running' &&
          ['primary', 'master'].includes(m.data.role ?? '')
          ? l
          : null;
      },
      120_000,
    );
    result.newLeader = newLeader;
    const newPort = cluster.nodes.find((n) => n.name === newLeader)!.pgPort;
    const w = writer;
    await waitFor(
      `a write acknowledged by the new primary ${newLeader}`,
      () => Promise.resolve(w.acks.some((a) => a.at >= eventAt && a.serverPort === newPort)),
      120_000,
      20,
    );
    log(`run ${run}: writes reach ${newLeader}; observing 5 s more`);
    if (kind === 'switchover') {
      // The old leader must rejoin as a replica: the gap must include any hiccup that causes.
      await cluster.waitHealthy(120_000);
    }
    await sleep(5000);
    Object.assign(result, memory.stop());
    await writer.stop();
    const tl = await leaderTimeline.stop();
    result.leaderKeyGoneMs = tl.goneMs;
    result.newLeaderKeyMs = tl.newMs;

    const a = analyse(writer, eventAt, leaderNode.pgPort, newPort);
    Object.assign(result, {
      longestGapMs: a.longestGapMs,
      toLastOldWriteMs: a.eventToLastOldPrimaryWriteMs,
      toFirstWriteMs: a.eventToFirstNewPrimaryWriteMs,
      baselineMs: a.baselineIntervalMs,
      acked: a.acked,
      errors: a.errors,
    });
    const lost = await lostAcks(writer, { host: '127.0.0.1', port: newPort }, su.username, su.password);
    result.lost = lost.length;
    log(
      `run ${run}: ${product}: longest gap ${a.longestGapMs.toFixed(0)} ms, lost ${lost.length}` +
        (lost.length > 0 ? ` (ids ${lost.slice(0, 10).join(', ')}${lost.length > 10 ? ', ...' : ''})` : ''),
    );
  } catch (e) {
    result.error = errorText(e);
    log(`run ${run}: ${product} FAILED: ${result.error}`);
    for (const n of cluster.nodes) log(`--- ${n.name} (${n.logPath}):\n${tail(n.logPath)}`);
    const lastErrors = writer?.errors.slice(-5).map((x) => x.message) ?? [];
    if (lastErrors.length > 0) log(`writer errors (last 5): ${lastErrors.join(' | ')}`);
    try {
      log(`logs of the failed run kept in ${keepLogs([cluster.dir, ...(endpointDir ? [endpointDir] : [])])}`);
    } catch (err) {
      log(`could not keep the logs: ${errorText(err)}`);
    }
  } finally {
    memory?.stop();
    await leaderTimeline?.stop();
    await writer?.stop().catch(() => undefined);
    await scope.close();
    await cluster.stop();
  }
  return result;
}

function meanOf(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/**
 * Samples every agent's resident memory once a second; `stop()` (which may be called again) gives
 * the mean over agents of each one's peak VmRSS, and of its anonymous part at that peak. A peak,
 * not one sample: the event, a promotion or a rejoin, runs code a settled agent does not.
 */
function peakMemory(cluster: BenchCluster): { stop(): { agentRssMb: number; agentAnonMb: number } } {
  const peaks = new Map<string, AgentMemory>();
  const take = () => {
    for (const m of cluster.agentMemory()) {
      if (m.rss > (peaks.get(m.name)?.rss ?? 0)) peaks.set(m.name, m);
    }
  };
  take();
  const timer = setInterval(take, 1000);
  return {
    stop() {
      clearInterval(timer);
      const all = [...peaks.values()];
      return { agentRssMb: meanOf(all.map((m) => m.rss)), agentAnonMb: meanOf(all.map((m) => m.anon)) };
    },
  };
}

/**
 * Polls the cluster keys every 50 ms from the event on and notes when the old leader's key was
 * first seen gone and when another member first held it (in ms from the event).
 */
function watchLeader(
  cluster: BenchCluster,
  oldLeader: string,
  eventAt: number,
): { stop(): Promise<{ goneMs: number | null; newMs: number | null }> } {
  let stopped = false;
  const seen = { goneMs: null as number | null, newMs: null as number | null };
  const loop = (async () => {
    while (!stopped && seen.newMs === null) {
      try {
        const s = await cluster.readState();
        const at = performance.now() - eventAt;
        if (s.leader?.name !== oldLeader) seen.goneMs ??= at;
        if (s.leader && s.leader.name !== oldLeader) seen.newMs = at;
      } catch {
        // etcd hiccup: try again
      }
      await sleep(50);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return seen;
    },
  };
}

const ms = (v: number | null) => (v === null || Number.isNaN(v) ? '-' : (v / 1000).toFixed(2));

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`;
  const sep = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join('\n');
}

/**
 * Medians per product and endpoint, compared pairwise: pgha and Patroni behind the same endpoint,
 * and pgha's own router against Patroni's reference setup (HAProxy).
 */
function summaryTable(results: RunResult[], firstCol: string): string {
  const ok = (product: string, kind: EndpointKind) =>
    results.filter((r) => r.product.startsWith(product) && r.endpointKind === kind && !r.error);
  const label = (kind: EndpointKind) =>
    results.find((r) => r.endpointKind === kind && !r.error)?.endpoint ?? kind;
  const kinds = [...new Set(results.map((r) => r.endpointKind))];
  const pairs: [EndpointKind, EndpointKind][] = kinds.map((k) => [k, k]);
  if (kinds.includes('router') && kinds.includes('haproxy')) pairs.push(['haproxy', 'router']);
  const ratio = (a: number, b: number) =>
    Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) : '-';
  const rows = [
    [
      'Patroni via / pgha via',
      'gap Patroni',
      'gap pgha',
      'ratio',
      'first write Patroni',
      'first write pgha',
      'ratio',
      'lost Patroni',
      'lost pgha',
      'client errors Patroni',
      'client errors pgha',
      'RSS Patroni',
      'RSS pgha',
      'ratio',
      'runs ok',
    ],
  ];
  for (const [pk, gk] of pairs) {
    const p = ok('Patroni', pk);
    const g = ok('pgha', gk);
    if (p.length === 0 && g.length === 0) continue;
    const gap = (rs: RunResult[]) => median(rs.map((r) => r.longestGapMs));
    const first = (rs: RunResult[]) => median(rs.map((r) => r.toFirstWriteMs ?? NaN));
    const lost = (rs: RunResult[]) => (rs.length ? String(rs.reduce((sum, r) => sum + r.lost, 0)) : '-');
    const errors = (rs: RunResult[]) => (rs.length ? String(median(rs.map((r) => r.errors))) : '-');
    const rss = (rs: RunResult[]) => median(rs.map((r) => r.agentRssMb));
    const mb = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
    rows.push([
      pk === gk ? label(pk) : `${label(pk)} / ${label(gk)}`,
      ms(gap(p)),
      ms(gap(g)),
      ratio(gap(g), gap(p)),
      ms(first(p)),
      ms(first(g)),
      ratio(first(g), first(p)),
      lost(p),
      lost(g),
      errors(p),
      errors(g),
      mb(rss(p)),
      mb(rss(g)),
      ratio(rss(g), rss(p)),
      `${p.length} / ${g.length}`,
    ]);
  }
  return (
    `medians over runs, in s (client errors: median count; RSS: agents' peak VmRSS in operation, MB); ` +
    `ratio = pgha / Patroni (below 1: pgha is faster, or smaller); ` +
    `first write = ${firstCol.replace(' (s)', '')}\n${table(rows)}`
  );
}

/** The printed report: one row per run, then medians and the pgha/Patroni ratio. */
export function report(kind: ScenarioKind, opts: ScenarioOptions, results: RunResult[]): string {
  const t = opts.timings;
  const head =
    `${kind}: ttl ${t.ttl}, loop_wait ${t.loopWait}, retry_timeout ${t.retryTimeout}; ` +
    `writer: one autocommit INSERT every ${opts.intervalMs} ms, reconnect after 30 ms`;
  const event = kind === 'failover' ? 'kill' : 'trigger';
  const firstCol = `${event} -> first write on new primary (s)`;
  const legend = [
    `gap: longest time between two consecutive acknowledged writes, from the ${event} on`,
    `old / new: seconds from the ${event} to the last write acknowledged by the old primary / the first by the new one`,
    `key gone / new key: seconds from the ${event} until the old leader key was seen gone / a new leader held it (etcd polled every 50 ms)`,
    'lost: acknowledged ids missing on the final primary; errors: statements or connections the client saw fail (each followed by a reconnect)',
    "RSS: resident memory (VmRSS) of the agents, mean over them: when the cluster became healthy (start), and each one's peak from just before the event to the end of the run (in operation); own: the anonymous part at that peak (the rest is pages of files, such as the node or python executable)",
  ].join('\n');
  const rows = [
    [
      'run',
      'product',
      'endpoint',
      'gap (s)',
      'old (s)',
      'key gone (s)',
      'new key (s)',
      'new (s)',
      'acked',
      'lost',
      'errors',
      'RSS start / in operation (own) MB',
      'note',
    ],
    ...results.map((r) => [
      String(r.run),
      r.product,
      r.endpoint,
      ms(r.longestGapMs),
      ms(r.toLastOldWriteMs),
      ms(r.leaderKeyGoneMs),
      ms(r.newLeaderKeyMs),
      ms(r.toFirstWriteMs),
      String(r.acked),
      Number.isNaN(r.lost) ? '-' : String(r.lost),
      String(r.errors),
      Number.isNaN(r.agentRssMb)
        ? '-'
        : `${r.agentStartRssMb.toFixed(0)} / ${r.agentRssMb.toFixed(0)} (${r.agentAnonMb.toFixed(0)})`,
      r.error ? `FAILED: ${r.error.split('\n')[0]}` : `${r.oldLeader} -> ${r.newLeader}; ${r.trigger}`,
    ]),
  ];
  const summary = summaryTable(results, firstCol);
  return `\n${head}\n${legend}\n\n${table(rows)}\n\n${summary}\n`;
}

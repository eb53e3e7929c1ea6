/**
 * `npm run bench:soak`: no spurious failover under load. A 3-node pgha cluster on a 3-member etcd
 * cluster, with the timings `pgha demo` ships (ttl 10, loop_wait 2, retry_timeout 3), runs pgbench
 * (TPC-B-like) against the leader for `--duration` while the etcd leader changes several times:
 * alternately `etcdctl move-leader` and SIGKILL of the etcd leader (restarted a few seconds later).
 * Every second it reads the leader key, the leader's timeline and `history`, and etcd's leader.
 *
 *   npm run bench:soak                       # 10 minutes, 8 clients, an etcd leader change every 2 min
 *   npm run bench:soak -- --duration 90s
 *   npm run bench:soak -- --duration 10m --clients 16 --etcd-changes 6 --ttl 10 --loop-wait 2
 *
 * Needs `npm run build` (the agents run as `node dist/cli.js`, as users run them), root, Debian's
 * etcd-server and etcd-client, PostgreSQL 15 and its pgbench. Exits 1 when the pgha leader or its
 * timeline changed, a leader lost its lease, or an agent logged "could not renew", "demoting" or
 * "fence" (and when pgbench failed or the planned etcd leader changes could not be made). The
 * summary goes to stdout and `summary.json` in the run directory (`/tmp/pgha-soak-XXXX`), with
 * the per-second samples, pgbench's output and every agent's and etcd member's log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  appendFileSync,
  copyFileSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { demoNodeConfig } from '../src/demo/demo.js';
import { EtcdDcs } from '../src/dcs/etcd.js';
import { isStreamingMember, type ClusterState } from '../src/dcs/types.js';
import { isAlive, stopProcess } from '../src/util/process.js';
import { SCOPE, startCluster, type TestCluster } from '../test/support/cluster.js';
import { PG_BIN } from '../test/support/postgres.js';
import { cleanupAll, cleanupScope } from './support/cleanup.js';
import { etcdStatus, moveLeader, type EtcdView } from './support/soak-etcd.js';
import { fenceMargins, type FenceMargin } from './support/soak-logs.js';
import { errorText, log, sleep } from './support/util.js';

// ---- options ------------------------------------------------------------------------------------

/** The timings `pgha demo` writes, read from the demo's own config builder so they stay in step. */
const shipped = (
  demoNodeConfig({
    name: 'x',
    etcd: ['127.0.0.1:2379'],
    pgPort: 1,
    apiPort: 2,
    dataDir: '/x/data',
    password: '',
  }).bootstrap as { dcs: { ttl: number; loop_wait: number; retry_timeout: number } }
).dcs;

const USAGE = `usage: npm run bench:soak -- [options]
  --duration D        pgbench run time: 90s, 10m, 1h or seconds (default 10m)
  --clients N         pgbench clients (-c), with -j 2 (default 8)
  --scale N           pgbench -i scale (default 10)
  --etcd-changes N    etcd leader changes during the run, alternately move-leader and SIGKILL
                      (default: one every ~2.5 min, at least 2)
  --etcd-down D       how long a killed etcd leader stays down (default 5s)
  --ttl S --loop-wait S --retry-timeout S
                      HA timings (default ${shipped.ttl}, ${shipped.loop_wait}, ${shipped.retry_timeout}: pgha demo's)
  --fsync on|off      PostgreSQL fsync (default on, PostgreSQL's default)
  --dir PATH          run directory for summary.json and logs (default /tmp/pgha-soak-XXXX)`;

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10m' },
    clients: { type: 'string', default: '8' },
    scale: { type: 'string', default: '10' },
    'etcd-changes': { type: 'string' },
    'etcd-down': { type: 'string', default: '5s' },
    ttl: { type: 'string', default: String(shipped.ttl) },
    'loop-wait': { type: 'string', default: String(shipped.loop_wait) },
    'retry-timeout': { type: 'string', default: String(shipped.retry_timeout) },
    fsync: { type: 'string', default: 'on' },
    dir: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

/** `90s`, `10m`, `1h`, `500ms` or plain seconds, to seconds. */
function seconds(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?$/.exec(text.trim());
  if (!m) usageError(`${what}: "${text}" is not a duration (90s, 10m, 1h or seconds)`);
  const unit = { ms: 0.001, s: 1, m: 60, min: 60, h: 3600 }[m[2] ?? 's'] ?? 1;
  return Number(m[1]) * unit;
}

function int(text: string, what: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) usageError(`${what}: "${text}" must be an integer >= ${min}`);
  return n;
}

function usageError(msg: string): never {
  console.error(`${msg}\n\n${USAGE}`);
  process.exit(2);
}

const durationS = Math.round(seconds(values.duration, '--duration'));
if (durationS < 20) usageError('--duration: at least 20 s');
const clients = int(values.clients, '--clients', 1);
const scale = int(values.scale, '--scale', 1);
const etcdChanges =
  values['etcd-changes'] === undefined
    ? Math.max(2, Math.round(durationS / 150))
    : int(values['etcd-changes'], '--etcd-changes', 0);
const etcdDownS = seconds(values['etcd-down'], '--etcd-down');
const ttl = int(values.ttl, '--ttl', 1);
const loopWait = int(values['loop-wait'], '--loop-wait', 1);
const retryTimeout = int(values['retry-timeout'], '--retry-timeout', 1);
if (values.fsync !== 'on' && values.fsync !== 'off') usageError('--fsync: on or off');
const fsync = values.fsync;
const PGBENCH = existsSync(join(PG_BIN, 'pgbench')) ? join(PG_BIN, 'pgbench') : 'pgbench';
const BAD_LOG = /could not renew|demoting|fence/i;

// ---- state --------------------------------------------------------------------------------------

interface Sample {
  /** Seconds since pgbench started (negative before). */
  t: number;
  leader: string | null;
  leaderLease: string | null;
  timeline: number | null;
  history: number | null;
  streaming: number | null;
  etcdLeader: string | null;
  etcdTerm: number;
  etcdAnswering: number;
  readError?: string;
}

interface EtcdAction {
  /** Seconds since pgbench started. */
  at: number;
  kind: 'move-leader' | 'kill';
  from: string | null;
  to: string | null;
  /** Seconds from the command (or the kill) until etcdctl showed another leader. */
  newLeaderAfterS: number | null;
  /** For a kill: seconds until the member answered /health again. */
  restartedAfterS?: number;
  ok: boolean;
  error?: string;
}

interface Progress {
  t: number;
  tps: number;
  latencyMs: number | null;
  failed: number | null;
}

let interrupted = false;
let t0 = 0; // pgbench start (ms since epoch); 0 before
const now = () => (t0 === 0 ? 0 : (Date.now() - t0) / 1000);
const round1 = (n: number) => Math.round(n * 10) / 10;

const samples = {
  count: 0,
  readErrors: 0,
  firstLeader: null as string | null,
  firstLease: null as string | null,
  firstTimeline: null as number | null,
  firstHistory: null as number | null,
  lastLeader: null as string | null,
  lastLease: null as string | null,
  lastTimeline: null as number | null,
  lastHistory: null as number | null,
  pghaLeaderChanges: 0,
  leaderMissing: 0,
  leaderLeaseChanges: 0,
  timelineChanges: 0,
  historyChanges: 0,
  minStreaming: null as number | null,
  etcdFirstTerm: 0,
  etcdLastTerm: 0,
  etcdLastLeader: null as string | null,
  etcdLeaderChangesObserved: 0,
  etcdNoLeader: 0,
};
const incidents: { t: number; what: string }[] = [];
function incident(what: string): void {
  incidents.push({ t: round1(now()), what });
  log(`!! ${what}`);
}

/** etcd member ids (decimal) to names (`etcd0`...), learned from `endpoint status`. */
const memberNames = new Map<string, string>();
const nameOf = (id: string | null) => (id === null ? 'none' : (memberNames.get(id) ?? id));

// ---- helpers ------------------------------------------------------------------------------------

function learnMembers(c: TestCluster, view: EtcdView): void {
  for (const s of view.statuses) {
    const m = c.etcd.members.find((x) => x.endpoint === s.endpoint);
    if (m) memberNames.set(s.memberId, m.name);
  }
}

/**
 * Endpoints of the members that run: etcdctl would wait out its dial timeout on a killed one,
 * which would slow the 1 s sampling and blur the time to a new leader.
 */
function liveEndpoints(c: TestCluster): string[] {
  return c.etcd.members.filter((m) => m.process !== null).map((m) => m.endpoint);
}

/** Waits until etcdctl shows a leader other than `from`; returns it, or null after `timeoutMs`. */
async function waitNewEtcdLeader(
  c: TestCluster,
  from: string | null,
  timeoutMs: number,
): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !interrupted) {
    const v = await etcdStatus(liveEndpoints(c));
    learnMembers(c, v);
    if (v.leader !== null && v.leader !== from && v.leaderEndpoint !== null) return v.leader;
    await sleep(100);
  }
  return null;
}

/** The current etcd leader as etcdctl sees it, waiting up to 15 s for one. */
async function currentEtcdLeader(c: TestCluster): Promise<EtcdView> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const v = await etcdStatus(liveEndpoints(c));
    learnMembers(c, v);
    if (v.leader !== null && v.leaderEndpoint !== null) return v;
    if (Date.now() > deadline) throw new Error(`no etcd leader visible to etcdctl: ${v.errors}`);
    await sleep(200);
  }
}

async function etcdChange(c: TestCluster, kind: EtcdAction['kind']): Promise<EtcdAction> {
  const action: EtcdAction = {
    at: round1(now()),
    kind,
    from: null,
    to: null,
    newLeaderAfterS: null,
    ok: false,
  };
  try {
    const view = await currentEtcdLeader(c);
    const from = view.leader!;
    action.from = nameOf(from);
    const started = Date.now();
    if (kind === 'move-leader') {
      const followers = view.statuses.filter((s) => s.memberId !== from);
      const target = followers[Math.floor(Math.random() * followers.length)];
      if (!target) throw new Error('no follower answered etcdctl endpoint status');
      log(`etcd: move-leader ${nameOf(from)} -> ${nameOf(target.memberId)}`);
      await moveLeader(view.leaderEndpoint!, target.memberId);
      const to = await waitNewEtcdLeader(c, from, 10_000);
      action.to = nameOf(to);
      action.newLeaderAfterS = to === null ? null : round1((Date.now() - started) / 1000);
      action.ok = to !== null;
      if (!action.ok) action.error = 'the leader did not change within 10 s';
    } else {
      const idx = c.etcd.members.findIndex((m) => m.endpoint === view.leaderEndpoint);
      if (idx < 0) throw new Error(`etcd leader endpoint ${view.leaderEndpoint} is not one of ours`);
      log(`etcd: SIGKILL leader ${c.etcd.members[idx]!.name} (pid ${c.etcd.members[idx]!.process?.pid})`);
      await c.etcd.stopMember(idx, 'SIGKILL');
      const to = await waitNewEtcdLeader(c, from, 15_000);
      action.to = nameOf(to);
      action.newLeaderAfterS = to === null ? null : round1((Date.now() - started) / 1000);
      const rest = started + etcdDownS * 1000 - Date.now();
      if (rest > 0) await sleep(rest);
      log(`etcd: restarting ${c.etcd.members[idx]!.name}`);
      await c.etcd.startMember(idx);
      action.restartedAfterS = round1((Date.now() - started) / 1000);
      action.ok = to !== null;
      if (!action.ok) action.error = 'no new leader within 15 s';
    }
    log(
      `etcd: ${kind} ${action.ok ? 'done' : 'FAILED'}: ${action.from} -> ${action.to}` +
        (action.newLeaderAfterS === null ? '' : `, new leader after ${action.newLeaderAfterS} s`) +
        (action.restartedAfterS === undefined ? '' : `, member back after ${action.restartedAfterS} s`),
    );
  } catch (e) {
    action.error = errorText(e);
    log(`etcd: ${kind} failed: ${action.error}`);
  }
  return action;
}

async function sample(c: TestCluster, dcs: EtcdDcs, samplesFile: string): Promise<Sample> {
  const t = round1(now());
  const [cluster, etcd] = await Promise.all([
    dcs.readCluster(AbortSignal.timeout(3000)).then(
      (x: ClusterState) => x,
      (e: unknown) => errorText(e),
    ),
    etcdStatus(liveEndpoints(c)),
  ]);
  learnMembers(c, etcd);
  const s: Sample = {
    t,
    leader: null,
    leaderLease: null,
    timeline: null,
    history: null,
    streaming: null,
    etcdLeader: etcd.leader,
    etcdTerm: etcd.term,
    etcdAnswering: etcd.statuses.length,
  };
  if (typeof cluster === 'string') {
    s.readError = cluster;
  } else {
    s.leader = cluster.leader?.name ?? null;
    s.leaderLease = cluster.leader?.lease ?? null;
    const lead = cluster.members.find((m) => m.name === s.leader);
    s.timeline = typeof lead?.data.timeline === 'number' ? lead.data.timeline : null;
    s.history = cluster.history.length;
    s.streaming = cluster.members.filter((m) => m.name !== s.leader && isStreamingMember(m.data)).length;
  }
  appendFileSync(samplesFile, `${JSON.stringify(s)}\n`);
  return s;
}

/** Folds one sample into the running counts; the first good sample is the reference. */
function account(s: Sample): void {
  samples.count++;
  if (s.etcdTerm > 0) {
    if (samples.etcdFirstTerm === 0) samples.etcdFirstTerm = s.etcdTerm;
    samples.etcdLastTerm = Math.max(samples.etcdLastTerm, s.etcdTerm);
  }
  if (s.etcdLeader === null) samples.etcdNoLeader++;
  else {
    if (samples.etcdLastLeader !== null && s.etcdLeader !== samples.etcdLastLeader) {
      samples.etcdLeaderChangesObserved++;
      log(
        `etcd leader is now ${nameOf(s.etcdLeader)} (was ${nameOf(samples.etcdLastLeader)}, term ${s.etcdTerm})`,
      );
    }
    samples.etcdLastLeader = s.etcdLeader;
  }
  if (s.readError !== undefined) {
    samples.readErrors++;
    return;
  }
  if (samples.firstLeader === null && s.leader !== null) {
    samples.firstLeader = samples.lastLeader = s.leader;
    samples.firstLease = samples.lastLease = s.leaderLease;
    samples.firstTimeline = samples.lastTimeline = s.timeline;
    samples.firstHistory = samples.lastHistory = s.history;
  }
  if (s.leader === null) {
    samples.leaderMissing++;
    incident(`no leader key (last leader ${samples.lastLeader})`);
  } else if (s.leader !== samples.lastLeader) {
    samples.pghaLeaderChanges++;
    incident(`pgha leader changed: ${samples.lastLeader} -> ${s.leader}`);
    samples.lastLeader = s.leader;
    samples.lastLease = s.leaderLease;
  } else if (s.leaderLease !== samples.lastLease) {
    samples.leaderLeaseChanges++;
    incident(`leader ${s.leader} holds the key on a new lease (${samples.lastLease} -> ${s.leaderLease})`);
    samples.lastLease = s.leaderLease;
  }
  if (s.timeline !== null) {
    if (samples.lastTimeline !== null && s.timeline !== samples.lastTimeline) {
      samples.timelineChanges++;
      incident(`leader timeline changed: ${samples.lastTimeline} -> ${s.timeline}`);
    }
    samples.lastTimeline = s.timeline;
  }
  if (s.history !== null) {
    if (samples.lastHistory !== null && s.history !== samples.lastHistory) {
      samples.historyChanges++;
      incident(`history length changed: ${samples.lastHistory} -> ${s.history}`);
    }
    samples.lastHistory = s.history;
  }
  if (s.streaming !== null && t0 !== 0)
    samples.minStreaming = Math.min(samples.minStreaming ?? s.streaming, s.streaming);
}

interface PgbenchResult {
  code: number | null;
  output: string;
}

/** Runs pgbench against 127.0.0.1:`port` as the superuser; its output goes to `logFile` too. */
function pgbench(
  c: TestCluster,
  leader: string,
  args: string[],
  logFile: string,
  children: Set<ChildProcess>,
  onLine?: (line: string) => void,
): { child: ChildProcess; done: Promise<PgbenchResult> } {
  const conn = c.connection(leader);
  const child = spawn(
    PGBENCH,
    ['-h', conn.host, '-p', String(conn.port), '-U', conn.user, ...args, conn.database],
    { env: { ...process.env, PGPASSWORD: conn.password }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  const file = createWriteStream(logFile, { flags: 'a' });
  let output = '';
  let partial = '';
  const feed = (d: Buffer) => {
    const text = d.toString();
    output += text;
    file.write(text);
    partial += text;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) onLine?.(l);
  };
  child.stdout.on('data', feed);
  child.stderr.on('data', feed);
  const done = Promise.race([
    once(child, 'close') as Promise<[number | null]>,
    once(child, 'error').then(([e]) => {
      throw new Error(`cannot run ${PGBENCH}: ${errorText(e)}`);
    }),
  ]).then(([code]) => {
    children.delete(child);
    file.end();
    if (partial) onLine?.(partial);
    return { code, output };
  });
  return { child, done };
}

function parseProgress(line: string): Progress | null {
  const m = /^progress: ([\d.]+) s, ([\d.]+) tps, lat ([\d.]+) ms(?:.*?, (\d+) failed)?/.exec(line.trim());
  if (!m) return null;
  return {
    t: Number(m[1]),
    tps: Number(m[2]),
    latencyMs: Number(m[3]),
    failed: m[4] === undefined ? null : Number(m[4]),
  };
}

function grab(re: RegExp, text: string): number | null {
  const m = re.exec(text);
  return m ? Number(m[1]) : null;
}

// ---- the run ------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const runDir = values.dir ?? mkdtempSync('/tmp/pgha-soak-');
  mkdirSync(runDir, { recursive: true });
  const logsDir = join(runDir, 'logs');
  mkdirSync(logsDir, { recursive: true });
  // test/support copies the agents' logs here when it removes the cluster's directories.
  process.env.PGHA_TEST_LOGS ??= logsDir;
  const samplesFile = join(runDir, 'samples.jsonl');
  writeFileSync(samplesFile, '');
  const scope = cleanupScope();
  process.on('SIGINT', () => (interrupted = true));
  process.on('SIGTERM', () => (interrupted = true));

  const plan = Array.from({ length: etcdChanges }, (_, i) => ({
    at: Math.round((durationS * (i + 1)) / (etcdChanges + 1)),
    kind: i % 2 === 0 ? ('move-leader' as const) : ('kill' as const),
  }));
  log(
    `soak: ${durationS} s of pgbench (${clients} clients, scale ${scale}), ttl ${ttl}, loop_wait ${loopWait}, ` +
      `retry_timeout ${retryTimeout}, fsync ${fsync}; etcd leader changes at ${plan.map((p) => `${p.at} s (${p.kind})`).join(', ') || 'none'}; run dir ${runDir}`,
  );

  log('starting 3 etcd members and 3 pgha agents (node dist/cli.js agent) ...');
  const c = await startCluster({
    nodes: 3,
    etcdMembers: 3,
    ttl,
    loopWait,
    retryTimeout,
    edit: (cfg) => {
      const p = (cfg.postgresql as { parameters: Record<string, unknown> }).parameters;
      p.fsync = fsync;
      p.shared_buffers = '128MB';
      p.max_connections = Math.max(30, clients + 20);
    },
  });
  scope.add('stop the cluster (agents, PostgreSQL, etcd)', async () => {
    for (const m of c.etcd.members) {
      try {
        copyFileSync(m.logFile, join(logsDir, `${m.name}.log`));
      } catch {
        // no log yet
      }
    }
    await c.stop();
  });
  scope.onExit(() => {
    for (const n of c.nodes) if (n.agent && isAlive(n.agent)) n.agent.kill('SIGKILL');
  });
  const dcs = new EtcdDcs({
    hosts: c.etcd.endpoints,
    namespace: '/service/',
    scope: SCOPE,
    name: 'soak-watcher',
    ttl: 10,
    requestTimeoutMs: 3000,
  });
  scope.add('close the watcher', () => dcs.close({ revokeLease: false }));
  const children = new Set<ChildProcess>();
  scope.add('stop pgbench', async () => {
    for (const ch of children) await stopProcess(ch, 'SIGINT', 5000);
  });
  scope.onExit(() => {
    for (const ch of children) if (isAlive(ch)) ch.kill('SIGKILL');
  });

  for (const n of c.nodes) c.startAgent(n.name);
  const healthy = await c.waitHealthy(2, 120_000);
  const leader = healthy.leader!.name;
  log(`cluster healthy: leader ${leader}, 2 streaming replicas; agents' logs in ${c.base.dir}`);

  log(`pgbench -i -s ${scale} on ${leader} ...`);
  const init = pgbench(
    c,
    leader,
    ['-i', '-q', '-s', String(scale)],
    join(runDir, 'pgbench-init.log'),
    children,
  );
  const initRes = await init.done;
  if (initRes.code !== 0) throw new Error(`pgbench -i failed (exit ${initRes.code}):\n${initRes.output}`);
  await c.waitHealthy(2, 60_000);
  const startView = await currentEtcdLeader(c);
  log(`etcd leader ${nameOf(startView.leader)} (term ${startView.term}); starting the soak`);

  // The monitor: one sample a second until `monitoring` is cleared.
  let monitoring = true;
  account(await sample(c, dcs, samplesFile));
  const monitor = (async () => {
    while (monitoring && !interrupted) {
      const started = Date.now();
      account(await sample(c, dcs, samplesFile));
      const rest = 1000 - (Date.now() - started);
      if (rest > 0) await sleep(rest);
    }
  })();

  const progress: Progress[] = [];
  t0 = Date.now();
  const run = pgbench(
    c,
    leader,
    ['-c', String(clients), '-j', String(Math.min(2, clients)), '-T', String(durationS), '-P', '10'],
    join(runDir, 'pgbench.log'),
    children,
    (line) => {
      const p = parseProgress(line);
      if (p) {
        progress.push(p);
        log(`pgbench ${line.trim()}`);
      } else if (/error|abort|fatal/i.test(line)) log(`pgbench: ${line.trim()}`);
    },
  );
  let pgbenchDone = false;
  const runDone = run.done.finally(() => (pgbenchDone = true));

  const actions: EtcdAction[] = [];
  for (const p of plan) {
    const wait = t0 + p.at * 1000 - Date.now();
    if (wait > 0) await Promise.race([sleep(wait), runDone.catch(() => undefined)]);
    if (pgbenchDone || interrupted) break;
    actions.push(await etcdChange(c, p.kind));
  }
  const res = await runDone;
  if (interrupted) throw new Error('interrupted');
  const pgbenchS = (Date.now() - t0) / 1000;
  log(`pgbench exited ${res.code} after ${pgbenchS.toFixed(0)} s; watching ${2 * ttl} s more`);
  await sleep(2 * ttl * 1000);
  monitoring = false;
  await monitor;
  let endStreaming: number | null = null;
  try {
    const end = await c.waitHealthy(2, 60_000);
    endStreaming = end.members.filter((m) => m.name !== end.leader?.name && isStreamingMember(m.data)).length;
  } catch (e) {
    incident(`the cluster was not healthy at the end: ${errorText(e)}`);
  }
  const finalView = await etcdStatus(liveEndpoints(c));

  // The agents' logs, read before the cluster stops (its shutdown is not part of the soak).
  const agentLogs = c.nodes.map((n) => {
    const lines = existsSync(n.logPath) ? readFileSync(n.logPath, 'utf8').split('\n') : [];
    return {
      node: n.name,
      badLines: lines.filter((l) => BAD_LOG.test(l)).map((l) => l.slice(0, 400)),
      storeUnreachable: lines.filter((l) => /store unreachable/.test(l)).length,
      fenceMargins: fenceMargins(n.name, lines, t0),
    };
  });
  const margins = agentLogs.flatMap((a) => a.fenceMargins);
  const closest = margins.reduce<FenceMargin | null>(
    (m, x) => (m === null || (x.marginS ?? -Infinity) < (m.marginS ?? -Infinity) ? x : m),
    null,
  );

  // ---- summary ----
  const out = res.output;
  const tps = grab(/tps = ([\d.]+) \(without initial connection time\)/, out);
  const tpsValues = progress.map((p) => p.tps);
  const failedTx = grab(/number of failed transactions: (\d+)/, out);
  const done = actions.filter((a) => a.ok);
  const badLines = agentLogs.flatMap((a) => a.badLines.map((l) => `${a.node}: ${l}`));
  const failures: string[] = [];
  if (samples.pghaLeaderChanges > 0) failures.push(`${samples.pghaLeaderChanges} pgha leader change(s)`);
  if (samples.leaderMissing > 0) failures.push(`${samples.leaderMissing} sample(s) without a leader key`);
  if (samples.leaderLeaseChanges > 0)
    failures.push(`the leader re-took its key on a new lease ${samples.leaderLeaseChanges} time(s)`);
  if (samples.timelineChanges > 0) failures.push(`${samples.timelineChanges} timeline change(s)`);
  if (samples.historyChanges > 0) failures.push(`${samples.historyChanges} history change(s)`);
  if (badLines.length > 0)
    failures.push(`${badLines.length} "could not renew"/"demoting"/"fence" log line(s)`);
  if (res.code !== 0) failures.push(`pgbench exited ${res.code}`);
  if ((failedTx ?? 0) > 0) failures.push(`${failedTx} failed pgbench transactions`);
  if (done.length < plan.length)
    failures.push(`only ${done.length} of ${plan.length} planned etcd leader changes were made`);
  if (interrupted) failures.push('interrupted');

  const summary = {
    ok: failures.length === 0,
    failures,
    startedAt: new Date(t0).toISOString(),
    runDir,
    settings: {
      durationS,
      clients,
      jobs: Math.min(2, clients),
      scale,
      ttl,
      loopWait,
      retryTimeout,
      shippedDefaults:
        ttl === shipped.ttl && loopWait === shipped.loop_wait && retryTimeout === shipped.retry_timeout,
      fsync,
      sharedBuffers: '128MB',
      etcdDownS,
      pgbench: PGBENCH,
    },
    pgbench: {
      exitCode: res.code,
      ranS: round1(pgbenchS),
      tps,
      transactions: grab(/number of transactions actually processed: (\d+)/, out),
      failedTransactions: failedTx,
      latencyAvgMs: grab(/latency average = ([\d.]+) ms/, out),
      progressIntervals: progress.length,
      progressTpsMin: tpsValues.length ? Math.min(...tpsValues) : null,
      progressTpsMax: tpsValues.length ? Math.max(...tpsValues) : null,
      progress,
    },
    etcd: {
      changesPlanned: plan.length,
      changesDone: done.length,
      moveLeaderDone: done.filter((a) => a.kind === 'move-leader').length,
      killDone: done.filter((a) => a.kind === 'kill').length,
      leaderChangesObserved: samples.etcdLeaderChangesObserved,
      raftTermFirst: samples.etcdFirstTerm,
      raftTermLast: Math.max(samples.etcdLastTerm, finalView.term),
      samplesWithoutLeader: samples.etcdNoLeader,
      finalLeader: nameOf(finalView.leader),
      actions,
    },
    pgha: {
      leaderFirst: samples.firstLeader,
      leaderLast: samples.lastLeader,
      leaderChanges: samples.pghaLeaderChanges,
      samplesWithoutLeaderKey: samples.leaderMissing,
      leaderLeaseChanges: samples.leaderLeaseChanges,
      timelineFirst: samples.firstTimeline,
      timelineLast: samples.lastTimeline,
      timelineChanges: samples.timelineChanges,
      historyFirst: samples.firstHistory,
      historyLast: samples.lastHistory,
      historyChanges: samples.historyChanges,
      minStreamingReplicasDuringRun: samples.minStreaming,
      streamingReplicasAtEnd: endStreaming,
      samples: samples.count,
      failedReads: samples.readErrors,
      incidents,
      /** The leader's episodes of etcd trouble and how close each came to its fence deadline. */
      fenceMargins: margins,
      minFenceMarginS: closest?.marginS ?? null,
    },
    agentLogs,
  };
  const jsonPath = join(runDir, 'summary.json');
  writeFileSync(jsonPath, `${JSON.stringify(summary, null, 2)}\n`);

  const p = summary.pgbench;
  const e = summary.etcd;
  const h = summary.pgha;
  const lines = [
    '',
    `pgha soak — ${summary.startedAt}`,
    `cluster      3 pgha agents (node dist/cli.js), 3-member etcd, PostgreSQL fsync ${fsync}, shared_buffers 128MB`,
    `timings      ttl ${ttl}, loop_wait ${loopWait}, retry_timeout ${retryTimeout}` +
      (summary.settings.shippedDefaults ? " (pgha demo's defaults)" : ' (overridden)'),
    `duration     ${p.ranS} s of pgbench -c ${clients} -j ${summary.settings.jobs} -T ${durationS} -P 10 (TPC-B-like, scale ${scale}) against the leader`,
    `pgbench      ${p.tps?.toFixed(1) ?? '?'} tps, ${p.transactions ?? '?'} transactions, ${p.failedTransactions ?? '?'} failed, ` +
      `latency avg ${p.latencyAvgMs ?? '?'} ms, exit ${p.exitCode}`,
    `  per 10 s   min ${p.progressTpsMin?.toFixed(1) ?? '?'} / max ${p.progressTpsMax?.toFixed(1) ?? '?'} tps over ${p.progressIntervals} intervals`,
    `etcd         ${e.changesDone} of ${e.changesPlanned} leader changes done (${e.moveLeaderDone} move-leader, ${e.killDone} SIGKILL + restart after ${etcdDownS} s); ` +
      `${e.leaderChangesObserved} leader changes observed via etcdctl endpoint status (raft term ${e.raftTermFirst} -> ${e.raftTermLast})`,
    ...actions.map(
      (a) =>
        `  at ${a.at.toFixed(0).padStart(4)} s   ${a.kind.padEnd(11)} ${a.from ?? '?'} -> ${a.to ?? '?'}` +
        (a.newLeaderAfterS === null ? '' : `, new leader after ${a.newLeaderAfterS} s`) +
        (a.restartedAfterS === undefined ? '' : `, member back after ${a.restartedAfterS} s`) +
        (a.error ? `  FAILED: ${a.error}` : ''),
    ),
    `pgha leader  ${h.leaderFirst} -> ${h.leaderLast}: ${h.leaderChanges} leader changes, ${h.samplesWithoutLeaderKey} samples without a leader key, ` +
      `${h.leaderLeaseChanges} lease changes`,
    `timeline     ${h.timelineFirst} -> ${h.timelineLast}: ${h.timelineChanges} changes; history entries ${h.historyFirst} -> ${h.historyLast}`,
    `replicas     streaming: min ${h.minStreamingReplicasDuringRun ?? '?'} during the run, ${h.streamingReplicasAtEnd ?? '?'} at the end`,
    `agent logs   ${badLines.length === 0 ? 'no "could not renew" / "demoting" / "fence" lines' : `${badLines.length} "could not renew" / "demoting" / "fence" lines:`}; ` +
      `"store unreachable": ${agentLogs.map((a) => `${a.node} ${a.storeUnreachable}`).join(', ')}`,
    ...badLines.slice(0, 20).map((l) => `  ${l}`),
    `fence margin ${
      closest === null
        ? 'the leader never found etcd unreachable'
        : `the leader found etcd unreachable ${margins.length} time(s); closest: renewed ` +
          (closest.marginS === null
            ? 'never'
            : `${closest.marginS} s before its fence deadline (ttl - safety margin)`) +
          ` (${closest.node} at ${closest.at.toFixed(0)} s)`
    }`,
    `monitor      ${h.samples} samples (1/s), ${h.failedReads} failed reads of the cluster`,
    `result       ${summary.ok ? 'PASS: no failover, no fence' : `FAIL: ${failures.join('; ')}`}`,
    `JSON         ${jsonPath}`,
    `logs         ${logsDir} (copied when the cluster stops), samples ${samplesFile}, pgbench ${join(runDir, 'pgbench.log')}`,
  ];
  console.log(lines.join('\n'));
  return summary.ok ? 0 : 1;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (e) {
  console.error(`soak failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  if (process.env.PGHA_TEST_LOGS)
    console.error(`the agents' logs are copied to ${process.env.PGHA_TEST_LOGS}`);
} finally {
  interrupted = true; // ends the monitor's and the etcd helpers' loops if main() threw midway
  log('stopping every process the soak started ...');
  await cleanupAll();
}
process.exit(exitCode);

/**
 * `npm run bench:router`: pgbench through a direct connection, the pgha router and Debian's HAProxy
 * (TCP mode, the seed's health check), in the same run against the same one-node cluster. The
 * router runs twice: `pgha router` with its default native data path, `router js` with
 * `data_path: javascript`, to show what the native relay buys.
 *
 *   npm run bench:router                 # 10 s per run, median of 3 runs per case
 *   npm run bench:router -- --duration 60 --rounds 5
 *   npm run bench:router -- --clients 8,32,64 --modes select-only
 *
 * Needs `npm run build` (the router and the agent run as `node dist/cli.js`, as users run them).
 * The last column is the CPU time the proxy process spent per transaction (from /proc), which is
 * steadier than TPS on a shared machine. BENCH_ROUTER_PROF=<dir> writes a V8 CPU profile of the
 * router; BENCH_DEBUG=1 names each target as it runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { stringify } from 'yaml';
import { stopProcess } from '../src/util/process.js';
import { CLI, SCOPE, startCluster, type TestCluster } from '../test/support/cluster.js';
import { freePorts } from '../test/support/net.js';
import { waitFor } from '../test/support/postgres.js';

const PASSWORD = 'test-pw'; // test/support/cluster.ts's superuser password

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    clients: { type: 'string', default: '8,32' },
    scale: { type: 'string', default: '16' },
    long: { type: 'boolean', default: false },
    modes: { type: 'string', default: 'select-only,tpcb-like' },
    rounds: { type: 'string', default: '3' },
  },
});
const duration = values.long ? 60 : Number(values.duration);
const rounds = Number(values.rounds);
const clientCounts = values.clients.split(',').map(Number);

interface Result {
  tps: number;
  latencyMs: number;
  /** CPU time the proxy process used per transaction (µs), when there is a proxy. */
  proxyCpuUs?: number;
}

/** utime + stime of a process, in µs (from /proc; clock ticks are 100 Hz on Linux). */
function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * A target's TPS against another's, run by run: the median and the range of the ratios of runs of
 * the same round (run minutes apart, drift in the machine's load would move two medians apart).
 */
function pairedRatio(a: Result[], b: Result[]): { median: number; min: number; max: number } {
  const ratios = a.map((x, i) => x.tps / b[i]!.tps);
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) };
}

/** The median of each figure over a target's runs of one case. */
function medianResult(rs: Result[]): Result {
  const r: Result = { tps: median(rs.map((x) => x.tps)), latencyMs: median(rs.map((x) => x.latencyMs)) };
  const cpu = rs.flatMap((x) => (x.proxyCpuUs === undefined ? [] : [x.proxyCpuUs]));
  if (cpu.length > 0) r.proxyCpuUs = median(cpu);
  return r;
}

async function pgbench(port: number, args: string[], proxyPid?: number): Promise<Result> {
  const cpu0 = proxyPid === undefined ? 0 : cpuMicros(proxyPid);
  const child = spawn(
    'pgbench',
    ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-n', ...args, 'postgres'],
    { env: { ...process.env, PGPASSWORD: PASSWORD }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
  const lat = /latency average = ([\d.]+) ms/.exec(out);
  if (code !== 0 || !tps || !lat) throw new Error(`pgbench failed (exit ${code}):\n${out}`);
  const tx = /number of transactions actually processed: (\d+)/.exec(out);
  const r: Result = { tps: Number(tps[1]), latencyMs: Number(lat[1]) };
  if (proxyPid !== undefined && tx) r.proxyCpuUs = (cpuMicros(proxyPid) - cpu0) / Number(tx[1]);
  return r;
}

async function waitPort(port: number, what: string): Promise<void> {
  await waitFor(
    what,
    async () => {
      const { connect } = await import('node:net');
      return new Promise<boolean>((resolve) => {
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
    },
    20_000,
  );
}

async function main(): Promise<void> {
  const started: ChildProcess[] = [];
  let cluster: TestCluster | null = null;
  try {
    console.log('starting a one-node cluster (etcd, pgha agent, PostgreSQL 15) ...');
    cluster = await startCluster({
      nodes: 1,
      edit: (cfg) => {
        const pg = cfg.postgresql as { parameters: Record<string, unknown> };
        pg.parameters.max_connections = 100;
        pg.parameters.shared_buffers = '128MB';
      },
    });
    cluster.startAgent('pg1');
    await cluster.waitHealthy(0);
    const node = cluster.node('pg1');
    const [routerPort, haproxyPort, statusPort] = await freePorts(3);

    // The pgha router, as a separate process like HAProxy: once with its native data path (the
    // default), once with bytes copied in JavaScript (`router.data_path: javascript`).
    const [jsRouterPort, jsStatusPort] = await freePorts(2);
    const startRouter = (name: string, port: number, status: number, dataPath: string): ChildProcess => {
      const cfgPath = join(cluster!.base.dir, `${name}.yml`);
      writeFileSync(
        cfgPath,
        stringify({
          scope: SCOPE,
          namespace: '/service/',
          etcd3: { hosts: cluster!.etcd.endpoints },
          router: { listen: `127.0.0.1:${port}`, status_listen: `127.0.0.1:${status}`, data_path: dataPath },
          log: { level: 'WARNING' },
        }),
      );
      const child = spawn(
        process.execPath,
        [
          ...(process.env.BENCH_ROUTER_PROF
            ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_ROUTER_PROF]
            : []),
          CLI,
          'router',
          cfgPath,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      started.push(child);
      const log = createWriteStream(join(cluster!.base.dir, `${name}.log`));
      child.stdout?.pipe(log);
      child.stderr?.pipe(log);
      return child;
    };
    const router = startRouter('router', routerPort!, statusPort!, 'native');
    const jsRouter = startRouter('router-js', jsRouterPort!, jsStatusPort!, 'javascript');

    // HAProxy as the seed runs it: TCP mode, OPTIONS /primary health check.
    const haCfg = join(cluster.base.dir, 'haproxy.cfg');
    writeFileSync(
      haCfg,
      [
        'global',
        '  maxconn 1000',
        'defaults',
        '  mode tcp',
        '  timeout connect 4s',
        '  timeout client 30m',
        '  timeout server 30m',
        'listen primary',
        `  bind 127.0.0.1:${haproxyPort}`,
        '  option httpchk OPTIONS /primary',
        '  http-check expect status 200',
        '  default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions',
        `  server pg1 127.0.0.1:${node.pgPort} maxconn 100 check port ${node.apiPort}`,
        '',
      ].join('\n'),
    );
    const haproxy = spawn('/usr/sbin/haproxy', ['-f', haCfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(haproxy);
    const haLog = createWriteStream(join(cluster.base.dir, 'haproxy.log'));
    haproxy.stdout.pipe(haLog);
    haproxy.stderr.pipe(haLog);

    await waitPort(routerPort!, 'the pgha router');
    await waitPort(jsRouterPort!, 'the pgha router (JavaScript data path)');
    await waitPort(haproxyPort!, 'HAProxy');
    console.log(`pgbench -i -s ${values.scale} ...`);
    const init = spawn(
      'pgbench',
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(node.pgPort),
        '-U',
        'postgres',
        '-i',
        '-q',
        '-s',
        values.scale,
        'postgres',
      ],
      { env: { ...process.env, PGPASSWORD: PASSWORD }, stdio: 'ignore' },
    );
    const [initCode] = (await once(init, 'exit')) as [number | null];
    if (initCode !== 0) throw new Error(`pgbench -i failed (exit ${initCode})`);
    // Wait until both proxies really reach PostgreSQL (HAProxy's first health check, etcd's first read).
    for (const [port, what] of [
      [routerPort!, 'a session through the pgha router'],
      [jsRouterPort!, 'a session through the pgha router (JavaScript data path)'],
      [haproxyPort!, 'a session through HAProxy'],
    ] as const) {
      await waitFor(
        what,
        async () => {
          const c = new pg.Client({
            host: '127.0.0.1',
            port,
            user: 'postgres',
            password: PASSWORD,
            database: 'postgres',
          });
          c.on('error', () => undefined);
          try {
            await c.connect();
            await c.query('select 1');
            return true;
          } finally {
            await c.end().catch(() => undefined);
          }
        },
        30_000,
      );
    }

    // Loading the tables leaves dirty buffers and autovacuum work behind; without a checkpoint and
    // an unrecorded warm-up run, the first case's first targets pay for them.
    console.log('checkpoint and a 5 s warm-up run (not recorded) ...');
    const admin = new pg.Client({
      host: '127.0.0.1',
      port: node.pgPort,
      user: 'postgres',
      password: PASSWORD,
      database: 'postgres',
    });
    await admin.connect();
    try {
      await admin.query('VACUUM ANALYZE');
      await admin.query('CHECKPOINT');
    } finally {
      await admin.end();
    }
    await pgbench(node.pgPort, ['-S', '-c', '8', '-j', '2', '-T', '5']);

    const targets = [
      { name: 'direct', port: node.pgPort, pid: undefined },
      { name: 'pgha router', port: routerPort!, pid: router.pid },
      { name: 'router js', port: jsRouterPort!, pid: jsRouter.pid },
      { name: 'haproxy', port: haproxyPort!, pid: haproxy.pid },
    ];
    const modes = [
      { name: 'select-only', args: ['-S'] },
      { name: 'tpcb-like', args: [] as string[] },
    ].filter((m) => values.modes.split(',').includes(m.name));
    const rows: string[] = [];
    let caseNo = 0;
    console.log(
      `\n${duration} s per run, median of ${rounds} runs per case (ratios: median of the rounds' ` +
        `ratios, and their range), pgbench -j 2, ` +
        `${process.env.HOSTNAME ?? 'this host'}, loopback\n`,
    );
    const header =
      'mode         clients  target         TPS        latency ms  vs HAProxy  (range)      vs direct  proxy CPU µs/tx';
    console.log(header);
    for (const mode of modes) {
      for (const clients of clientCounts) {
        const runs = new Map<string, Result[]>(targets.map((t) => [t.name, []]));
        for (let round = 0; round < rounds; round++) {
          // Rotate the order from run to run so a drift in machine load does not favour one target.
          const shift = caseNo++ % targets.length;
          for (const t of [...targets.slice(shift), ...targets.slice(0, shift)]) {
            if (process.env.BENCH_DEBUG) console.error(`${t.name} on ${t.port}`);
            const r = await pgbench(
              t.port,
              [...mode.args, '-c', String(clients), '-j', '2', '-T', String(duration)],
              t.pid,
            );
            runs.get(t.name)!.push(r);
          }
        }
        const results = new Map([...runs].map(([name, rs]) => [name, medianResult(rs)]));
        for (const t of targets) {
          const r = results.get(t.name)!;
          const ha = pairedRatio(runs.get(t.name)!, runs.get('haproxy')!);
          const direct = pairedRatio(runs.get(t.name)!, runs.get('direct')!);
          const range = `${ha.min.toFixed(2)}–${ha.max.toFixed(2)}`;
          const line =
            `${mode.name.padEnd(12)} ${String(clients).padStart(7)}  ${t.name.padEnd(13)} ` +
            `${r.tps.toFixed(0).padStart(8)}  ${r.latencyMs.toFixed(3).padStart(10)}  ` +
            `${ha.median.toFixed(2).padStart(10)}  ${range.padEnd(11)}  ${direct.median.toFixed(2).padStart(9)}  ` +
            `${r.proxyCpuUs === undefined ? '' : r.proxyCpuUs.toFixed(1).padStart(15)}`;
          console.log(line);
          rows.push(line);
        }
      }
    }
    const status = (await (await fetch(`http://127.0.0.1:${statusPort}/status`)).json()) as {
      bytes: unknown;
      dataPath: unknown;
    };
    console.log(`\npgha router: data path ${String(status.dataPath)}, bytes ${JSON.stringify(status.bytes)}`);
  } catch (err) {
    if (cluster) {
      for (const f of [
        cluster.node('pg1').logPath,
        join(cluster.base.dir, 'router.log'),
        join(cluster.base.dir, 'router-js.log'),
        join(cluster.base.dir, 'haproxy.log'),
      ]) {
        try {
          console.error(`--- ${f}\n${readFileSync(f, 'utf8').split('\n').slice(-40).join('\n')}`);
        } catch {
          // missing
        }
      }
    }
    throw err;
  } finally {
    for (const c of started) await stopProcess(c, 'SIGTERM', 5000);
    await cluster?.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

/**
 * `npm run chaos` command line: parsing and the replay command. Pure, so it is unit-tested.
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { SyncMode } from './checker.js';
import { FAULT_HELP, FAULT_KINDS, isFaultKind, type FaultKind } from './faults.js';

/** What the command line sets (the rest of `ChaosOptions` is filled in by run.ts). */
export interface CliOptions {
  seed: number;
  mode: SyncMode;
  durationMs: number;
  faults: FaultKind[];
  order: 'shuffle' | 'listed';
  maxFaults?: number;
  gapMs: [number, number];
  ttl: number;
  loopWait: number;
  retryTimeout: number;
  writeIntervalMs: number;
  probeIntervalMs: number;
  recoveryTimeoutMs: number;
  outageThresholdMs: number;
  stableMs: number;
  dir?: string;
  json?: string;
  help: boolean;
}

export const USAGE = `npm run chaos -- [options]

Fault injection against a three-node pgha cluster in network namespaces (needs root, npm run build).

  --duration <time>        time during which faults start (10m, 90s, 1h; default 10m)
  --seed <n>               seed of the fault plan (default: random, printed)
  --mode <async|on|quorum> synchronous_mode in bootstrap.dcs (default on)
  --faults <a,b,...>       fault kinds to draw from (default: all)
  --order <shuffle|listed> shuffled rounds of the kinds, or the listed order (default shuffle)
  --max-faults <n>         stop after n faults
  --gap <min-max>          pause before each fault (default 2s-8s)
  --ttl <s> --loop-wait <s> --retry-timeout <s>   HA timings (default 10, 1, 3)
  --write-interval <ms>    pause between the writer's rows (default 20)
  --probe-interval <ms>    pause between direct probe writes on each node (default 200)
  --recovery-timeout <time> how long a fault may keep the cluster unhealthy (default 120s)
  --outage <ms>            a gap between acknowledged writes longer than this is an outage (default 1000)
  --json <file>            also write the JSON report there
  --dir <dir>              run directory (default /tmp/pgha-chaos-<time>-<seed>)

Fault kinds:
${FAULT_KINDS.map((k) => `  ${k.padEnd(18)} ${FAULT_HELP[k]}`).join('\n')}`;

/** Parses `10m`, `90s`, `1h`, `500ms` or a bare number of seconds into milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`invalid duration "${text}" (expected e.g. 90s, 10m, 1h, 500ms)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
}

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`--${name}: expected a non-negative integer, got "${text}"`);
  return n;
}

/** Parses the command line; throws with a one-line message on a bad option. */
export function parseCli(argv: string[]): CliOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '10m' },
      seed: { type: 'string' },
      mode: { type: 'string', default: 'on' },
      faults: { type: 'string' },
      order: { type: 'string', default: 'shuffle' },
      'max-faults': { type: 'string' },
      gap: { type: 'string', default: '2s-8s' },
      ttl: { type: 'string', default: '10' },
      'loop-wait': { type: 'string', default: '1' },
      'retry-timeout': { type: 'string', default: '3' },
      'write-interval': { type: 'string', default: '20' },
      'probe-interval': { type: 'string', default: '200' },
      'recovery-timeout': { type: 'string', default: '120s' },
      outage: { type: 'string', default: '1000' },
      stable: { type: 'string', default: '2000' },
      json: { type: 'string' },
      dir: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const mode = values.mode;
  if (mode !== 'async' && mode !== 'on' && mode !== 'quorum')
    throw new Error(`--mode: expected async, on or quorum, got "${mode}"`);
  const order = values.order;
  if (order !== 'shuffle' && order !== 'listed')
    throw new Error(`--order: expected shuffle or listed, got "${order}"`);
  const faults = values.faults
    ? values.faults
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : [...FAULT_KINDS];
  const unknown = faults.filter((f) => !isFaultKind(f));
  if (unknown.length || faults.length === 0)
    throw new Error(
      `--faults: unknown kind ${unknown.join(', ') || '(none given)'}; kinds: ${FAULT_KINDS.join(', ')}`,
    );
  const gap = /^([^-]+)-([^-]+)$/.exec(values.gap);
  if (!gap) throw new Error(`--gap: expected <min>-<max>, e.g. 2s-8s, got "${values.gap}"`);
  const gapMs: [number, number] = [parseDuration(gap[1]!), parseDuration(gap[2]!)];
  if (gapMs[0] > gapMs[1]) throw new Error(`--gap: ${values.gap}: min is above max`);
  const seed = values.seed === undefined ? randomInt(1, 2 ** 31) : positiveInt('seed', values.seed);
  if (seed > 0xffffffff) throw new Error('--seed: at most 4294967295');
  const ttl = positiveInt('ttl', values.ttl);
  const loopWait = positiveInt('loop-wait', values['loop-wait']);
  const retryTimeout = positiveInt('retry-timeout', values['retry-timeout']);
  if (ttl < loopWait + 2 * retryTimeout)
    throw new Error(
      `--ttl ${ttl} must be at least loop_wait + 2 × retry_timeout (${loopWait + 2 * retryTimeout})`,
    );
  return {
    seed,
    mode,
    durationMs: parseDuration(values.duration),
    faults: faults as FaultKind[],
    order,
    ...(values['max-faults'] !== undefined
      ? { maxFaults: positiveInt('max-faults', values['max-faults']) }
      : {}),
    gapMs,
    ttl,
    loopWait,
    retryTimeout,
    writeIntervalMs: positiveInt('write-interval', values['write-interval']),
    probeIntervalMs: positiveInt('probe-interval', values['probe-interval']),
    recoveryTimeoutMs: parseDuration(values['recovery-timeout']),
    outageThresholdMs: positiveInt('outage', values.outage),
    stableMs: positiveInt('stable', values.stable),
    ...(values.dir ? { dir: values.dir } : {}),
    ...(values.json ? { json: values.json } : {}),
    help: values.help,
  };
}

/** The command that replays a run: the same seed and every option that shapes the plan. */
export function replayCommand(o: CliOptions): string {
  const args = [
    `--seed ${o.seed}`,
    `--duration ${Math.round(o.durationMs / 1000)}s`,
    `--mode ${o.mode}`,
    `--faults ${o.faults.join(',')}`,
    `--order ${o.order}`,
    ...(o.maxFaults !== undefined ? [`--max-faults ${o.maxFaults}`] : []),
    `--gap ${o.gapMs[0]}ms-${o.gapMs[1]}ms`,
    `--ttl ${o.ttl} --loop-wait ${o.loopWait} --retry-timeout ${o.retryTimeout}`,
  ];
  return `npm run chaos -- ${args.join(' ')}`;
}

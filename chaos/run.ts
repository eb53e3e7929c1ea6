/**
 * `npm run chaos -- --duration 10m`: fault injection against a pgha cluster in network namespaces,
 * with a verdict on lost acknowledged rows, two writable primaries, availability and each fault's
 * recovery (chaos/README.md). Exit code 0 when the checks pass, 1 when they fail, 2 on a bad
 * option, 130/143 when interrupted (after cleaning up).
 *
 * Needs root (namespaces), `npm run build` (the cluster runs dist/cli.js), etcd and PostgreSQL.
 */
import { existsSync } from 'node:fs';
import { CLI } from '../test/support/cluster.js';
import { runChaos } from './chaos.js';
import { parseCli, replayCommand, USAGE, type CliOptions } from './options.js';

let cli: CliOptions;
try {
  cli = parseCli(process.argv.slice(2));
} catch (err) {
  console.error(`chaos: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
  process.exit(2);
}
if (cli.help) {
  console.log(USAGE);
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.error('chaos: network namespaces need root; run it as root');
  process.exit(2);
}
if (!existsSync(CLI)) {
  console.error(`chaos: ${CLI} is missing; run "npm run build" first`);
  process.exit(2);
}

// First SIGINT/SIGTERM: stop injecting, clean up, write the (partial) report. The lab's own handler
// (test/support/netns.ts) kills every process in the namespaces at the same moment; with this
// handler installed it leaves the exit to us. A Ctrl-C reaches this process twice (from the
// terminal and forwarded by npm), so only a signal more than 2 s after the first exits at once.
// (Run with `node --import tsx`, not the tsx CLI: the tsx CLI SIGKILLs a child that does not
// acknowledge a relayed signal within 30 ms, which on a loaded machine would skip the cleanup.)
const abort = new AbortController();
const signals: { first: { at: number; code: number } | null } = { first: null };
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (signals.first) {
      if (Date.now() - signals.first.at > 2000) process.exit(signals.first.code);
      return;
    }
    signals.first = { at: Date.now(), code: sig === 'SIGINT' ? 130 : 143 };
    console.error(`chaos: ${sig}: stopping and cleaning up (again to exit at once)`);
    abort.abort();
  });
}

const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
const replay = replayCommand(cli);
console.log(`chaos: seed ${cli.seed}\nchaos: replay with: ${replay}`);
const result = await runChaos({
  seed: cli.seed,
  mode: cli.mode,
  durationMs: cli.durationMs,
  faults: cli.faults,
  order: cli.order,
  ...(cli.maxFaults !== undefined ? { maxFaults: cli.maxFaults } : {}),
  gapMs: cli.gapMs,
  ttl: cli.ttl,
  loopWait: cli.loopWait,
  retryTimeout: cli.retryTimeout,
  nodes: 3,
  writeIntervalMs: cli.writeIntervalMs,
  probeIntervalMs: cli.probeIntervalMs,
  recoveryTimeoutMs: cli.recoveryTimeoutMs,
  outageThresholdMs: cli.outageThresholdMs,
  stableMs: cli.stableMs,
  runDir: cli.dir ?? `/tmp/pgha-chaos-${stamp}-${cli.seed}`,
  ...(cli.json ? { jsonPath: cli.json } : {}),
  replay,
  signal: abort.signal,
  log: (line) => console.log(line),
});
console.log(`\n${result.summary}\nreport: ${result.reportPath}`);
process.exit(signals.first?.code ?? (result.report.ok ? 0 : 1));

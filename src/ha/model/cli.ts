/**
 * `npm run test:model -- [--steps N] [--seed S] [--seeds K] [--mode off|on|quorum|all]`: runs the
 * HA model for N steps in all, spread over K seeds (from S) and the synchronous modes, prints the
 * figures of each run and every violation with the events and logs that led to it; exits 1 on any.
 */
import { parseArgs } from 'node:util';
import { runModel } from './model.js';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '10000' },
    seed: { type: 'string', default: '1' },
    seeds: { type: 'string', default: '5' },
    mode: { type: 'string', default: 'all' },
    verbose: { type: 'boolean', default: false },
  },
});
const steps = Number(values.steps);
const seeds = Math.max(1, Number(values.seeds));
const first = Number(values.seed);
const modes: Array<boolean | 'quorum'> =
  values.mode === 'all'
    ? [false, true, 'quorum']
    : [values.mode === 'quorum' ? 'quorum' : values.mode === 'on'];
if (!Number.isInteger(steps) || steps < 1 || !Number.isInteger(first)) {
  console.error('usage: npm run test:model -- [--steps N] [--seed S] [--seeds K] [--mode off|on|quorum|all]');
  process.exit(2);
}
const per = Math.ceil(steps / seeds);
let violations = 0;
let done = 0;
const started = Date.now();
for (let i = 0; i < seeds; i++) {
  const seed = first + i;
  const mode = modes[i % modes.length] ?? false;
  const t = Date.now();
  const r = await runModel({ seed, steps: per, synchronousMode: mode });
  done += per;
  violations += r.violations.length;
  console.log(
    `seed ${seed} synchronous_mode=${String(mode)}: ${per} steps, ${(r.simulatedMs / 1000).toFixed(0)} s simulated in ` +
      `${((Date.now() - t) / 1000).toFixed(1)} s; ${r.stats.faults} faults ${JSON.stringify(r.faults)}; ` +
      `${r.stats.writes} writes, ${r.stats.acked} acknowledged; no leader ${(r.stats.leaderlessMs / 1000).toFixed(0)} s; ` +
      `${r.violations.length} violation(s)`,
  );
  for (const v of r.violations)
    console.log(`  step ${v.step} at ${(v.atMs / 1000).toFixed(1)} s: ${v.invariant}: ${v.detail}`);
  if (r.violations.length > 0 || values.verbose) console.log(r.report);
}
console.log(
  `${done} steps over ${seeds} seed(s) in ${((Date.now() - started) / 1000).toFixed(1)} s: ${violations} invariant violation(s)`,
);
process.exit(violations > 0 ? 1 : 0);

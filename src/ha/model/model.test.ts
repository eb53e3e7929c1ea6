/**
 * The HA runner against simulated etcd, PostgreSQL and clocks: seeded random faults, the
 * invariants of world.ts checked after every step. `npm run test:model -- --steps 1000000` runs
 * longer; a failing seed replays with `--seed`.
 */
import { describe, expect, it } from 'vitest';
import { runModel } from './model.js';

const CASES = [
  { seed: 1, synchronousMode: false as const },
  { seed: 2, synchronousMode: true as const },
  { seed: 3, synchronousMode: 'quorum' as const, synchronousNodeCount: 1 },
  { seed: 4, synchronousMode: false as const },
  { seed: 5, synchronousMode: true as const },
];
const STEPS = 2000;

describe('model: the HA runner under random faults', () => {
  it.each(CASES)(
    'seed $seed, synchronous_mode $synchronousMode: no invariant is ever violated',
    async (c) => {
      const r = await runModel({ ...c, steps: STEPS });
      if (r.violations.length > 0) console.error(`seed ${c.seed}:\n${r.report}`);
      expect(r.violations).toEqual([]);
      // Faults do happen (major ones wait for a healthy cluster, so the count varies by seed).
      expect(r.stats.faults).toBeGreaterThan(STEPS / 25);
      expect(r.stats.acked).toBeGreaterThan(0);
    },
    300_000,
  );
});

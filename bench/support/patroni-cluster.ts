/**
 * The real Patroni (Debian's `patroni` 3.0.2): `/usr/bin/patroni <yml>` per node, run as the
 * PostgreSQL OS user (PostgreSQL refuses root), switchover through `patronictl`.
 */
import { run } from '../../src/util/process.js';
import { startBenchCluster, type AgentSpec } from './agents.js';
import type { BenchCluster, HaTimings } from './cluster.js';
import { pgUser } from './util.js';

export const PATRONI_BIN = process.env.PGHA_BENCH_PATRONI ?? '/usr/bin/patroni';
export const PATRONICTL_BIN = process.env.PGHA_BENCH_PATRONICTL ?? '/usr/bin/patronictl';

export const patroniSpec = (): AgentSpec => ({
  product: 'Patroni 3.0.2',
  namePrefix: 'patroni',
  command: (configPath) => ({ file: PATRONI_BIN, args: [configPath] }),
  user: pgUser(),
  // patronictl posts to the leader's REST API and waits for the outcome, as users run it.
  async switchover({ configPath }, leader, candidate) {
    const args = ['-c', configPath, 'switchover', '--leader', leader, '--candidate', candidate, '--force'];
    const r = await run(PATRONICTL_BIN, args, { timeoutMs: 120_000 });
    if (r.code !== 0)
      throw new Error(`patronictl ${args.join(' ')} exited ${r.code}: ${r.stderr || r.stdout}`);
    return 'patronictl switchover --force';
  },
});

/** Starts etcd and three Patroni nodes (does not wait for them: see `waitHealthy`). */
export function startPatroniCluster(timings: HaTimings): Promise<BenchCluster> {
  return startBenchCluster(patroniSpec(), timings);
}

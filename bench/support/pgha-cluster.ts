/**
 * pgha: `node dist/cli.js agent <yml>` per node (the built CLI, as users run it; the agent itself
 * runs PostgreSQL as the `postgres` OS user). Switchover through `pgha ctl switchover` when the CLI
 * has it, else by writing the `failover` key as Patroni's REST API does.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/util/process.js';
import { startBenchCluster, type AgentSpec } from './agents.js';
import type { BenchCluster, HaTimings } from './cluster.js';

export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');

let ctlHasSwitchover: boolean | null = null;

/** True when the built CLI has `ctl switchover`. */
async function hasCtlSwitchover(): Promise<boolean> {
  if (ctlHasSwitchover === null) {
    const r = await run(process.execPath, [CLI, 'ctl', '--help'], { timeoutMs: 30_000 });
    ctlHasSwitchover = /^\s+switchover\b/m.test(r.stdout);
  }
  return ctlHasSwitchover;
}

export const pghaSpec = (): AgentSpec => ({
  product: 'pgha',
  namePrefix: 'pgha',
  command: (configPath) => ({ file: process.execPath, args: [CLI, 'agent', configPath] }),
  user: null,
  async switchover({ dcs, configPath }, leader, candidate) {
    if (await hasCtlSwitchover()) {
      const args = [CLI, 'ctl', '-c', configPath, 'switchover', '--leader', leader, '--candidate', candidate];
      const r = await run(process.execPath, [...args, '--force'], { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`pgha ctl switchover exited ${r.code}: ${r.stderr || r.stdout}`);
      return 'pgha ctl switchover --force';
    }
    const res = await dcs.setFailover({ leader, member: candidate });
    if (!res.ok) throw new Error('writing the failover key failed (CAS conflict)');
    return 'failover key in etcd (no ctl switchover yet)';
  },
});

/** Starts etcd and three pgha agents (does not wait for them: see `waitHealthy`). */
export function startPghaCluster(timings: HaTimings): Promise<BenchCluster> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
  return startBenchCluster(pghaSpec(), timings);
}

/**
 * The agent's resident memory stays small: `pgha agent` loads only its own code (not ctl's, the
 * router's or the Bacula tools') and keeps V8's young generation small (src/util/v8-flags.ts), so
 * a running agent's VmRSS stays far below the ~90 MB it took when every command was loaded
 * eagerly with V8's default heap sizing. The bound is gross (a regression of tens of MB fails it,
 * a few MB of noise does not); bench/README.md has the measured figures. The help of the commands
 * whose code is now loaded on demand still works.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, startCluster, type TestCluster } from '../support/cluster.js';

const run = promisify(execFile);
/** VmRSS bound in MiB for a running agent (measured: 69-75 MB with these cuts, 89-99 before). */
const RSS_BOUND_MB = 80;

/** VmRSS and RssAnon of a pid, in MiB. */
function rss(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]) / 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon') };
}

let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({ nodes: 1 });
  c.startAgent('pg1');
  await c.waitHealthy(0, 90_000);
});

afterAll(async () => {
  await c?.stop();
});

describe("the agent's resident memory", () => {
  it(`stays below ${RSS_BOUND_MB} MB after start and after running a while`, async () => {
    const pid = c.node('pg1').agent!.pid!;
    const atStart = rss(pid);
    // loop_wait 1: some twenty HA cycles, each reading etcd and querying PostgreSQL.
    let peak = atStart;
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 2000));
      const now = rss(pid);
      if (now.rss > peak.rss) peak = now;
    }
    console.log(
      `agent VmRSS after start ${atStart.rss.toFixed(1)} MB (anonymous ${atStart.anon.toFixed(1)}), ` +
        `peak over 20 s ${peak.rss.toFixed(1)} MB (anonymous ${peak.anon.toFixed(1)})`,
    );
    expect(atStart.rss).toBeLessThan(RSS_BOUND_MB);
    expect(peak.rss).toBeLessThan(RSS_BOUND_MB);
    expect((await c.readCluster()).leader?.name).toBe('pg1');
  });

  it('`pgha agent --help` and `pgha ctl --help` still answer', async () => {
    const agent = await run(process.execPath, [CLI, 'agent', '--help'], { timeout: 30_000 });
    expect(agent.stdout).toMatch(/^Usage: pgha agent \[options\] \[config\]/);
    const ctl = await run(process.execPath, [CLI, 'ctl', '--help'], { timeout: 30_000 });
    expect(ctl.stdout).toMatch(/^Usage: pgha ctl /);
    expect(ctl.stdout).toMatch(/^\s+switchover\b/m);
    const root = await run(process.execPath, [CLI, '--help'], { timeout: 30_000 });
    for (const cmd of ['agent', 'demo', 'ctl', 'router', 'vip', 'bacula', 'watchdog-access'])
      expect(root.stdout).toMatch(new RegExp(`^\\s+${cmd}\\b`, 'm'));
  });
});

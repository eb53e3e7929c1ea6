/**
 * The agent's resident memory stays small: `pgha agent` loads only its own code, bundled
 * (scripts/build.ts), keeps V8's young generation small (src/util/v8-flags.ts), and once settled
 * gives back the start-up's memory (src/util/startup-memory.ts, native/memory.c). A running
 * agent's VmRSS stays far below the ~90 MB it took when every command was loaded eagerly with V8's
 * default heap sizing. The bound is gross (a regression of ten MB fails it, a few MB of noise does
 * not); bench/README.md has the measured figures. The help of the commands whose code is loaded on
 * demand still works.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addonPath } from '../../src/util/package-root.js';
import { residentOf } from '../../src/util/startup-memory.js';
import { CLI, startCluster, type TestCluster } from '../support/cluster.js';

const run = promisify(execFile);
/**
 * VmRSS bound in MiB for a running agent, once it gave back its start-up memory (measured 36-38 MB;
 * 67-75 MB before the bundle and the release, 89-99 MB before loading commands on demand). Without
 * the native addon the agent keeps the start-up's pages: the older bound then.
 */
const RSS_BOUND_MB = existsSync(addonPath('pgha_memory')) ? 52 : 80;

/** VmRSS and RssAnon of a pid, in MiB. */
function rss(pid: number): { rss: number; anon: number } {
  const r = residentOf(pid);
  if (!r) throw new Error(`no VmRSS/RssAnon/RssFile in /proc/${pid}/status`);
  return { rss: r.rss / 1024, anon: r.anon / 1024 };
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
    if (existsSync(addonPath('pgha_memory'))) {
      // Settled: PostgreSQL running for one HA cycle (loop_wait 1 here).
      const released = Date.now() + 30_000;
      while (!readFileSync(c.node('pg1').logPath, 'utf8').includes('gave back start-up memory')) {
        if (Date.now() > released)
          throw new Error('the agent did not give back its start-up memory within 30 s');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
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

/**
 * The agent as the first process of its PID namespace, as in a container started without an init
 * (`docker run` of an image whose entry point is the agent). Processes that lose their parent are
 * handed to it: the postmaster, which `pg_ctl` leaves behind, and the backends of a postmaster
 * that died. Until their parent collects them they stay zombies, and PostgreSQL will not start
 * while its old postmaster's pid is still taken. The agent must collect them, as init does.
 * Real etcd, real PostgreSQL, the built agent under `unshare --pid --fork --mount-proc`.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { procStat } from '../../src/util/proc-stat.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { childPids, waitFor } from '../support/postgres.js';

let c: TestCluster;

/** The agent's pid as the root namespace sees it: unshare's only child. */
function agentPid(): number {
  const launcher = c.node('pg1').agent?.pid;
  const kids = launcher ? childPids(launcher) : [];
  if (kids.length !== 1) throw new Error(`expected one child of unshare, found ${kids.length}`);
  return kids[0]!;
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The agent's children that have exited and wait to be collected. */
function zombies(agent: number): number[] {
  return childPids(agent).filter((p) => procStat(p)?.state === 'Z');
}

beforeAll(async () => {
  c = await startCluster({
    nodes: 1,
    launcher: ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child=SIGKILL'],
  });
  c.startAgent('pg1');
  await c.waitHealthy(0);
}, 120_000);

afterAll(async () => {
  // Stop the agent itself, not unshare, so that it stops its PostgreSQL before its namespace ends.
  const launcher = c?.node('pg1').agent;
  if (launcher?.pid) {
    for (const pid of childPids(launcher.pid)) process.kill(pid, 'SIGTERM');
    await waitFor(
      'the agent to stop',
      () => Promise.resolve(launcher.exitCode !== null || launcher.signalCode !== null),
      60_000,
    );
  }
  await c?.stop();
}, 90_000);

it('runs as process 1 of its namespace and restarts a killed postmaster, collecting what it leaves', async () => {
  const agent = agentPid();
  expect(readFileSync(`/proc/${agent}/status`, 'utf8')).toMatch(/^NSpid:\s+\d+\s+1$/m);
  // pg_ctl has exited: its postmaster is now the agent's child.
  const postmaster = await waitFor('the postmaster to be the agent child', () =>
    Promise.resolve(childPids(agent).find((p) => comm(p) === 'postgres' && procStat(p)?.state !== 'Z')),
  );
  const backends = childPids(postmaster);
  expect(backends.length).toBeGreaterThan(0);
  await c.query('pg1', 'CREATE TABLE t (id int)');

  process.kill(postmaster, 'SIGKILL');
  const killedAt = Date.now();
  // The postmaster and its backends are collected, not left as zombies.
  await waitFor(
    'the killed postmaster and its backends to be collected',
    () => Promise.resolve([postmaster, ...backends].every((p) => procStat(p) === null)),
    15_000,
  );
  await waitFor(
    'the node to take writes again',
    async () => {
      try {
        await c.query('pg1', 'INSERT INTO t VALUES (1)');
        return true;
      } catch {
        return false;
      }
    },
    30_000,
  );
  console.log(`writes again ${Date.now() - killedAt} ms after the kill`);
  // pg_ctl, psql and the like that the agent ran meanwhile are collected too.
  await waitFor('no zombie left under the agent', () => Promise.resolve(zombies(agent).length === 0), 10_000);
}, 90_000);

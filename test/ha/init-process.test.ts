/**
 * The agent as the first process of its PID namespace, as in a container started without an init
 * (`docker run` of an image whose entry point is the agent). Processes that lose their parent are
 * handed to it: the postmaster, which `pg_ctl` leaves behind, and the backends of a postmaster
 * that died. Until their parent collects them they stay zombies, and PostgreSQL will not start
 * while its old postmaster's pid is still taken. The agent must collect them, as init does.
 * Real etcd, real PostgreSQL, the built agent under `unshare --pid --fork --mount-proc`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { procStat } from '../../src/util/proc-stat.js';
import { isAlive, startProcess, stopProcess } from '../../src/util/process.js';
import { CLI, startCluster, type TestCluster } from '../support/cluster.js';
import { freePorts } from '../support/net.js';
import { childPids, waitFor } from '../support/postgres.js';

let c: TestCluster;

/** The agent's pid as the root namespace sees it: unshare's only child. */
function agentPid(): number {
  const launcher = c.node('pg1').agent?.pid;
  const kids = launcher ? childPids(launcher) : [];
  if (kids.length !== 1) throw new Error(`expected one child of unshare, found ${kids.length}`);
  return kids[0]!;
}

/** A process's pid in the innermost PID namespace it belongs to (the last of NSpid). */
function innerPid(pid: number): number | null {
  try {
    const m = /^NSpid:\s+([\d\s]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]!.trim().split(/\s+/).pop()) : null;
  } catch {
    return null;
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
  const launcher = c?.node('pg1').agent;
  try {
    // Stop the agent itself, not unshare, so that it stops its PostgreSQL before its namespace ends.
    if (launcher?.pid) {
      for (const pid of childPids(launcher.pid)) process.kill(pid, 'SIGTERM');
      await waitFor('the agent to stop', () => Promise.resolve(!isAlive(launcher)), 60_000);
    }
  } finally {
    // Otherwise unshare's end takes the agent (--kill-child) and with it the whole namespace.
    if (launcher && isAlive(launcher)) launcher.kill('SIGKILL');
    await c?.stop();
  }
}, 120_000);

it('runs as process 1 of its namespace and restarts a killed postmaster, collecting what it leaves', async () => {
  const agent = agentPid();
  expect(readFileSync(`/proc/${agent}/status`, 'utf8')).toMatch(/^NSpid:\s+\d+\s+1$/m);
  // pg_ctl has exited: its postmaster (postmaster.pid names it as the namespace sees it) is now
  // the agent's child.
  const inner = c.postmasterPid('pg1');
  const postmaster = await waitFor('the postmaster to be the agent child', () =>
    Promise.resolve(childPids(agent).find((p) => innerPid(p) === inner && procStat(p)?.state !== 'Z')),
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

it('ends on SIGTERM while it is still starting, although process 1 gets no signal it has no handler for', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgha-init-'));
  const [api, pgPort, etcdPort] = await freePorts(3);
  // No etcd listens there: the start waits for it.
  writeFileSync(
    join(dir, 'patroni.yml'),
    [
      'scope: starting',
      'name: n1',
      `restapi: {listen: 127.0.0.1:${api}, connect_address: 127.0.0.1:${api}}`,
      `etcd3: {hosts: 127.0.0.1:${etcdPort}}`,
      `postgresql: {listen: 127.0.0.1:${pgPort}, connect_address: 127.0.0.1:${pgPort}, data_dir: ${dir}/data,`,
      '  authentication: {superuser: {username: postgres, password: x}, replication: {username: r, password: x}}}',
    ].join('\n'),
  );
  const launcher = startProcess('unshare', [
    '--pid',
    '--fork',
    '--mount-proc',
    '--kill-child=SIGKILL',
    process.execPath,
    CLI,
    'agent',
    join(dir, 'patroni.yml'),
  ]);
  let out = '';
  launcher.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  launcher.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  try {
    await waitFor(
      'the agent to wait for etcd',
      () => Promise.resolve(/etcd member failed/.test(out)),
      20_000,
    );
    const kids = childPids(launcher.pid!);
    expect(kids).toHaveLength(1);
    process.kill(kids[0]!, 'SIGTERM');
    await waitFor('the agent to end', () => Promise.resolve(!isAlive(launcher)), 10_000);
    expect(out).toMatch(/received SIGTERM while starting; exiting/);
  } finally {
    await stopProcess(launcher, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

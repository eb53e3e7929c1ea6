/**
 * Maintenance mode (`pgha ctl pause`, i.e. `PATCH /config {"pause": true}`) as Patroni honours it:
 * the agents start, stop, promote and fence nothing. A primary's agent stopped with SIGTERM leaves
 * PostgreSQL running and the cluster as it is; started again, it takes the leader key back for the
 * running primary without restarting it; an etcd outage does not stop the primary; and after
 * `resume` the same node still leads, with no failover in between.
 *
 * Each case first makes sure it starts from a paused cluster whose leader runs a writable primary;
 * if an earlier case left the cluster otherwise, it is rebuilt (resume, wait, pause again) so each
 * case tests its own claim.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ClusterState } from '../../src/dcs/types.js';
import { isAlive, signalPid } from '../../src/util/process.js';
import { CLI, startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import {
  describeLeaderSamples,
  isPostgresPid,
  logLines,
  sleep,
  tryQuery,
  watchLeader,
} from '../support/ha-probes.js';

const TTL = 10;
const execFileAsync = promisify(execFile);
let c: TestCluster;
let initial: ClusterState;
let initialPid: number;
let etcdFrozen: number | null = null;

/** Runs `pgha ctl -c <pg1.yml> <args>`; throws with its output when it exits non-zero. */
async function ctl(...args: string[]): Promise<string> {
  try {
    const r = await execFileAsync(process.execPath, [CLI, 'ctl', '-c', c.nodes[0]!.configPath, ...args], {
      timeout: 60_000,
    });
    return r.stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`pgha ctl ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, {
      cause: err,
    });
  }
}

async function pauseAll(): Promise<void> {
  await ctl('pause', '--wait');
  await waitFor(
    'every member to publish pause: true',
    async () => (await c.readCluster()).members.every((m) => m.data.pause === true),
    20_000,
  );
}

function insert(name: string, v: string): Promise<string | null> {
  return tryQuery(c, name, 'INSERT INTO p (v) VALUES ($1)', [v]);
}

/**
 * A paused cluster whose leader key names a node running a writable primary, with every agent
 * running; rebuilt (resume, wait for health, pause) when an earlier case left it otherwise.
 */
async function pausedPrimary(): Promise<{ leader: string; pid: number }> {
  const s = await c.readCluster();
  const leader = s.leader?.name;
  const pid = leader ? c.postmasterPid(leader) : null;
  if (
    s.config?.value.pause === true &&
    leader &&
    pid !== null &&
    c.nodes.every((n) => n.agent && isAlive(n.agent)) &&
    (await insert(leader, 'precondition')) === null
  )
    return { leader, pid };
  console.warn('pause.test: rebuilding a paused cluster with a running primary after an earlier case');
  for (const n of c.nodes) if (!n.agent || !isAlive(n.agent)) c.startAgent(n.name);
  if (s.config?.value.pause === true) await ctl('resume', '--wait');
  const healthy = await c.waitHealthy(1, 120_000);
  await pauseAll();
  const l = healthy.leader!.name;
  return { leader: l, pid: c.postmasterPid(l)! };
}

beforeAll(async () => {
  c = await startCluster({ nodes: 2, ttl: TTL, loopWait: 1, retryTimeout: 3 });
  for (const n of c.nodes) c.startAgent(n.name);
  initial = await c.waitHealthy(1, 90_000);
  const leader = initial.leader!.name;
  await c.query(leader, 'CREATE TABLE p (id serial PRIMARY KEY, v text)');
  initialPid = c.postmasterPid(leader)!;
  await pauseAll();
});

afterAll(async () => {
  if (etcdFrozen !== null) signalPid(etcdFrozen, 'SIGCONT');
  await c?.stop();
});

it('in pause, SIGTERM of the primary agent leaves PostgreSQL running and writable, and nobody takes over', async () => {
  const { leader, pid } = await pausedPrimary();
  const since = Date.now();
  const watch = watchLeader(c);
  try {
    await c.stopAgent(leader, 'SIGTERM');
    expect(
      isPostgresPid(pid) && c.postmasterPid(leader) === pid,
      `${leader}'s postmaster (pid ${pid}) must survive SIGTERM of its agent in pause; agent log:\n` +
        logLines(c.node(leader).logPath, /shutting down|stopping PostgreSQL|leader key|SIGTERM/i),
    ).toBe(true);
    // Longer than ttl: the leader key may expire, yet in pause no other member may take it.
    const failures: string[] = [];
    while (Date.now() - since < (TTL + 3) * 1000) {
      const err = await insert(leader, 'agent stopped');
      if (err) failures.push(`${((Date.now() - since) / 1000).toFixed(1)}s: ${err}`);
      expect(c.postmasterPid(leader), `${leader}'s postmaster pid`).toBe(pid);
      await sleep(500);
    }
    expect(
      failures,
      `INSERTs on ${leader} while its agent was stopped:\n${failures.slice(0, 5).join('\n')}`,
    ).toEqual([]);
  } finally {
    await watch.stop();
  }
  const others = [...watch.holders()].filter((n) => n !== leader);
  expect(others, `leader key: ${describeLeaderSamples(watch.samples, since)}`).toEqual([]);
});

it('in pause, the agent started again takes the leader key back for the running primary without restarting it', async () => {
  let leader: string;
  let pid: number;
  const prev = (await c.readCluster()).leader?.name ?? null;
  const down = c.nodes.find((n) => !n.agent);
  if (down && (prev === null || prev === down.name) && (await insert(down.name, 'precondition')) === null) {
    // The previous case left this node's agent stopped for longer than ttl, its primary running.
    leader = down.name;
    pid = c.postmasterPid(leader)!;
  } else {
    ({ leader, pid } = await pausedPrimary());
    // SIGKILL leaves PostgreSQL running with any agent; wait until the leader key has expired.
    await c.stopAgent(leader, 'SIGKILL');
    await waitFor('the leader key to expire', async () => !(await c.readCluster()).leader, 3 * TTL * 1000);
  }

  const since = Date.now();
  const watch = watchLeader(c);
  c.startAgent(leader);
  try {
    await waitFor(
      `the leader key to name ${leader} again`,
      async () => {
        expect(c.postmasterPid(leader), `${leader}'s postmaster pid`).toBe(pid);
        return (await c.readCluster()).leader?.name === leader;
      },
      3 * TTL * 1000,
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}\nleader key: ${describeLeaderSamples(watch.samples, since)}\n${leader}'s log:\n` +
          logLines(c.node(leader).logPath, /maintenance|leader|pause/i),
        { cause: err },
      );
    });
    // It stays so for a few cycles, with the same postmaster taking writes.
    await sleep(5000);
    expect((await c.readCluster()).leader?.name).toBe(leader);
    expect(c.postmasterPid(leader)).toBe(pid);
    expect(isPostgresPid(pid)).toBe(true);
    expect(await insert(leader, 'agent back')).toBeNull();
  } finally {
    await watch.stop();
  }
  const others = [...watch.holders()].filter((n) => n !== leader);
  expect(others, `leader key: ${describeLeaderSamples(watch.samples, since)}`).toEqual([]);
});

it('in pause, the primary stays running and writable while etcd is frozen for 2 × ttl', async () => {
  const { leader, pid } = await pausedPrimary();
  const etcdPid = c.etcd.members[0]!.process!.pid!;
  const since = Date.now();
  const failures: string[] = [];
  const pids = new Set<number | null>();
  const poll = async (until: number, what: string) => {
    while (Date.now() < until) {
      const next = Date.now() + 500;
      const err = await insert(leader, what);
      if (err) failures.push(`${((Date.now() - since) / 1000).toFixed(1)}s (${what}): ${err}`);
      pids.add(isPostgresPid(pid) ? c.postmasterPid(leader) : null);
      await sleep(Math.max(0, next - Date.now()));
    }
  };
  process.kill(etcdPid, 'SIGSTOP');
  etcdFrozen = etcdPid;
  try {
    await poll(since + 2 * TTL * 1000, 'etcd frozen');
  } finally {
    process.kill(etcdPid, 'SIGCONT');
    etcdFrozen = null;
  }
  // A few seconds more: whatever the agent does once etcd answers again must not stop it either.
  await poll(Date.now() + 3000, 'etcd back');
  expect(
    failures.length,
    `failed INSERTs on ${leader} (first 5):\n${failures.slice(0, 5).join('\n')}\nits log:\n` +
      logLines(c.node(leader).logPath, /renew|stopping|fence|store unreachable/i),
  ).toBe(0);
  expect([...pids]).toEqual([pid]);

  const watch = watchLeader(c);
  try {
    await waitFor(
      `the leader key to name ${leader} once etcd is back`,
      async () => (await c.readCluster()).leader?.name === leader,
      3 * TTL * 1000,
    );
    await sleep(3000);
  } finally {
    await watch.stop();
  }
  expect([...watch.holders()].filter((n) => n !== leader)).toEqual([]);
});

it('after resume, the leader of the whole test still leads and nothing failed over', async () => {
  const before = await c.readCluster();
  await ctl('resume', '--wait');
  const after = await c.waitHealthy(1, 60_000);
  // A few cycles out of maintenance mode change nothing either.
  await sleep(3000);
  const settled = await c.readCluster();
  const leader = initial.leader!.name;
  expect(before.leader?.name, 'leader just before resume').toBe(leader);
  expect(after.leader?.name).toBe(leader);
  expect(settled.leader?.name).toBe(leader);
  expect(c.postmasterPid(leader), `${leader}'s postmaster, the one running when the test started`).toBe(
    initialPid,
  );
  expect(settled.history).toEqual(initial.history);
  expect(await insert(leader, 'resumed')).toBeNull();
});

it('in pause, a switchover to a named candidate hands over and the old leader follows it; a scheduled one is refused', async () => {
  const { leader } = await pausedPrimary();
  const candidate = c.nodes.find((n) => n.name !== leader)!.name;
  const post = async (body: Record<string, unknown>) => {
    const res = await fetch(`http://127.0.0.1:${c.node(leader).apiPort}/switchover`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(60_000),
    });
    return [res.status, await res.text()];
  };
  const at = new Date(Date.now() + 60_000).toISOString();
  expect(await post({ leader, candidate, scheduled_at: at })).toEqual([
    400,
    "Can't schedule switchover in the paused state",
  ]);
  expect(await post({ leader })).toEqual([
    400,
    'Switchover is possible only to a specific candidate in a paused state',
  ]);
  expect(await post({ leader, candidate })).toEqual([200, `Successfully switched over to "${candidate}"`]);
  const log = () => logLines(c.node(leader).logPath, /switch|maintenance|follow|start/i);
  await waitFor(
    `${candidate} to run as primary`,
    async () => {
      const rows = await c.query<{ r: boolean }>(candidate, 'SELECT pg_is_in_recovery() AS r');
      return rows[0]?.r === false;
    },
    20_000,
  );
  await waitFor(
    `${leader} to stream from ${candidate}`,
    async () => {
      const s = await c.readCluster();
      const m = s.members.find((x) => x.name === leader);
      return (
        s.leader?.name === candidate &&
        m?.data.state === 'running' &&
        m.data.replication_state === 'streaming'
      );
    },
    30_000,
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}\n${leader}'s log:\n${log()}`, { cause: err });
  });
  const s = await c.readCluster();
  expect(s.config?.value.pause).toBe(true);
  expect(s.failover?.member ?? null).toBeNull();
  expect(await insert(candidate, 'after switchover in pause')).toBeNull();
});

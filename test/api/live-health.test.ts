/**
 * The health endpoints check PostgreSQL for each request, as Patroni's do, instead of answering
 * from the last HA cycle: with loop_wait 10 s the cycle's picture is seconds old, yet a replica
 * whose postmaster just died fails `/replica` at once (whether or not the HA loop, which a lost
 * session to PostgreSQL wakes, has looked yet), one started again by hand (in maintenance
 * mode, where the agent leaves it alone) passes at once, and a PostgreSQL that does not answer at
 * all (its processes stopped) fails the check within about a second instead of hanging it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childPids, PG_BIN, PG_OS_USER } from '../support/postgres.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

const execFileAsync = promisify(execFile);
let c: TestCluster;
let replica: string;

beforeAll(async () => {
  c = await startCluster({ nodes: 2 });
  for (const n of c.nodes) c.startAgent(n.name);
  const state = await c.waitHealthy(1, 90_000);
  replica = c.nodes.find((n) => n.name !== state.leader?.name)!.name;
});

afterAll(async () => {
  await c?.stop();
});

async function get(
  name: string,
  path: string,
): Promise<{ status: number; body: Record<string, unknown>; ms: number }> {
  const started = Date.now();
  const res = await fetch(`http://127.0.0.1:${c.node(name).apiPort}${path}`, {
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    ms: Date.now() - started,
  };
}

async function ctl(...args: string[]): Promise<void> {
  await execFileAsync(
    process.execPath,
    [join(import.meta.dirname, '..', '..', 'dist', 'cli.js'), 'ctl', '-c', c.nodes[0]!.configPath, ...args],
    {
      timeout: 60_000,
    },
  );
}

describe('health endpoints answer from PostgreSQL as it is now', () => {
  it('a replica whose postmaster was just killed fails /replica at once', async () => {
    await waitFor(
      'replica passes /replica',
      async () => (await get(replica, '/replica')).status === 200,
      30_000,
    );
    // Maintenance mode: the agent neither restarts nor touches PostgreSQL, so only the API's own
    // look can tell what happened; loop_wait 10 keeps the HA cycle's picture seconds old.
    const patched = await fetch(`http://127.0.0.1:${c.node(replica).apiPort}/config`, {
      method: 'PATCH',
      body: JSON.stringify({ pause: true, ttl: 30, loop_wait: 10, retry_timeout: 5 }),
      headers: { 'content-type': 'application/json' },
    });
    expect(patched.status).toBe(200);
    await waitFor(
      'every member to publish pause: true',
      async () => (await c.readCluster()).members.every((m) => m.data.pause === true),
      30_000,
    );
    await c.killPostmaster(replica);
    const r = await get(replica, '/replica');
    // The API's own look says `unknown`; the HA loop, woken by its lost session to PostgreSQL, may
    // have looked first and recorded `stopped` (in pause it does not restart it). Both fail.
    expect([r.status, r.body.role]).toEqual([503, 'replica']);
    expect(['unknown', 'stopped']).toContain(r.body.state);
    expect((await get(replica, '/health')).status).toBe(503);
  });

  it('a replica started again by hand passes /replica at once', async () => {
    const dataDir = c.node(replica).dataDir;
    await execFileAsync(
      'runuser',
      [
        '-u',
        PG_OS_USER,
        '--',
        join(PG_BIN, 'pg_ctl'),
        '-D',
        dataDir,
        '-l',
        `${dataDir}.manual.log`,
        '-w',
        'start',
      ],
      { timeout: 60_000 },
    );
    await waitFor(
      'replica streams',
      async () => {
        const r = await get(replica, '/replica');
        return r.status === 200 && r.body.state === 'running' && r.body.role === 'replica';
      },
      5_000,
      100,
    );
  });

  it('a PostgreSQL that does not answer fails the check within the deadline, and the API keeps answering', async () => {
    const pid = c.postmasterPid(replica);
    expect(pid).not.toBeNull();
    const pids = [pid!, ...childPids(pid!)];
    for (const p of pids) process.kill(p, 'SIGSTOP');
    try {
      const r = await get(replica, '/replica');
      expect(r.status).toBe(503);
      expect(r.ms).toBeLessThan(3000);
      const again = await Promise.all([
        get(replica, '/replica'),
        get(replica, '/patroni'),
        get(replica, '/health'),
      ]);
      for (const a of again) expect(a.ms).toBeLessThan(3000);
    } finally {
      for (const p of pids) process.kill(p, 'SIGCONT');
    }
    await waitFor(
      'replica answers again',
      async () => (await get(replica, '/replica')).status === 200,
      10_000,
      100,
    );
    await ctl('resume', '--wait');
  });
});

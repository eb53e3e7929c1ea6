/**
 * A killed postmaster whose parent does not collect it at once. `pg_ctl` leaves the postmaster to
 * the host's init, and some inits (a container's, a micro-VM's) collect orphans only every few
 * seconds; until then the dead postmaster is a zombie that still owns its pid, and PostgreSQL's
 * lock-file check takes that pid for a live postmaster and refuses to start. The agent's start must
 * not wait for the init: a zombie runs nothing, so once no process holds the old shared memory the
 * lock file is stale. Here the postmaster's parent is a shell that never collects anything. Real
 * PostgreSQL 15.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PostgresqlConfig } from '../../src/config/types.js';
import { Postgres } from '../../src/postgres/postgres.js';
import { childProcesses, procStat } from '../../src/util/proc-stat.js';
import { runAsUser, signalPid } from '../../src/util/process.js';
import {
  createPgTestBase,
  PG_BIN,
  PG_OS_USER,
  busyBackend,
  waitFor,
  type PgTestBase,
} from '../support/postgres.js';

let base: PgTestBase;
let cfg: PostgresqlConfig;
let server: Postgres;
let holder: ChildProcess | null = null;

beforeAll(async () => {
  base = createPgTestBase();
  ({ cfg, pg: server } = await base.primary('n1', { scope: 'zombie' }));
}, 60_000);

afterAll(async () => {
  if (holder?.pid) signalPid(holder.pid, 'SIGKILL');
  await server?.close();
  await server?.stop('immediate', 10_000).catch(() => undefined);
  await base?.cleanup();
}, 60_000);

/** Starts the postmaster under a shell that then becomes `sleep`, which never collects a child. */
async function startUnderNonCollectingParent(): Promise<number> {
  if (holder?.pid) signalPid(holder.pid, 'SIGKILL');
  const u = runAsUser(PG_OS_USER);
  holder = spawn(
    'sh',
    [
      '-c',
      '"$0" -D "$1" --config-file="$2" >>"$3" 2>&1 & echo $!; exec sleep 600',
      join(PG_BIN, 'postgres'),
      cfg.data_dir,
      join(cfg.config_dir ?? cfg.data_dir, 'postgresql.conf'),
      join(base.dir, 'n1', 'holder.log'),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], ...(u ? { uid: u.uid, gid: u.gid } : {}) },
  );
  const pid = await new Promise<number>((resolve, reject) => {
    holder!.stdout!.once('data', (b: Buffer) => resolve(Number(String(b).trim())));
    holder!.once('exit', (code) => reject(new Error(`the holder shell exited (${code})`)));
  });
  await waitFor('the postmaster under the holder to accept connections', async () =>
    server.query('select 1').then(
      () => true,
      () => false,
    ),
  );
  await server.close();
  return pid;
}

/** SIGKILLs postmaster `pid` and waits until it is a zombie; returns when it was killed. */
async function killToZombie(pid: number): Promise<number> {
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  await waitFor('the postmaster to be a zombie', () => Promise.resolve(procStat(pid)?.state === 'Z'));
  return killedAt;
}

it('starts at once after a kill when the dead postmaster is left a zombie', async () => {
  await server.close();
  await server.stop('fast', 30_000);
  const pid = await startUnderNonCollectingParent();
  expect(await server.postmasterPid()).toBe(pid);
  const children = childProcesses(pid).map((c) => c.pid);
  const killedAt = await killToZombie(pid);
  await waitFor("the dead postmaster's children to end", () =>
    Promise.resolve(children.every((c) => !signalPid(c, 0) || procStat(c)?.dying === true)),
  );
  await server.start(30_000);
  const startedAfter = Date.now() - killedAt;
  console.log(`zombie postmaster: started again ${startedAfter} ms after the kill`);
  // The zombie is still there: nobody waited for it to be collected.
  expect(procStat(pid)?.state).toBe('Z');
  expect(await server.status()).not.toBeNull();
  expect(await server.postmasterPid()).not.toBe(pid);
  expect(startedAfter).toBeLessThan(5000);
}, 60_000);

it('still waits for a backend of the dead postmaster that holds its shared memory', async () => {
  await server.close();
  await server.stop('fast', 30_000);
  const pid = await startUnderNonCollectingParent();
  // Busy for 3 s without ever waiting: it notices its postmaster's death only at the end.
  const busy = await busyBackend(server, cfg, 3);
  try {
    await server.close();
    const killedAt = await killToZombie(pid);
    await server.start(30_000);
    const startedAfter = Date.now() - killedAt;
    console.log(
      `zombie postmaster with a busy backend: started ${startedAfter} ms after the kill; the statement ${await busy.outcome}`,
    );
    expect(procStat(pid)?.state).toBe('Z');
    expect(await server.status()).not.toBeNull();
    // Its lock files were not removed while the backend held the old shared memory.
    expect(startedAfter).toBeGreaterThan(1500);
  } finally {
    await busy.end();
  }
}, 60_000);

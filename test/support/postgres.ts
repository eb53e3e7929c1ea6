/**
 * Real PostgreSQL for integration tests: temporary directories the `postgres` OS user can use, a
 * `PostgresqlConfig` per node on free ports, and a cleanup that stops every postmaster started in
 * those directories (by the pid in its postmaster.pid, immediate mode) and removes the directories.
 */
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import pg from 'pg';
import type { PostgresqlConfig } from '../../src/config/types.js';
import { childProcesses, procStat } from '../../src/util/proc-stat.js';
import { lockFilePid } from '../../src/postgres/leftovers.js';
import { Postgres } from '../../src/postgres/postgres.js';
import { runAsUser, signalPid } from '../../src/util/process.js';
import { freePort } from './net.js';

export const PG_BIN = process.env.PGHA_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';
export const PG_OS_USER = process.env.PGHA_TEST_PG_USER ?? 'postgres';

/** Credentials used by every test node; the odd characters exercise the quoting. */
export const TEST_AUTH = {
  superuser: { username: 'pgha_admin', password: "su:pw\\with'odd" },
  replication: { username: 'replicator', password: "repl pw'x" },
  rewind: { username: 'rewinder', password: 'rewind:pw' },
};

/** pg_hba lines that let the agent (superuser, rewind) and replicas in over loopback with passwords. */
export const TEST_HBA = [
  'local all all trust',
  'host all all 127.0.0.1/32 scram-sha-256',
  'host replication all 127.0.0.1/32 scram-sha-256',
];

export interface PgNodeOptions {
  /** Keep postgresql.conf & co in a separate config dir (Debian layout). */
  splitConfig?: boolean;
  port?: number;
  parameters?: Record<string, string | number | boolean>;
}

export interface PgTestBase {
  dir: string;
  /** Builds the configuration of node `name` (its directories live under `dir/<name>`). */
  pgConfig(name: string, opts?: PgNodeOptions): Promise<PostgresqlConfig>;
  /**
   * A standalone primary named `name`: configured (`pgHba` replaces the test's pg_hba), initdb'd,
   * started, with pgha's users created. The caller closes `pg`; `cleanup` stops the server.
   */
  primary(
    name: string,
    opts?: PgNodeOptions & { scope?: string; pgHba?: string[] },
  ): Promise<{ cfg: PostgresqlConfig; pg: Postgres }>;
  /** Stops every postmaster running in this base (immediate) and removes the directories. */
  cleanup(): Promise<void>;
}

const bases = new Set<string>();
let exitHookInstalled = false;

function postmasterPidsUnder(dir: string): number[] {
  const pids: number[] = [];
  if (!existsSync(dir)) return pids;
  for (const node of readdirSync(dir)) {
    const pidFile = join(dir, node, 'data', 'postmaster.pid');
    if (!existsSync(pidFile)) continue;
    const pid = lockFilePid(readFileSync(pidFile, 'utf8'));
    if (pid !== null && isPostgres(pid)) pids.push(pid);
  }
  return pids;
}

function isPostgres(pid: number): boolean {
  try {
    return /postgres|postmaster/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return false;
  }
}

/** Pids whose parent is `pid` (a postmaster's backends and auxiliary processes). */
export function childPids(pid: number): number[] {
  return childProcesses(pid).map((p) => p.pid);
}

/**
 * Waits until none of `pids` exists, exiting processes and zombies included: PostgreSQL's own
 * lock-file check treats a zombie postmaster as running, and some inits reap orphans only every
 * few seconds.
 */
export async function waitGone(pids: number[], timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const alive = pids.filter((p) => signalPid(p, 0) && (procStat(p)?.dying || isPostgres(p)));
    if (alive.length === 0) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGKILLs a postmaster as a crash would, and waits until its children have noticed and exited. */
export async function killPostmaster(pid: number): Promise<void> {
  const children = childPids(pid);
  process.kill(pid, 'SIGKILL');
  await waitGone([pid, ...children], 20_000);
}

async function stopPostmasters(dir: string): Promise<void> {
  const pids = postmasterPidsUnder(dir);
  for (const pid of pids) signalPid(pid, 'SIGQUIT');
  if (!(await waitGone(pids, 5000))) for (const pid of pids) signalPid(pid, 'SIGKILL');
  await waitGone(pids, 5000);
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const dir of bases) for (const pid of postmasterPidsUnder(dir)) signalPid(pid, 'SIGQUIT');
  });
}

function mkdirOwned(path: string, mode: number): void {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  const u = runAsUser(PG_OS_USER);
  if (u) chownSync(path, u.uid, u.gid);
}

/** With `PGHA_TEST_LOGS=<dir>`, copies the agents' and servers' logs of a base there before it is removed. */
function keepLogs(dir: string): void {
  const to = process.env.PGHA_TEST_LOGS;
  if (!to) return;
  const dest = join(to, basename(dir));
  mkdirSync(dest, { recursive: true });
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.log')) copyFileSync(join(dir, f), join(dest, f));
    // PostgreSQL's own server log of a node, `<node>/data.log` (pg_ctl -l): kept as `<node>-server.log`.
    const server = join(dir, f, 'data.log');
    if (existsSync(server)) copyFileSync(server, join(dest, `${f}-server.log`));
  }
}

/** Creates `/tmp/pgha-test-XXXX` (traversable, owned by the PostgreSQL OS user). */
export function createPgTestBase(): PgTestBase {
  const dir = mkdtempSync('/tmp/pgha-test-');
  mkdirOwned(dir, 0o755);
  bases.add(dir);
  installExitHook();
  return {
    dir,
    async pgConfig(name, opts = {}) {
      const nodeDir = join(dir, name);
      mkdirOwned(nodeDir, 0o755);
      const dataDir = join(nodeDir, 'data');
      const port = opts.port ?? (await freePort());
      return {
        listen: { hosts: ['127.0.0.1'], port },
        connect_address: `127.0.0.1:${port}`,
        data_dir: dataDir,
        bin_dir: PG_BIN,
        config_dir: opts.splitConfig ? join(nodeDir, 'conf') : dataDir,
        pgpass: join(nodeDir, 'pgpass'),
        authentication: structuredClone(TEST_AUTH),
        parameters: {
          unix_socket_directories: nodeDir,
          shared_buffers: '16MB',
          max_connections: 20,
          fsync: 'off',
          wal_keep_size: '64MB',
          ...opts.parameters,
        },
        pg_hba: TEST_HBA,
        callbacks: {},
        create_replica_methods: ['basebackup'],
        basebackup: [],
        use_unix_socket: false,
        remove_data_directory_on_rewind_failure: false,
        remove_data_directory_on_diverged_timelines: false,
        os_user: PG_OS_USER,
      };
    },
    async primary(name, opts = {}) {
      const cfg = await this.pgConfig(name, opts);
      if (opts.pgHba) cfg.pg_hba = opts.pgHba;
      const pg = new Postgres(cfg, { name, scope: opts.scope ?? 'test' });
      await pg.initdb([]);
      await pg.configure({ role: 'primary', parameters: cfg.parameters, pgHba: cfg.pg_hba });
      await pg.start(30_000);
      await pg.createUsers();
      return { cfg, pg };
    },
    async cleanup() {
      await stopPostmasters(dir);
      keepLogs(dir);
      rmSync(dir, { recursive: true, force: true });
      bases.delete(dir);
    },
  };
}

/**
 * `p`, or an error naming `what` once `timeoutMs` passes (with `detail()`'s answer, when given: the
 * state that explains the wait). Bounds one step of a test, so a hang says which step hung.
 */
export async function within<T>(
  what: string,
  timeoutMs: number,
  p: Promise<T>,
  detail?: () => unknown,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const d = detail ? `: ${JSON.stringify(detail())}` : '';
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}${d}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `fn` every `everyMs` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 30_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last instanceof Error ? last.message : JSON.stringify(last)}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * A superuser session on `cfg`'s server running a statement that keeps it busy for `seconds`
 * without ever waiting, so its backend notices a dead postmaster only at the end (and keeps the
 * shared memory attached until then). Resolves once the statement runs; `outcome` says how it
 * ended, `end` closes the session.
 */
export async function busyBackend(
  server: Postgres,
  cfg: PostgresqlConfig,
  seconds: number,
): Promise<{ outcome: Promise<string>; end(): Promise<void> }> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: cfg.listen.port,
    user: TEST_AUTH.superuser.username,
    password: TEST_AUTH.superuser.password,
    database: 'postgres',
  });
  client.on('error', () => undefined);
  await client.connect();
  const end = () => client.end().catch(() => undefined);
  const outcome = client
    .query(
      `DO $$ BEGIN WHILE clock_timestamp() < statement_timestamp() + interval '${seconds} seconds' LOOP END LOOP; END $$`,
    )
    .then(
      () => 'finished',
      (err: Error) => `failed: ${err.message}`,
    );
  try {
    await waitFor('the busy statement to run', async () => {
      const rows = await server.query<{ n: number }>(
        "select count(*)::int as n from pg_stat_activity where query like 'DO $$ BEGIN WHILE%'",
      );
      return rows[0]!.n === 1;
    });
  } catch (err) {
    await end();
    throw err;
  }
  return { outcome, end };
}

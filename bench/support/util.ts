/** Small helpers shared by the benchmark scripts. */
import { createConnection } from 'node:net';
import { chmodSync, chownSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { runAsUser, type OsUser } from '../../src/util/process.js';
import type { CleanupScope } from './cleanup.js';

export const PG_OS_USER = process.env.PGHA_TEST_PG_USER ?? 'postgres';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const started = Date.now();

/** Progress line on stderr, prefixed with the seconds since the bench started. */
export function log(msg: string): void {
  process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);
}

/** The OS user PostgreSQL (and Patroni) run as when we are root; null when we are not root. */
export function pgUser(): OsUser | null {
  return runAsUser(PG_OS_USER);
}

/**
 * Creates `/tmp/pgha-bench-XXXX`, owned by the PostgreSQL OS user, and registers its removal in
 * `scope`. Returns the path.
 */
export function makeBenchDir(scope: CleanupScope): string {
  const dir = mkdtempSync('/tmp/pgha-bench-');
  chmodSync(dir, 0o755);
  const u = pgUser();
  if (u) chownSync(dir, u.uid, u.gid);
  scope.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Polling with a deadline: the same helper the integration tests use. */
export { waitFor } from '../../test/support/postgres.js';

/** The message of an error, or the value as text. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** True when a TCP connection to 127.0.0.1:`port` is accepted. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Copies the logs (and configuration) of a failed run out of `dirs` into a fresh
 * `/tmp/pgha-bench-failed-XXXX`, which the bench leaves behind on purpose; data directories are
 * skipped. Returns the path.
 */
export function keepLogs(dirs: string[]): string {
  const dest = mkdtempSync('/tmp/pgha-bench-failed-');
  for (const dir of dirs) {
    cpSync(dir, join(dest, basename(dir)), {
      recursive: true,
      filter: (src) => !/\/data(\/|$)|\/pgpass$|\.s\.PGSQL/.test(src.slice(dir.length)),
    });
  }
  return dest;
}

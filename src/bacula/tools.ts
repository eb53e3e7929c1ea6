/**
 * Running `pg_dump` and `pg_restore` for the catalog commands: where they are, how a failure reads,
 * and a streaming run that hands stdout over as bytes. Explicit argv, never a shell.
 */
import { once } from 'node:events';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { detectBinDir, findPgProgramDir, isExecutable } from '../config/load.js';
import { PghaError } from '../util/errors.js';
import { startProcess } from '../util/process.js';

/**
 * The path of PostgreSQL program `program`: in `binDir` (`postgresql.bin_dir`) when set; else where
 * the agent would look (`detectBinDir`); else, for a host with only the client package (the
 * Director's), the newest `/usr/lib/postgresql/<version>/bin` holding it, then `PATH`.
 */
export function findPgTool(
  program: string,
  binDir: string | undefined,
  root = '/usr/lib/postgresql',
  pathEnv: string | undefined = process.env.PATH,
): string {
  if (binDir) {
    const file = join(binDir, program);
    if (isExecutable(file)) return file;
    throw new PghaError(
      'PGHA_NO_TOOL',
      `postgresql.bin_dir: ${file} does not exist; install the PostgreSQL client (apt-get install postgresql-client) or fix bin_dir`,
    );
  }
  const detected = detectBinDir(root, pathEnv);
  if (detected && isExecutable(join(detected, program))) return join(detected, program);
  const dir = findPgProgramDir(program, root, pathEnv);
  if (dir) return join(dir, program);
  throw new PghaError(
    'PGHA_NO_TOOL',
    `${program} not found in ${root}/<version>/bin or on PATH; install the PostgreSQL client (apt-get install postgresql-client) or set postgresql.bin_dir`,
  );
}

/**
 * The line that says why a PostgreSQL tool failed: its first `error:` line (or the last line), with
 * the `pg_dump: error:` prefix and libpq's double spaces removed.
 */
export function toolFailure(program: string, stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const line = lines.find((l) => /\berror:/.test(l)) ?? lines.at(-1) ?? 'no error message';
  const detail = lines.find((l) => /^(DETAIL|HINT):/.test(l));
  const text = line.replace(new RegExp(`^${program}:\\s*(error:\\s*)?`), '').replace(/\s+/g, ' ');
  return detail && !text.includes(detail) ? `${text} (${detail.replace(/\s+/g, ' ')})` : text;
}

/**
 * True when a failure is about the member rather than the request: the server was unreachable,
 * went away, or cancelled the dump because of replication (a hot standby's recovery conflict).
 * Another member may then succeed; a wrong password or a missing database would fail everywhere.
 */
export function isMemberFailure(stderr: string): boolean {
  return /could not connect|connection refused|connection to server .* failed: (?!FATAL)|server closed the connection|conflict with recovery|terminating connection|timeout expired|no route to host|the database system is (starting up|shutting down|in recovery mode|not yet accepting)|could not receive data/i.test(
    stderr,
  );
}

export interface ToolRun {
  /** The program's standard output, as bytes. */
  stdout: Readable;
  /** Resolves when the program has exited, with its stderr. Never rejects for a non-zero exit. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  /** Stops the program (SIGTERM, then SIGKILL after 2 s). */
  kill(): void;
}

/** Starts a PostgreSQL client program with explicit argv; stderr is collected, stdout streamed. */
export function startTool(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  onStderrLine?: (line: string) => void,
): ToolRun {
  const child = startProcess(file, args, { env });
  child.stdin?.end();
  let stderr = '';
  let partial = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    stderr += text;
    if (!onStderrLine) return;
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) onStderrLine(l);
  });
  const done = Promise.race([
    once(child, 'close').then(([code, signal]) => {
      if (partial.trim() && onStderrLine) onStderrLine(partial);
      return { code: code as number | null, signal: signal as NodeJS.Signals | null, stderr };
    }),
    once(child, 'error').then(([e]) => {
      throw new PghaError('PGHA_SPAWN_FAILED', `cannot run ${file}: ${(e as Error).message}`, { cause: e });
    }),
  ]);
  return {
    stdout: child.stdout!,
    done,
    kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, 2000).unref();
    },
  };
}

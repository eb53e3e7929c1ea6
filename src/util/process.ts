import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { userInfo } from 'node:os';
import { execFileSync } from 'node:child_process';
import { PghaError } from './errors.js';
import { deadline } from './abort.js';
import { trackChild } from './reaper.js';

/** Numeric ids of an OS user, looked up once. */
export interface OsUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

const userCache = new Map<string, OsUser>();

/** Looks up an OS user by name with getent (no shell). Throws a clear error when it does not exist. */
export function lookupUser(name: string): OsUser {
  const cached = userCache.get(name);
  if (cached) return cached;
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim();
  } catch {
    throw new PghaError(
      'PGHA_NO_SUCH_USER',
      `OS user "${name}" does not exist; create it (useradd -r ${name}) or set postgresql.os_user`,
    );
  }
  const parts = line.split(':');
  const user: OsUser = { name, uid: Number(parts[2]), gid: Number(parts[3]), home: parts[5] ?? '/' };
  userCache.set(name, user);
  return user;
}

/**
 * The user PostgreSQL processes run as: `osUser` when we are root (PostgreSQL refuses to run as
 * root), otherwise ourselves.
 */
export function runAsUser(osUser: string): OsUser | null {
  if (process.getuid?.() !== 0) return null;
  return lookupUser(osUser);
}

export interface RunOptions {
  /** Run as this user (drops privileges when we are root). */
  user?: OsUser | null;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called with each line of stdout/stderr as it arrives. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  input?: string;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function spawnOptions(opts: RunOptions): SpawnOptions {
  const o: SpawnOptions = {
    cwd: opts.cwd ?? '/',
    env: opts.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  };
  if (opts.user) {
    o.uid = opts.user.uid;
    o.gid = opts.user.gid;
    o.env = { ...o.env, HOME: opts.user.home, USER: opts.user.name, LOGNAME: opts.user.name };
  }
  return o;
}

/**
 * Runs a program (explicit argv, no shell) to completion and returns its output. Rejects with a
 * `PghaError` on timeout or abort (after killing it); a non-zero exit is returned, not thrown.
 */
export async function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const child = trackChild(spawn(file, args, spawnOptions(opts)));
  let stdout = '';
  let stderr = '';
  const lineBuf = { stdout: '', stderr: '' };
  const feed = (stream: 'stdout' | 'stderr', chunk: Buffer) => {
    const text = chunk.toString('utf8');
    if (stream === 'stdout') stdout += text;
    else stderr += text;
    if (!opts.onLine) return;
    lineBuf[stream] += text;
    const lines = lineBuf[stream].split(/\r|\n/);
    lineBuf[stream] = lines.pop() ?? '';
    for (const l of lines) if (l.trim() !== '') opts.onLine(l, stream);
  };
  child.stdout?.on('data', (c: Buffer) => feed('stdout', c));
  child.stderr?.on('data', (c: Buffer) => feed('stderr', c));
  if (opts.input !== undefined) child.stdin?.end(opts.input);
  else child.stdin?.end();

  const limit = opts.timeoutMs !== undefined ? deadline(opts.timeoutMs, opts.signal) : null;
  const abort = limit?.signal ?? opts.signal;
  const onAbort = () => {
    child.kill('SIGTERM');
    setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }, 2000).unref();
  };
  abort?.addEventListener('abort', onAbort, { once: true });
  try {
    const [exit] = await Promise.race([
      once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>,
      once(child, 'error').then(([e]) => {
        throw new PghaError('PGHA_SPAWN_FAILED', `cannot run ${file}: ${(e as Error).message}`, { cause: e });
      }),
    ]);
    if (abort?.aborted) {
      const why = opts.signal?.aborted ? 'was cancelled' : `timed out after ${opts.timeoutMs} ms`;
      throw new PghaError('PGHA_TIMEOUT', `${file} ${args.join(' ')} ${why}`, { retryable: true });
    }
    return { code: exit, signal: child.signalCode, stdout, stderr };
  } finally {
    abort?.removeEventListener('abort', onAbort);
    limit?.clear();
  }
}

/** Starts a long-running program; the caller owns it and must stop it with `stopProcess`. */
export function startProcess(
  file: string,
  args: string[],
  opts: RunOptions & { detached?: boolean } = {},
): ChildProcess {
  const o = spawnOptions(opts);
  o.detached = opts.detached ?? false;
  return trackChild(spawn(file, args, o));
}

/** True while the child has neither exited nor been killed by a signal. */
export function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Sends `signal`, waits up to `graceMs`, then SIGKILL; tolerates a process that is already gone. */
export async function stopProcess(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 5000,
): Promise<void> {
  if (!isAlive(child)) return;
  const exited = once(child, 'exit');
  try {
    child.kill(signal);
  } catch {
    return;
  }
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
  if ((await Promise.race([exited, timer])) === 'timeout' && isAlive(child)) {
    child.kill('SIGKILL');
    await exited;
  }
}

/** Sends a signal to a pid, returning false when it does not exist (ESRCH). */
export function signalPid(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EPERM') return true;
    return false;
  }
}

export function currentUserName(): string {
  return userInfo().username;
}

/**
 * User callbacks (`postgresql.callbacks`): `<cmd> <action> <role> <scope>`, run without a shell as
 * the agent's own user from the agent's working directory (so relative paths work), as Patroni runs them. Like Patroni's CallbackExecutor, starting a callback
 * kills the previous one if it is still running, so a slow script never sees events out of order.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { CallbackName } from '../config/types.js';
import { publishedRole } from '../ha/member.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { isAlive, startProcess } from '../util/process.js';

let previous: ChildProcess | null = null;

/** Kills a callback's whole process group (it runs in its own), tolerating one that is gone. */
function killGroup(child: ChildProcess): void {
  if (!isAlive(child) || child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * Runs a callback in the background. The returned promise resolves with the exit code (null when
 * killed, not configured, or not startable) once it ends; it never rejects, so callers may `void` it.
 */
export async function runCallback(
  cmd: string | undefined,
  action: CallbackName,
  role: string,
  scope: string,
  logger: Logger,
): Promise<number | null> {
  const argv = (cmd ?? '')
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '');
  const file = argv[0];
  if (file === undefined) return null;
  if (previous && isAlive(previous)) {
    logger.warn({ pid: previous.pid }, 'killing the previous callback, still running');
    killGroup(previous);
  }
  const args = [...argv.slice(1), action, role, scope];
  let child: ChildProcess;
  try {
    // Own process group, so killing it also kills what the script started.
    child = startProcess(file, args, { detached: true, cwd: process.cwd() });
  } catch (e) {
    logger.error({ cmd: file, action, err: errorMessage(e) }, 'cannot run callback');
    return null;
  }
  previous = child;
  child.stdin?.end();
  child.stdout?.resume();
  const stderr: string[] = [];
  child.stderr?.on('data', (c: Buffer) => {
    stderr.push(c.toString('utf8'));
    if (stderr.length > 20) stderr.shift();
  });
  logger.info({ cmd: [file, ...args].join(' ') }, 'running callback');
  try {
    const [code, signal] = (await Promise.race([
      once(child, 'close'),
      once(child, 'error').then(([e]) => Promise.reject(e as Error)),
    ])) as [number | null, NodeJS.Signals | null];
    if (code !== 0) {
      logger.warn(
        { cmd: file, action, code, signal, stderr: stderr.join('').trim().slice(-2000) },
        'callback failed',
      );
    }
    return code;
  } catch (e) {
    logger.error({ cmd: file, action, err: errorMessage(e) }, 'cannot run callback');
    return null;
  } finally {
    if (previous === child) previous = null;
  }
}

/**
 * Binds the configured callbacks and the scope: returns `(action, role) => void`, which starts the
 * callback for `action` (if one is configured) in the background.
 */
export function createCallbackRunner(
  callbacks: Partial<Record<CallbackName, string>>,
  scope: string,
  logger: Logger,
): (action: CallbackName, role: string) => void {
  return (action, role) => {
    void runCallback(callbacks[action], action, publishedRole(role), scope, logger);
  };
}

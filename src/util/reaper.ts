/**
 * Init's duty for a pgha agent that runs as the first process of its PID namespace: a container
 * started without an init, whose entry point is the agent. The kernel hands every process whose
 * parent dies to that first process, and each stays a zombie until it is collected: the postmaster
 * that `pg_ctl` starts and leaves, the backends of a postmaster that was killed. A zombie
 * postmaster keeps its pid taken, so PostgreSQL would refuse to start again, and a crashed
 * PostgreSQL would never come back. Patroni does the same duty when it finds itself process 1.
 *
 * Node collects the children it started (libuv waits for each by pid) and loses track of one
 * collected by anyone else, so the reaper collects only zombies that Node did not start: every
 * child pgha starts goes through `src/util/process.ts`, which records it here until Node has
 * collected it. Collecting needs waitpid, from the native addon `native/reap.c`.
 */
import type { ChildProcess } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { errorMessage } from './errors.js';
import type { Logger } from './log.js';
import { loadAddonOrWhy } from './package-root.js';
import { childProcesses } from './proc-stat.js';

/** native/reap.c; answers `{ error }` instead of throwing. */
export interface ReapAddon {
  collect(pid: number): { pid: number; code?: number; signal?: number } | null | { error: string };
}

/** Children Node started and has not yet collected. */
const started = new Set<number>();

/** Records a child Node started, until Node has collected it; returns the child. */
export function trackChild<T extends ChildProcess>(child: T): T {
  const pid = child.pid;
  if (pid !== undefined) {
    started.add(pid);
    child.once('exit', () => started.delete(pid));
  }
  return child;
}

/** The children Node started and has not yet collected. */
export function nodeChildren(): ReadonlySet<number> {
  return started;
}

/** Of a process's children (pid and state letter), the zombies that Node did not start. */
export function orphansToCollect(
  children: ReadonlyArray<{ pid: number; state: string }>,
  nodeChildren: ReadonlySet<number>,
): number[] {
  return children.filter((c) => c.state === 'Z' && !nodeChildren.has(c.pid)).map((c) => c.pid);
}

export interface ReaperOptions {
  /** This process's pid (process.pid); the reaper runs only when it is 1. */
  pid?: number;
  /** The addon, or why it cannot be used; loaded from build/Release by default. */
  addon?: ReapAddon | Error;
  /** How often to look for zombies besides on SIGCHLD (signals of several exits arrive as one). */
  everyMs?: number;
}

/**
 * Starts collecting orphaned processes when this process is process 1; returns a function that
 * stops it. Elsewhere it does nothing: the system's init collects them.
 */
export function startReaper(logger: Logger, opts: ReaperOptions = {}): () => void {
  const pid = opts.pid ?? process.pid;
  if (pid !== 1) return () => undefined;
  const addon = opts.addon ?? loadAddonOrWhy<ReapAddon>('pgha_reap');
  const consequence =
    'processes that PostgreSQL leaves behind will stay zombies, and a PostgreSQL that crashes cannot start again; ' +
    'start the container with an init (`docker run --init`, tini) or build the addon (`npm run build:native`)';
  if (addon instanceof Error) {
    logger.warn(`running as process 1 without an init, but ${addon.message}: ${consequence}`);
    return () => undefined;
  }
  if (!procIsOurs(pid)) {
    logger.warn(
      `running as process 1 without an init, but /proc is not this PID namespace's: ${consequence}`,
    );
    return () => undefined;
  }
  const reap = addon;
  logger.info('running as process 1 without an init: collecting the processes handed to it');
  // Process 1 must never die of a sweep that failed: the container would end with it.
  const sweep = () => {
    try {
      for (const orphan of orphansToCollect(childProcesses(pid), started)) {
        const r = reap.collect(orphan);
        if (r == null) continue;
        if ('error' in r) logger.debug(`could not collect process ${orphan}: ${r.error}`);
        else
          logger.debug(
            `collected process ${r.pid} (${r.signal !== undefined ? `killed by signal ${r.signal}` : `exit code ${r.code}`})`,
          );
      }
    } catch (err) {
      logger.warn(`collecting orphaned processes failed: ${errorMessage(err)}`);
    }
  };
  // Several exits in a row raise several signals: one sweep after them collects them all.
  let queued = false;
  const onSignal = () => {
    if (queued) return;
    queued = true;
    setImmediate(() => {
      queued = false;
      sweep();
    });
  };
  process.on('SIGCHLD', onSignal);
  const timer = setInterval(sweep, opts.everyMs ?? 1000);
  timer.unref();
  sweep();
  return () => {
    process.off('SIGCHLD', onSignal);
    clearInterval(timer);
  };
}

/**
 * The kernel drops a signal sent to process 1 that has no handler, so a SIGTERM (`docker stop`)
 * that came before the agent's own handlers are in place would be lost. As process 1, until the
 * returned function is called, SIGTERM and SIGINT end the process, as they do elsewhere.
 */
export function exitOnStopSignals(logger: Logger, pid = process.pid): () => void {
  if (pid !== 1) return () => undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    logger.info(`received ${sig} while starting; exiting`);
    process.exit(128 + constants.signals[sig]);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}

/** Whether /proc shows this PID namespace: /proc/self names the pid this process has in it. */
function procIsOurs(pid: number): boolean {
  try {
    return readlinkSync('/proc/self') === String(pid);
  } catch {
    return false;
  }
}

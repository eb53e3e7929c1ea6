/**
 * The agent's start-up memory, given back once it has settled: free pages of the C allocator, and
 * the pages of the node executable and shared libraries that only the start-up read
 * (native/memory.c says how, and why nothing is lost). Without the addon (native/build.sh did not
 * run) the agent keeps that memory and works the same.
 */
import { readFileSync } from 'node:fs';
import { errorMessage } from './errors.js';
import type { Logger } from './log.js';
import { loadAddonOrWhy } from './package-root.js';

/** What one release gave back. */
export interface Released {
  /** Read-only file mappings whose pages were taken out of the process. */
  mappings: number;
  /** What those mappings held resident, in kB. */
  fileKb: number;
  /** Whether the C allocator returned free pages. */
  mallocTrimmed: boolean;
}

/** native/memory.c; each call answers `{ error }` instead of throwing. */
export interface MemoryAddon {
  release(): Released | { error: string };
  /** The [start, end] ranges release() would consider for that /proc/<pid>/smaps text. */
  plan(smaps: string): Array<[number, number]> | { error: string };
}

/** A process's resident memory in kB: all of it, its own (anonymous) pages, and pages of files. */
export interface Resident {
  rss: number;
  anon: number;
  file: number;
}

/** Reads VmRSS, RssAnon and RssFile from `/proc/<pid>/status` text; null when one is missing. */
export function parseResident(status: string): Resident | null {
  const kb = (name: string): number | null => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status);
    return m ? Number(m[1]) : null;
  };
  const rss = kb('VmRSS');
  const anon = kb('RssAnon');
  const file = kb('RssFile');
  return rss === null || anon === null || file === null ? null : { rss, anon, file };
}

/** A process's resident memory (this one's by default), or null when it is gone or /proc does not say. */
export function residentOf(pid: number | 'self' = 'self'): Resident | null {
  try {
    return parseResident(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return null;
  }
}

let addon: MemoryAddon | Error | undefined;

/** The addon, loaded once; an Error says why it cannot be used (not built, or does not load). */
export function memoryAddon(): MemoryAddon | Error {
  addon ??= loadAddonOrWhy<MemoryAddon>('pgha_memory');
  return addon;
}

/** Gives back the start-up memory now; an Error says why it could not. */
export function releaseStartupMemory(a: MemoryAddon | Error = memoryAddon()): Released | Error {
  if (a instanceof Error) return a;
  try {
    const r = a.release();
    return 'error' in r ? new Error(r.error) : r;
  } catch (err) {
    return new Error(errorMessage(err));
  }
}

const MB = (kb: number) => (kb / 1024).toFixed(1);

/**
 * Releases the start-up memory once, when `settled()` has held at every check (one per `everyMs`)
 * for `holdMs`; logs what it gave back. Returns a function that cancels a release not yet done.
 */
export function releaseWhenSettled(
  settled: () => boolean,
  logger: Logger,
  opts: { holdMs: number; everyMs?: number; release?: () => Released | Error },
): () => void {
  // Loaded now, not when settled (maybe hours later): the addon of the code that runs, and a
  // failure to load is in the log from the start.
  const loaded = opts.release ? null : memoryAddon();
  if (loaded instanceof Error) {
    logger.info(`start-up memory will be kept: ${loaded.message}; \`npm run build:native\` builds it`);
    return () => undefined;
  }
  const release = opts.release ?? releaseStartupMemory;
  const everyMs = opts.everyMs ?? 1000;
  // Settled at this many checks in a row; the first of them starts the hold.
  let streak = 0;
  const timer = setInterval(() => {
    streak = settled() ? streak + 1 : 0;
    if (streak === 0 || (streak - 1) * everyMs < opts.holdMs) return;
    clearInterval(timer);
    const before = residentOf();
    const released = release();
    if (released instanceof Error) {
      logger.warn(`start-up memory kept: ${released.message}`);
      return;
    }
    const after = residentOf();
    const rss = before && after ? `; resident ${MB(before.rss)} MB before, ${MB(after.rss)} MB after` : '';
    logger.info(
      `gave back start-up memory: ${MB(released.fileKb)} MB of read-only file pages out of the resident set ` +
        `(${released.mappings} mappings; they stay in the page cache, and those used again come back)` +
        `${released.mallocTrimmed ? ' and free C heap pages' : ''}${rss}`,
    );
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

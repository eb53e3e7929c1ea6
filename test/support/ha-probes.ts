/**
 * Probes for HA regression tests: who holds the `leader` key over time, whether a postmaster is
 * still the same process, a node's PostgreSQL auxiliary processes, the lines of an agent's log that
 * explain a failure, and cutting one replica off from the leader's WAL.
 */
import { existsSync, readFileSync } from 'node:fs';
import { signalPid } from '../../src/util/process.js';
import type { TestCluster } from './cluster.js';
import { childPids, waitFor } from './postgres.js';

/** One reading of the `leader` key: its holder (null: no key) and when it was read. */
export interface LeaderSample {
  at: number;
  leader: string | null;
}

/** Polls the `leader` key in the background until `stop()`, keeping every reading. */
export interface LeaderWatch {
  samples: LeaderSample[];
  /** Every name that held the key while watched. */
  holders(): Set<string>;
  stop(): Promise<LeaderSample[]>;
}

/**
 * Starts reading the `leader` key every `everyMs` (failed reads are skipped, not recorded); it stops
 * by itself after `maxMs`, should a failing test never call `stop()`.
 */
export function watchLeader(c: TestCluster, everyMs = 250, maxMs = 300_000): LeaderWatch {
  const samples: LeaderSample[] = [];
  const until = Date.now() + maxMs;
  let running = true;
  const done = (async () => {
    while (running && Date.now() < until) {
      try {
        const s = await c.readCluster();
        samples.push({ at: Date.now(), leader: s.leader?.name ?? null });
      } catch {
        // etcd may be unreachable on purpose; the gap shows as missing samples
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    samples,
    holders: () => new Set(samples.map((s) => s.leader).filter((l): l is string => l !== null)),
    async stop() {
      running = false;
      await done;
      return samples;
    },
  };
}

/** A compact description of leader samples for assertion messages: `12.3s pg1, 14.0s -, ...` on changes. */
export function describeLeaderSamples(samples: LeaderSample[], since: number): string {
  const out: string[] = [];
  let last: string | null | undefined;
  for (const s of samples) {
    if (s.leader === last) continue;
    last = s.leader;
    out.push(`${((s.at - since) / 1000).toFixed(1)}s ${s.leader ?? '-'}`);
  }
  return out.join(', ');
}

/** True while `pid` exists and runs PostgreSQL (not a zombie, not a reused pid). */
export function isPostgresPid(pid: number | null): boolean {
  if (pid === null || !signalPid(pid, 0)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return /postgres|postmaster/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * The child of `postmasterPid` whose process title is `postgres: <title> ...` (e.g. `startup`,
 * `walreceiver`), also with the `cluster_name` prefix PostgreSQL adds (`postgres: demo: startup`).
 */
export function auxiliaryPid(postmasterPid: number, title: string): number | null {
  const re = new RegExp(`^postgres: (?:[^:]*: )?${title}\\b`);
  for (const pid of childPids(postmasterPid)) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (re.test(cmd)) return pid;
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

/** The process state letter of `pid` (R, S, T for stopped, ...), or null when it is gone. */
export function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

/** The last `max` non-DEBUG lines of a log that match `re`, cut to 300 characters, for an assertion message. */
export function logLines(path: string, re: RegExp, max = 8): string {
  if (!existsSync(path)) return `(no log at ${path})`;
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => re.test(l) && !/^\S+ \S+ DEBUG:/.test(l));
  return lines
    .slice(-max)
    .map((l) => (l.length > 300 ? `${l.slice(0, 300)} ...` : l))
    .join('\n');
}

/** Runs one statement on a node's PostgreSQL; returns null on success, else the error message. */
export async function tryQuery(c: TestCluster, name: string, sql: string, params?: unknown[]) {
  try {
    await c.query(name, sql, params);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Sleeps `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Cuts `replica` off from `leader`'s WAL while every other replica keeps streaming: the
 * replication role may no longer log in, and the replica's walsender is terminated, so its WAL
 * receiver cannot reconnect. Nothing is left in flight: the replica's position stays where it was.
 */
export async function cutReplication(c: TestCluster, leader: string, replica: string): Promise<void> {
  await c.query(leader, 'ALTER ROLE replicator NOLOGIN');
  const streaming = async () =>
    Number(
      (
        await c.query<{ n: string }>(
          leader,
          'SELECT count(*) AS n FROM pg_stat_replication WHERE application_name = $1',
          [replica],
        )
      )[0]?.n,
    );
  await waitFor(
    `${replica} to stop streaming from ${leader}`,
    async () => {
      await c.query(
        leader,
        'SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = $1',
        [replica],
      );
      return (await streaming()) === 0;
    },
    20_000,
    500,
  );
}

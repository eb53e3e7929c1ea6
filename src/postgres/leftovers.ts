/**
 * The processes a crashed postmaster leaves behind. When a postmaster dies (SIGKILL, OOM killer),
 * its backends live on until they next wait (an idle one at once, one running a statement when
 * the statement ends) and keep its shared memory attached meanwhile. PostgreSQL refuses to start
 * while they do ("pre-existing shared memory block ... is still in use"), and a start that fails
 * counts as a PostgreSQL that cannot start (rule `start-failed`: the leader releases its key). So a
 * start first waits for them: it reads the segment's id from postmaster.pid and its count of
 * attached processes from /proc/sysvipc/shm, the same segment PostgreSQL itself checks.
 */

/** The System V shared memory id in postmaster.pid (line 7, "key shmid"); null when absent. */
export function sharedMemoryId(pidFile: string): number | null {
  const line = pidFile.split('\n')[6];
  const m = line ? /^\s*(\d+)\s+(\d+)\s*$/.exec(line) : null;
  if (!m) return null;
  const id = Number(m[2]);
  return Number.isSafeInteger(id) ? id : null;
}

/** How many processes have segment `shmid` attached, per /proc/sysvipc/shm; null: no such segment. */
export function attachedProcesses(sysvShm: string, shmid: number): number | null {
  const [header, ...rows] = sysvShm.split('\n');
  const cols = (header ?? '').trim().split(/\s+/);
  const idCol = cols.indexOf('shmid');
  const nattchCol = cols.indexOf('nattch');
  if (idCol < 0 || nattchCol < 0) return null;
  for (const row of rows) {
    const f = row.trim().split(/\s+/);
    if (Number(f[idCol]) !== shmid) continue;
    const n = Number(f[nattchCol]);
    return Number.isInteger(n) && n >= 0 ? n : null;
  }
  return null;
}

import { readFileSync } from 'node:fs';

/** The kernel's "this task is exiting" flag in /proc/<pid>/stat's flags field (PF_EXITING). */
const PF_EXITING = 0x4;

/**
 * A process's state letter from /proc/<pid>/stat text, and whether it is dying: a zombie, or a
 * process whose exit is under way. A SIGKILLed postmaster spends a moment exiting (unmapping its
 * memory) before it turns zombie; its cmdline already reads empty then, so it must be waited for,
 * not taken for another program that reused the pid. Null when the text cannot be read as a stat.
 */
export function parseProcStat(text: string): { state: string; dying: boolean } | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const flags = Number(fields[6]);
  if (!state || !/^[A-Za-z]$/.test(state) || !Number.isInteger(flags)) return null;
  return { state, dying: state === 'Z' || state === 'X' || (flags & PF_EXITING) !== 0 };
}

/** `parseProcStat` of process `pid`; null when it does not exist (or /proc does not say). */
export function procStat(pid: number): { state: string; dying: boolean } | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

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

/**
 * The socket lock files a postmaster that wrote `pidFile` may have left: `.s.PGSQL.<port>.lock` in
 * its first socket directory (line 5) and in each absolute directory of `configuredDirs` (the
 * `unix_socket_directories` setting). PostgreSQL refuses to start over one whose pid still exists,
 * as over postmaster.pid.
 */
export function socketLockFiles(pidFile: string, configuredDirs: string | undefined): string[] {
  const lines = pidFile.split('\n');
  const port = Number(lines[3]?.trim());
  if (!Number.isInteger(port) || port <= 0) return [];
  const dirs = [lines[4]?.trim() ?? '', ...(configuredDirs ?? '').split(',').map((d) => d.trim())];
  const absolute = dirs.filter((d) => d.startsWith('/')).map((d) => d.replace(/\/+$/, '') || '/');
  return [...new Set(absolute)].map((d) => `${d === '/' ? '' : d}/.s.PGSQL.${port}.lock`);
}

/** The pid a lock file (postmaster.pid or a socket lock file) names; null when it names none. */
export function lockFilePid(text: string): number | null {
  const pid = Math.abs(Number(text.split('\n')[0]?.trim()));
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

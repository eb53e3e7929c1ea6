/**
 * `SpoolAttributes = no` through a switchover, on the set-up of docs/bacula.md: the Director's
 * batch session holds a temporary table and an unfinished `COPY batch FROM STDIN` for the whole
 * job, so the router cannot move it and cuts it when the switchover drains (after
 * `router.drain_timeout`), while the Director's job session moves. Bacula ignores the failed COPY
 * writes and fails the job at its end, once its retries of the batch insert on the closed
 * connection give up: `*** Backup Error ***`, no File rows. The Director goes on: the next job
 * runs without a restart. docs/bacula.md says so and recommends `SpoolAttributes = yes`.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../../src/util/process.js';
import { CatalogSetup, makeManyFiles, slowJobsConf } from './debian.js';

/** 5,000 files at this pace: a job of about 30 s. */
const BANDWIDTH = '100 kb/s';

const env = new CatalogSetup();
let entries = 0;

beforeAll(async () => {
  await env.start({ extraDirectorConf: (loc) => slowJobsConf(join(loc.data, 'many'), BANDWIDTH) });
  entries = makeManyFiles(join(env.loc.data, 'many'), 25, 200);
}, 240_000);

afterAll(() => env.stop(), 120_000);

describe('SpoolAttributes = no through a switchover', () => {
  it('the batch session is cut (unfinished COPY), the job fails at its end, the Director goes on', async () => {
    const dirPid = env.daemons!.dir.pid!;
    const { candidate } = await env.candidate();
    const r = await env.jobThrough(
      'SlowBackupNoSpool',
      async () => {
        await env.switchover(candidate);
        await env.waitRoutedTo(candidate);
      },
      { waitMs: 400_000 },
    );
    const row = await env.jobRow(r.id);
    console.log(
      `SpoolAttributes=no, switchover at ${r.eventAfterMs} ms: job ${r.id} ${row.jobstatus} in ${row.seconds} s, ` +
        `${row.jobfiles} entries, ${row.files} File rows; router ${JSON.stringify(r.router)}`,
    );
    // The router: the job session moved (so may another session open at that moment, such as this
    // test's own check that the router reaches the new primary), and the batch session alone was
    // cut, as an unfinished COPY.
    expect(r.router.moved).toBeGreaterThanOrEqual(1);
    expect(r.router.cut).toEqual({ copy: 1 });
    expect(r.router.cutReasons).toEqual(['unfinished COPY']);
    // Bacula: the file daemon sent everything, the batch insert failed on the closed connection.
    expect(r.out).toMatch(/Fatal error: .*Query failed: .*ERR=no connection to the server/);
    expect(r.out).toMatch(/Termination:\s+\*\*\* Backup Error \*\*\*/);
    expect(row.jobstatus).toBe('f');
    expect(row.files).toBe(0);

    // The Director is the same process, and its next job ends Backup OK (Debian's BackupClient1,
    // unpaced, over the same files and the directory above them).
    expect(env.daemons!.dir.pid).toBe(dirPid);
    expect(isAlive(env.daemons!.dir)).toBe(true);
    const next = await env.runJob('BackupClient1', 'level=Full');
    expect(next.out).toMatch(/Termination:\s+Backup OK/);
    const nextRow = await env.jobRow(next.id);
    expect(nextRow.jobstatus).toBe('T');
    expect(nextRow.files).toBe(entries + 1);
  }, 600_000);
});

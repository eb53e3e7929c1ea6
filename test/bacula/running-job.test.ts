/**
 * A Bacula backup job keeps running while the catalog's primary changes under it: the set-up of
 * docs/bacula.md (three nodes, `pgha router`, Debian's Bacula with its default
 * `SpoolAttributes = yes`), a job over 20,000 small files slowed by `Maximum Bandwidth` on its Job
 * resource so it runs for half a minute or so (how long depends on the machine; `jobThrough` checks
 * that it was still running once the primary had changed), and (a) a switchover, (b) a kill -9 of
 * the leader's agent and postmaster, each while a job runs. The router moves the Director's idle
 * catalog session to the new primary: each job ends `Backup OK` with every file in the catalog
 * and restores byte for byte, and the Director is the same process throughout.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../../src/util/process.js';
import { CatalogSetup, makeManyFiles, slowJobsConf } from './debian.js';

const FILES = 20_000;
/** The File daemon's pace: the 20,000 files take 25–40 s. */
const BANDWIDTH = '320 kb/s';

const env = new CatalogSetup();
let source = '';
/** Entries as Bacula counts them (JobFiles): files, directories and the top directory. */
let entries = 0;

beforeAll(async () => {
  await env.start({ extraDirectorConf: (loc) => slowJobsConf(join(loc.data, 'many'), BANDWIDTH) });
  source = join(env.loc.data, 'many');
  entries = makeManyFiles(source, 100, FILES / 100);
}, 240_000);

afterAll(() => env.stop(), 120_000);

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Every regular file under `dir`, relative to it. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)));
  return out.sort();
}

describe('a Bacula job running while the catalog changes primary (SpoolAttributes = yes)', () => {
  const jobs: Array<{ id: number; case: string }> = [];
  let dirPid = 0;

  it('(a) switchover: the job ends Backup OK with every file in the catalog', async () => {
    dirPid = env.daemons!.dir.pid!;
    const { candidate } = await env.candidate();
    const r = await env.jobThrough('SlowBackup', async () => {
      await env.switchover(candidate);
      await env.waitRoutedTo(candidate);
    });
    const row = await env.jobRow(r.id);
    console.log(
      `switchover at ${r.eventAfterMs} ms: job ${r.id} ${row.jobstatus} in ${row.seconds} s, ` +
        `${row.jobfiles} entries; router ${JSON.stringify(r.router)}`,
    );
    expect(r.out).toMatch(/Termination:\s+Backup OK/);
    expect(row.jobstatus).toBe('T');
    expect(row.jobfiles).toBe(entries);
    expect(row.files).toBe(entries);
    expect(r.router.moved).toBeGreaterThanOrEqual(1);
    expect(r.router.cut).toEqual({});
    expect(Math.max(...r.router.pausesMs)).toBeLessThan(30_000);
    jobs.push({ id: r.id, case: 'switchover' });
  }, 180_000);

  it('(b) failover, kill -9 of the leader agent and postmaster: the job ends Backup OK', async () => {
    let old = '';
    const r = await env.jobThrough('SlowBackup', async () => {
      old = await env.killLeader();
    });
    const row = await env.jobRow(r.id);
    console.log(
      `failover at ${r.eventAfterMs} ms: job ${r.id} ${row.jobstatus} in ${row.seconds} s, ` +
        `${row.jobfiles} entries; router ${JSON.stringify(r.router)}`,
    );
    expect(r.out).toMatch(/Termination:\s+Backup OK/);
    expect(row.jobstatus).toBe('T');
    expect(row.jobfiles).toBe(entries);
    expect(row.files).toBe(entries);
    expect(r.router.moved).toBeGreaterThanOrEqual(1);
    expect(r.router.cut).toEqual({});
    expect(Math.max(...r.router.pausesMs)).toBeLessThan(30_000);
    jobs.push({ id: r.id, case: 'failover' });
    env.cluster.startAgent(old);
  }, 180_000);

  it('the Director never restarted; both jobs restore byte for byte', async () => {
    expect(env.daemons!.dir.pid).toBe(dirPid);
    expect(isAlive(env.daemons!.dir)).toBe(true);
    const want = filesUnder(source);
    expect(want).toHaveLength(FILES);
    for (const j of jobs) {
      const where = env.dir(`restore-${j.case}`);
      const out = await env.restore(j.id, where);
      expect(out).toMatch(/Termination:\s+Restore OK/);
      const restored = join(where, source);
      expect(filesUnder(restored)).toEqual(want);
      for (const f of want) expect(sha(join(restored, f)), f).toBe(sha(join(source, f)));
    }
  }, 120_000);
});

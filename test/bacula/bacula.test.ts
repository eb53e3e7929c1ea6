/**
 * Debian's Bacula on a pgha catalog, end to end, with the files of docs/bacula.md: a three-node
 * cluster whose YAML comes from the doc's catalog01.yml, a `pgha router` process in HAProxy's
 * place, the catalog created through it with Bacula's own make_postgresql_tables, and
 * bacula-dir/-sd/-fd configured from Debian's templates with the doc's edits. Two backups around a
 * switchover, a restore, the BackupCatalog job (its RunBeforeJob dumps from a replica) and
 * `pgha bacula restore-catalog` of that dump.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, startProcess, stopProcess } from '../../src/util/process.js';
import { CLI, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import { ADMIN, BACULA, CatalogSetup, bconsole, pgha, type Localisation } from './debian.js';

const env = new CatalogSetup();
let cluster: TestCluster;
let loc: Localisation;
let base = '';
let routerPort = 0;
let catalogYml = '';
let bconsoleConf = '';
let sdConf = '';
let extracted = '';

const sql = <T extends Record<string, unknown>>(
  who: { user: string; password: string },
  database: string,
  text: string,
) => env.sql<T>(who, database, text);
const leader = () => env.leader();
const runJob = (job: string, extra = '') => env.runJob(job, extra);
const jobStatus = (id: number) => env.jobStatus(id);
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

beforeAll(async () => {
  await env.start();
  ({ cluster, loc, base, routerPort, catalogYml, bconsoleConf, sdConf } = env);
  extracted = env.dir('extracted');
  writeFileSync(join(loc.data, 'hello.txt'), 'catalog on pgha\n');
  mkdirSync(join(loc.data, 'sub'));
  writeFileSync(join(loc.data, 'sub', 'blob.bin'), randomBytes(256 * 1024));
  const made = await sql<{ n: string }>(
    BACULA,
    'bacula',
    "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public' AND tableowner = 'bacula'",
  );
  expect(Number(made[0]!.n)).toBeGreaterThanOrEqual(25);
}, 240_000);

afterAll(() => env.stop(), 120_000);

describe('Bacula with its catalog on pgha', () => {
  const jobs: number[] = [];

  it('prints the Catalog resource the Director uses: the router port on the virtual IP', () => {
    const text = readFileSync(join(loc.etc, 'pgha-catalog.conf'), 'utf8');
    expect(text).toBe(
      [
        'Catalog {',
        '  Name = "MyCatalog"',
        '  DB Address = "127.0.0.1"',
        `  DB Port = ${routerPort}`,
        '  dbname = "bacula"',
        '  dbuser = "bacula"',
        `  dbpassword = "${BACULA.password}"`,
        '}',
        '',
      ].join('\n'),
    );
  });

  it('backs up a directory, with the catalog written through the router', async () => {
    const { id, out } = await runJob('BackupClient1', 'level=Full');
    expect(out).toMatch(/Termination:\s+Backup OK/);
    expect(await jobStatus(id)).toBe('T');
    jobs.push(id);
  });

  it('runs the next backup after a switchover, on the new primary', async () => {
    const { candidate } = await env.candidate();
    await env.switchover(candidate);
    await env.waitRoutedTo(candidate);
    writeFileSync(join(loc.data, 'after-switchover.txt'), `written while ${candidate} leads\n`);
    const { id, out } = await runJob('BackupClient1', 'level=Full');
    expect(out).toMatch(/Termination:\s+Backup OK/);
    expect(await jobStatus(id)).toBe('T');
    jobs.push(id);
  });

  it('restores the files of the second backup, byte for byte', async () => {
    const where = join(base, 'restore');
    const out = await env.restore(jobs[1]!, where);
    expect(out).toMatch(/Termination:\s+Restore OK/);
    for (const f of ['hello.txt', 'sub/blob.bin', 'after-switchover.txt']) {
      const restored = join(where, loc.data, f);
      expect(existsSync(restored), restored).toBe(true);
      expect(sha(restored)).toBe(sha(join(loc.data, f)));
    }
  });

  it('shows both backups in bconsole and in the catalog tables', async () => {
    const out = await bconsole(bconsoleConf, ['list jobs']);
    for (const id of jobs)
      expect(out).toMatch(new RegExp(`\\|\\s+${id}\\s+\\|\\s+BackupClient1\\s+\\|.*\\|\\s+T\\s+\\|`));
    const rows = await sql<{ jobid: number; name: string; jobstatus: string; jobfiles: number }>(
      BACULA,
      'bacula',
      "SELECT jobid, name, jobstatus, jobfiles FROM job WHERE type = 'B' ORDER BY jobid",
    );
    expect(rows.map((r) => [r.jobid, r.name, r.jobstatus])).toEqual(
      jobs.map((id) => [id, 'BackupClient1', 'T']),
    );
    expect(rows[1]!.jobfiles).toBeGreaterThan(rows[0]!.jobfiles);
  });

  it('BackupCatalog: RunBeforeJob dumps the catalog from a streaming replica', async () => {
    await cluster.waitHealthy(2);
    const { id, out } = await runJob('BackupCatalog');
    expect(out).toMatch(/Termination:\s+Backup OK/);
    expect(await jobStatus(id)).toBe('T');
    const state = await cluster.readCluster();
    const replicas = state.members.filter((m) => m.name !== state.leader?.name).map((m) => m.name);
    // The command's summary line lands in the job's log.
    const m = /catalog dump \S+bacula\.dump: .* from (\S+) \((replica|leader)\)/.exec(out);
    expect(m, out).not.toBeNull();
    expect(m![2]).toBe('replica');
    expect(replicas).toContain(m![1]);
    const dump = join(base, 'lib', 'bacula.dump');
    expect(statSync(dump).mode & 0o777).toBe(0o600);
    expect(readFileSync(dump).subarray(0, 5).toString()).toBe('PGDMP');
    jobs.push(id);

    // The way back without a catalog: bextract with the job's bootstrap file, as the doc says.
    const x = await run(
      '/usr/sbin/bextract',
      ['-b', join(base, 'lib', 'BackupCatalog.bsr'), '-c', sdConf, 'FileChgr1-Dev1', extracted],
      { timeoutMs: 60_000 },
    );
    expect(x.code, x.stdout + x.stderr).toBe(0);
    expect(sha(join(extracted, dump))).toBe(sha(dump));
  });

  it('backup-catalog reports progress and never leaves a partial file', async () => {
    const out = join(base, 'lib', 'direct.dump');
    const ok = await pgha(
      [
        'bacula',
        'backup-catalog',
        catalogYml,
        '--output',
        out,
        '--password-env',
        'PW',
        '--progress-interval',
        '0.01',
      ],
      { PW: BACULA.password },
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/reading cluster demo from etcd/);
    expect(ok.stderr).toMatch(/dumping database "bacula" as bacula from pg\d \(replica, .* behind\)/);
    expect(ok.stderr).toMatch(/INFO: dumped \d+(\.\d)? (B|KiB) so far \(.*\/s\)/);
    expect(ok.stderr).toMatch(/pg_dump finished: .* in [\d.]+ s/);
    expect(ok.stderr).toMatch(/archive checked: \d+ entries/);
    const before = readFileSync(out);

    const bad = await pgha(
      ['bacula', 'backup-catalog', catalogYml, '--output', out, '--password-env', 'PW'],
      {
        PW: 'wrong',
      },
    );
    expect(bad.code).toBe(1);
    const lines = bad.stderr.trim().split('\n');
    expect(lines.at(-1)).toMatch(
      /^pgha: pg_dump of database "bacula" from pg\d \(127\.0\.0\.1:\d+\) failed: .*password authentication failed for user "bacula"$/,
    );
    // Tried once: a wrong password fails on every member.
    expect(bad.stderr.match(/dumping database/g)).toHaveLength(1);
    expect(readFileSync(out).equals(before)).toBe(true);
    expect(readdirSync(join(base, 'lib')).filter((f) => f.includes('.partial'))).toEqual([]);

    const leaderOnly = await pgha(
      ['bacula', 'backup-catalog', catalogYml, '-o', out, '--leader', '--password-env', 'PW'],
      { PW: BACULA.password },
    );
    expect(leaderOnly.code, leaderOnly.stderr).toBe(0);
    expect(leaderOnly.stdout).toMatch(new RegExp(`from ${await leader()} \\(leader\\)`));
  });

  it('backup-catalog stops pg_dump and removes its partial file when cancelled (SIGTERM)', async () => {
    // A lock held on the primary keeps pg_dump waiting, so the signal lands mid-dump.
    const holder = new pg.Client({ host: '127.0.0.1', port: routerPort, database: 'bacula', ...BACULA });
    holder.on('error', () => undefined);
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE job IN ACCESS EXCLUSIVE MODE');
      const out = join(base, 'lib', 'cancelled.dump');
      const child = startProcess(
        process.execPath,
        [CLI, 'bacula', 'backup-catalog', catalogYml, '-o', out, '--leader', '--progress-interval', '0.2'],
        { env: { ...process.env, PGPASSWORD: BACULA.password } },
      );
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdout?.resume();
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      try {
        await waitFor(
          'pg_dump to wait for the lock',
          () => Promise.resolve(/dumped 0 B so far/.test(stderr)),
          30_000,
        );
        expect(readdirSync(join(base, 'lib')).filter((f) => f.endsWith('.partial'))).toHaveLength(1);
        child.kill('SIGTERM');
        expect(await exited).toBe(1);
      } finally {
        await stopProcess(child, 'SIGKILL', 1000);
      }
      expect(stderr.trim().split('\n').at(-1)).toBe('pgha: catalog dump cancelled');
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(join(base, 'lib')).filter((f) => f.endsWith('.partial'))).toEqual([]);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end().catch(() => undefined);
    }
  });

  it('restore-catalog loads the dump taken back from the volume into the primary, with --clean and --yes', async () => {
    const dump = join(extracted, base, 'lib', 'bacula.dump');
    await sql(
      ADMIN,
      'postgres',
      "CREATE DATABASE bacula_restored OWNER bacula ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
    );
    const args = ['bacula', 'restore-catalog', catalogYml, '--input', dump, '--dbname', 'bacula_restored'];
    const env = { PW: BACULA.password };

    const unconfirmed = await pgha([...args, '--password-env', 'PW'], env);
    expect(unconfirmed.code).toBe(1);
    expect(unconfirmed.stderr.trim().split('\n').at(-1)).toMatch(
      /^pgha: restore-catalog writes .* pass --yes to confirm$/,
    );

    const first = await pgha([...args, '--password-env', 'PW', '--yes'], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(
      /catalog restored into database "bacula_restored" at 127\.0\.0\.1:\d+ \(the leader pg\d\)/,
    );
    expect(first.stderr).toMatch(/loading table public\.job/);
    const count = async (db: string) =>
      (
        await sql<{ jobs: string; files: string }>(
          BACULA,
          db,
          'SELECT (SELECT count(*) FROM job) AS jobs, (SELECT count(*) FROM file) AS files',
        )
      )[0];
    // The dump was taken while BackupCatalog ran: it holds every job before it.
    const restored = await count('bacula_restored');
    const live = await sql<{ n: string }>(
      BACULA,
      'bacula',
      `SELECT count(*) AS n FROM job WHERE jobid <= ${jobs[2]}`,
    );
    expect(restored!.jobs).toBe(live[0]!.n);
    expect(Number(restored!.files)).toBeGreaterThan(0);

    const again = await pgha([...args, '--password-env', 'PW', '--yes'], env);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toMatch(/already has \d+ tables; pass --clean to drop and replace them$/);

    // A changed row is put back by --clean, through the router this time.
    await sql(BACULA, 'bacula_restored', "UPDATE job SET name = 'changed'");
    const clean = await pgha([...args, '--password-env', 'PW', '--yes', '--clean', '--through-router'], env);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/\(the router\)/);
    const names = await sql<{ name: string }>(BACULA, 'bacula_restored', 'SELECT DISTINCT name FROM job');
    expect(names.map((r) => r.name)).not.toContain('changed');
    expect(await count('bacula_restored')).toEqual(restored);

    // A replica is refused before anything is written.
    const state = await cluster.readCluster();
    const replica = cluster.node(state.members.find((m) => m.name !== state.leader?.name)!.name);
    const ro = await pgha(
      [
        ...args,
        '--password-env',
        'PW',
        '--yes',
        '--clean',
        '--address',
        '127.0.0.1',
        '--port',
        String(replica.pgPort),
      ],
      env,
    );
    expect(ro.code).toBe(1);
    expect(ro.stderr.trim()).toMatch(/is a read-only replica; restore into the primary/);
  });
});

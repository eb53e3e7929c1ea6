/**
 * Debian's Bacula on a pgha catalog, end to end, with the files of docs/bacula.md: a three-node
 * cluster whose YAML comes from the doc's catalog01.yml, a `pgha router` process in HAProxy's
 * place, the catalog created through it with Bacula's own make_postgresql_tables, and
 * bacula-dir/-sd/-fd configured from Debian's templates with the doc's edits. Two backups around a
 * switchover, a restore, the BackupCatalog job (its RunBeforeJob dumps from a replica) and
 * `pgha bacula restore-catalog` of that dump.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { run, startProcess, stopProcess } from '../../src/util/process.js';
import { CLI, SCOPE, startCluster, type TestCluster } from '../support/cluster.js';
import { freePorts } from '../support/net.js';
import { PG_BIN, waitFor } from '../support/postgres.js';
import {
  DEFCONFIG,
  MAKE_TABLES,
  bconsole,
  editDirectorConf,
  editStorageConf,
  fixture,
  localise,
  queuedJobId,
  requireBacula,
  startDaemons,
  type BaculaDaemons,
  type Localisation,
} from './debian.js';
import { isStreamingMember } from '../../src/dcs/types.js';

const PGHA = join(import.meta.dirname, '..', '..', 'bin', 'pgha');
/** The doc's passwords (catalog01.yml, create-catalog.sql). */
const ADMIN = { user: 'pat_admin', password: 'Admin@Bacula25' };
const BACULA = { user: 'bacula', password: 'Bacula@Catalog25' };

/** The parts of the doc's YAML files the test reads. */
interface DocNode {
  bootstrap: { dcs: { postgresql: unknown }; initdb: unknown; pg_hba: string[] };
  postgresql: { authentication: unknown };
  tags: unknown;
  router: Record<string, unknown>;
  vip: Record<string, unknown>;
}
interface DocCatalog {
  scope: string;
  namespace: string;
  etcd3: { hosts: string[] };
  router: { listen: string };
  vip: { address: string };
}

let cluster: TestCluster;
let router: ChildProcess | null = null;
let daemons: BaculaDaemons | null = null;
let base = '';
let loc: Localisation;
let routerPort = 0;
let catalogYml = '';
let bconsoleConf = '';
let sdConf = '';
let extracted = '';
const cleanups: Array<() => Promise<void>> = [];

interface Cli {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI as a user would, with `env` added. */
async function pgha(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Cli> {
  const r = await run(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    timeoutMs: 120_000,
  });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** One query on a fresh connection through the router. */
async function sql<T extends Record<string, unknown>>(
  who: { user: string; password: string },
  database: string,
  text: string,
  port = routerPort,
): Promise<T[]> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port,
    user: who.user,
    password: who.password,
    database,
    connectionTimeoutMillis: 30_000,
  });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query<T>(text)).rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** A node's YAML: the test's addresses and directories, the rest from the doc's catalog01.yml. */
function fromDoc(ports: { router: number; status: number }) {
  const doc = parse(fixture('catalog01.yml')) as DocNode;
  return (cfg: Record<string, unknown>) => {
    const bootstrap = cfg.bootstrap as { dcs: Record<string, unknown>; initdb: unknown; pg_hba: string[] };
    bootstrap.dcs.postgresql = doc.bootstrap.dcs.postgresql;
    bootstrap.initdb = doc.bootstrap.initdb;
    // The doc's LAN is this machine's loopback.
    bootstrap.pg_hba = doc.bootstrap.pg_hba.map((l) => l.replace('192.168.1.0/24', '127.0.0.1/32'));
    (cfg.postgresql as Record<string, unknown>).authentication = doc.postgresql.authentication;
    cfg.tags = doc.tags;
    cfg.router = {
      ...doc.router,
      listen: `127.0.0.1:${ports.router}`,
      status_listen: `127.0.0.1:${ports.status}`,
    };
    cfg.vip = { ...doc.vip, address: '127.0.0.1' };
  };
}

/** The doc's /etc/pgha/catalog.yml with this cluster's name, etcd and router port. */
function localCatalogYml(): string {
  const doc = parse(fixture('catalog.yml')) as DocCatalog;
  doc.scope = SCOPE;
  doc.namespace = '/service/';
  doc.etcd3.hosts = cluster.etcd.endpoints;
  doc.router.listen = `0.0.0.0:${routerPort}`;
  doc.vip.address = '127.0.0.1';
  return stringify(doc);
}

/** Writes a file the way the doc's `install -m 640` does. */
function writeConf(path: string, text: string, mode = 0o640): void {
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
}

async function leader(): Promise<string> {
  const s = await cluster.readCluster();
  if (!s.leader) throw new Error('no leader');
  return s.leader.name;
}

/** Runs a job with bconsole, waits for it, and returns its JobId and the console output. */
async function runJob(job: string, extra = ''): Promise<{ id: number; out: string }> {
  const queued = await bconsole(bconsoleConf, [`run job=${job} ${extra} yes`.replace(/\s+/g, ' ')]);
  const id = queuedJobId(queued);
  const out = await bconsole(bconsoleConf, [`wait jobid=${id}`, 'messages'], 150_000);
  return { id, out };
}

async function jobStatus(id: number): Promise<string> {
  const rows = await sql<{ jobstatus: string }>(
    BACULA,
    'bacula',
    `SELECT jobstatus FROM job WHERE jobid = ${id}`,
  );
  return rows[0]?.jobstatus ?? 'missing';
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

beforeAll(async () => {
  requireBacula();
  // Not under /tmp: Debian's "Full Set" excludes /tmp, and this test backs up its own files.
  base = mkdtempSync('/var/tmp/pgha-bacula-');
  cleanups.push(() => Promise.resolve(rmSync(base, { recursive: true, force: true })));
  const dir = (name: string) => {
    const p = join(base, name);
    mkdirSync(p, { recursive: true });
    return p;
  };
  const [rPort, sPort, dirPort, fdPort, sdPort] = await freePorts(5);
  routerPort = rPort!;
  loc = {
    dir: base,
    etc: dir('etc'),
    data: dir('data'),
    pgha: PGHA,
    ports: { dir: dirPort!, fd: fdPort!, sd: sdPort! },
    passwords: { dir: 'dir-console-pw', fd: 'dir-fd-pw', sd: 'dir-sd-pw', mon: 'monitor-pw' },
  };
  for (const d of ['lib', 'run', 'log', 'volumes', 'restore']) dir(d);
  extracted = dir('extracted');
  writeFileSync(join(loc.data, 'hello.txt'), 'catalog on pgha\n');
  mkdirSync(join(loc.data, 'sub'));
  writeFileSync(join(loc.data, 'sub', 'blob.bin'), randomBytes(256 * 1024));

  cluster = await startCluster({
    nodes: 3,
    ttl: 10,
    loopWait: 1,
    retryTimeout: 3,
    edit: fromDoc({ router: routerPort, status: sPort! }),
  });
  cleanups.unshift(() => cluster.stop());
  for (const n of cluster.nodes) cluster.startAgent(n.name);
  await cluster.waitHealthy(2, 90_000);

  // pgha router in HAProxy's place, reading the node's own YAML as the doc's unit does.
  const log = createWriteStream(join(base, 'log', 'router.log'));
  router = startProcess(process.execPath, [CLI, 'router', cluster.nodes[0]!.configPath]);
  router.stdout?.pipe(log);
  router.stderr?.pipe(log);
  cleanups.unshift(() => (router ? stopProcess(router, 'SIGTERM', 10_000) : Promise.resolve()));
  await waitFor('the router to reach the primary', () => sql(ADMIN, 'postgres', 'SELECT 1'), 30_000);

  // The catalog, as the doc creates it: psql through the router, then Bacula's own tables.
  const psql = await run(
    join(PG_BIN, 'psql'),
    [
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      '127.0.0.1',
      '-p',
      String(routerPort),
      '-U',
      ADMIN.user,
      '-d',
      'postgres',
    ],
    {
      input: fixture('create-catalog.sql'),
      env: { ...process.env, PGPASSWORD: ADMIN.password },
      timeoutMs: 60_000,
    },
  );
  expect(psql.code, psql.stderr).toBe(0);
  const tables = await run(MAKE_TABLES, ['-h', '127.0.0.1', '-p', String(routerPort), '-U', BACULA.user], {
    env: { ...process.env, db_name: 'bacula', PGPASSWORD: BACULA.password },
    timeoutMs: 60_000,
  });
  expect(tables.code, tables.stderr).toBe(0);
  const made = await sql<{ n: string }>(
    BACULA,
    'bacula',
    "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public' AND tableowner = 'bacula'",
  );
  expect(Number(made[0]!.n)).toBeGreaterThanOrEqual(25);

  // The Director's files: catalog.yml, the Catalog resource pgha prints, Debian's configs + the doc's edits.
  catalogYml = join(loc.etc, 'catalog.yml');
  writeConf(catalogYml, localCatalogYml());
  const resource = await pgha(
    ['bacula', 'catalog-resource', catalogYml, '--password-env', 'BACULA_DB_PASSWORD'],
    {
      BACULA_DB_PASSWORD: BACULA.password,
    },
  );
  expect(resource.code, resource.stderr).toBe(0);
  writeConf(join(loc.etc, 'pgha-catalog.conf'), resource.stdout);
  const conf = (name: string, edit: (t: string) => string = (t) => t) => {
    const path = join(loc.etc, name);
    const text = localise(edit(readFileSync(join(DEFCONFIG, name), 'utf8')), loc);
    expect(text).not.toMatch(/XXX_|@debian_basename@|\b910[123]\b|nonexistant/);
    writeConf(path, text);
    return path;
  };
  const dirConf = conf('bacula-dir.conf', editDirectorConf);
  sdConf = conf('bacula-sd.conf', editStorageConf);
  const fdConf = conf('bacula-fd.conf');
  bconsoleConf = conf('bconsole.conf');
  // The Director's HOME holds the doc's ~bacula/.pgpass, which RunBeforeJob's pg_dump reads.
  writeConf(join(base, 'lib', '.pgpass'), fixture('bacula.pgpass'), 0o600);

  const check = await run('/usr/sbin/bacula-dir', ['-t', '-c', dirConf], { timeoutMs: 30_000 });
  expect(check.code, check.stdout + check.stderr).toBe(0);
  daemons = await startDaemons({ dir: dirConf, fd: fdConf, sd: sdConf }, loc.ports, join(base, 'log'), {
    ...process.env,
    HOME: join(base, 'lib'),
  });
  cleanups.unshift(() => daemons?.stop() ?? Promise.resolve());
}, 240_000);

afterAll(async () => {
  if (process.env.PGHA_TEST_LOGS && base) {
    for (const f of readdirSync(join(base, 'log'))) {
      mkdirSync(process.env.PGHA_TEST_LOGS, { recursive: true });
      writeFileSync(join(process.env.PGHA_TEST_LOGS, `bacula-${f}`), readFileSync(join(base, 'log', f)));
    }
  }
  for (const c of cleanups) await c().catch((err: unknown) => console.error('cleanup failed', err));
}, 120_000);

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
    const old = await leader();
    const state = await cluster.waitHealthy(2);
    const candidate = state.members.find((m) => m.name !== old && isStreamingMember(m.data))!.name;
    const sw = await pgha([
      'ctl',
      '-c',
      cluster.nodes[0]!.configPath,
      'switchover',
      '--force',
      '--candidate',
      candidate,
    ]);
    expect(sw.code, sw.stderr + sw.stdout).toBe(0);
    await waitFor('the candidate to lead', async () => (await leader()) === candidate, 60_000);
    await waitFor(
      'the router to reach the new primary',
      async () => {
        const r = await sql<{ port: number; ro: boolean }>(
          ADMIN,
          'postgres',
          'SELECT inet_server_port() AS port, pg_is_in_recovery() AS ro',
        );
        return r[0]?.port === cluster.node(candidate).pgPort && !r[0].ro;
      },
      60_000,
    );
    writeFileSync(join(loc.data, 'after-switchover.txt'), `written while ${candidate} leads\n`);
    const { id, out } = await runJob('BackupClient1', 'level=Full');
    expect(out).toMatch(/Termination:\s+Backup OK/);
    expect(await jobStatus(id)).toBe('T');
    jobs.push(id);
  });

  it('restores the files of the second backup, byte for byte', async () => {
    const where = join(base, 'restore');
    const queued = await bconsole(bconsoleConf, [`restore jobid=${jobs[1]} where=${where} all done yes`]);
    const id = queuedJobId(queued);
    const out = await bconsole(bconsoleConf, [`wait jobid=${id}`, 'messages'], 150_000);
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

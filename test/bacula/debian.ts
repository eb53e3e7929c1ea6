/**
 * Debian's Bacula for the catalog tests: the configuration files the packages install (from their
 * templates in /usr/share/bacula-common/defconfig), changed as docs/bacula.md says, then moved onto
 * this machine's loopback ports and a temporary directory; the three daemons started in the
 * foreground and stopped by pid; `bconsole` driven through a pipe. `startCatalogSetup` builds the
 * whole documented set-up: a three-node cluster from the doc's YAML, a `pgha router` process, the
 * catalog created through it, and the Director, Storage and File daemons.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { isStreamingMember } from '../../src/dcs/types.js';
import { run, startProcess, stopProcess } from '../../src/util/process.js';
import { CLI, SCOPE, startCluster, type TestCluster } from '../support/cluster.js';
import { freePorts } from '../support/net.js';
import { PG_BIN, waitFor } from '../support/postgres.js';

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'bacula');
export const DEFCONFIG = '/usr/share/bacula-common/defconfig';
export const SBIN = '/usr/sbin';
export const MAKE_TABLES = '/usr/share/bacula-director/make_postgresql_tables';

/** Throws a clear error when Debian's Bacula packages are missing (scripts/setup installs them). */
export function requireBacula(): void {
  for (const f of [
    join(SBIN, 'bacula-dir'),
    join(SBIN, 'bconsole'),
    MAKE_TABLES,
    join(DEFCONFIG, 'bacula-dir.conf'),
  ])
    if (!existsSync(f)) throw new Error(`${f} is missing: install Debian's Bacula with scripts/setup`);
}

/** Reads a fixture of docs/bacula.md. */
export function fixture(name: string): string {
  return readFileSync(join(FIXTURES, name), 'utf8');
}

/** Replaces the one top-level resource that `start` begins (up to its closing `}` in column 0). */
function replaceResource(text: string, start: RegExp, replacement: string, what: string): string {
  const m = start.exec(text);
  if (!m) throw new Error(`Debian's configuration has no ${what}`);
  const end = text.indexOf('\n}\n', m.index);
  if (end < 0) throw new Error(`${what} is not closed`);
  return text.slice(0, m.index) + replacement + text.slice(end + 3);
}

const ARCHIVE_DIR = '/nonexistant/path/to/file/archive/dir';

/**
 * The edits docs/bacula.md makes to Debian's /etc/bacula/bacula-dir.conf: volumes in
 * /srv/bacula/volumes, the Catalog resource from `pgha bacula catalog-resource` by inclusion, and
 * the BackupCatalog job and Catalog file set that back up `pgha bacula backup-catalog`'s dump.
 */
export function editDirectorConf(text: string): string {
  let out = text.replaceAll(ARCHIVE_DIR, '/srv/bacula/volumes');
  out = replaceResource(out, /^Catalog \{\n/m, '@/etc/bacula/pgha-catalog.conf\n', 'Catalog resource');
  out = replaceResource(
    out,
    /^# Backup the catalog database.*\nJob \{\n/m,
    fixture('backup-catalog-job.conf'),
    'BackupCatalog job',
  );
  out = replaceResource(
    out,
    /^# This is the backup of the catalog\nFileSet \{\n/m,
    fixture('catalog-fileset.conf'),
    'Catalog file set',
  );
  return out;
}

/** The edit docs/bacula.md makes to Debian's /etc/bacula/bacula-sd.conf: volumes in /srv/bacula/volumes. */
export function editStorageConf(text: string): string {
  return text.replaceAll(ARCHIVE_DIR, '/srv/bacula/volumes');
}

/** What differs between the documented Director host and this test. */
export interface Localisation {
  /** Temporary directory standing in for /var/lib/bacula, /run/bacula, /var/log/bacula, /srv/bacula. */
  dir: string;
  /** Directory standing in for /etc/bacula (pgha-catalog.conf) and /etc/pgha (catalog.yml). */
  etc: string;
  /** The files the test backs up (Debian's "Full Set" backs up /usr/sbin). */
  data: string;
  pgha: string;
  ports: { dir: number; fd: number; sd: number };
  passwords: { dir: string; fd: string; sd: string; mon: string };
}

/**
 * Debian's install-time substitutions (daemon names and passwords), then this machine's ports and
 * directories. Mail is dropped: no MTA listens here.
 */
export function localise(text: string, l: Localisation): string {
  const pairs: Array<[string | RegExp, string]> = [
    ['@debian_basename@', 'dirtoha'],
    ['XXX_DIRPASSWORD_XXX', l.passwords.dir],
    ['XXX_FDPASSWORD_XXX', l.passwords.fd],
    ['XXX_SDPASSWORD_XXX', l.passwords.sd],
    [/XXX_MON(DIR|FD|SD)PASSWORD_XXX/g, l.passwords.mon],
    [/\b9101\b/g, String(l.ports.dir)],
    [/\b9102\b/g, String(l.ports.fd)],
    [/\b9103\b/g, String(l.ports.sd)],
    [/(Address\s*=\s*)localhost/gi, '$1127.0.0.1'],
    ['/var/lib/bacula', join(l.dir, 'lib')],
    ['/run/bacula', join(l.dir, 'run')],
    ['/var/log/bacula', join(l.dir, 'log')],
    ['/srv/bacula/volumes', join(l.dir, 'volumes')],
    ['/etc/bacula/pgha-catalog.conf', join(l.etc, 'pgha-catalog.conf')],
    ['/etc/pgha/catalog.yml', join(l.etc, 'catalog.yml')],
    ['/usr/local/bin/pgha', l.pgha],
    [/(File\s*=\s*)\/usr\/sbin\b/, `$1${l.data}`],
    [/^\s*(mail|operator|mailcommand|operatorcommand)\s*=.*\n/gim, ''],
  ];
  let out = text;
  for (const [from, to] of pairs) {
    out = typeof from === 'string' ? out.replaceAll(from, to) : out.replace(from, to);
  }
  return out;
}

export interface BaculaDaemons {
  sd: ChildProcess;
  fd: ChildProcess;
  dir: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts bacula-sd, bacula-fd and bacula-dir in the foreground (`-f`) with the given files; their
 * output goes to `<logDir>/<name>.out`. `env` is the Director's (HOME for its ~/.pgpass).
 */
export async function startDaemons(
  conf: { dir: string; fd: string; sd: string },
  ports: { dir: number; fd: number; sd: number },
  logDir: string,
  env: NodeJS.ProcessEnv,
): Promise<BaculaDaemons> {
  const started: ChildProcess[] = [];
  const start = (name: string, file: string, childEnv: NodeJS.ProcessEnv = process.env) => {
    const child = startProcess(join(SBIN, name), ['-f', '-c', file], { env: childEnv });
    const out = createWriteStream(join(logDir, `${name}.out`), { flags: 'a' });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    child.on('error', () => undefined);
    started.push(child);
    return child;
  };
  const stop = async () => {
    // The Director first, so it does not log the others' disappearance as job errors.
    for (const c of [...started].reverse()) await stopProcess(c, 'SIGTERM', 10_000);
  };
  try {
    const sd = start('bacula-sd', conf.sd);
    const fd = start('bacula-fd', conf.fd);
    await waitFor('bacula-sd and bacula-fd to listen', () => listening([ports.sd, ports.fd]), 20_000);
    const dir = start('bacula-dir', conf.dir, env);
    await waitFor('bacula-dir to listen', () => listening([ports.dir], dir), 30_000);
    return { sd, fd, dir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * True when every port has a listening socket in /proc/net/tcp (looked up rather than connected
 * to: a daemon logs a bare connection as a security alert); throws when `child` has died.
 */
function listening(ports: number[], child?: ChildProcess): Promise<boolean> {
  if (child && (child.exitCode !== null || child.signalCode !== null))
    throw new Error(`daemon exited with ${child.exitCode ?? child.signalCode}`);
  const open = new Set<number>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const [, local, , state] = line.trim().split(/\s+/);
    if (state === '0A' && local) open.add(parseInt(local.split(':')[1] ?? '', 16));
  }
  return Promise.resolve(ports.every((p) => open.has(p)));
}

/** Runs bconsole with `commands` on its standard input and returns what it printed. */
export async function bconsole(conf: string, commands: string[], timeoutMs = 120_000): Promise<string> {
  const res = await run(join(SBIN, 'bconsole'), ['-n', '-c', conf], {
    input: commands.join('\n') + '\nquit\n',
    timeoutMs,
  });
  if (res.code !== 0) throw new Error(`bconsole exited ${res.code}: ${res.stderr}${res.stdout}`);
  return res.stdout;
}

/** The JobId bconsole's `run` printed ("Job queued. JobId=12"). */
export function queuedJobId(output: string): number {
  const m = /Job queued\. JobId=(\d+)/.exec(output);
  if (!m) throw new Error(`no job was queued:\n${output}`);
  return Number(m[1]);
}

/**
 * Bacula resources for a backup that runs long: a FileSet of `files`, and the jobs SlowBackup
 * (Debian's DefaultJob: SpoolAttributes = yes) and SlowBackupNoSpool (SpoolAttributes = no), both
 * Full and paced by `Maximum Bandwidth` on the Job resource (the File daemon sends no faster).
 */
export function slowJobsConf(files: string, bandwidth: string): string {
  const job = (name: string, extra: string[]) => [
    'Job {',
    `  Name = "${name}"`,
    '  JobDefs = "DefaultJob"',
    '  Level = Full',
    '  FileSet = "ManySmallFiles"',
    `  Maximum Bandwidth = ${bandwidth}`,
    ...extra,
    '}',
  ];
  return [
    '',
    'FileSet {',
    '  Name = "ManySmallFiles"',
    '  Include {',
    '    Options {',
    '      signature = MD5',
    '    }',
    `    File = ${files}`,
    '  }',
    '}',
    ...job('SlowBackup', []),
    ...job('SlowBackupNoSpool', ['  SpoolAttributes = no']),
    '',
  ].join('\n');
}

/**
 * Writes `dirs` directories of `perDir` small files (16 to 255 bytes of random data) under `top`;
 * returns how many entries Bacula backs up there (JobFiles): the files, the directories and `top`.
 */
export function makeManyFiles(top: string, dirs: number, perDir: number): number {
  for (let d = 0; d < dirs; d++) {
    const dir = join(top, `d${String(d).padStart(3, '0')}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < perDir; f++)
      writeFileSync(
        join(dir, `f${String(f).padStart(3, '0')}.dat`),
        randomBytes(16 + ((d * 7 + f * 13) % 240)),
      );
  }
  return dirs * perDir + dirs + 1;
}

export const PGHA = join(import.meta.dirname, '..', '..', 'bin', 'pgha');
/** The doc's passwords (catalog01.yml, create-catalog.sql). */
export const ADMIN = { user: 'pat_admin', password: 'Admin@Bacula25' };
export const BACULA = { user: 'bacula', password: 'Bacula@Catalog25' };

/** The parts of the doc's YAML files the set-up reads. */
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

/** Writes a file the way the doc's `install -m 640` does. */
export function writeConf(path: string, text: string, mode = 0o640): void {
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
}

export interface Cli {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI as a user would, with `env` added. */
export async function pgha(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Cli> {
  const r = await run(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    timeoutMs: 120_000,
  });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

export interface CatalogSetupOptions {
  /** Bacula resources added to the end of bacula-dir.conf (after the doc's edits). */
  extraDirectorConf?: (loc: Localisation) => string;
}

/**
 * The set-up of docs/bacula.md on this machine. `start` builds it; `stop` takes down whatever was
 * started, also after a failed start (and copies the logs to $PGHA_TEST_LOGS when set).
 */
export class CatalogSetup {
  cluster!: TestCluster;
  router: ChildProcess | null = null;
  daemons: BaculaDaemons | null = null;
  base = '';
  loc!: Localisation;
  routerPort = 0;
  statusPort = 0;
  catalogYml = '';
  dirConf = '';
  bconsoleConf = '';
  sdConf = '';
  private readonly cleanups: Array<() => Promise<void>> = [];

  async start(opts: CatalogSetupOptions = {}): Promise<void> {
    requireBacula();
    // Not under /tmp: Debian's "Full Set" excludes /tmp, and the tests back up their own files.
    this.base = mkdtempSync('/var/tmp/pgha-bacula-');
    const base = this.base;
    this.cleanups.push(() => Promise.resolve(rmSync(base, { recursive: true, force: true })));
    const [rPort, sPort, dirPort, fdPort, sdPort] = await freePorts(5);
    this.routerPort = rPort!;
    this.statusPort = sPort!;
    this.loc = {
      dir: base,
      etc: this.dir('etc'),
      data: this.dir('data'),
      pgha: PGHA,
      ports: { dir: dirPort!, fd: fdPort!, sd: sdPort! },
      passwords: { dir: 'dir-console-pw', fd: 'dir-fd-pw', sd: 'dir-sd-pw', mon: 'monitor-pw' },
    };
    for (const d of ['lib', 'run', 'log', 'volumes', 'restore']) this.dir(d);

    const cluster = await startCluster({
      nodes: 3,
      ttl: 10,
      loopWait: 1,
      retryTimeout: 3,
      edit: fromDoc({ router: this.routerPort, status: this.statusPort }),
    });
    this.cluster = cluster;
    this.cleanups.unshift(() => cluster.stop());
    for (const n of cluster.nodes) cluster.startAgent(n.name);
    await cluster.waitHealthy(2, 90_000);

    // pgha router in HAProxy's place, reading the node's own YAML as the doc's unit does.
    const log = createWriteStream(join(base, 'log', 'router.log'));
    const router = startProcess(process.execPath, [CLI, 'router', cluster.nodes[0]!.configPath]);
    this.router = router;
    router.stdout?.pipe(log);
    router.stderr?.pipe(log);
    this.cleanups.unshift(() => stopProcess(router, 'SIGTERM', 10_000));
    await waitFor('the router to reach the primary', () => this.sql(ADMIN, 'postgres', 'SELECT 1'), 30_000);

    // The catalog, as the doc creates it: psql through the router, then Bacula's own tables.
    const psql = await run(
      join(PG_BIN, 'psql'),
      [
        '-v',
        'ON_ERROR_STOP=1',
        '-h',
        '127.0.0.1',
        '-p',
        String(this.routerPort),
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
    if (psql.code !== 0) throw new Error(`create-catalog.sql failed: ${psql.stderr}`);
    const tables = await run(
      MAKE_TABLES,
      ['-h', '127.0.0.1', '-p', String(this.routerPort), '-U', BACULA.user],
      {
        env: { ...process.env, db_name: 'bacula', PGPASSWORD: BACULA.password },
        timeoutMs: 60_000,
      },
    );
    if (tables.code !== 0) throw new Error(`make_postgresql_tables failed: ${tables.stderr}`);

    // The Director's files: catalog.yml, the Catalog resource pgha prints, Debian's configs + the doc's edits.
    this.catalogYml = join(this.loc.etc, 'catalog.yml');
    writeConf(this.catalogYml, this.localCatalogYml());
    const resource = await pgha(
      ['bacula', 'catalog-resource', this.catalogYml, '--password-env', 'BACULA_DB_PASSWORD'],
      { BACULA_DB_PASSWORD: BACULA.password },
    );
    if (resource.code !== 0) throw new Error(`catalog-resource failed: ${resource.stderr}`);
    writeConf(join(this.loc.etc, 'pgha-catalog.conf'), resource.stdout);
    const conf = (name: string, edit: (t: string) => string = (t) => t) => {
      const path = join(this.loc.etc, name);
      const text = localise(edit(readFileSync(join(DEFCONFIG, name), 'utf8')), this.loc);
      if (/XXX_|@debian_basename@|\b910[123]\b|nonexistant/.test(text))
        throw new Error(`${name} still has an install-time placeholder or a default port`);
      writeConf(path, text);
      return path;
    };
    const extra = opts.extraDirectorConf?.(this.loc) ?? '';
    this.dirConf = conf('bacula-dir.conf', (t) => editDirectorConf(t) + extra);
    this.sdConf = conf('bacula-sd.conf', editStorageConf);
    const fdConf = conf('bacula-fd.conf');
    this.bconsoleConf = conf('bconsole.conf');
    // The Director's HOME holds the doc's ~bacula/.pgpass, which RunBeforeJob's pg_dump reads.
    writeConf(join(base, 'lib', '.pgpass'), fixture('bacula.pgpass'), 0o600);

    const check = await run(join(SBIN, 'bacula-dir'), ['-t', '-c', this.dirConf], { timeoutMs: 30_000 });
    if (check.code !== 0) throw new Error(`bacula-dir -t failed: ${check.stdout}${check.stderr}`);
    this.daemons = await startDaemons(
      { dir: this.dirConf, fd: fdConf, sd: this.sdConf },
      this.loc.ports,
      join(base, 'log'),
      { ...process.env, HOME: join(base, 'lib') },
    );
    const daemons = this.daemons;
    this.cleanups.unshift(() => daemons.stop());
  }

  async stop(): Promise<void> {
    if (process.env.PGHA_TEST_LOGS && this.base && existsSync(join(this.base, 'log'))) {
      mkdirSync(process.env.PGHA_TEST_LOGS, { recursive: true });
      for (const f of readdirSync(join(this.base, 'log')))
        writeFileSync(
          join(process.env.PGHA_TEST_LOGS, `bacula-${f}`),
          readFileSync(join(this.base, 'log', f)),
        );
    }
    for (const c of this.cleanups) await c().catch((err: unknown) => console.error('cleanup failed', err));
    this.cleanups.length = 0;
  }

  /** A directory under the set-up's base, created. */
  dir(name: string): string {
    const p = join(this.base, name);
    mkdirSync(p, { recursive: true });
    return p;
  }

  /** The doc's /etc/pgha/catalog.yml with this cluster's name, etcd and router port. */
  private localCatalogYml(): string {
    const doc = parse(fixture('catalog.yml')) as DocCatalog;
    doc.scope = SCOPE;
    doc.namespace = '/service/';
    doc.etcd3.hosts = this.cluster.etcd.endpoints;
    doc.router.listen = `0.0.0.0:${this.routerPort}`;
    doc.vip.address = '127.0.0.1';
    return stringify(doc);
  }

  /** One query on a fresh connection through the router (or `port`). */
  async sql<T extends Record<string, unknown>>(
    who: { user: string; password: string },
    database: string,
    text: string,
    port = this.routerPort,
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

  async leader(): Promise<string> {
    const s = await this.cluster.readCluster();
    if (!s.leader) throw new Error('no leader');
    return s.leader.name;
  }

  /** Queues a job with bconsole's `run` and returns its JobId. */
  async queueJob(job: string, extra = ''): Promise<number> {
    return queuedJobId(
      await bconsole(this.bconsoleConf, [`run job=${job} ${extra} yes`.replace(/\s+/g, ' ')]),
    );
  }

  /** Waits for a job with bconsole's `wait` and returns what `messages` printed after it. */
  async waitJob(id: number, timeoutMs = 150_000): Promise<string> {
    return bconsole(this.bconsoleConf, [`wait jobid=${id}`, 'messages'], timeoutMs);
  }

  /** Runs a job with bconsole, waits for it, and returns its JobId and the console output. */
  async runJob(job: string, extra = ''): Promise<{ id: number; out: string }> {
    const id = await this.queueJob(job, extra);
    return { id, out: await this.waitJob(id) };
  }

  /** The job's JobStatus in the catalog. */
  async jobStatus(id: number): Promise<string> {
    const rows = await this.sql<{ jobstatus: string }>(
      BACULA,
      'bacula',
      `SELECT jobstatus FROM job WHERE jobid = ${id}`,
    );
    return rows[0]?.jobstatus ?? 'missing';
  }

  /** Restores a job's files under `where` and returns bconsole's output once it ended. */
  async restore(jobId: number, where: string, timeoutMs = 150_000): Promise<string> {
    const id = queuedJobId(
      await bconsole(this.bconsoleConf, [`restore jobid=${jobId} where=${where} all done yes`]),
    );
    return this.waitJob(id, timeoutMs);
  }

  /** A streaming replica to switch over to, once `replicas` stream. */
  async candidate(replicas = 2): Promise<{ old: string; candidate: string }> {
    const state = await this.cluster.waitHealthy(replicas);
    const old = state.leader!.name;
    const candidate = state.members.find((m) => m.name !== old && isStreamingMember(m.data))!.name;
    return { old, candidate };
  }

  /** `pgha ctl switchover --force` to `candidate`; throws when it fails. */
  async switchover(candidate: string): Promise<void> {
    const sw = await pgha([
      'ctl',
      '-c',
      this.cluster.nodes[0]!.configPath,
      'switchover',
      '--force',
      '--candidate',
      candidate,
    ]);
    if (sw.code !== 0) throw new Error(`switchover failed: ${sw.stderr}${sw.stdout}`);
  }

  /** Waits until writes through the router reach `name`'s PostgreSQL as a primary. */
  async waitRoutedTo(name: string, timeoutMs = 60_000): Promise<void> {
    await waitFor(`${name} to lead`, async () => (await this.leader()) === name, timeoutMs);
    await waitFor(
      'the router to reach the new primary',
      async () => {
        const r = await this.sql<{ port: number; ro: boolean }>(
          ADMIN,
          'postgres',
          'SELECT inet_server_port() AS port, pg_is_in_recovery() AS ro',
        );
        return r[0]?.port === this.cluster.node(name).pgPort && !r[0].ro;
      },
      timeoutMs,
    );
  }

  /** A job's catalog row: status, JobFiles, its File rows, start/end and how long it ran. */
  async jobRow(id: number): Promise<JobRow> {
    const rows = await this.sql<JobRow>(
      ADMIN,
      'bacula',
      `SELECT jobstatus, jobfiles, (SELECT count(*) FROM file f WHERE f.jobid = j.jobid)::int AS files,
              extract(epoch FROM endtime - starttime)::int AS seconds
         FROM job j WHERE jobid = ${id}`,
    );
    if (!rows[0]) throw new Error(`no job ${id} in the catalog`);
    return rows[0];
  }

  /**
   * Runs `job` and, `afterMs` into it, `event` (a change of primary); returns the JobId, the
   * console output once the job ended, and what the router did meanwhile. Throws when the job was
   * no longer running once the event was over. Catalog reads go as the superuser, so the
   * Director's sessions are the only ones of the `bacula` role.
   */
  async jobThrough(
    job: string,
    event: () => Promise<void>,
    opts: { afterMs?: number; waitMs?: number } = {},
  ): Promise<{ id: number; out: string; router: RouterFigures; eventAfterMs: number }> {
    const started = Date.now();
    const id = await this.queueJob(job);
    await waitFor('the job to run', async () => (await this.jobRow(id)).jobstatus === 'R', 30_000);
    await new Promise((r) => setTimeout(r, opts.afterMs ?? 8000));
    const before = await this.routerStatus();
    const logFrom = this.routerLog().length;
    const eventAfterMs = Date.now() - started;
    await event();
    const status = (await this.jobRow(id)).jobstatus;
    if (status !== 'R')
      throw new Error(`job ${id} was no longer running (${status}) once the primary changed`);
    const out = await this.waitJob(id, opts.waitMs);
    const after = await this.routerStatus();
    const cut: Record<string, number> = {};
    for (const [k, v] of Object.entries(after.stats.cut))
      if (v > (before.stats.cut[k] ?? 0)) cut[k] = v - (before.stats.cut[k] ?? 0);
    const log = this.routerLog().slice(logFrom);
    const router = {
      moved: after.stats.moved - before.stats.moved,
      cut,
      pausesMs: log.filter((l) => l.msg === 'session moved').map((l) => Number(l.details.ms)),
      cutReasons: log.filter((l) => l.msg.startsWith('session cut: ')).map((l) => l.msg.slice(13)),
    };
    return { id, out, router, eventAfterMs };
  }

  /** Kills the leader's agent and its postmaster (kill -9, by pid) and waits for the router to reach the new primary. */
  async killLeader(): Promise<string> {
    const old = await this.leader();
    await this.cluster.stopAgent(old, 'SIGKILL');
    await this.cluster.killPostmaster(old);
    await waitFor(
      'a new leader',
      async () => {
        const name = (await this.cluster.readCluster()).leader?.name;
        return name !== undefined && name !== old;
      },
      60_000,
    );
    await this.waitRoutedTo(await this.leader());
    return old;
  }

  /** The router's `GET /status`. */
  async routerStatus(): Promise<RouterStatusView> {
    const res = await fetch(`http://127.0.0.1:${this.statusPort}/status`);
    return (await res.json()) as RouterStatusView;
  }

  /** The router's log lines (plain format: time, level, message, JSON details). */
  routerLog(): Array<{ level: string; msg: string; details: Record<string, unknown> }> {
    const out: Array<{ level: string; msg: string; details: Record<string, unknown> }> = [];
    for (const line of readFileSync(join(this.base, 'log', 'router.log'), 'utf8').split('\n')) {
      const m = /^\S+ \S+ (\w+): (.*?)(?: (\{.*\}))?$/.exec(line);
      if (m)
        out.push({
          level: m[1]!,
          msg: m[2]!,
          details: m[3] ? (JSON.parse(m[3]) as Record<string, unknown>) : {},
        });
    }
    return out;
  }
}

export interface JobRow extends Record<string, unknown> {
  jobstatus: string;
  jobfiles: number;
  /** File rows of the job in the catalog. */
  files: number;
  seconds: number | null;
}

/** What the router did while a job ran through a change of primary. */
export interface RouterFigures {
  moved: number;
  /** Sessions cut, by kind of reason. */
  cut: Record<string, number>;
  /** The pause of each session moved, as the router logged it. */
  pausesMs: number[];
  cutReasons: string[];
}

/** The parts of the router's `/status` the tests read. */
export interface RouterStatusView {
  primary: string | null;
  sessions: {
    open: number;
    list: Array<{ id: number; backend: string | null; phase: string; moves: number }>;
  };
  stats: {
    moved: number;
    cut: Record<string, number>;
    movePauseMs: { last: number | null; max: number | null };
  };
}

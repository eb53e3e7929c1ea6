/**
 * Debian's Bacula for the catalog tests: the configuration files the packages install (from their
 * templates in /usr/share/bacula-common/defconfig), changed as docs/bacula.md says, then moved onto
 * this machine's loopback ports and a temporary directory; the three daemons started in the
 * foreground and stopped by pid; `bconsole` driven through a pipe.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, startProcess, stopProcess } from '../../src/util/process.js';
import { waitFor } from '../support/postgres.js';

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

/**
 * `pgha bacula backup-catalog`: `pg_dump --format=custom` of the catalog database from a streaming
 * replica (else the leader), streamed into a temporary file beside the output, checked with
 * `pg_restore --list`, synced and renamed: the output name only ever holds a complete dump.
 */
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { conninfo } from '../postgres/conf.js';
import type { Logger } from '../util/log.js';
import { PghaError, errorMessage } from '../util/errors.js';
import { formatBytes, type DumpSource } from './source.js';
import { isMemberFailure, startTool, toolFailure } from './tools.js';
import { run } from '../util/process.js';

export interface DumpOptions {
  pgDump: string;
  pgRestore: string;
  /** Members to try, in order (see `chooseDumpSources`). */
  sources: DumpSource[];
  output: string;
  dbname: string;
  user: string;
  /** Sent as PGPASSWORD; undefined leaves libpq to PGPASSWORD/~/.pgpass. */
  password?: string;
  /** Seconds between progress lines. */
  progressIntervalS: number;
  logger: Logger;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

export interface DumpResult {
  source: DumpSource;
  bytes: number;
  seconds: number;
  /** Entries in the archive's table of contents. */
  entries: number;
  output: string;
}

/** Environment for a client program: ours plus the password, never prompting. */
export function toolEnv(base: NodeJS.ProcessEnv, password: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, PGCONNECT_TIMEOUT: base.PGCONNECT_TIMEOUT ?? '10' };
  if (password !== undefined) env.PGPASSWORD = password;
  return env;
}

/** The conninfo for one member (as `-d`, so names with odd characters need no shell quoting). */
function target(s: { host: string; port: number }, dbname: string, user: string, app: string): string {
  return conninfo({ host: s.host, port: s.port, dbname, user, application_name: app });
}

/** Counts the entries `pg_restore --list` prints (lines that are not `;` comments). */
export async function countArchiveEntries(
  pgRestore: string,
  file: string,
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
): Promise<number> {
  const res = await run(pgRestore, ['--list', file], { env, timeoutMs: 300_000, signal });
  if (res.code !== 0)
    throw new PghaError(
      'PGHA_BAD_ARCHIVE',
      `${file} is not a readable pg_dump archive: ${toolFailure('pg_restore', res.stderr)}`,
    );
  return res.stdout.split('\n').filter((l) => l.trim() !== '' && !l.startsWith(';')).length;
}

/** Runs pg_dump against one member into `tmp`; throws a `PghaError` whose `retryable` says "try another". */
async function dumpFrom(
  o: DumpOptions,
  source: DumpSource,
  tmp: string,
  env: NodeJS.ProcessEnv,
): Promise<{ bytes: number; seconds: number }> {
  const started = Date.now();
  const fh = await open(tmp, 'w', 0o600).catch((err: unknown) => {
    throw new PghaError('PGHA_OUTPUT', `cannot write ${tmp}: ${errorMessage(err)}`, { cause: err });
  });
  const args = [
    '--format=custom',
    '--no-password',
    `--dbname=${target(source, o.dbname, o.user, 'pgha backup-catalog')}`,
  ];
  const tool = startTool(o.pgDump, args, env, (line) => o.logger.debug({ pg_dump: line }, 'pg_dump'));
  const onAbort = () => tool.kill();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  let bytes = 0;
  let lastBytes = 0;
  let lastAt = started;
  const progress = setInterval(() => {
    const now = Date.now();
    const rate = ((bytes - lastBytes) / Math.max(1, now - lastAt)) * 1000;
    o.logger.info(`dumped ${formatBytes(bytes)} so far (${formatBytes(Math.round(rate))}/s)`);
    lastBytes = bytes;
    lastAt = now;
  }, o.progressIntervalS * 1000);
  try {
    let writeError: unknown;
    for await (const chunk of tool.stdout as AsyncIterable<Buffer>) {
      if (writeError !== undefined) continue; // drain, so pg_dump is not left blocked on a pipe
      try {
        await fh.write(chunk);
        bytes += chunk.length;
      } catch (err) {
        writeError = err;
        tool.kill();
      }
    }
    const exit = await tool.done;
    if (writeError !== undefined)
      throw new PghaError('PGHA_OUTPUT', `cannot write ${tmp}: ${errorMessage(writeError)}`, {
        cause: writeError,
      });
    if (o.signal?.aborted) throw new PghaError('PGHA_CANCELLED', 'catalog dump cancelled');
    if (exit.code !== 0) {
      const why = exit.code === null ? `killed by ${exit.signal}` : toolFailure('pg_dump', exit.stderr);
      throw new PghaError(
        'PGHA_DUMP_FAILED',
        `pg_dump of database "${o.dbname}" from ${source.name} (${source.host}:${source.port}) failed: ${why}`,
        { retryable: isMemberFailure(exit.stderr) },
      );
    }
    await fh.sync();
  } finally {
    clearInterval(progress);
    o.signal?.removeEventListener('abort', onAbort);
    await fh.close().catch(() => undefined);
  }
  return { bytes, seconds: (Date.now() - started) / 1000 };
}

/** fsyncs a directory so a rename in it survives a crash. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Dumps the catalog from the first source that works. A failure that is about the member (down,
 * recovery conflict) moves on to the next one; any other failure stops at once. Whatever happens,
 * the temporary file is removed and `output` is either the new complete dump or untouched.
 */
export async function dumpCatalog(o: DumpOptions): Promise<DumpResult> {
  if (o.sources.length === 0)
    throw new PghaError(
      'PGHA_NO_SOURCE',
      'no member to dump the catalog from (no streaming replica, no leader)',
    );
  const output = resolve(o.output);
  const tmp = join(dirname(output), `.${basename(output)}.${process.pid}.partial`);
  const env = toolEnv(o.env ?? process.env, o.password);
  try {
    let last: PghaError | undefined;
    for (const [i, source] of o.sources.entries()) {
      if (o.signal?.aborted) throw new PghaError('PGHA_CANCELLED', 'catalog dump cancelled');
      const lag = source.lagBytes === null ? 'lag unknown' : `${formatBytes(source.lagBytes)} behind`;
      o.logger.info(
        `dumping database "${o.dbname}" as ${o.user} from ${source.name} (${source.role}, ` +
          `${source.role === 'leader' ? 'primary' : lag}) at ${source.host}:${source.port}`,
      );
      try {
        const { bytes, seconds } = await dumpFrom(o, source, tmp, env);
        o.logger.info(`pg_dump finished: ${formatBytes(bytes)} in ${seconds.toFixed(1)} s`);
        const entries = await countArchiveEntries(o.pgRestore, tmp, env, o.signal);
        o.logger.info(`archive checked: ${entries} entries`);
        await rename(tmp, output);
        await syncDir(dirname(output));
        o.logger.info(`catalog dump written to ${output}`);
        return { source, bytes, seconds, entries, output };
      } catch (err) {
        if (!(err instanceof PghaError) || !err.retryable || i === o.sources.length - 1) throw err;
        last = err;
        o.logger.warn(`${err.message}; trying ${o.sources[i + 1]!.name}`);
      }
    }
    throw last ?? new PghaError('PGHA_DUMP_FAILED', 'catalog dump failed');
  } finally {
    await rm(tmp, { force: true }).catch(() => undefined);
  }
}

/**
 * `pgha bacula restore-catalog`: `pg_restore` of a catalog dump into the primary, in one
 * transaction (all or nothing), after checking that the target is writable and, unless `--clean`,
 * that the database holds no tables yet.
 */
import pg from 'pg';
import type { HostPort } from '../config/types.js';
import { PghaError, errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { conninfo } from '../postgres/conf.js';
import { countArchiveEntries, toolEnv } from './dump.js';
import { startTool, toolFailure } from './tools.js';

export interface RestoreOptions {
  pgRestore: string;
  input: string;
  target: HostPort;
  /** How the target was found, for messages: `the leader pg1`, `the router`. */
  targetName: string;
  dbname: string;
  user: string;
  password?: string;
  /** Drop the objects in the archive before creating them again. */
  clean: boolean;
  logger: Logger;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

export interface RestoreResult {
  entries: number;
  tables: number;
  seconds: number;
}

/** Opens a client on the target with the same credentials pg_restore will use. */
async function connect(o: RestoreOptions): Promise<pg.Client> {
  const password = o.password ?? o.env?.PGPASSWORD ?? process.env.PGPASSWORD;
  const client = new pg.Client({
    host: o.target.host,
    port: o.target.port,
    user: o.user,
    database: o.dbname,
    ...(password !== undefined ? { password } : {}),
    application_name: 'pgha restore-catalog',
    connectionTimeoutMillis: 10_000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    throw new PghaError(
      'PGHA_RESTORE_FAILED',
      `cannot connect to database "${o.dbname}" as ${o.user} at ${o.target.host}:${o.target.port} (${o.targetName}): ${errorMessage(err)}`,
      { cause: err },
    );
  }
  return client;
}

/** Tables in the database outside the system schemas. */
async function userTables(client: pg.Client): Promise<number> {
  const r = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND s.nspname NOT IN ('pg_catalog', 'information_schema')
       AND s.nspname NOT LIKE 'pg_toast%'`,
  );
  return Number(r.rows[0]?.n ?? 0);
}

/**
 * Restores `input` into the target database. Refuses a replica (read-only) and, without `clean`, a
 * database that already has tables. `--single-transaction` makes a failure leave the database as
 * it was.
 */
export async function restoreCatalog(o: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  const env = toolEnv(o.env ?? process.env, o.password);
  const entries = await countArchiveEntries(o.pgRestore, o.input, env, o.signal);
  o.logger.info(`${o.input}: pg_dump archive with ${entries} entries`);

  const where = `${o.target.host}:${o.target.port} (${o.targetName})`;
  const client = await connect(o);
  try {
    const r = await client.query<{ ro: boolean }>('SELECT pg_catalog.pg_is_in_recovery() AS ro');
    if (r.rows[0]?.ro)
      throw new PghaError(
        'PGHA_RESTORE_REPLICA',
        `${where} is a read-only replica; restore into the primary (through the router, or without --address to use the leader)`,
      );
    const existing = await userTables(client);
    if (existing > 0 && !o.clean)
      throw new PghaError(
        'PGHA_RESTORE_NOT_EMPTY',
        `database "${o.dbname}" at ${where} already has ${existing} tables; pass --clean to drop and replace them`,
      );
    o.logger.info(
      `restoring into database "${o.dbname}" as ${o.user} at ${where}` +
        (existing > 0 ? `, replacing ${existing} existing tables` : ''),
    );
  } finally {
    await client.end().catch(() => undefined);
  }

  const args = [
    '--single-transaction',
    '--exit-on-error',
    '--no-password',
    '--verbose',
    ...(o.clean ? ['--clean', '--if-exists'] : []),
    `--dbname=${conninfo({ host: o.target.host, port: o.target.port, dbname: o.dbname, user: o.user, application_name: 'pgha restore-catalog' })}`,
    o.input,
  ];
  let tables = 0;
  const tool = startTool(o.pgRestore, args, env, (line) => {
    // pg_restore --verbose names each table as its rows go in: one progress line per table.
    const m = /processing data for table "([^"]+)"/.exec(line);
    if (m) {
      tables++;
      o.logger.info(`loading table ${m[1]}`);
    } else {
      o.logger.debug({ pg_restore: line }, 'pg_restore');
    }
  });
  tool.stdout.resume();
  const onAbort = () => tool.kill();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const exit = await tool.done;
    if (o.signal?.aborted)
      throw new PghaError('PGHA_CANCELLED', 'catalog restore cancelled; nothing was changed');
    if (exit.code !== 0) {
      const why = exit.code === null ? `killed by ${exit.signal}` : toolFailure('pg_restore', exit.stderr);
      throw new PghaError(
        'PGHA_RESTORE_FAILED',
        `pg_restore into database "${o.dbname}" at ${where} failed, nothing was changed: ${why}`,
      );
    }
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }

  // Fresh statistics, so the Director's first queries on the restored tables get good plans.
  o.logger.info('analyzing the restored tables');
  const after = await connect(o);
  try {
    await after.query('ANALYZE');
  } finally {
    await after.end().catch(() => undefined);
  }
  return { entries, tables, seconds: (Date.now() - started) / 1000 };
}

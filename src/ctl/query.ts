/**
 * `query`: runs SQL on a member (the leader by default) and prints the rows in patronictl's
 * formats. Connects as `-U` or the configured superuser, with its password from the config
 * unless `--password` asks for one.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import pg from 'pg';
import type { ClusterState } from '../dcs/types.js';
import { DcsError, errorMessage, PghaError } from '../util/errors.js';
import { parseFormat, sleep, watchEvery, withContext } from './command.js';
import type { CtlContext } from './context.js';
import { roleFor } from './dsn.js';
import { connKwargs } from './members.js';
import { anyMember, type Role } from './select.js';
import { formatOutput, timestamp, type Cell } from './table.js';

const BOOL = 16;
const INTS = new Set([20, 21, 23, 26]);
const FLOATS = new Set([700, 701]);

export interface QueryParams {
  username?: string;
  password?: string;
  dbname?: string;
}

/** A text value from PostgreSQL as psycopg would hand it to Python's `str()`. */
function cell(v: unknown, typeId: number): Cell {
  if (v === null || v === undefined) return null;
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  if (typeId === BOOL) return s === 't';
  if (INTS.has(typeId) || FLOATS.has(typeId)) {
    const n = Number(s);
    return Number.isFinite(n) ? n : s;
  }
  return s;
}

/** Opens a connection to the member that matches `role`/`member`; null when none does. */
async function connect(
  ctx: CtlContext,
  cluster: ClusterState,
  role: Role,
  member: string | undefined,
  params: QueryParams,
): Promise<pg.Client | null> {
  const m = anyMember(cluster, role, member);
  if (!m) return null;
  const kw = connKwargs(m);
  const su = ctx.config.postgresql.authentication.superuser;
  const user = params.username ?? su.username;
  const client = new pg.Client({
    host: kw.host,
    port: kw.port,
    user,
    password: params.password ?? (user === su.username ? su.password : undefined) ?? process.env.PGPASSWORD,
    database: params.dbname ?? process.env.PGDATABASE ?? user,
    fallback_application_name: 'Patroni ctl',
    connectionTimeoutMillis: 5000,
  });
  client.on('error', () => undefined);
  await client.connect();
  if (role === 'any' || role === 'leader') return client;
  const r = await client.query<{ r: boolean }>('SELECT pg_catalog.pg_is_in_recovery() AS r');
  const inRecovery = r.rows[0]?.r === true;
  if (
    (inRecovery && (role === 'replica' || role === 'standby' || role === 'standby-leader')) ||
    (!inRecovery && (role === 'primary' || role === 'master'))
  )
    return client;
  await client.end().catch(() => undefined);
  return null;
}

/** Registers `query`. */
export function registerQuery(ctl: Command): void {
  ctl
    .command('query')
    .description('Query a Patroni PostgreSQL member')
    .argument('[cluster_name]', 'Name of the cluster (scope; default: from the configuration)')
    .option('--format <fmt>', 'Output format (pretty, tsv, json, yaml)', 'tsv')
    .option('-f, --file <file>', 'Execute the SQL commands from this file')
    .option('--password', 'force password prompt')
    .option('-U, --username <user>', 'database user name')
    .option('-W', 'Auto update the screen every 2 seconds')
    .option('-w, --watch <seconds>', 'Auto update the screen every X seconds')
    .option('-r, --role <role>', 'The role of the query')
    .option('-m, --member <name>', 'Query a specific member')
    .option('--delimiter <char>', 'The column delimiter', '\t')
    .option('-c, --command <sql>', 'The SQL commands to execute')
    .option('-d, --dbname <name>', 'database name to connect to')
    .action(
      async (
        scopeArg: string | undefined,
        o: {
          format: string;
          file?: string;
          password?: boolean;
          username?: string;
          W?: boolean;
          watch?: string;
          role?: string;
          member?: string;
          delimiter: string;
          command?: string;
          dbname?: string;
        },
        cmd: Command,
      ) => {
        const role = roleFor(o.role, o.member);
        if (o.file !== undefined && o.command !== undefined)
          throw new PghaError('PGHA_BAD_OPTION', '--file and --command are mutually exclusive options');
        if (o.file === undefined && o.command === undefined)
          throw new PghaError('PGHA_BAD_OPTION', 'You need to specify either --command or --file');
        const fmt = parseFormat(o.format);
        const every = watchEvery(o);
        let sql = o.command ?? '';
        if (o.file !== undefined) {
          try {
            sql = readFileSync(o.file === '-' ? 0 : o.file, 'utf8');
          } catch (err) {
            throw new PghaError('PGHA_READ_FAILED', `cannot read ${o.file}: ${errorMessage(err)}`);
          }
        }
        await withContext(cmd, async (ctx) => {
          const params: QueryParams = { username: o.username, dbname: o.dbname };
          if (o.password) params.password = await ctx.prompter.prompt('Password', { hidden: true });
          const scope = ctx.scope(scopeArg);
          const dcs = ctx.dcs(scope);
          let client: pg.Client | null = null;
          try {
            for (;;) {
              let failure: string | undefined;
              try {
                client ??= await connect(ctx, await dcs.readCluster(), role, o.member, params);
                if (!client) {
                  failure =
                    o.member !== undefined
                      ? `No connection to member ${o.member} is available`
                      : `No connection to role=${role} is available`;
                  console.log(formatOutput([], [[timestamp(0), failure]], fmt, { delimiter: o.delimiter }));
                } else {
                  const res = (await client.query({
                    text: sql,
                    rowMode: 'array',
                    types: { getTypeParser: () => (v: string) => v },
                  })) as pg.QueryResult | pg.QueryResult[];
                  const last = Array.isArray(res) ? res[res.length - 1] : res;
                  if (last?.fields.length) {
                    const rows = last.rows as unknown[][];
                    const columns = last.fields.map((f) => f.name);
                    const table = rows.map((r) => last.fields.map((f, i) => cell(r[i], f.dataTypeID)));
                    console.log(formatOutput(columns, table, fmt, { delimiter: o.delimiter }));
                  }
                }
              } catch (err) {
                if (err instanceof DcsError) throw err;
                const code = (err as { code?: unknown }).code;
                const msg = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : errorMessage(err);
                failure = `ERROR, SQLSTATE: ${msg.replace(/\n/g, ' ')}`;
                console.log(formatOutput([], [[timestamp(0), failure]], fmt, { delimiter: o.delimiter }));
                await client?.end().catch(() => undefined);
                client = null;
                if (every <= 0)
                  throw new PghaError('PGHA_QUERY_FAILED', `query failed: ${errorMessage(err)}`, {
                    cause: err,
                  });
              }
              if (every <= 0) {
                if (failure) throw new PghaError('PGHA_QUERY_FAILED', failure);
                return;
              }
              await sleep(every * 1000);
            }
          } finally {
            await client?.end().catch(() => undefined);
          }
        });
      },
    );
}

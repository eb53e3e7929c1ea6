/**
 * Pure helpers that render PostgreSQL configuration text: postgresql.conf, conninfo strings, pgpass
 * lines and tool options. No I/O here, so every quoting rule is unit-tested.
 */
import type { PostgresqlConfig } from '../config/types.js';
import type { RoleConfig } from './types.js';
import { libpqTls } from './tls.js';

/** First line of every postgresql.conf pgha writes; how `configure` recognises its own file. */
export const PGHA_CONF_HEADER = '# Do not edit: managed by pgha';

/** Patroni's header; a file with it is also "ours" (migrating from Patroni must not lose the base conf). */
const PATRONI_CONF_MARKER = 'It will be overwritten by Patroni';

/** True when the text of a postgresql.conf was written by pgha (or by Patroni). */
export function isManagedConf(text: string): boolean {
  const head = text.split('\n', 4).join('\n');
  return head.startsWith(PGHA_CONF_HEADER) || head.includes(PATRONI_CONF_MARKER);
}

/**
 * Server defaults Patroni passes on the command line (`CMDLINE_OPTIONS`), for PostgreSQL 10 and
 * later. Values from the configuration override them.
 */
export const PATRONI_DEFAULT_PARAMETERS: Readonly<Record<string, string>> = {
  wal_level: 'replica',
  hot_standby: 'on',
  max_connections: '100',
  max_wal_senders: '10',
  max_prepared_transactions: '0',
  max_locks_per_transaction: '64',
  track_commit_timestamp: 'off',
  max_replication_slots: '10',
  max_worker_processes: '8',
  wal_log_hints: 'on',
};

/** Recovery settings owned by the role logic; values given as plain parameters are ignored. */
export const RECOVERY_PARAMETERS = new Set([
  'primary_conninfo',
  'primary_slot_name',
  'recovery_target_timeline',
]);

/** Renders a parameter value as postgresql.conf wants it: booleans as on/off, the rest as strings. */
export function paramValue(value: string | number | boolean): string {
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  return String(value);
}

/** Quotes a value for postgresql.conf: `'...'` with `'` doubled and `\` escaped. */
export function quoteConfValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''").replace(/\n/g, ' ')}'`;
}

/** Parameter names PostgreSQL accepts (including `custom.name` for extensions). */
export function isValidParamName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/.test(name);
}

/** Quotes one libpq conninfo value: always single-quoted, `\` and `'` backslash-escaped. */
export function quoteConninfoValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Renders a libpq conninfo string from key/values, skipping undefined ones. */
export function conninfo(entries: Record<string, string | number | undefined>): string {
  return Object.entries(entries)
    .filter((e): e is [string, string | number] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${quoteConninfoValue(String(v))}`)
    .join(' ');
}

/** Escapes one pgpass field (`:` and `\`). */
export function pgpassField(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
}

/** Renders a pgpass file with `*:*:*:user:password` lines for each user that has a password. */
export function renderPgpass(users: Array<{ username: string; password?: string }>): string {
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const u of users) {
    if (u.password === undefined || seen.has(u.username)) continue;
    seen.add(u.username);
    lines.push(`*:*:*:${pgpassField(u.username)}:${pgpassField(u.password)}`);
  }
  return lines.length > 0 ? lines.join('\n') + '\n' : '';
}

/**
 * Turns Patroni-style tool options (`- data-checksums`, `- encoding: UTF8`) into argv entries
 * (`--data-checksums`, `--encoding=UTF8`). Throws on an option in `forbidden` (those pgha sets).
 */
export function toolOptions(
  tool: string,
  options: Array<string | Record<string, string | number>>,
  forbidden: ReadonlySet<string>,
): string[] {
  const out: string[] = [];
  const add = (key: string, value?: string | number) => {
    const k = key.replace(/^-+/, '');
    if (forbidden.has(k)) throw new RangeError(`${tool} option "${k}" is not allowed: pgha sets it`);
    if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(k))
      throw new RangeError(`${tool} option "${key}" is not a valid option name`);
    const flag = k.length === 1 ? `-${k}` : `--${k}`;
    if (value === undefined) out.push(flag);
    else if (k.length === 1) out.push(flag, String(value));
    else out.push(`${flag}=${String(value)}`);
  };
  for (const o of options) {
    if (typeof o === 'string') add(o);
    else for (const [k, v] of Object.entries(o)) add(k, v);
  }
  return out;
}

/** Option names (without dashes) in an argv list built by `toolOptions`. */
export function optionNames(argv: string[]): Set<string> {
  const names = new Set<string>();
  for (const a of argv) {
    if (a.startsWith('--')) names.add(a.slice(2).split('=')[0] as string);
    else if (/^-[A-Za-z]$/.test(a)) names.add(a.slice(1));
  }
  return names;
}

export interface ConfInputs {
  cfg: PostgresqlConfig;
  /** Member name: application_name in primary_conninfo. */
  name: string;
  /** cluster_name when the parameters do not set one (Patroni uses the scope). */
  clusterName: string;
  role: RoleConfig;
  /** `include` line target (relative to the config dir), or null when there is no base conf. */
  include: string | null;
  /** Absolute paths of hba/ident files to name, or null to leave PostgreSQL's default. */
  hbaFile: string | null;
  identFile: string | null;
  /** Passfile for primary_conninfo, or null when the replication user has no password. */
  passfile: string | null;
}

/** The parameter map pgha writes, in the order it writes it. */
export function serverParameters(inp: ConfInputs): { params: Map<string, string>; ignored: string[] } {
  const { cfg, role } = inp;
  const params = new Map<string, string>();
  const ignored: string[] = [];
  for (const [k, v] of Object.entries(PATRONI_DEFAULT_PARAMETERS)) params.set(k, v);
  for (const [k, v] of Object.entries(role.parameters)) {
    if (
      !isValidParamName(k) ||
      RECOVERY_PARAMETERS.has(k) ||
      k === 'listen_addresses' ||
      k === 'port' ||
      k === 'data_directory'
    ) {
      ignored.push(k);
      continue;
    }
    params.set(k, paramValue(v));
  }
  // Like Patroni: postgresql.listen always decides where the server listens.
  params.set('listen_addresses', cfg.listen.hosts.join(','));
  params.set('port', String(cfg.listen.port));
  if (!params.has('cluster_name')) params.set('cluster_name', inp.clusterName);
  if (cfg.unix_socket_directories !== undefined && !params.has('unix_socket_directories')) {
    params.set('unix_socket_directories', cfg.unix_socket_directories);
  }
  if (inp.hbaFile !== null && !params.has('hba_file')) params.set('hba_file', inp.hbaFile);
  if (inp.identFile !== null && !params.has('ident_file')) params.set('ident_file', inp.identFile);
  if (cfg.config_dir !== cfg.data_dir) params.set('data_directory', cfg.data_dir);

  if (role.role === 'replica') {
    const up = role.upstream;
    if (up) {
      const repl = cfg.authentication.replication;
      params.set(
        'primary_conninfo',
        conninfo({
          host: up.host,
          port: up.port,
          user: repl.username,
          passfile: inp.passfile ?? undefined,
          dbname: 'postgres',
          application_name: inp.name,
          sslmode: 'prefer',
          gssencmode: 'prefer',
          channel_binding: 'prefer',
          ...libpqTls(repl),
        }),
      );
      if (role.slotName) params.set('primary_slot_name', role.slotName);
    }
    params.set('recovery_target_timeline', 'latest');
  }
  // Recovery settings of a replica, or of a restored backup starting in archive recovery.
  if (role.role === 'replica' || role.signal === 'recovery') {
    for (const [k, v] of Object.entries(role.recovery ?? {})) {
      if (!isValidParamName(k) || k === 'standby_mode' || k === 'primary_conninfo') continue;
      if (role.role === 'replica' && RECOVERY_PARAMETERS.has(k)) continue;
      params.set(k, v);
    }
  }
  return { params, ignored };
}

/** Renders postgresql.conf text from the parameter map. */
export function renderPostgresqlConf(params: Map<string, string>, include: string | null): string {
  const lines = [
    PGHA_CONF_HEADER,
    '# pgha rewrites this file from its configuration; put local settings in postgresql.base.conf',
    '# or in the pgha configuration (postgresql.parameters).',
  ];
  if (include !== null) lines.push(`include ${quoteConfValue(include)}`, '');
  for (const [k, v] of params) lines.push(`${k} = ${quoteConfValue(v)}`);
  return lines.join('\n') + '\n';
}

/** Renders pg_hba.conf / pg_ident.conf with a header. */
export function renderLinesFile(what: string, lines: string[]): string {
  return [`# Do not edit: ${what} managed by pgha`, ...lines].join('\n') + '\n';
}

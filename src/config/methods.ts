/**
 * The sections of custom methods, whose names are the user's: `bootstrap.<method>` (named by
 * `bootstrap.method`) and `postgresql.<method>` (named by `create_replica_methods`, the standby
 * cluster's included). They are taken out of the file before the strict schema sees it, validated
 * here, and handed to the agent as `bootstrap.methods` and `postgresql.replica_methods`.
 */
import { parseBool } from './schema.js';
import type { BootstrapMethodConfig, ReplicaMethodConfig } from './types.js';

type Raw = Record<string, unknown>;

function isRecord(v: unknown): v is Raw {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Keys of `postgresql` that are the schema's own, never a method's section. */
const POSTGRESQL_KEYS = new Set([
  'listen',
  'connect_address',
  'proxy_address',
  'data_dir',
  'bin_dir',
  'bin_name',
  'config_dir',
  'pgpass',
  'authentication',
  'parameters',
  'pg_hba',
  'pg_ident',
  'callbacks',
  'create_replica_methods',
  'basebackup',
  'rewind',
  'recovery_conf',
  'custom_conf',
  'pg_ctl_timeout',
  'use_pg_rewind',
  'use_slots',
  'use_unix_socket',
  'use_unix_socket_repl',
  'unix_socket_directories',
  'remove_data_directory_on_rewind_failure',
  'remove_data_directory_on_diverged_timelines',
  'pre_promote',
  'before_stop',
  'os_user',
]);

/** Keys of `bootstrap` that are the schema's own. */
const BOOTSTRAP_KEYS = new Set(['dcs', 'initdb', 'pg_hba', 'users', 'post_bootstrap', 'post_init', 'method']);

function scalarText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

function recoveryConf(
  v: unknown,
  path: string,
  errors: string[],
): Record<string, string | number | boolean> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) {
    errors.push(`${path}: expected a mapping of recovery settings`);
    return undefined;
  }
  const out: Record<string, string | number | boolean> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === null || x === undefined) continue;
    if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') out[k] = x;
    else errors.push(`${path}.${k}: expected a string, number or boolean`);
  }
  return out;
}

function methodNames(list: unknown): string[] {
  return Array.isArray(list) ? list.filter((m): m is string => typeof m === 'string') : [];
}

export interface ExtractedMethods {
  bootstrap: Record<string, BootstrapMethodConfig>;
  replica: Record<string, ReplicaMethodConfig>;
  errors: string[];
}

/**
 * Takes the custom methods' sections out of `input` (a copy of the file) and validates them. A
 * bootstrap method without a section or a command is initdb in Patroni; pgha reports it instead, since
 * a cluster made by initdb in place of a restore is an empty one.
 */
export function extractMethods(input: Raw): ExtractedMethods {
  const errors: string[] = [];
  const bootstrap: Record<string, BootstrapMethodConfig> = {};
  const replica: Record<string, ReplicaMethodConfig> = {};

  const b = input.bootstrap;
  if (isRecord(b)) {
    const method = scalarText(b.method);
    if (method && method !== 'initdb' && !BOOTSTRAP_KEYS.has(method)) {
      const sec = b[method];
      const path = `bootstrap.${method}`;
      if (!isRecord(sec) || !scalarText(sec.command)) {
        errors.push(
          `${path}: bootstrap.method is "${method}" but ${path}.command is not set; add the command that creates the data directory, or remove bootstrap.method to run initdb`,
        );
      } else {
        const rc = recoveryConf(sec.recovery_conf, `${path}.recovery_conf`, errors);
        bootstrap[method] = {
          command: scalarText(sec.command) as string,
          no_params: parseBool(sec.no_params) ?? false,
          keep_existing_recovery_conf: parseBool(sec.keep_existing_recovery_conf) ?? false,
          ...(rc ? { recovery_conf: rc } : {}),
        };
      }
      delete b[method];
    }
  }

  const pg = input.postgresql;
  if (isRecord(pg)) {
    const dcs = isRecord(b) && isRecord(b.dcs) ? b.dcs : {};
    const standby = isRecord(dcs.standby_cluster) ? dcs.standby_cluster : {};
    const named = new Set([
      ...methodNames(pg.create_replica_methods),
      ...methodNames(standby.create_replica_methods),
    ]);
    for (const [name, sec] of Object.entries(pg)) {
      if (POSTGRESQL_KEYS.has(name) || !isRecord(sec)) continue;
      if (!named.has(name) && sec.command === undefined) continue;
      const path = `postgresql.${name}`;
      const options: Record<string, string> = {};
      for (const [k, v] of Object.entries(sec)) {
        if (['command', 'keep_data', 'no_params', 'no_leader', 'no_master'].includes(k)) continue;
        const t = scalarText(v);
        if (t === undefined) errors.push(`${path}.${k}: expected a string, number or boolean`);
        else options[k] = t;
      }
      const command = sec.command === undefined ? undefined : scalarText(sec.command);
      if (sec.command !== undefined && !command) errors.push(`${path}.command: expected a command line`);
      replica[name] = {
        ...(command ? { command } : {}),
        keep_data: parseBool(sec.keep_data) ?? false,
        no_params: parseBool(sec.no_params) ?? false,
        no_leader: (parseBool(sec.no_leader) ?? false) || (parseBool(sec.no_master) ?? false),
        options,
      };
      delete pg[name];
    }
  }
  return { bootstrap, replica, errors };
}

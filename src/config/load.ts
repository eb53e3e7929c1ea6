/**
 * Loading `patroni.yml`: read the YAML, apply Patroni's environment overrides, validate everything with
 * `schema.ts`, fill defaults, and report every problem at once.
 */
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { ConfigError, errorMessage } from '../util/errors.js';
import {
  defaultConnectAddress,
  errorMap,
  etcdSection,
  fileSchema,
  formatIssue,
  formatPath,
  normaliseEtcd,
  normaliseNamespace,
  parseDynamicConfig,
  type ParsedFile,
} from './schema.js';
import { findKeyRow, keyNotes } from './keys.js';
import { mergePatch } from './merge-patch.js';
import { extractMethods } from './methods.js';
import {
  LIBPQ_TLS_KEYS,
  type Credentials,
  type EtcdConfig,
  type LoadResult,
  type PghaConfig,
  type TagsConfig,
} from './types.js';

type Raw = Record<string, unknown>;

function isRecord(v: unknown): v is Raw {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Parses YAML text as Patroni does (PyYAML speaks YAML 1.1: `on`/`off` are booleans, duplicate keys keep
 * the last value). Returns the document or one error per syntax problem, with line and column.
 */
export function parseYaml(text: string, source: string): { value?: unknown; errors: string[] } {
  const doc = YAML.parseDocument(text, { version: '1.1', uniqueKeys: false, prettyErrors: true });
  if (doc.errors.length) {
    return { errors: doc.errors.map((e) => `${source}: invalid YAML: ${e.message.split('\n')[0]}`) };
  }
  return { value: doc.toJS({ maxAliasCount: 1000 }) as unknown, errors: [] };
}

// ---------------------------------------------------------------------------------------------------
// Environment overrides (Patroni's ENVIRONMENT.rst names)

/** Scalar environment variables and the key each one sets. */
const ENV_KEYS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['NAME', ['name']],
  ['SCOPE', ['scope']],
  ['NAMESPACE', ['namespace']],
  ['RESTAPI_LISTEN', ['restapi', 'listen']],
  ['RESTAPI_CONNECT_ADDRESS', ['restapi', 'connect_address']],
  ['RESTAPI_USERNAME', ['restapi', 'authentication', 'username']],
  ['RESTAPI_PASSWORD', ['restapi', 'authentication', 'password']],
  ['RESTAPI_CERTFILE', ['restapi', 'certfile']],
  ['RESTAPI_KEYFILE', ['restapi', 'keyfile']],
  ['RESTAPI_KEYFILE_PASSWORD', ['restapi', 'keyfile_password']],
  ['RESTAPI_CAFILE', ['restapi', 'cafile']],
  ['RESTAPI_VERIFY_CLIENT', ['restapi', 'verify_client']],
  ['CTL_INSECURE', ['ctl', 'insecure']],
  ['CTL_CACERT', ['ctl', 'cacert']],
  ['CTL_CERTFILE', ['ctl', 'certfile']],
  ['CTL_KEYFILE', ['ctl', 'keyfile']],
  ['CTL_KEYFILE_PASSWORD', ['ctl', 'keyfile_password']],
  ['POSTGRESQL_LISTEN', ['postgresql', 'listen']],
  ['POSTGRESQL_CONNECT_ADDRESS', ['postgresql', 'connect_address']],
  ['POSTGRESQL_DATA_DIR', ['postgresql', 'data_dir']],
  ['POSTGRESQL_BIN_DIR', ['postgresql', 'bin_dir']],
  ['POSTGRESQL_CONFIG_DIR', ['postgresql', 'config_dir']],
  ['POSTGRESQL_PGPASS', ['postgresql', 'pgpass']],
  ['SUPERUSER_USERNAME', ['postgresql', 'authentication', 'superuser', 'username']],
  ['SUPERUSER_PASSWORD', ['postgresql', 'authentication', 'superuser', 'password']],
  ['REPLICATION_USERNAME', ['postgresql', 'authentication', 'replication', 'username']],
  ['REPLICATION_PASSWORD', ['postgresql', 'authentication', 'replication', 'password']],
  ['REWIND_USERNAME', ['postgresql', 'authentication', 'rewind', 'username']],
  ['REWIND_PASSWORD', ['postgresql', 'authentication', 'rewind', 'password']],
  // PATRONI_SUPERUSER_SSLMODE, PATRONI_REPLICATION_SSLCERT, ... (Patroni reads the same names).
  ...(['superuser', 'replication', 'rewind'] as const).flatMap((role) =>
    LIBPQ_TLS_KEYS.filter((k) => k !== 'sslnegotiation').map(
      (k) => [`${role.toUpperCase()}_${k.toUpperCase()}`, ['postgresql', 'authentication', role, k]] as const,
    ),
  ),
  ['LOG_LEVEL', ['log', 'level']],
  ['LOG_TYPE', ['log', 'type']],
  // Patroni's log.format is a format string, not the plain/json switch; kept so it is reported as ignored.
  ['LOG_FORMAT', ['log', 'format']],
  ['LOG_DIR', ['log', 'dir']],
];

const ETCD_SCALARS = ['PROTOCOL', 'USERNAME', 'PASSWORD', 'CACERT', 'CERT', 'KEY'] as const;
const ETCD_ENDPOINTS = ['HOSTS', 'HOST', 'URL'] as const;

function setPath(obj: Raw, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (!isRecord(next)) cur[key] = {};
    cur = cur[key] as Raw;
  }
  cur[path[path.length - 1]!] = value;
}

/** Patroni's `_parse_list`: `'h1:2379','h2:2379'`, `[h1, h2]`, or a plain comma-separated string. */
function parseEnvList(value: string): string[] {
  const v = value.trim();
  try {
    const parsed: unknown = YAML.parse(v.startsWith('-') || v.includes('[') ? v : `[${v}]`, {
      version: '1.1',
    });
    if (Array.isArray(parsed)) return parsed.map(String);
  } catch {
    // fall through to a plain split
  }
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Returns a copy of `raw` with Patroni's `PATRONI_*` environment variables applied; the environment wins
 * over the file. An endpoint variable (`PATRONI_ETCD3_HOSTS`/`_HOST`/`_URL`) replaces every endpoint key
 * of that section, so a file's `host` cannot outrank the environment's `hosts`.
 */
export function applyEnvOverrides(raw: Raw, env: NodeJS.ProcessEnv): Raw {
  const out = structuredClone(raw);
  const get = (name: string): string | undefined => {
    const v = env[`PATRONI_${name}`];
    return v === undefined || v === '' ? undefined : v;
  };
  for (const [name, path] of ENV_KEYS) {
    const v = get(name);
    if (v !== undefined) setPath(out, path, v);
  }
  for (const section of ['etcd3', 'etcd'] as const) {
    const prefix = section.toUpperCase();
    const endpoint = ETCD_ENDPOINTS.find((e) => get(`${prefix}_${e}`) !== undefined);
    if (endpoint) {
      const v = get(`${prefix}_${endpoint}`)!;
      const current = out[section];
      const sec: Raw = isRecord(current) ? current : {};
      for (const k of ['host', 'hosts', 'url', 'urls']) delete sec[k];
      sec[endpoint.toLowerCase()] = endpoint === 'HOSTS' ? parseEnvList(v) : v;
      out[section] = sec;
    }
    for (const key of ETCD_SCALARS) {
      const v = get(`${prefix}_${key}`);
      if (v !== undefined) setPath(out, [section, key.toLowerCase()], v);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// bin_dir

const PG_VERSIONS = [17, 16, 15, 14, 13];

/** True when `file` is a regular file this process may execute. */
export function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * The directory of PostgreSQL program `program`: the newest `<root>/{17..13}/bin` holding it
 * (Debian's layout), else the first directory on `PATH` holding it. Undefined when none.
 */
export function findPgProgramDir(
  program: string,
  root = '/usr/lib/postgresql',
  pathEnv: string | undefined = process.env.PATH,
): string | undefined {
  const dirs = [
    ...PG_VERSIONS.map((v) => join(root, String(v), 'bin')),
    ...(pathEnv ?? '').split(delimiter).filter(Boolean),
  ];
  return dirs.find((dir) => isExecutable(join(dir, program)));
}

/**
 * Finds PostgreSQL's binaries: the directory of `pg_ctl` (`findPgProgramDir`), as Patroni does with
 * an empty bin_dir. Undefined when none.
 */
export function detectBinDir(
  root = '/usr/lib/postgresql',
  pathEnv: string | undefined = process.env.PATH,
): string | undefined {
  return findPgProgramDir('pg_ctl', root, pathEnv);
}

// ---------------------------------------------------------------------------------------------------
// Validation

/** What to suggest when a required key is missing. */
const REQUIRED_HINTS: Record<string, string> = {
  scope: 'the cluster name; or set PATRONI_SCOPE',
  name: "this node's unique name; or set PATRONI_NAME",
  'restapi.listen': 'host:port for the REST API, e.g. 0.0.0.0:8008; or set PATRONI_RESTAPI_LISTEN',
  'postgresql.listen': 'host:port PostgreSQL listens on, e.g. 0.0.0.0:5432; or set PATRONI_POSTGRESQL_LISTEN',
  'postgresql.data_dir': 'or set PATRONI_POSTGRESQL_DATA_DIR',
  'postgresql.authentication.superuser.username': 'or set PATRONI_SUPERUSER_USERNAME',
  'postgresql.authentication.replication.username': 'or set PATRONI_REPLICATION_USERNAME',
};

function describeIssue(issue: z.core.$ZodIssue): string {
  const line = formatIssue(issue);
  const hint = issue.message === 'required' ? REQUIRED_HINTS[formatPath(issue.path)] : undefined;
  return hint ? `${line} (${hint})` : line;
}

function deleteAt(obj: unknown, path: readonly PropertyKey[], key: string): void {
  let cur = obj;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  if (isRecord(cur)) delete cur[key];
}

/**
 * The warning for a key the schema does not know, or none when `keys.ts` knows it as a Patroni key pgha
 * does not act on (then `keyNotes` reports it, with what pgha does instead). A key the table calls acted
 * on must be in the schema; if it is not, it is still reported rather than dropped in silence.
 */
function unknownKeyWarning(path: string, raw: Raw): string | undefined {
  const row = findKeyRow('local', path, raw);
  return row && row.status !== 'acted' ? undefined : `${path}: unknown key, ignored`;
}

/**
 * Validates a Patroni configuration object (environment overrides already applied) and builds the
 * normalised config. `source` names the file in messages; `env.PATH` is searched for a missing bin_dir.
 * Unknown keys are warnings, unless the file has errors: then they are listed with them (a misspelt
 * key is often why a required one is missing). Everything else that is wrong is an error, all
 * reported together.
 */
export function validateConfig(
  raw: unknown,
  source?: string,
  env: NodeJS.ProcessEnv = process.env,
): LoadResult {
  const errors: string[] = [];
  const warnings: string[] = [];
  if (!isRecord(raw)) {
    return { errors: [`${source ?? 'configuration'}: expected a YAML mapping at the top level`], warnings };
  }

  // Unknown keys: strip them and parse again (strict objects report them as issues); they are
  // warnings if the file loads, errors beside its errors if it does not.
  const input = structuredClone(raw);
  const methods = extractMethods(input);
  errors.push(...methods.errors);
  let result = fileSchema.safeParse(input, { error: errorMap });
  const unknown = result.success ? [] : result.error.issues.filter((i) => i.code === 'unrecognized_keys');
  const unknownKeys: Array<{ path: string; warning: string }> = [];
  for (const issue of unknown) {
    for (const key of issue.keys) {
      const path = formatPath([...issue.path, key]);
      const warning = unknownKeyWarning(path, raw);
      if (warning) unknownKeys.push({ path, warning });
      deleteAt(input, issue.path, key);
    }
  }
  // Patroni keys pgha does not act on, bootstrap.dcs included: each named once, with what pgha does.
  const refusals: string[] = [];
  for (const n of keyNotes(raw, 'local')) (n.kind === 'refused' ? refusals : warnings).push(n.message);
  if (unknown.length) result = fileSchema.safeParse(input, { error: errorMap });
  if (!result.success) errors.push(...result.error.issues.map(describeIssue));

  // Checks that do not depend on the rest of the file parsing, so they are reported in the same pass.
  const etcdName = isRecord(raw.etcd3) ? 'etcd3' : isRecord(raw.etcd) ? 'etcd' : undefined;
  let etcd: EtcdConfig | undefined;
  if (!etcdName) {
    errors.push(
      'etcd3: required: add an etcd3 section with the etcd endpoints, e.g. `etcd3: {hosts: [127.0.0.1:2379]}`' +
        ' (or set PATRONI_ETCD3_HOSTS)',
    );
  } else {
    if (etcdName === 'etcd3' && isRecord(raw.etcd)) warnings.push('etcd: ignored, the etcd3 section is used');
    if (etcdName === 'etcd') {
      warnings.push(
        "etcd: read as etcd3; pgha uses etcd's v3 API only, and keys Patroni wrote over v2 are not visible to it",
      );
    }
    const section = etcdSection.safeParse(input[etcdName], { error: errorMap });
    if (section.success) {
      const normalised = normaliseEtcd(section.data);
      etcd = normalised.etcd;
      errors.push(...normalised.errors.map((e) => `${etcdName}.${e}`));
    }
  }
  const bootstrap = isRecord(input.bootstrap) ? input.bootstrap : {};
  if (bootstrap.dcs === undefined || bootstrap.dcs === null || isRecord(bootstrap.dcs)) {
    errors.push(...parseDynamicConfig(bootstrap.dcs).errors.map((e) => `bootstrap.dcs.${e}`));
  }
  const pg = isRecord(input.postgresql) ? input.postgresql : {};
  let binDir: string | undefined;
  if (pg.bin_dir === undefined || pg.bin_dir === null || pg.bin_dir === '') {
    binDir = detectBinDir(undefined, env.PATH);
    if (!binDir) {
      errors.push(
        `postgresql.bin_dir: not set and no PostgreSQL ${PG_VERSIONS.at(-1)}..${PG_VERSIONS[0]} found in ` +
          '/usr/lib/postgresql/<version>/bin or on PATH; install PostgreSQL or set postgresql.bin_dir (or PATRONI_POSTGRESQL_BIN_DIR)',
      );
    }
  }
  if (!result.success || errors.length || !etcd) {
    // A misspelt key is often why a required one is missing (`vip.ip` for `vip.address`).
    const misspelt = unknownKeys.map((u) => `${u.path}: unknown key (misspelt?)`);
    return { errors: [...errors, ...misspelt], warnings, refusals };
  }
  warnings.unshift(...unknownKeys.map((u) => u.warning));

  const config = build(result.data, etcd, binDir);
  if (Object.keys(methods.bootstrap).length > 0) config.bootstrap.methods = methods.bootstrap;
  config.postgresql.replica_methods = methods.replica;
  if (source) config.source = source;
  return { config, errors, warnings, refusals };
}

/** Drops keys whose value is undefined, so optional fields are absent rather than present-but-undefined. */
function compact<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}

function credentials(c: Credentials): Credentials {
  return compact({ ...c });
}

function build(d: ParsedFile, etcd: PghaConfig['etcd'], detectedBinDir: string | undefined): PghaConfig {
  const p = d.postgresql;
  const socketDirs = p.unix_socket_directories ?? p.parameters.unix_socket_directories;
  return {
    scope: d.scope,
    namespace: normaliseNamespace(d.namespace),
    name: d.name,
    restapi: compact({
      ...d.restapi,
      connect_address: d.restapi.connect_address ?? defaultConnectAddress(d.restapi.listen),
    }),
    etcd,
    bootstrap: compact({ ...d.bootstrap }),
    postgresql: compact({
      ...p,
      connect_address: p.connect_address ?? defaultConnectAddress(p.listen),
      bin_dir: p.bin_dir ?? detectedBinDir ?? '',
      config_dir: p.config_dir ?? p.data_dir,
      pgpass: p.pgpass ?? `/tmp/pgpass-${d.name.replace(/[^A-Za-z0-9_.-]/g, '_')}`,
      authentication: compact({
        superuser: credentials(p.authentication.superuser),
        replication: credentials(p.authentication.replication),
        rewind: p.authentication.rewind ? credentials(p.authentication.rewind) : undefined,
      }),
      callbacks: compact(p.callbacks),
      unix_socket_directories: socketDirs === undefined ? undefined : String(socketDirs),
    }),
    tags: compact<TagsConfig>(d.tags),
    watchdog: d.watchdog,
    log: compact(d.log),
    ctl: compact({
      insecure: d.ctl.insecure,
      cacert: d.ctl.cacert,
      certfile: d.ctl.certfile,
      keyfile: d.ctl.keyfile,
      keyfile_password: d.ctl.keyfile_password,
    }),
  };
}

// ---------------------------------------------------------------------------------------------------
// Entry points

/**
 * Reads the configuration at `source`: a YAML file whose top level must be a mapping (an empty file
 * is `{}`), or, as Patroni, a directory whose `*.yml` and `*.yaml` files are merged in name order,
 * each later one patching the earlier (`mergePatch`: `null` removes a key).
 */
export function readConfigPath(source: string): { value: Raw; errors: string[] } {
  let names: string[] | null = null;
  try {
    if (statSync(source).isDirectory()) names = readdirSync(source);
  } catch {
    // read below, which says why
  }
  if (names === null) return readOneYamlFile(source);
  // As Patroni: the regular files named *.yml or *.yaml; anything else (a dangling link) is skipped.
  const isFile = (path: string) => {
    try {
      return statSync(path).isFile();
    } catch {
      return false;
    }
  };
  const files = names
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(source, f))
    .filter(isFile);
  if (files.length === 0)
    return {
      value: {},
      errors: [`${source}: a configuration directory, but it holds no *.yml or *.yaml file`],
    };
  const merged: Raw = {};
  const errors: string[] = [];
  for (const file of files) {
    const one = readOneYamlFile(file);
    errors.push(...one.errors);
    mergePatch(merged, one.value);
  }
  return { value: errors.length ? {} : merged, errors };
}

function readOneYamlFile(source: string): { value: Raw; errors: string[] } {
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : errorMessage(err);
    return { value: {}, errors: [`${source}: cannot read configuration: ${why}`] };
  }
  const parsed = parseYaml(text, source);
  if (parsed.errors.length) return { value: {}, errors: parsed.errors };
  const value = parsed.value ?? {};
  if (!isRecord(value)) return { value: {}, errors: [`${source}: expected a YAML mapping at the top level`] };
  return { value, errors: [] };
}

/**
 * Loads a Patroni-compatible configuration: the YAML file or directory at `path` with the
 * `PATRONI_*` overrides; when there is no such path, `PATRONI_CONFIGURATION` if set (then no other
 * variable is read, as in Patroni), else the environment alone, as Patroni allows. Never throws;
 * all problems are in `errors`.
 */
export function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): LoadResult {
  // As Patroni: a file (or directory) that exists first, else PATRONI_CONFIGURATION.
  if (env.PATRONI_CONFIGURATION && (path === undefined || !existsSync(path))) {
    const parsed = parseYaml(env.PATRONI_CONFIGURATION, 'PATRONI_CONFIGURATION');
    if (parsed.errors.length) return { errors: parsed.errors, warnings: [] };
    return validateConfig(parsed.value ?? {}, 'PATRONI_CONFIGURATION', env);
  }
  let raw: Raw = {};
  const source = path === undefined ? undefined : resolve(path);
  if (source !== undefined) {
    const parsed = readConfigPath(source);
    if (parsed.errors.length) return { errors: parsed.errors, warnings: [] };
    raw = parsed.value;
  }
  return validateConfig(applyEnvOverrides(raw, env), source, env);
}

/**
 * Like `loadConfig`, but returns the config or throws a `ConfigError` listing every problem. Warnings go to
 * `onWarning` (the agent logs them once its logger exists), keys the agent must refuse to run with to
 * `onRefusal` (only the agent refuses; other commands leave it out).
 */
export function loadConfigOrThrow(
  path: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  onWarning: (warning: string) => void = () => undefined,
  onRefusal: (refusal: string) => void = () => undefined,
): PghaConfig {
  const result = loadConfig(path, env);
  if (!result.config || result.errors.length) {
    throw new ConfigError(result.errors, result.config?.source ?? path ?? 'configuration');
  }
  result.warnings.forEach((w) => onWarning(w));
  result.refusals?.forEach((r) => onRefusal(r));
  return result.config;
}

/**
 * Parses patronictl's `--dcs-url` (`etcd3://h1:2379,h2:2379`, `etcd://host:2379`, `http(s)://host:2379`)
 * into an `etcd3` section. pgha reads both `etcd` and `etcd3` over the v3 API.
 */
export function parseDcsUrl(url: string): Raw | undefined {
  const m = /^(?:(etcd3?|https?):\/\/)?([^/]+)\/?$/.exec(url.trim());
  if (!m) return undefined;
  const scheme = m[1] ?? 'etcd3';
  const hosts = m[2]!
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  return { hosts, ...(scheme === 'https' ? { protocol: 'https' } : {}) };
}

/** Keys patronictl does not need; filled with placeholders when absent so validation can pass. */
const CTL_PLACEHOLDERS: ReadonlyArray<readonly [readonly string[], string]> = [
  [['scope'], '-'],
  [['name'], 'patronictl'],
  [['restapi', 'listen'], '127.0.0.1:8008'],
  [['postgresql', 'listen'], '127.0.0.1:5432'],
  [['postgresql', 'data_dir'], '-'],
  [['postgresql', 'bin_dir'], '-'],
  [['postgresql', 'authentication', 'superuser', 'username'], 'postgres'],
  [['postgresql', 'authentication', 'replication', 'username'], 'replicator'],
];

function getPath(obj: unknown, path: readonly string[]): unknown {
  let cur = obj;
  for (const key of path) cur = isRecord(cur) ? cur[key] : undefined;
  return cur;
}

/**
 * The configuration patronictl needs: the file when given (only its etcd section is required), with the
 * environment overrides and `dcsUrl` (which replaces the file's etcd section). Missing scope is `''`,
 * missing data_dir/bin_dir are `''`. Throws `ConfigError` on a problem in what was given.
 */
export function loadCtlConfig(
  path: string | undefined,
  dcsUrl: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): PghaConfig {
  let raw: Raw = {};
  if (path !== undefined) {
    const parsed = readConfigPath(resolve(path));
    if (parsed.errors.length) throw new ConfigError(parsed.errors, path);
    raw = parsed.value;
  }
  raw = applyEnvOverrides(raw, env);
  if (dcsUrl !== undefined) {
    const etcd3 = parseDcsUrl(dcsUrl);
    if (!etcd3)
      throw new ConfigError([
        `--dcs-url: expected etcd3://host:port[,host:port], got ${JSON.stringify(dcsUrl)}`,
      ]);
    const current = raw.etcd3 ?? raw.etcd;
    raw.etcd3 = { ...(isRecord(current) ? current : {}), ...etcd3 };
    for (const k of ['host', 'url', 'urls'] as const) delete (raw.etcd3 as Raw)[k];
    delete raw.etcd;
  }
  const filled: string[] = [];
  for (const [keyPath, value] of CTL_PLACEHOLDERS) {
    const v = getPath(raw, keyPath);
    if (v === undefined || v === null || v === '') {
      setPath(raw, keyPath, value);
      filled.push(keyPath.join('.'));
    }
  }
  const result = validateConfig(raw, path === undefined ? undefined : resolve(path), env);
  if (!result.config || result.errors.length) throw new ConfigError(result.errors, path ?? 'configuration');
  const config = result.config;
  if (filled.includes('scope')) config.scope = '';
  if (filled.includes('postgresql.data_dir')) config.postgresql.data_dir = config.postgresql.config_dir = '';
  if (filled.includes('postgresql.bin_dir')) config.postgresql.bin_dir = '';
  return config;
}

/**
 * Every key of Patroni's configuration and what pgha does with it: the one place that says whether
 * a key is acted on. Two tables, one for the local YAML file and one for the dynamic configuration
 * (`bootstrap.dcs` in the file, the `config` key in etcd). Each row is one of
 *
 * - `acted(path, where)`: pgha acts on the key; `where` names the code that does.
 * - `ignored(path, instead)`: pgha does not act on it; the agent names it in a warning at start,
 *   saying what pgha does instead.
 * - `refused(path, {why, risk, fix})`: ignoring it would be dangerous, so the agent refuses to start
 *   (and a running agent stops acting on PostgreSQL when it appears in etcd).
 *
 * When pgha starts acting on a key, flip its row to `acted`. Patterns: `*` is any one key; `{x}` is a
 * key named by the value of the sibling key `x` (a custom replica or bootstrap method). A row that is
 * not acted on covers everything below it (`keys` lists what Patroni reads there, for the docs).
 *
 * Sources: Patroni 4.1's `patroni/validator.py`, `patroni/config.py`, `patroni/global_config.py`,
 * `docs/yaml_configuration.rst` and `docs/dynamic_configuration.rst`, plus the names Patroni 4.1 still
 * reads from older files. `test/fixtures/config/patroni-keys.yml` lists every key for the tests.
 */
import { parseBool, parseDynamicConfig } from './schema.js';
import { LIBPQ_TLS_KEYS } from './types.js';

export type KeySource = 'local' | 'dynamic';

interface RowBase {
  /** Dotted path; for dynamic rows, relative to the `config` key (and to `bootstrap.dcs`). */
  path: string;
  /** Keys below this one that Patroni reads (documentation of a row that covers a whole section). */
  keys?: readonly string[];
  /** A pgha extension rather than a Patroni key. */
  pgha?: boolean;
}

/** An exception for values with which pgha behaves as Patroni does (`initdb`, `false`, empty, ...). */
interface Unless {
  /** The values, as a clause for the docs: "it is `initdb`", "it is empty". */
  text: string;
  test(value: unknown): boolean;
}

export type KeyRow = RowBase &
  (
    | { status: 'acted'; where: string; nested?: KeySource }
    | { status: 'ignored'; instead: string; unless?: Unless }
    | { status: 'refused'; why: string; risk: string; fix: string; unless?: Unless }
  );

type Extra = Pick<RowBase, 'keys' | 'pgha'>;

function acted(path: string, where: string, extra: Extra & { nested?: KeySource } = {}): KeyRow {
  return { path, status: 'acted', where, ...extra };
}

function ignored(path: string, instead: string, extra: Extra & { unless?: Unless } = {}): KeyRow {
  return { path, status: 'ignored', instead, ...extra };
}

function refused(
  path: string,
  r: { why: string; risk: string; fix: string; unless?: Unless },
  extra: Extra = {},
): KeyRow {
  return { path, status: 'refused', ...r, ...extra };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const when = (text: string, test: (v: unknown) => boolean): Unless => ({ text, test });
const isFalse = when('it is `false`', (v) => parseBool(v) === false);
const isTrue = when('it is `true`', (v) => parseBool(v) === true);
const isZero = when('it is `0`', (v) => Number(v) === 0);

const NO_THREADS = 'pgha runs on Node.js and has no thread pool to size';
const OTHER_DCS = "pgha keeps the cluster's state in etcd only (the etcd3 section); this section is not read";
const LOG_ROTATION =
  'pgha appends to <dir>/patroni.log and never rotates it: rotate it with logrotate (copytruncate)';
const ROLES = ['primary', 'replica', 'standby_leader'] as const;
const PG_CTL_TIMEOUT =
  'pgha bounds starts and stops with its own timeouts (primary_start_timeout, primary_stop_timeout)';
const REWIND_OPTIONS = 'pgha runs pg_rewind with its own options only';

/** The role-specific variants Patroni 4.1 added (`parameters_primary`, `pg_hba_replica`, ...). */
function perRole(prefix: string, base: string): KeyRow[] {
  return ROLES.map((r) =>
    ignored(`${prefix}_${r}`, `every role gets postgresql.${base}; role-specific variants are not read`),
  );
}

/** The local YAML file (`patroni.yml`). */
export const LOCAL_KEYS: readonly KeyRow[] = [
  acted('name', 'the member key and application_name (everywhere)'),
  acted('scope', 'the etcd prefix /<namespace>/<scope>/ (dcs/etcd.ts)'),
  acted('namespace', 'the etcd prefix /<namespace>/<scope>/ (dcs/etcd.ts)'),
  ignored('thread_pool_size', NO_THREADS),
  ignored('thread_stack_size', NO_THREADS),

  acted('log', 'util/log.ts'),
  acted('log.type', 'util/log.ts'),
  acted('log.level', 'util/log.ts'),
  acted('log.dir', 'agent.ts (logDestination)'),
  ignored('log.traceback_level', 'pgha prints a stack trace only for an unexpected error, at any level'),
  ignored('log.format', "pgha's log lines have a fixed layout; log.type chooses plain text or JSON"),
  ignored('log.dateformat', 'times are written in ISO 8601, in UTC'),
  ignored('log.static_fields', 'JSON lines carry only the fields pgha sets'),
  ignored('log.max_queue_size', 'pgha writes each line when it is logged, without a queue'),
  ignored('log.mode', "the log file is created with the process's umask"),
  ignored('log.file_num', LOG_ROTATION),
  ignored('log.file_size', LOG_ROTATION),
  ignored('log.loggers', 'one level, log.level, applies to the whole agent'),
  ignored(
    'log.deduplicate_heartbeat_logs',
    'pgha logs an unchanged HA loop message once, then at DEBUG level, as if this were true',
    { unless: isTrue },
  ),

  acted('ctl', 'pgha ctl (ctl/context.ts)'),
  acted('ctl.authentication', 'pgha ctl (ctl/context.ts)'),
  acted('ctl.authentication.username', 'pgha ctl (ctl/context.ts)'),
  acted('ctl.authentication.password', 'pgha ctl (ctl/context.ts)'),
  acted(
    'ctl.insecure',
    'pgha ctl (ctl/context.ts); the agent, for requests to other members (util/http.ts peerTls)',
  ),
  acted(
    'ctl.cacert',
    'pgha ctl (ctl/context.ts); the agent, for requests to other members (util/http.ts peerTls)',
  ),
  acted(
    'ctl.certfile',
    'pgha ctl (ctl/context.ts); the agent, for requests to other members (util/http.ts peerTls)',
  ),
  acted(
    'ctl.keyfile',
    'pgha ctl (ctl/context.ts); the agent, for requests to other members (util/http.ts peerTls)',
  ),
  acted(
    'ctl.keyfile_password',
    'pgha ctl (ctl/context.ts); the agent, for requests to other members (util/http.ts peerTls)',
  ),

  acted('restapi', 'api/server.ts, api/app.ts'),
  acted('restapi.listen', 'api/server.ts'),
  acted('restapi.connect_address', 'the member key api_url (ha/runner.ts)'),
  acted('restapi.authentication', 'api/app.ts'),
  acted('restapi.authentication.username', 'api/app.ts'),
  acted('restapi.authentication.password', 'api/app.ts'),
  acted('restapi.certfile', 'api/server.ts'),
  acted('restapi.keyfile', 'api/server.ts'),
  acted('restapi.keyfile_password', 'api/server.ts'),
  acted('restapi.cafile', 'api/server.ts'),
  acted('restapi.verify_client', 'api/server.ts, api/app.ts'),
  acted('restapi.allowlist', 'api/app.ts'),
  acted('restapi.allowlist_include_members', 'api/app.ts'),
  acted('restapi.http_extra_headers', 'api/app.ts'),
  ignored('restapi.https_extra_headers', 'pgha adds http_extra_headers to every answer, HTTPS included'),
  ignored('restapi.ciphers', "the REST API offers Node.js's default TLS ciphers"),
  ignored('restapi.request_queue_size', "the REST API's listen backlog is Node.js's default (511)"),
  ignored('restapi.server_tokens', 'the REST API sends no Server header'),
  ignored('restapi.thread_pool_size', NO_THREADS),

  acted('bootstrap', 'ha/runner.ts (bootstrap)'),
  acted('bootstrap.dcs', 'written to the config key when the cluster is created (ha/runner.ts)', {
    nested: 'dynamic',
  }),
  acted('bootstrap.method', 'ha/bootstrap.ts (initdb or the custom method it names)'),
  acted('bootstrap.{method}', 'config/methods.ts, ha/bootstrap.ts', {
    keys: ['command', 'keep_existing_recovery_conf', 'no_params', 'recovery_conf'],
  }),
  ...['command', 'keep_existing_recovery_conf', 'no_params', 'recovery_conf'].map((k) =>
    acted(`bootstrap.{method}.${k}`, 'ha/bootstrap.ts (custom bootstrap)'),
  ),
  acted('bootstrap.initdb', 'postgres/postgres.ts (initdb)'),
  acted('bootstrap.pg_hba', 'ha/runner.ts (pgHba), while no other pg_hba is configured'),
  acted('bootstrap.users', 'postgres/postgres.ts (createUsers, after the bootstrap)'),
  acted('bootstrap.users.*', 'postgres/postgres.ts (createUsers, after the bootstrap)'),
  acted('bootstrap.users.*.password', 'postgres/postgres.ts (createUsers)'),
  acted('bootstrap.users.*.options', 'postgres/postgres.ts (createUsers)'),
  acted('bootstrap.post_bootstrap', 'ha/bootstrap.ts (after the users are created)'),
  acted('bootstrap.post_init', 'ha/bootstrap.ts (read as post_bootstrap)'),

  ...(['etcd3', 'etcd'] as const).flatMap((s) => [
    acted(s, s === 'etcd3' ? 'dcs/etcd.ts' : 'dcs/etcd.ts, over the v3 API (config/load.ts warns)'),
    ...['host', 'hosts', 'url', 'protocol', 'username', 'password', 'cacert', 'cert', 'key'].map((k) =>
      acted(`${s}.${k}`, 'config/load.ts (normaliseEtcd), dcs/etcd.ts'),
    ),
    acted(`${s}.urls`, 'config/load.ts (normaliseEtcd)', { pgha: true }),
    ignored(`${s}.proxy`, 'pgha connects to the endpoints in hosts, host, url or urls only'),
    ignored(`${s}.srv`, 'pgha does not look up DNS SRV records: list the endpoints in hosts'),
    ignored(`${s}.srv_suffix`, 'pgha does not look up DNS SRV records: list the endpoints in hosts'),
    ignored(
      `${s}.use_proxies`,
      'pgha uses the listed endpoints only and does not discover the other etcd members, as with use_proxies: true',
      { unless: isTrue },
    ),
  ]),
  ignored('consul', OTHER_DCS, {
    keys: [
      'host',
      'url',
      'port',
      'scheme',
      'token',
      'verify',
      'cacert',
      'cert',
      'key',
      'dc',
      'consistency',
      'checks',
      'register_service',
      'service_tags',
      'service_check_interval',
      'service_check_tls_server_name',
    ],
  }),
  ignored('zookeeper', OTHER_DCS, {
    keys: ['hosts', 'use_ssl', 'cacert', 'cert', 'key', 'key_password', 'verify', 'set_acls', 'auth_data'],
  }),
  ignored('exhibitor', OTHER_DCS, { keys: ['hosts', 'poll_interval', 'port'] }),
  ignored('kubernetes', OTHER_DCS, {
    keys: [
      'bypass_api_service',
      'namespace',
      'labels',
      'scope_label',
      'bootstrap_labels',
      'role_label',
      'leader_label_value',
      'follower_label_value',
      'standby_leader_label_value',
      'tmp_role_label',
      'use_endpoints',
      'pod_ip',
      'ports',
      'cacert',
      'retriable_http_codes',
    ],
  }),
  ignored('raft', OTHER_DCS, {
    keys: [
      'self_addr',
      'bind_addr',
      'partner_addrs',
      'data_dir',
      'password',
      'min_timeout',
      'max_timeout',
      'connection_timeout',
      'append_entries_period',
      'connection_retry_time',
      'leader_fallback_timeout',
    ],
  }),
  // Patroni keeps a Citus group under /<namespace>/<scope>/<group>/: pgha would not see the running
  // cluster there and could create or adopt a second one, and it registers no worker.
  refused(
    'citus',
    {
      why: 'pgha does not support Citus',
      risk: "Patroni keeps a Citus group's keys under /<namespace>/<scope>/<group>/, where pgha does not look, so it could create or adopt a second cluster; and no worker would be registered with the coordinator",
      fix: 'Remove {key} or run Patroni for this cluster',
    },
    { keys: ['database', 'group'] },
  ),

  acted('postgresql', 'postgres/postgres.ts, postgres/conf.ts'),
  acted('postgresql.listen', 'postgres/conf.ts (listen_addresses, port)'),
  acted('postgresql.connect_address', 'the member key conn_url (ha/runner.ts)'),
  acted('postgresql.data_dir', 'postgres/postgres.ts'),
  acted('postgresql.bin_dir', 'postgres/postgres.ts'),
  acted('postgresql.config_dir', 'postgres/postgres.ts'),
  acted('postgresql.pgpass', 'postgres/postgres.ts'),
  acted('postgresql.authentication', 'postgres/postgres.ts'),
  ...(['superuser', 'replication', 'rewind'] as const).map((u) =>
    acted(`postgresql.authentication.${u}`, 'postgres/postgres.ts'),
  ),
  acted('postgresql.authentication.*.username', 'postgres/postgres.ts'),
  acted('postgresql.authentication.*.password', 'postgres/postgres.ts (and the pgpass file)'),
  ...LIBPQ_TLS_KEYS.map((k) =>
    acted(
      `postgresql.authentication.*.${k}`,
      'postgres/tls.ts (replication, pg_rewind and the agent’s own connections)',
    ),
  ),
  acted('postgresql.callbacks', 'postgres/callbacks.ts'),
  ...['on_reload', 'on_restart', 'on_role_change', 'on_start', 'on_stop'].map((c) =>
    acted(`postgresql.callbacks.${c}`, 'postgres/callbacks.ts'),
  ),
  ignored('postgresql.proxy_address', 'pgha publishes no proxy_url in the member key'),
  acted('postgresql.create_replica_methods', 'ha/replica-methods.ts'),
  acted('postgresql.{create_replica_methods}', 'config/methods.ts, postgres/postgres.ts (runReplicaMethod)', {
    keys: ['command', 'keep_data', 'no_params', 'no_leader', 'no_master', '*'],
  }),
  ...['command', 'keep_data', 'no_params', 'no_leader', 'no_master'].map((k) =>
    acted(`postgresql.{create_replica_methods}.${k}`, 'ha/replica-methods.ts'),
  ),
  ignored('postgresql.bin_name', 'pgha runs the programs under their standard names from bin_dir', {
    keys: ['pg_ctl', 'initdb', 'pg_controldata', 'pg_basebackup', 'postgres', 'pg_isready', 'pg_rewind'],
  }),
  acted('postgresql.use_unix_socket', 'postgres/postgres.ts'),
  ignored('postgresql.use_unix_socket_repl', 'replicas connect to their upstream over TCP', {
    unless: isFalse,
  }),
  acted('postgresql.recovery_conf', 'postgres/conf.ts (written for every replica)'),
  ignored(
    'postgresql.custom_conf',
    'pgha includes postgresql.base.conf (the file initdb wrote) from postgresql.conf, not this file: move its settings into postgresql.parameters',
  ),
  acted('postgresql.parameters', 'postgres/conf.ts (over the dynamic configuration)'),
  ...perRole('postgresql.parameters', 'parameters'),
  acted('postgresql.pg_hba', 'postgres/postgres.ts (pg_hba.conf)'),
  ...perRole('postgresql.pg_hba', 'pg_hba'),
  acted('postgresql.pg_ident', 'postgres/postgres.ts (pg_ident.conf)'),
  ...perRole('postgresql.pg_ident', 'pg_ident'),
  ignored('postgresql.pg_ctl_timeout', PG_CTL_TIMEOUT),
  ignored(
    'postgresql.use_pg_rewind',
    'pgha takes use_pg_rewind from the dynamic configuration only (pgha ctl edit-config: postgresql.use_pg_rewind)',
  ),
  ignored(
    'postgresql.use_slots',
    'replication slots are switched on and off in the dynamic configuration only, as in Patroni',
  ),
  ignored('postgresql.rewind', REWIND_OPTIONS),
  acted('postgresql.basebackup', 'postgres/postgres.ts (basebackup)'),
  acted('postgresql.remove_data_directory_on_rewind_failure', 'ha/runner.ts'),
  acted('postgresql.remove_data_directory_on_diverged_timelines', 'ha/runner.ts'),
  // The script may veto a promotion (a fence); promoting without running it could leave two primaries.
  refused('postgresql.pre_promote', {
    why: 'pgha does not run the pre_promote fencing script',
    risk: 'it would promote a replica without the check that may veto the promotion',
    fix: 'Remove {key} or run Patroni for this cluster',
  }),
  ignored('postgresql.before_stop', 'pgha stops PostgreSQL without running a script first'),
  acted('postgresql.unix_socket_directories', 'postgres/conf.ts', { pgha: true }),
  acted('postgresql.os_user', 'postgres/postgres.ts', { pgha: true }),

  acted('watchdog', 'watchdog/watchdog.ts'),
  acted('watchdog.mode', 'watchdog/watchdog.ts'),
  acted('watchdog.device', 'watchdog/watchdog.ts'),
  acted('watchdog.safety_margin', 'ha/runner.ts'),
  acted('watchdog.driver', 'watchdog/watchdog.ts'),

  acted('tags', 'the member key (ha/runner.ts)'),
  acted('tags.nofailover', 'ha/rules.ts, ha/race.ts'),
  acted('tags.failover_priority', 'ha/rules.ts (0 or less: nofailover), ha/race.ts'),
  acted('tags.noloadbalance', 'api/status.ts (GET /replica), router/'),
  acted('tags.nosync', 'ha/sync.ts'),
  acted('tags.clonefrom', 'ha/replica-methods.ts (cloneSource)'),
  acted('tags.replicatefrom', 'ha/decide.ts (upstreamFor)'),
  acted('tags.nostream', 'ha/decide.ts (upstreamFor), postgres/conf.ts'),
  ignored(
    'tags.sync_priority',
    'pgha picks synchronous standbys among streaming members by WAL position, not by priority (use nosync to exclude one)',
  ),
  acted('tags.*', 'published in the member key as they are (ha/runner.ts)'),

  acted('router', 'pgha router (router/)', { pgha: true }),
  acted('vip', 'pgha vip (vip/)', { pgha: true }),
];

/** The dynamic configuration: the `config` key in etcd and `bootstrap.dcs`. */
export const DYNAMIC_KEYS: readonly KeyRow[] = [
  acted('ttl', 'dcs/etcd.ts (lease), ha/runner.ts'),
  acted('loop_wait', 'ha/runner.ts'),
  acted('retry_timeout', 'ha/runner.ts, dcs/etcd.ts'),
  acted('maximum_lag_on_failover', 'ha/rules.ts'),
  acted('maximum_lag_on_syncnode', 'ha/sync.ts'),
  ignored('max_timelines_history', 'pgha keeps the whole timeline history in the history key', {
    unless: isZero,
  }),
  acted('primary_start_timeout', 'ha/decide.ts (start-failed, down-leader, starting), ha/actions.ts'),
  acted('master_start_timeout', 'read as primary_start_timeout (config/schema.ts)'),
  acted('primary_stop_timeout', 'ha/runner.ts (stop escalation)'),
  acted('master_stop_timeout', 'read as primary_stop_timeout (config/schema.ts)'),
  ignored('primary_race_backoff', 'replicas race for the leader key as soon as it is free', {
    unless: isZero,
  }),
  acted('synchronous_mode', 'ha/sync.ts'),
  acted('synchronous_mode_strict', 'ha/sync.ts'),
  acted('synchronous_node_count', 'ha/sync.ts'),
  acted('failsafe_mode', 'ha/failsafe.ts, ha/runner.ts, ha/failsafe-view.ts (router, vip)'),
  acted('check_timeline', 'ha/race.ts (leader race)'),
  acted('pause', 'ha/decide.ts'),
  acted('fast_failover', 'ha/runner.ts', { pgha: true }),
  acted('move_etcd_leader', 'ha/etcd-leader.ts', { pgha: true }),
  acted('member_slots_ttl', 'ha/slot-plan.ts'),
  ...['slots', 'permanent_slots', 'permanent_replication_slots'].flatMap((k) => [
    acted(k, 'config/slots.ts, ha/slot-plan.ts, ha/slots-run.ts'),
    acted(`${k}.*`, 'config/slots.ts (a permanent slot)'),
    acted(`${k}.*.type`, 'config/slots.ts'),
    acted(`${k}.*.database`, 'config/slots.ts (logical slots)'),
    acted(`${k}.*.plugin`, 'config/slots.ts (logical slots)'),
    acted(
      `${k}.*.cluster_type`,
      'ha/slot-plan.ts (primary: only in a primary cluster, standby: only on a standby leader)',
    ),
  ]),
  acted('ignore_slots', 'ha/slot-plan.ts', { keys: ['name', 'type', 'database', 'plugin'] }),
  acted(
    'standby_cluster',
    'ha/standby.ts, ha/decide.ts (no member runs as a writable primary while it is set)',
  ),
  ...[
    'host',
    'port',
    'primary_slot_name',
    'create_replica_methods',
    'restore_command',
    'archive_cleanup_command',
    'recovery_min_apply_delay',
  ].map((k) => acted(`standby_cluster.${k}`, 'ha/standby.ts')),
  acted('postgresql', 'ha/runner.ts'),
  acted('postgresql.use_pg_rewind', 'ha/runner.ts'),
  acted('postgresql.use_slots', 'ha/runner.ts'),
  acted('postgresql.parameters', 'postgres/conf.ts (under the local postgresql.parameters)'),
  acted('postgresql.pg_hba', 'ha/runner.ts (pgHba)'),
  acted('postgresql.recovery_conf', 'postgres/conf.ts (under the local postgresql.recovery_conf)'),
  ...perRole('postgresql.parameters', 'parameters'),
  ...perRole('postgresql.pg_hba', 'pg_hba'),
  ignored('postgresql.pg_ident', "pgha writes pg_ident.conf from each node's postgresql.pg_ident only"),
  ...perRole('postgresql.pg_ident', 'pg_ident'),
  ignored('postgresql.rewind', REWIND_OPTIONS),
  ignored(
    'postgresql.basebackup',
    "pgha takes pg_basebackup options from each node's postgresql.basebackup only",
  ),
  ignored('postgresql.pg_ctl_timeout', PG_CTL_TIMEOUT),
  // Patroni merges any other postgresql.* setting of the dynamic configuration into each node's.
  ignored('postgresql.*', "pgha reads this setting from each node's YAML only"),
];

const TABLES: Record<KeySource, readonly KeyRow[]> = { local: LOCAL_KEYS, dynamic: DYNAMIC_KEYS };

// ---------------------------------------------------------------------------------------------------
// Looking keys up

type Parent = Record<string, unknown>;

/** How well one pattern segment matches `key` under `parent`: 2 literal, 1 `{ref}`, 0 `*`, -1 not. */
function segmentScore(pattern: string, key: string, parent: Parent | undefined): number {
  if (pattern === key) return 2;
  if (pattern === '*') return 0;
  const ref = /^\{(\w+)\}$/.exec(pattern);
  if (ref && parent) {
    const named = parent[ref[1]!];
    if ((Array.isArray(named) ? named : [named]).some((n) => n === key)) return 1;
  }
  return -1;
}

const splitCache = new Map<string, string[]>();
function segments(path: string): string[] {
  let s = splitCache.get(path);
  if (!s) splitCache.set(path, (s = path.split('.')));
  return s;
}

/**
 * The row for `path` (its segments), the most specific one when several patterns match. `parents[i]`
 * is the mapping that holds `path[i]` (needed for `{ref}` segments).
 */
function lookup(source: KeySource, path: readonly string[], parents: readonly Parent[]): KeyRow | undefined {
  let best: KeyRow | undefined;
  let bestScore = -1;
  for (const row of TABLES[source]) {
    const segs = segments(row.path);
    if (segs.length !== path.length) continue;
    let score = 0;
    for (let i = 0; i < segs.length && score >= 0; i++) {
      const s = segmentScore(segs[i]!, path[i]!, parents[i]);
      score = s < 0 ? -1 : score + s;
    }
    if (score > bestScore) {
      best = row;
      bestScore = score;
    }
  }
  return best;
}

/** Whether some row lies below `path`, so the walk goes into the mapping there. */
function hasRowsBelow(source: KeySource, path: readonly string[], parents: readonly Parent[]): boolean {
  return TABLES[source].some((row) => {
    const segs = segments(row.path);
    return segs.length > path.length && path.every((k, i) => segmentScore(segs[i]!, k, parents[i]) >= 0);
  });
}

/** The mappings along `path` from `root`: `parents[i]` holds `path[i]`. */
function parentsAlong(root: unknown, path: readonly string[]): Parent[] {
  const out: Parent[] = [];
  let cur = root;
  for (const k of path) {
    const p = isRecord(cur) ? cur : {};
    out.push(p);
    cur = p[k];
  }
  return out;
}

/**
 * The row for a dotted path (`postgresql.authentication.superuser.sslmode`); `root` is the whole
 * configuration, needed to resolve a custom method's section (`postgresql.pgbackrest`).
 */
export function findKeyRow(source: KeySource, path: string, root: unknown = {}): KeyRow | undefined {
  const segs = path.split('.');
  return lookup(source, segs, parentsAlong(root, segs));
}

/**
 * The row that covers `path`: its own row, or the row of a section above it that lists it in `keys`
 * (`consul.host`, `standby_cluster.port`, `slots.my_slot.type`). Undefined when Patroni does not know it.
 */
export function coveringKeyRow(source: KeySource, path: string, root: unknown = {}): KeyRow | undefined {
  const segs = path.split('.');
  const parents = parentsAlong(root, segs);
  const own = lookup(source, segs, parents);
  if (own) return own;
  for (let n = segs.length - 1; n > 0; n--) {
    const row = lookup(source, segs.slice(0, n), parents.slice(0, n));
    if (!row || row.status === 'acted') continue;
    const rest = segs.slice(n);
    const listed = (row.keys ?? []).some((k) => {
      const ks = segments(k);
      return ks.length === rest.length && ks.every((p, i) => p === '*' || p === rest[i]);
    });
    if (listed) return row;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Notes: what the agent says about the keys present in a configuration

export interface KeyNote {
  /** The key as written: `slots`, `bootstrap.dcs.standby_cluster`, `postgresql.authentication.superuser.sslmode`. */
  path: string;
  kind: 'ignored' | 'refused' | 'unknown';
  /** The warning (ignored, unknown) or, for a refused key, the reason the agent does not start. */
  message: string;
  /** The value as JSON, to tell a changed value from one already reported. */
  value: string;
  row?: KeyRow;
}

/** Null, undefined and '' count as absent, as in Patroni (`config.get(key)` is falsy). */
function absent(v: unknown): boolean {
  return v === null || v === undefined || v === '';
}

function fill(text: string, path: string): string {
  return text.replaceAll('{key}', path);
}

function note(row: KeyRow, path: string, value: unknown): KeyNote {
  const base = { path, value: JSON.stringify(value) ?? '', row };
  if (row.status === 'refused') {
    return {
      ...base,
      kind: 'refused',
      message: `${path} is set: ${row.why}; refusing to start (${row.risk}). ${fill(row.fix, path)}`,
    };
  }
  const instead = row.status === 'ignored' ? row.instead : '';
  return { ...base, kind: 'ignored', message: `${path}: not acted on by pgha; ${instead}` };
}

/**
 * The keys of `raw` that pgha does not act on, in the order written: one note per key (a section not
 * acted on is one note, not one per key inside it). Keys unknown to Patroni are noted in the dynamic
 * configuration only: in the local file, the schema reports them (`config/load.ts`).
 */
export function keyNotes(raw: unknown, source: KeySource): KeyNote[] {
  const out: KeyNote[] = [];
  walk(raw, source, [], [], '', out);
  return out;
}

function walk(
  obj: unknown,
  source: KeySource,
  path: readonly string[],
  parents: readonly Parent[],
  prefix: string,
  out: KeyNote[],
): void {
  if (!isRecord(obj)) return;
  for (const [key, value] of Object.entries(obj)) {
    if (absent(value)) continue;
    const here = [...path, key];
    const hereParents = [...parents, obj];
    const shown = prefix + here.join('.');
    const row = lookup(source, here, hereParents);
    if (!row) {
      if (source === 'dynamic')
        out.push({ path: shown, kind: 'unknown', message: `${shown}: unknown key, ignored`, value: '' });
      continue;
    }
    if (row.status === 'acted') {
      if (row.nested) walk(value, row.nested, [], [], `${shown}.`, out);
      else if (isRecord(value) && hasRowsBelow(source, here, hereParents))
        walk(value, source, here, hereParents, prefix, out);
      continue;
    }
    if (row.unless?.test(value)) continue;
    out.push(note(row, shown, value));
  }
}

/** Why the agent does not start: a refused key in the configuration in etcd (`note` covers the YAML). */
export function etcdRefusalMessage(n: KeyNote): string {
  const r = n.row;
  if (r?.status !== 'refused') return n.message;
  return `${n.path} is set in the configuration in etcd: ${r.why}; refusing to start (${r.risk}). ${fill(r.fix, n.path)}`;
}

/** What a running agent logs while a refused key is in the configuration in etcd (it stops acting). */
export function holdMessage(n: KeyNote): string {
  const r = n.row;
  if (r?.status !== 'refused') return n.message;
  return `${n.path} is set in the configuration in etcd: ${r.why}; not acting on PostgreSQL while it is set (${r.risk}). ${fill(r.fix, n.path)}`;
}

/** The note for someone changing the dynamic configuration (`pgha ctl edit-config`, `PATCH /config`). */
export function editMessage(n: KeyNote): string {
  const r = n.row;
  if (r?.status !== 'refused') return n.message;
  return `${n.path}: ${r.why}: pgha agents refuse to start while it is set, and running ones stop acting on PostgreSQL (${r.risk}). ${fill(r.fix, n.path)}`;
}

/**
 * What a change of the dynamic configuration is refused for (`PATCH`/`PUT /config`, `pgha ctl
 * edit-config`): values the agents could not use (they would run with the default instead) and keys
 * they refuse. `postgresql.parameters` are checked against PostgreSQL itself, elsewhere.
 */
export function dynamicProblems(raw: Record<string, unknown>): string[] {
  const refused = keyNotes(raw, 'dynamic').filter((n) => n.kind === 'refused');
  return [...parseDynamicConfig(raw).errors, ...refused.map(editMessage)];
}

/** The problems of `next` that `current` does not already have: an edit is not blamed for old ones. */
export function newProblems(current: readonly string[], next: readonly string[]): string[] {
  const old = new Set(current);
  return next.filter((p) => !old.has(p));
}

/** The notes of `next` that are new or whose value changed since `previous`. */
export function changedNotes(previous: readonly KeyNote[], next: readonly KeyNote[]): KeyNote[] {
  const before = new Map(previous.map((n) => [n.path, n.value]));
  return next.filter((n) => before.get(n.path) !== n.value);
}

/**
 * Remembers the notes already reported for a configuration that is read again and again (the `config`
 * key, every HA cycle), so each key is reported when it first appears or its value changes.
 */
export class NoteMemory {
  private last: KeyNote[] = [];

  /** The notes of `notes` not reported last time (new keys, changed values). */
  fresh(notes: readonly KeyNote[]): KeyNote[] {
    const out = changedNotes(this.last, notes);
    this.last = [...notes];
    return out;
  }
}

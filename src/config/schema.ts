/**
 * The zod schema for Patroni's YAML and for the dynamic configuration in the DCS: the single source of
 * validation, coercion and defaults. Field names follow Patroni's on purpose.
 *
 * Objects are strict so unknown keys surface as `unrecognized_keys` issues; `load.ts` turns those into
 * warnings rather than errors. Whether pgha acts on a key Patroni knows is said in `keys.ts`.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parsePgInt } from '../postgres/guc.js';
import { ignoreSlotsFrom, permanentSlotsFrom } from './slots.js';
import type { DynamicConfig, EtcdConfig, HostPort, ListenAddress, StandbyClusterConfig } from './types.js';

// ---------------------------------------------------------------------------------------------------
// Address parsing

const PORT_RE = /^\d{1,5}$/;

function toPort(s: string): number | null {
  if (!PORT_RE.test(s)) return null;
  const port = Number(s);
  return port >= 1 && port <= 65535 ? port : null;
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * Parses a `listen` value: `host:port`, `h1,h2:port` (several hosts share the port, as in Patroni),
 * `[::]:8008`, or `*:5432`. Without a port, `defaultPort` is used when given. Returns null when invalid.
 */
export function parseListen(s: string, defaultPort?: number): ListenAddress | null {
  const value = s.trim();
  // Patroni splits on the last colon (rsplit), unless the whole value is one bracketed IPv6 address.
  const idx = value.endsWith(']') ? -1 : value.lastIndexOf(':');
  let hostPart = value;
  let port: number | null = defaultPort ?? null;
  if (idx >= 0) {
    hostPart = value.slice(0, idx);
    port = toPort(value.slice(idx + 1));
  }
  if (port === null) return null;
  const hosts = hostPart.split(',').map((h) => stripBrackets(h.trim()));
  if (hosts.length > 1 && hosts.some((h) => h === '')) return null;
  if (hosts.some((h) => /[\s/]/.test(h))) return null;
  return { hosts, port };
}

/** Parses `host:port` or `[v6]:port` (port falls back to `defaultPort` when given). Null when invalid. */
export function parseHostPort(s: string, defaultPort?: number): HostPort | null {
  const listen = parseListen(s, defaultPort);
  if (!listen || listen.hosts.length !== 1 || !listen.hosts[0]) return null;
  return { host: listen.hosts[0], port: listen.port };
}

/** Formats a host and port, bracketing IPv6 addresses. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

const WILDCARD_HOSTS = new Set(['', '0.0.0.0', '*', '::']);

/** Where a process on this host connects to reach a listen host: a wildcard is loopback. */
export function localHostOf(host: string): string {
  const h = host.trim();
  if (h === '' || h === '*' || h === '0.0.0.0') return '127.0.0.1';
  return h === '::' ? '::1' : h;
}

/** Whether a listen host is a wildcard (every address of the host). */
export function isWildcardHost(host: string): boolean {
  return WILDCARD_HOSTS.has(host.trim());
}

/** The address others use to reach a listener: its first host, with a wildcard replaced by 127.0.0.1. */
export function defaultConnectAddress(listen: ListenAddress): string {
  const host = listen.hosts[0] ?? '';
  return formatHostPort(WILDCARD_HOSTS.has(host) ? '127.0.0.1' : host, listen.port);
}

/** Normalises a DCS namespace to start and end with one `/` (`db` → `/db/`). */
export function normaliseNamespace(ns: string): string {
  const inner = ns.split('/').filter(Boolean).join('/');
  return inner ? `/${inner}/` : '/';
}

// ---------------------------------------------------------------------------------------------------
// Coercions Patroni performs (or PyYAML makes unnecessary); each leaves bad values alone for zod to report.

/** Describes a value for an error message: strings quoted, lists and maps named. */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (v !== null && typeof v === 'object') return 'a mapping';
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- objects were handled above
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

const TRUE_WORDS = new Set(['true', 'yes', 'on', '1', 'y', 't']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0', 'n', 'f']);

/** Patroni's `parse_bool`: booleans, 0/1 and the usual words; undefined when not a boolean. */
export function parseBool(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (v === 0 || v === 1) return v === 1;
  if (typeof v !== 'string') return undefined;
  const w = v.trim().toLowerCase();
  if (TRUE_WORDS.has(w)) return true;
  if (FALSE_WORDS.has(w)) return false;
  return undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const blank = (v: unknown): unknown => (v === null ? undefined : v);
const asText = (v: unknown): unknown =>
  typeof v === 'number' || typeof v === 'bigint' ? String(v) : blank(v);
const asBool = (v: unknown): unknown => parseBool(v) ?? blank(v);
const asInt = (v: unknown): unknown =>
  typeof v === 'string' && /^\s*[-+]?\d+\s*$/.test(v) ? Number(v) : blank(v);
const asMap = (v: unknown): unknown => blank(v) ?? {};
/** Seconds, from a number or a PostgreSQL-style duration (`30min`, `1h`), as Patroni's `get_int(base_unit='s')`. */
const asSeconds = (v: unknown): unknown => {
  if (typeof v !== 'string') return blank(v);
  const r = parsePgInt(v.trim(), 's');
  return r !== 'unknown-unit' && r.ok ? r.value : v;
};
const withoutNulls = (v: unknown): unknown =>
  isRecord(v)
    ? Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null && x !== undefined))
    : asMap(v);

const text = () => z.preprocess(asText, z.string().min(1));
const optText = () => z.preprocess(asText, z.string().optional());
const bool = (dflt: boolean) => z.preprocess(asBool, z.boolean().default(dflt));
const optBool = () => z.preprocess(asBool, z.boolean().optional());
const int = (min: number, dflt: number) => z.preprocess(asInt, z.number().int().min(min).default(dflt));
/** One of `values`, matched without regard to case or surrounding spaces. */
const choice = <const T extends readonly [string, ...string[]]>(values: T, dflt: T[number]) =>
  z.preprocess(
    (v) => (typeof v === 'string' ? v.trim().toLowerCase() : blank(v)),
    z.enum(values).default(dflt),
  );
const textList = () => z.preprocess(blank, z.array(z.preprocess(asText, z.string())).optional());
/** A list, or a comma-separated string as Patroni allows for `hosts`. */
const commaList = () =>
  z.preprocess(
    (v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : blank(v),
    z.array(z.preprocess(asText, z.string())).optional(),
  );
const section = <T extends z.ZodRawShape>(shape: T) => z.preprocess(asMap, z.strictObject(shape));

const scalar = z.union([z.string(), z.number(), z.boolean()], {
  error: (iss) => `expected a string, number or boolean, got ${describe(iss.input)}`,
});
/** `postgresql.parameters`: name → scalar; nulls (a removed parameter) are dropped. */
const parameters = () => z.preprocess(withoutNulls, z.record(z.string(), scalar));

/**
 * initdb / pg_basebackup options as Patroni takes them: a list of `flag` or `{flag: value}`, or a mapping
 * (normalised to a list of one-key mappings).
 */
const toolOptions = () =>
  z.preprocess(
    (v) => {
      const list: unknown = isRecord(v) ? Object.entries(v).map(([k, x]) => ({ [k]: x })) : v;
      return Array.isArray(list)
        ? list.map((item: unknown) =>
            isRecord(item)
              ? Object.fromEntries(
                  Object.entries(item).map(([k, x]) => [k, typeof x === 'boolean' ? String(x) : x]),
                )
              : item,
          )
        : (blank(list) ?? []);
    },
    z.array(
      z.union([z.string(), z.record(z.string(), z.union([z.string(), z.number()]))], {
        error: (iss) => `expected "flag" or {flag: value}, got ${describe(iss.input)}`,
      }),
    ),
  );

/** A `host:port` string, validated and returned as written (trimmed). */
const hostPortText = (defaultPort?: number) =>
  z.preprocess(
    asText,
    z
      .string()
      .optional()
      .refine((s) => s === undefined || parseHostPort(s, defaultPort) !== null, {
        error: (iss) => `expected host:port, got ${describe(iss.input)}`,
      }),
  );

/** A `listen` value parsed into hosts and port. */
const listen = (defaultPort?: number) =>
  z.preprocess(
    asText,
    z.string().transform((s, ctx) => {
      const parsed = parseListen(s, defaultPort);
      if (!parsed) {
        ctx.addIssue({ code: 'custom', message: `expected host:port, got ${describe(s)}` });
        return z.NEVER;
      }
      return parsed;
    }),
  );

// ---------------------------------------------------------------------------------------------------
// Dynamic configuration (the `config` key; `bootstrap.dcs`)

const dynamicPostgresql = z.preprocess(
  asMap,
  z.looseObject({
    use_pg_rewind: bool(false).describe(
      'Rejoin a former primary with pg_rewind when its timeline diverged (needs data checksums or wal_log_hints).',
    ),
    use_slots: bool(true).describe('Keep a physical replication slot on the leader for every member.'),
    parameters: parameters().describe(
      "postgresql.conf parameters for every member (a null value removes one); the node's own postgresql.parameters win. " +
        'PATCH/PUT /config and edit-config refuse a value PostgreSQL would refuse; one that reaches etcd anyway is left out of postgresql.conf with a warning. ' +
        'wal_keep_segments becomes wal_keep_size (× the WAL segment size).',
    ),
    pg_hba: textList().describe('pg_hba.conf lines for every member, replacing the file.'),
    recovery_conf: z
      .preprocess(withoutNulls, z.record(z.string(), scalar))
      .optional()
      .describe('Extra recovery settings (restore_command, ...) for replicas.'),
  }),
);

/** `synchronous_mode`: a boolean (Patroni's parse_bool words) or `quorum` (Patroni 4). */
const synchronousMode = z.preprocess(
  (v) => (typeof v === 'string' && v.trim().toLowerCase() === 'quorum' ? 'quorum' : asBool(v)),
  z.union([z.boolean(), z.literal('quorum')], {
    error: (iss) => `expected true, false or quorum, got ${describe(iss.input)}`,
  }),
);

/**
 * Dynamic configuration with Patroni's defaults. Minimums are looser than Patroni's documented ones
 * (ttl 20, retry_timeout 3) so tests can run fast clusters; the cross-field rule is `adjustTimeouts`.
 */
export const dynamicConfigSchema = z.looseObject({
  ttl: int(2, 30).describe(
    'Seconds the leader key (and each member key) lives without renewal: how long a dead leader holds the cluster before a replica takes over.',
  ),
  loop_wait: int(1, 10).describe(
    'Seconds between two cycles of the HA loop (a watch event on the leader, failover, config or sync key starts one sooner).',
  ),
  retry_timeout: int(1, 10).describe(
    'Seconds an etcd or PostgreSQL operation is retried before the cycle gives up. When loop_wait + 2 × retry_timeout exceeds ttl, loop_wait (then retry_timeout) is lowered to fit, with a warning, as Patroni does.',
  ),
  maximum_lag_on_failover: int(0, 1048576).describe(
    'Bytes a replica may be behind the last published leader position and still be promoted automatically.',
  ),
  maximum_lag_on_syncnode: int(-1, -1).describe(
    'Bytes a synchronous standby may fall behind the most advanced standby (the primary when it is the only one) before another standby replaces it; 0 or less: never replaced for lag.',
  ),
  primary_start_timeout: int(0, 300).describe(
    'Seconds a leader whose PostgreSQL went down may spend starting it in place before it releases the key to a member that can take over (0: release at once when one can). A start that fails releases the key at once.',
  ),
  primary_stop_timeout: int(0, 0).describe(
    'Seconds a fast stop of PostgreSQL may take before it is escalated (0: 30 s).',
  ),
  synchronous_mode: synchronousMode
    .default(false)
    .describe(
      'true: the leader keeps synchronous_node_count standbys synchronous and only those may be promoted automatically; quorum: ANY n quorum commit (Patroni 4).',
    ),
  synchronous_mode_strict: bool(false).describe(
    "With no synchronous standby available, make writes wait (synchronous_standby_names = '*') instead of going asynchronous.",
  ),
  synchronous_node_count: int(1, 1).describe(
    'Number of synchronous standbys (synchronous_mode: true) or the quorum size (quorum).',
  ),
  failsafe_mode: bool(false).describe(
    'Let a leader that cannot reach etcd keep running as primary while every member confirms it over POST /failsafe; pgha router and pgha vip then keep sending writes to it, and the VIP in place, while its agent says so on GET /primary.',
  ),
  /** pgha extension: fail over without waiting for the lease when a leader's processes are proven gone. */
  fast_failover: bool(true).describe(
    "pgha: fail over without waiting for the leader key to expire when the leader's agent and PostgreSQL are proven gone.",
  ),
  /** pgha extension: keep etcd's raft leader off the primary's host. */
  move_etcd_leader: bool(true).describe(
    "pgha: the leader's agent hands etcd's raft leadership to another member when the member on its own host leads etcd, so that losing the primary's host does not also cost etcd an election (with authentication on, etcd 3.6 and 3.5 from 3.5.28 allow this to the root role only).",
  ),
  check_timeline: bool(false).describe(
    "Refuse to promote a replica whose timeline is behind the cluster's last known one (the history key), as Patroni; a primary behind it never takes the key back, whatever this says.",
  ),
  pause: bool(false).describe(
    'Maintenance mode: the agents do not start, stop, promote or fail over anything (pgha ctl pause / resume).',
  ),
  member_slots_ttl: z
    .preprocess(asSeconds, z.number().int().min(0).default(1800))
    .describe(
      'How long the replication slots of a member whose key is gone are kept (seconds, or with a unit: 30min, 1h), on the leader and on the replicas that may replace it (Patroni 4). 0: dropped at once, and replicas keep no slots for the other members (as Patroni 3).',
    ),
  slots: z
    .unknown()
    .optional()
    .describe(
      'Permanent replication slots, by name: `{type: physical}` (also `null`), or `{type: logical, database: db, plugin: test_decoding}`. Physical ones are kept on every member (not on the member of that name); logical ones are created on the leader and copied to the replicas, whose copies follow the position the leader publishes, so logical consumers carry on after a failover. Patroni also reads `permanent_slots` and `permanent_replication_slots`.',
    ),
  ignore_slots: z
    .unknown()
    .optional()
    .describe(
      'Slots the agents leave alone: a list of matchers with any of name, type, database and plugin; a slot matching every attribute of one matcher is never dropped.',
    ),
  postgresql: dynamicPostgresql.describe('PostgreSQL settings shared by every member.'),
  standby_cluster: z
    .preprocess(
      blank,
      z
        .looseObject({
          host: optText().describe('Host of the PostgreSQL the standby leader replicates from.'),
          port: z
            .preprocess(asInt, z.number().int().min(1).max(65535).optional())
            .describe('Its port (default 5432).'),
          primary_slot_name: optText().describe('Replication slot the standby leader uses on it.'),
          restore_command: optText().describe(
            'restore_command of every member of the standby cluster (WAL from an archive).',
          ),
          archive_cleanup_command: optText().describe('archive_cleanup_command of every member.'),
          recovery_min_apply_delay: optText().describe("The standby leader's recovery_min_apply_delay."),
          create_replica_methods: textList().describe(
            'How the standby leader creates its data: basebackup (from host:port) and custom methods of postgresql.',
          ),
        })
        .optional(),
    )
    .describe(
      'Run this cluster as a standby of another one: its leader (the standby leader) replicates from host:port ' +
        '(or restore_command) and no member runs as a writable primary while it is set; remove it to promote the cluster.',
    ),
});

/**
 * Cross-field timing rule `loop_wait + 2 × retry_timeout <= ttl`: the leader lease must outlive one
 * loop plus two retry timeouts. Values that break it are adjusted as Patroni adjusts them (loop_wait
 * shrinks first, down to 1 s; then retry_timeout to (ttl - 1) / 2) and the returned warning says so.
 */
export function adjustTimeouts(c: Pick<DynamicConfig, 'ttl' | 'loop_wait' | 'retry_timeout'>): {
  loop_wait: number;
  retry_timeout: number;
  warning?: string;
} {
  const { ttl, loop_wait, retry_timeout } = c;
  const minLoop = 1;
  if (minLoop + 2 * retry_timeout > ttl) {
    const retry = Math.max(1, Math.floor((ttl - minLoop) / 2));
    return {
      loop_wait: minLoop,
      retry_timeout: retry,
      warning:
        `loop_wait + 2 × retry_timeout must not exceed ttl (${ttl}): ` +
        `loop_wait ${loop_wait} → ${minLoop}, retry_timeout ${retry_timeout} → ${retry}`,
    };
  }
  if (loop_wait + 2 * retry_timeout > ttl) {
    const loop = ttl - 2 * retry_timeout;
    return {
      loop_wait: loop,
      retry_timeout,
      warning:
        `loop_wait + 2 × retry_timeout must not exceed ttl (${ttl}, retry_timeout ${retry_timeout}): ` +
        `loop_wait ${loop_wait} → ${loop}`,
    };
  }
  return { loop_wait, retry_timeout };
}

/**
 * Patroni's `is_standby_cluster`: a `standby_cluster` section makes a standby cluster only when it
 * names a host, a port or a restore_command.
 */
export function isStandbyCluster(v: unknown): boolean {
  return isRecord(v) && ['host', 'port', 'restore_command'].some((k) => Boolean(v[k]));
}

/** The section's values; a value of the wrong type is left out, never the whole section. */
function standbyClusterOf(v: unknown): StandbyClusterConfig {
  const out: StandbyClusterConfig = {};
  if (!isRecord(v)) return out;
  for (const k of [
    'host',
    'primary_slot_name',
    'restore_command',
    'archive_cleanup_command',
    'recovery_min_apply_delay',
  ] as const)
    if ((typeof v[k] === 'string' || typeof v[k] === 'number') && v[k] !== '') out[k] = String(v[k]);
  const port = asInt(v.port);
  if (typeof port === 'number' && Number.isInteger(port)) out.port = port;
  if (Array.isArray(v.create_replica_methods))
    out.create_replica_methods = v.create_replica_methods.filter((m): m is string => typeof m === 'string');
  return out;
}

/**
 * Validates a dynamic configuration (from `bootstrap.dcs` or the `config` key) and applies Patroni's
 * defaults. A field that is invalid falls back to its default, so a bad value written to etcd cannot stop
 * the loop; every problem is returned as `key: what is wrong` for the caller to report or refuse.
 */
export function parseDynamicConfig(raw: unknown): {
  config: DynamicConfig;
  errors: string[];
  /** Values changed to keep the timing rule ({@link adjustTimeouts}); accepted, worth a log line. */
  warnings: string[];
} {
  const errors: string[] = [];
  const input = raw === null || raw === undefined ? {} : raw;
  if (typeof input !== 'object' || Array.isArray(input)) {
    errors.push(`expected a mapping, got ${describe(raw)}`);
  }
  const rawObj: Record<string, unknown> = errors.length ? {} : { ...(input as Record<string, unknown>) };
  const work: Record<string, unknown> = { ...rawObj };
  // Patroni still reads the pre-3.0 names when the new ones are absent.
  if (work.primary_start_timeout === undefined) work.primary_start_timeout = work.master_start_timeout;
  if (work.primary_stop_timeout === undefined) work.primary_stop_timeout = work.master_stop_timeout;

  let result = dynamicConfigSchema.safeParse(work, { error: errorMap });
  if (!result.success) {
    for (const issue of result.error.issues) errors.push(formatIssue(issue));
    // Drop each offending key (and for postgresql.*, the offending sub-key) and take the default instead.
    for (const issue of result.error.issues) {
      const [top, sub] = issue.path;
      if (top === 'postgresql' && typeof sub === 'string' && isRecord(work.postgresql)) {
        work.postgresql = { ...work.postgresql };
        delete (work.postgresql as Record<string, unknown>)[sub];
      } else if (typeof top === 'string') {
        delete work[top];
      }
    }
    result = dynamicConfigSchema.safeParse(work, { error: errorMap });
  }
  if (!result.success) throw new Error(`dynamic config defaults failed to parse: ${result.error.message}`);
  const d = result.data;
  const permanent = permanentSlotsFrom(rawObj);
  const ignore = ignoreSlotsFrom(rawObj);
  errors.push(...permanent.errors, ...ignore.errors);
  const config: DynamicConfig = {
    ttl: d.ttl,
    loop_wait: d.loop_wait,
    retry_timeout: d.retry_timeout,
    maximum_lag_on_failover: d.maximum_lag_on_failover,
    maximum_lag_on_syncnode: d.maximum_lag_on_syncnode,
    primary_start_timeout: d.primary_start_timeout,
    primary_stop_timeout: d.primary_stop_timeout,
    synchronous_mode: d.synchronous_mode,
    synchronous_mode_strict: d.synchronous_mode_strict,
    synchronous_node_count: d.synchronous_node_count,
    failsafe_mode: d.failsafe_mode,
    fast_failover: d.fast_failover,
    move_etcd_leader: d.move_etcd_leader,
    check_timeline: d.check_timeline,
    pause: d.pause,
    slots: permanent.slots,
    ignore_slots: ignore.matchers,
    member_slots_ttl: d.member_slots_ttl,
    postgresql: {
      use_pg_rewind: d.postgresql.use_pg_rewind,
      use_slots: d.postgresql.use_slots,
      parameters: d.postgresql.parameters,
      ...(d.postgresql.pg_hba ? { pg_hba: d.postgresql.pg_hba } : {}),
      ...(d.postgresql.recovery_conf ? { recovery_conf: d.postgresql.recovery_conf } : {}),
    },
    // An invalid value inside the section never turns a standby cluster into an independent one.
    ...(isStandbyCluster(rawObj.standby_cluster)
      ? { standby_cluster: standbyClusterOf(d.standby_cluster ?? rawObj.standby_cluster) }
      : {}),
    raw: rawObj,
  };
  const timeouts = adjustTimeouts(config);
  config.loop_wait = timeouts.loop_wait;
  config.retry_timeout = timeouts.retry_timeout;
  return { config, errors, warnings: timeouts.warning ? [timeouts.warning] : [] };
}

// ---------------------------------------------------------------------------------------------------
// The local YAML file

/** `etcd3` / `etcd` section; normalised into `EtcdConfig` by `normaliseEtcd`. */
export const etcdSection = section({
  host: optText().describe('One etcd endpoint, host:port (port 2379 when left out).'),
  hosts: commaList().describe('etcd endpoints: a list of host:port, or one comma-separated string.'),
  url: optText().describe('One etcd endpoint as a URL (http://host:2379); the scheme sets the protocol.'),
  urls: commaList().describe('etcd endpoints as URLs; used before hosts, url and host.'),
  protocol: z
    .preprocess(asText, z.enum(['http', 'https']).optional())
    .describe('http, or https for TLS to etcd.'),
  username: optText().describe('etcd user (etcd authentication).'),
  password: optText().describe('Password of the etcd user.'),
  cacert: optText().describe("PEM file of the CA that signed the etcd servers' certificates."),
  cert: optText().describe('Client certificate (PEM) for etcd.'),
  key: optText().describe('Private key (PEM) of the client certificate.'),
});

type EtcdSection = z.output<typeof etcdSection>;

/**
 * Turns an etcd section into `EtcdConfig`: `urls`, `hosts`, then `url`/`host` (Patroni's order), each entry
 * `host:port` with port 2379 by default; a URL's scheme sets the protocol. Problems are `key: message`.
 */
export function normaliseEtcd(s: EtcdSection): { etcd?: EtcdConfig; errors: string[] } {
  const errors: string[] = [];
  let protocol: 'http' | 'https' | undefined = s.protocol;
  let username = s.username;
  let password = s.password;
  const entry = (value: string, where: string): string | undefined => {
    if (value.includes('://')) {
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        errors.push(`${where}: expected a URL like http://host:2379, got ${describe(value)}`);
        return undefined;
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        errors.push(`${where}: expected an http or https URL, got ${describe(value)}`);
        return undefined;
      }
      protocol = url.protocol === 'https:' ? 'https' : 'http';
      if (url.username) username ??= decodeURIComponent(url.username);
      if (url.password) password ??= decodeURIComponent(url.password);
      return formatHostPort(stripBrackets(url.hostname), url.port ? Number(url.port) : 2379);
    }
    const hp = parseHostPort(value, 2379);
    if (!hp) {
      errors.push(`${where}: expected host:port, got ${describe(value)}`);
      return undefined;
    }
    return formatHostPort(hp.host, hp.port);
  };
  const from = (list: string[] | undefined, key: string): string[] =>
    (list ?? []).map((v, i) => entry(v, `${key}[${i}]`)).filter((v): v is string => v !== undefined);

  let hosts = from(s.urls, 'urls');
  if (!hosts.length) hosts = from(s.hosts, 'hosts');
  if (!hosts.length && s.url) hosts = from([s.url], 'url').slice(0, 1);
  if (!hosts.length && s.host) hosts = from([s.host], 'host').slice(0, 1);
  if (!hosts.length) {
    if (!errors.length) errors.push('hosts: required (a list of host:port, or host, url)');
    return { errors };
  }
  const etcd: EtcdConfig = { hosts, protocol: protocol ?? 'http' };
  if (username !== undefined) etcd.username = username;
  if (password !== undefined) etcd.password = password;
  if (s.cacert) etcd.cacert = s.cacert;
  if (s.cert) etcd.cert = s.cert;
  if (s.key) etcd.key = s.key;
  return { etcd, errors };
}

const libpqChoice = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.preprocess((v) => (typeof v === 'string' ? v.trim().toLowerCase() : blank(v)), z.enum(values).optional());
const credentialsShape = () =>
  z.strictObject({
    username: text().describe('PostgreSQL role name.'),
    password: optText().describe('Its password.'),
    sslmode: libpqChoice(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']).describe(
      "libpq's sslmode for this role's connections (default prefer: TLS when the server offers it).",
    ),
    sslcert: optText().describe('Client certificate (PEM) presented as this role.'),
    sslkey: optText().describe(
      "The client certificate's private key (PEM; owned by the agent's user, mode 0600).",
    ),
    sslpassword: optText().describe('Passphrase of an encrypted sslkey.'),
    sslrootcert: optText().describe(
      "PEM file of the CA that signed the servers' certificates (verify-ca, verify-full).",
    ),
    sslcrl: optText().describe('Certificate revocation list (PEM) checked against the server certificate.'),
    sslcrldir: optText().describe('Directory of revocation lists (libpq tools only).'),
    sslnegotiation: libpqChoice(['postgres', 'direct']).describe(
      "libpq's sslnegotiation (PostgreSQL 17 tools; pgha's own connections always negotiate as postgres).",
    ),
    gssencmode: libpqChoice(['disable', 'prefer', 'require']).describe(
      "libpq's gssencmode for replication and pg_rewind connections.",
    ),
    channel_binding: libpqChoice(['disable', 'prefer', 'require']).describe(
      "libpq's channel_binding for replication and pg_rewind connections.",
    ),
  });
const credentials = () => z.preprocess(asMap, credentialsShape());
const optCredentials = () => z.preprocess(blank, credentialsShape().optional());

const CALLBACKS = ['on_start', 'on_stop', 'on_restart', 'on_reload', 'on_role_change'] as const;

const postgresqlSection = section({
  listen: listen(5432).describe(
    'host:port PostgreSQL listens on (listen_addresses and port); several hosts separated by commas.',
  ),
  connect_address: hostPortText(5432).describe(
    'host:port the other members and clients use to reach this PostgreSQL (published as conn_url).',
  ),
  data_dir: text().describe(
    'The data directory. An empty one is initialised (first node) or cloned from the leader.',
  ),
  bin_dir: optText().describe(
    'Directory of pg_ctl, initdb, pg_basebackup, pg_rewind; default: the newest /usr/lib/postgresql/<version>/bin, else PATH.',
  ),
  config_dir: optText().describe('Where postgresql.conf and pg_hba.conf are written (default: data_dir).'),
  pgpass: optText().describe('The .pgpass file written for replication and rewind connections.'),
  authentication: section({
    superuser: credentials().describe('The superuser the agent itself connects as (bootstrap creates it).'),
    replication: credentials().describe('The role replicas stream with (bootstrap creates it).'),
    rewind: optCredentials().describe('A role for pg_rewind (default: the superuser).'),
  }).describe('The roles the agent connects as.'),
  parameters: parameters().describe(
    "postgresql.conf parameters of this node, over the dynamic configuration's; a value PostgreSQL would refuse is left out with a warning.",
  ),
  pg_hba: textList().describe("pg_hba.conf lines of this node (replacing the dynamic configuration's)."),
  pg_ident: textList().describe('pg_ident.conf lines.'),
  callbacks: section(
    Object.fromEntries(
      CALLBACKS.map((c) => [c, optText().describe(`Command run on ${c.slice(3).replace('_', ' ')}.`)]),
    ) as Record<(typeof CALLBACKS)[number], ReturnType<typeof optText>>,
  ).describe("Commands run on PostgreSQL events, as `<command> <action> <role> <scope>` (Patroni's)."),
  create_replica_methods: z
    .preprocess(blank, z.array(z.preprocess(asText, z.string())).min(1).default(['basebackup']))
    .describe(
      'How a replica gets its data, tried in order: basebackup (pg_basebackup from the leader or a clonefrom member) ' +
        'or a custom method whose section postgresql.<method> names its command (keep_data, no_params, no_leader).',
    ),
  basebackup: toolOptions().describe(
    'pg_basebackup options: a list of flag or {flag: value} (e.g. max-rate: 100M).',
  ),
  use_unix_socket: bool(false).describe(
    'Connect to the local PostgreSQL through its Unix socket instead of TCP.',
  ),
  unix_socket_directories: optText().describe('Where PostgreSQL puts its Unix socket.'),
  remove_data_directory_on_rewind_failure: bool(false).describe(
    'When pg_rewind fails, remove the data directory and clone it afresh (otherwise stop and ask for reinit).',
  ),
  remove_data_directory_on_diverged_timelines: bool(false).describe(
    'When the timeline diverged and rewind is off, remove the data directory and clone it afresh.',
  ),
  os_user: z
    .preprocess(asText, z.string().min(1).default('postgres'))
    .describe('pgha: the OS user PostgreSQL runs as when the agent runs as root.'),
  recovery_conf: z
    .preprocess(withoutNulls, z.record(z.string(), scalar))
    .optional()
    .describe(
      'Recovery settings every replica of this node starts with (restore_command, recovery_min_apply_delay, ...).',
    ),
});

const bootstrapSection = section({
  dcs: z
    .preprocess(asMap, z.record(z.string(), z.unknown()))
    .describe(
      'The dynamic configuration written to etcd when the cluster is created (see "Dynamic configuration").',
    ),
  initdb: toolOptions().describe(
    'initdb options: a list of flag or {flag: value} (e.g. encoding: UTF8, data-checksums).',
  ),
  pg_hba: textList().describe('pg_hba.conf lines used while bootstrapping.'),
  users: z
    .preprocess(
      blank,
      z
        .record(z.string(), z.preprocess(asMap, z.strictObject({ password: optText(), options: textList() })))
        .optional(),
    )
    .describe('Roles created after initdb: name → {password, options}.'),
  post_bootstrap: optText().describe(
    'Command run once after the cluster is created, with a connection string to it as its argument; its failure undoes the bootstrap.',
  ),
  post_init: optText().describe("Patroni's older name for post_bootstrap."),
  method: optText().describe(
    'How the first node creates the cluster: initdb, or the name of a section of bootstrap with the command that restores the data (command, no_params, keep_existing_recovery_conf, recovery_conf).',
  ),
});

/** Patroni's watchdog `parse_mode`, except that an unrecognised mode is an error rather than "off". */
const watchdogMode = z.preprocess(
  (v) => {
    if (v === false) return 'off';
    if (typeof v !== 'string') return blank(v);
    const w = v.trim().toLowerCase();
    if (['off', 'disable', 'disabled'].includes(w)) return 'off';
    if (['auto', 'automatic'].includes(w)) return 'automatic';
    if (['require', 'required'].includes(w)) return 'required';
    return v;
  },
  // Patroni's default is automatic: use /dev/watchdog when it can be opened, carry on without it otherwise.
  z.enum(['off', 'automatic', 'required']).default('automatic'),
);

const LOG_LEVELS = ['DEBUG', 'INFO', 'WARNING', 'WARN', 'ERROR', 'CRITICAL', 'FATAL'] as const;

const tagsSection = z.preprocess(
  asMap,
  z.looseObject({
    nofailover: optBool().describe(
      'Never promote this node automatically (unset: failover_priority 0 or less means the same, as Patroni).',
    ),
    noloadbalance: bool(false).describe(
      "Leave this replica out of GET /replica (and the router's read-only port).",
    ),
    clonefrom: bool(false).describe(
      'New replicas clone their data from this node (a running replica tagged clonefrom is picked before the leader).',
    ),
    nosync: bool(false).describe('Never choose this node as a synchronous standby.'),
    nostream: optBool().describe(
      'Patroni 4: never stream; the replica replays WAL from the archive only (restore_command) and keeps no slot.',
    ),
    failover_priority: z
      .preprocess(asInt, z.number().int().optional())
      .describe(
        'Among equally advanced candidates, the higher priority wins the leader race (default 1); 0 or less: never promoted, as nofailover.',
      ),
    replicatefrom: optText().describe(
      'Member to stream from instead of the leader (cascading replication); the leader when that member is gone.',
    ),
  }),
);

/** A non-negative number of seconds (fractions allowed). */
const seconds = (dflt: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : blank(v)),
    z.number().min(0).default(dflt),
  );

/** `16MB`, `1024`, `16kB` (powers of 1024, as Patroni's `/replica?lag=`) → bytes. */
const bytes = () =>
  z.preprocess(
    (v) => {
      if (typeof v !== 'string') return blank(v);
      const m = /^\s*(\d+)\s*(B|kB|KB|MB|GB|TB)?\s*$/i.exec(v);
      if (!m) return v;
      const mult: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
      return Number(m[1]) * (mult[(m[2] ?? 'B').toUpperCase()] ?? 1);
    },
    z
      .number({ error: (iss) => `expected bytes like 1048576 or 16MB, got ${describe(iss.input)}` })
      .int()
      .min(0)
      .optional(),
  );

/** `router:` — `pgha router` (pgha extension). Types: `RouterConfig`. */
export const routerSection = section({
  listen: listen(5433)
    .default({ hosts: ['0.0.0.0'], port: 5433 })
    .describe('Read-write address: every connection goes to the primary.'),
  replica_listen: z
    .preprocess(blank, listen(5434).optional())
    .describe('Read-only address: connections go to streaming replicas not tagged noloadbalance.'),
  status_listen: z
    .preprocess(blank, listen(8009).optional())
    .describe(
      "HTTP address of GET /status, /metrics (Prometheus) and /health; the agent's dashboard shows it.",
    ),
  balance: z
    .preprocess(
      (v) => (typeof v === 'string' ? v.trim().toLowerCase().replaceAll('_', '-') : blank(v)),
      z.enum(['round-robin', 'least-connections']).default('round-robin'),
    )
    .describe('How read-only connections are spread over the replicas.'),
  max_lag: bytes().describe(
    'Replicas further behind than this (bytes, or 16MB) get no read-only connections.',
  ),
  fallback_to_primary: bool(false).describe(
    'Send read-only connections to the primary when no replica qualifies.',
  ),
  wait_timeout: seconds(30).describe(
    'Seconds a new connection waits for a primary (or replica) before it is refused.',
  ),
  connect_timeout: seconds(5).describe('Seconds to connect to a backend.'),
  replica_grace: seconds(10).describe(
    'Seconds a replica may stay unfit for reads (gone, not streaming, lagging past max_lag) before its read-only sessions move to another replica.',
  ),
  check_interval: z
    .preprocess(
      (v) => (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : blank(v)),
      z.number().min(0.05).default(1),
    )
    .describe("Seconds between linearizable etcd reads that prove the router's view is current."),
  verify_primary: bool(true).describe(
    "Ask a new primary's agent (GET /primary) before sending writes to it.",
  ),
  data_path: choice(['auto', 'native', 'javascript'], 'auto').describe(
    'Who copies bytes after the startup phase: native (the relay thread built by npm run build:native; refuse to start without it), javascript, or auto (native when built, else javascript with a warning).',
  ),
  relay_threads: z
    .preprocess(asInt, z.number().int().min(1).max(16).default(1))
    .describe(
      'Threads of the native data path, each with its own sessions. One thread spent 36–57 µs of CPU per select-only transaction in bench:router; add threads only on hosts with spare cores.',
    ),
  drain_timeout: seconds(5).describe(
    'Seconds a switchover lets transactions in flight finish before it cuts their sessions (the others move to the new primary).',
  ),
  tls: z
    .preprocess(
      blank,
      section({
        certificate: z
          .preprocess(asText, z.string().min(1))
          .describe('Server certificate (PEM) clients see.'),
        key: z.preprocess(asText, z.string().min(1)).describe('Private key of the certificate (PEM).'),
      }).optional(),
    )
    .describe(
      "The router terminates clients' TLS with this certificate (its own connections to PostgreSQL are plain), so TLS sessions can move on a switchover or failover; without it TLS passes through end to end and such sessions are cut.",
    ),
});

/**
 * `vip:` — `pgha vip`, the virtual IP (pgha extension; Keepalived's part in the seed). Types: `VipConfig`;
 * the router health URL's default (from `router.status_listen`) is filled by `src/vip/config.ts`.
 */
export const vipSection = z
  .strictObject({
    /** The virtual address clients connect to (IPv4 or IPv6). */
    address: z
      .preprocess(
        asText,
        z.string().refine((s) => isIP(s.trim()) !== 0, {
          error: (iss) => `expected an IPv4 or IPv6 address, got ${describe(iss.input)}`,
        }),
      )
      .describe('The virtual address clients connect to (IPv4 or IPv6).'),
    /** Prefix length of the address on the interface; 32 (IPv4) or 128 (IPv6) when absent, as Keepalived. */
    prefix: z
      .preprocess(asInt, z.number().int().min(1).max(128).optional())
      .describe('Prefix length of the address on the interface; 32 (IPv4) or 128 (IPv6) when absent.'),
    /** The network interface that carries the address. */
    interface: z
      .preprocess(
        asText,
        z.string().refine((s) => /^[^\s/:]{1,15}$/.test(s), {
          error: (iss) =>
            `expected an interface name (1-15 characters, no spaces, "/" or ":"), got ${describe(iss.input)}`,
        }),
      )
      .describe('The network interface that carries the address.'),
    /** `leader`: on the node holding the leader key; `router`: on one node whose local router is healthy. */
    mode: choice(['leader', 'router'], 'leader').describe(
      'leader: on the node holding the leader key; router: on one node whose local router is healthy.',
    ),
    /** Seconds the VIP key's etcd lease lives without renewal; the address is dropped 2 s before. */
    ttl: int(4, 10).describe(
      "Seconds the VIP key's etcd lease lives without renewal; the address is dropped 2 s before.",
    ),
    /** Seconds between checks (etcd renewal, router health, the address on the interface). */
    check_interval: z
      .preprocess(
        (v) => (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : blank(v)),
        z.number().min(0.1).default(1),
      )
      .describe('Seconds between checks (etcd renewal, router health, the address on the interface).'),
    /** Router mode: the local router's status URL; 2xx means healthy. */
    router_health_url: z
      .preprocess(
        asText,
        z
          .string()
          .refine((s) => /^https?:\/\/[^/]/.test(s) && URL.canParse(s), {
            error: (iss) => `expected an http(s) URL, got ${describe(iss.input)}`,
          })
          .optional(),
      )
      .describe(
        "Router mode: the local router's status URL; 2xx means healthy (default: from router.status_listen).",
      ),
    /** Router mode: consecutive failed checks (timeouts, errors) before the router counts as down. */
    fall: int(1, 2).describe('Router mode: consecutive failed checks before the router counts as down.'),
    /** Router mode: consecutive good checks before a down router counts as healthy again. */
    rise: int(1, 1).describe(
      'Router mode: consecutive good checks before a down router counts as healthy again.',
    ),
    /** Gratuitous ARP packets sent on takeover (IPv4; 0: none). */
    arp_count: int(0, 3).describe('Gratuitous ARP packets sent on takeover (IPv4; 0: none).'),
    /** HTTP status (`GET /status`) and Prometheus metrics (`GET /metrics`). Absent: none. */
    status_listen: z
      .preprocess(blank, listen(8010).optional())
      .describe('HTTP address of GET /status and /metrics (Prometheus); absent: none.'),
  })
  .superRefine((v, ctx) => {
    const family = isIP(v.address.trim());
    if (family === 4 && v.prefix !== undefined && v.prefix > 32)
      ctx.addIssue({
        code: 'custom',
        path: ['prefix'],
        message: `must be at most 32 for an IPv4 address, got ${v.prefix}`,
      });
    // Leave room for two checks before the address is dropped (ttl − 2 s).
    if (v.check_interval * 2 > v.ttl - 2)
      ctx.addIssue({
        code: 'custom',
        path: ['check_interval'],
        message: `must be at most (ttl − 2) / 2 = ${(v.ttl - 2) / 2} seconds, got ${v.check_interval}`,
      });
  });

/** The whole `patroni.yml`, strict at every level except `tags` and parameter maps. */
export const fileSchema = z.strictObject({
  scope: text().describe(
    "The cluster's name: every member of one cluster has the same scope (PATRONI_SCOPE).",
  ),
  namespace: z
    .preprocess(asText, z.string().default('/service/'))
    .describe('etcd key prefix: the cluster lives under /<namespace>/<scope>/.'),
  name: text().describe("This node's name, unique in the cluster (PATRONI_NAME)."),
  restapi: section({
    listen: listen().describe("host:port to listen on (Patroni's default port is 8008)."),
    connect_address: hostPortText().describe(
      'host:port the other members and patronictl use to reach this API (published as api_url).',
    ),
    authentication: z
      .preprocess(
        blank,
        z
          .strictObject({
            username: text().describe('User name clients send.'),
            password: text().describe('Its password.'),
          })
          .optional(),
      )
      .describe(
        'HTTP Basic credentials required for every write (POST, PUT, PATCH, DELETE); reads stay open.',
      ),
    certfile: optText().describe('TLS certificate (PEM); the API serves HTTPS when set.'),
    keyfile: optText().describe('Private key of certfile (default: in certfile).'),
    keyfile_password: optText().describe('Password of an encrypted keyfile.'),
    cafile: optText().describe(
      "CA for client certificates, and for checking the other members' certificates.",
    ),
    verify_client: z
      .preprocess(asText, z.enum(['none', 'optional', 'required']).optional())
      .describe('Client certificates: none, optional (writes need one) or required (every request).'),
    allowlist: textList().describe(
      'Addresses, networks (CIDR) or host names allowed to write; empty: everyone.',
    ),
    allowlist_include_members: optBool().describe("Also allow the hosts of the members' api_url."),
    http_extra_headers: z
      .preprocess(blank, z.record(z.string(), z.preprocess(asText, z.string())).optional())
      .describe('Headers added to every answer.'),
  }).describe('The REST API: health checks, status, operations, /metrics and the dashboard at /ui.'),
  etcd3: z
    .preprocess(blank, etcdSection.optional())
    .describe('etcd v3 endpoints and credentials (etcd3 or etcd is required).'),
  etcd: z
    .preprocess(blank, etcdSection.optional())
    .describe('Same as etcd3 (pgha always speaks the v3 API).'),
  bootstrap: bootstrapSection.describe(
    'How a new cluster is created (read only by the node that initialises it).',
  ),
  postgresql: postgresqlSection.describe('The local PostgreSQL.'),
  tags: tagsSection.describe('Tags of this node, published in its member key.'),
  watchdog: section({
    mode: watchdogMode.describe(
      'off; automatic: use the device when it can be opened; required: refuse to lead without it.',
    ),
    device: z.preprocess(asText, z.string().min(1).default('/dev/watchdog')).describe('The watchdog device.'),
    driver: z
      .preprocess(asText, z.string().min(1).default('default'))
      .describe(
        "default: the Linux watchdog device; testing: Patroni's test device, a named pipe whose reader notes pings and the timeout. Another name, as Patroni: no watchdog (mode required then refuses to lead).",
      ),
    safety_margin: int(-1, 5).describe(
      'Seconds before its leader key can expire at which a leader that could not renew it stops PostgreSQL (at least 2, at most ttl / 2).',
    ),
  }).describe('Linux watchdog device, armed on the leader so the machine resets if the agent hangs.'),
  log: section({
    type: choice(['plain', 'json'], 'plain').describe(
      'plain: one line of text per event; json: one JSON object per line.',
    ),
    level: z
      .preprocess(
        (v) => (typeof v === 'string' ? v.trim().toUpperCase() : blank(v)),
        z.enum(LOG_LEVELS).default('INFO'),
      )
      .describe('DEBUG, INFO, WARNING, ERROR or CRITICAL (PATRONI_LOG_LEVEL).'),
    dir: optText().describe(
      'Directory of the log file patroni.log; default: standard error (the journal under systemd).',
    ),
  }).describe('Logging.'),
  ctl: section({
    authentication: z
      .preprocess(
        blank,
        z
          .strictObject({
            username: text().describe('User name sent to the REST API.'),
            password: optText().describe('Its password.'),
          })
          .optional(),
      )
      .describe("HTTP Basic credentials for the REST API's writes (default: restapi.authentication)."),
    insecure: optBool().describe("Do not verify the REST API's TLS certificates (as -k/--insecure)."),
    cacert: optText().describe("CA that signed the REST API's certificates (default: restapi.cafile)."),
    certfile: optText().describe(
      'Client certificate (PEM) sent to the REST API (default: restapi.certfile).',
    ),
    keyfile: optText().describe('Private key of certfile (default: restapi.keyfile).'),
    keyfile_password: optText().describe(
      'Password of an encrypted keyfile (default: restapi.keyfile_password).',
    ),
  }).describe(
    "pgha ctl (patronictl): how it talks to the REST API; the agent uses its TLS keys for requests to other members' REST APIs, as Patroni does.",
  ),
  router: routerSection.describe("pgha router: HAProxy's part (pgha extension)."),
  vip: z
    .preprocess(blank, vipSection.optional())
    .describe("pgha vip: the virtual IP, Keepalived's part (pgha extension)."),
});

export type ParsedFile = z.output<typeof fileSchema>;

// ---------------------------------------------------------------------------------------------------
// Issue formatting

/** zod's messages, rephrased in the user's terms. */
export const errorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'required';
      return `expected ${iss.expected === 'object' || iss.expected === 'record' ? 'a mapping' : iss.expected === 'array' ? 'a list' : `a ${iss.expected}`}, got ${describe(iss.input)}`;
    case 'too_small':
      if (iss.origin === 'string' && iss.minimum === 1) return 'must not be empty';
      if (iss.origin === 'array')
        return `must have at least ${iss.minimum} entr${iss.minimum === 1 ? 'y' : 'ies'}`;
      return `must be at least ${iss.minimum}, got ${describe(iss.input)}`;
    case 'too_big':
      return `must be at most ${iss.maximum}, got ${describe(iss.input)}`;
    case 'invalid_value':
      return `expected one of ${iss.values.map(String).join(', ')}, got ${describe(iss.input)}`;
    default:
      return undefined;
  }
};

/** Dotted path in the user's terms: `postgresql.authentication.superuser.username`, `bootstrap.initdb[1]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

/** One zod issue as `path.to.key: what is wrong` (or just the message at the top level). */
export function formatIssue(issue: z.core.$ZodIssue, prefix: readonly PropertyKey[] = []): string {
  const path = formatPath([...prefix, ...issue.path]);
  return path ? `${path}: ${issue.message}` : issue.message;
}

/**
 * The zod schema for Patroni's YAML and for the dynamic configuration in the DCS: the single source of
 * validation, coercion and defaults. Field names follow Patroni's on purpose.
 *
 * Objects are strict so unknown keys surface as `unrecognized_keys` issues; `load.ts` turns those into
 * warnings (see `UNSUPPORTED_KEYS`) rather than errors.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import type { DynamicConfig, EtcdConfig, HostPort, ListenAddress } from './types.js';

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
const withoutNulls = (v: unknown): unknown =>
  isRecord(v)
    ? Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null && x !== undefined))
    : asMap(v);

const text = () => z.preprocess(asText, z.string().min(1));
const optText = () => z.preprocess(asText, z.string().optional());
const bool = (dflt: boolean) => z.preprocess(asBool, z.boolean().default(dflt));
const optBool = () => z.preprocess(asBool, z.boolean().optional());
const int = (min: number, dflt: number) => z.preprocess(asInt, z.number().int().min(min).default(dflt));
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
    use_pg_rewind: bool(false),
    use_slots: bool(true),
    parameters: parameters(),
    pg_hba: textList(),
    recovery_conf: z.preprocess(withoutNulls, z.record(z.string(), scalar)).optional(),
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
 * (ttl 20, retry_timeout 3) so tests can run fast clusters; the cross-field rule is `checkTimeouts`.
 */
export const dynamicConfigSchema = z.looseObject({
  ttl: int(2, 30),
  loop_wait: int(1, 10),
  retry_timeout: int(1, 10),
  maximum_lag_on_failover: int(0, 1048576),
  primary_start_timeout: int(0, 300),
  primary_stop_timeout: int(0, 0),
  synchronous_mode: synchronousMode.default(false),
  synchronous_mode_strict: bool(false),
  synchronous_node_count: int(1, 1),
  failsafe_mode: bool(false),
  /** pgha extension: fail over without waiting for the lease when a leader's processes are proven gone. */
  fast_failover: bool(true),
  check_timeline: bool(false),
  pause: bool(false),
  postgresql: dynamicPostgresql,
});

/** Cross-field timing rule: the leader lease must outlive one loop plus two retry timeouts. */
export function checkTimeouts(
  c: Pick<DynamicConfig, 'ttl' | 'loop_wait' | 'retry_timeout'>,
): string | undefined {
  const min = c.loop_wait + 2 * c.retry_timeout;
  if (c.ttl >= min) return undefined;
  return (
    `ttl: must be at least loop_wait + 2 × retry_timeout (${c.loop_wait} + 2 × ${c.retry_timeout} = ${min}), ` +
    `got ${c.ttl}`
  );
}

/**
 * Validates a dynamic configuration (from `bootstrap.dcs` or the `config` key) and applies Patroni's
 * defaults. A field that is invalid falls back to its default, so a bad value written to etcd cannot stop
 * the loop; every problem is returned as `key: what is wrong` for the caller to report or refuse.
 */
export function parseDynamicConfig(raw: unknown): { config: DynamicConfig; errors: string[] } {
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
  const config: DynamicConfig = {
    ttl: d.ttl,
    loop_wait: d.loop_wait,
    retry_timeout: d.retry_timeout,
    maximum_lag_on_failover: d.maximum_lag_on_failover,
    primary_start_timeout: d.primary_start_timeout,
    primary_stop_timeout: d.primary_stop_timeout,
    synchronous_mode: d.synchronous_mode,
    synchronous_mode_strict: d.synchronous_mode_strict,
    synchronous_node_count: d.synchronous_node_count,
    failsafe_mode: d.failsafe_mode,
    fast_failover: d.fast_failover,
    check_timeline: d.check_timeline,
    pause: d.pause,
    postgresql: {
      use_pg_rewind: d.postgresql.use_pg_rewind,
      use_slots: d.postgresql.use_slots,
      parameters: d.postgresql.parameters,
      ...(d.postgresql.pg_hba ? { pg_hba: d.postgresql.pg_hba } : {}),
      ...(d.postgresql.recovery_conf ? { recovery_conf: d.postgresql.recovery_conf } : {}),
    },
    raw: rawObj,
  };
  const timeouts = checkTimeouts(config);
  if (timeouts) errors.push(timeouts);
  return { config, errors };
}

// ---------------------------------------------------------------------------------------------------
// The local YAML file

/** `etcd3` / `etcd` section; normalised into `EtcdConfig` by `normaliseEtcd`. */
export const etcdSection = section({
  host: optText(),
  hosts: commaList(),
  url: optText(),
  urls: commaList(),
  protocol: z.preprocess(asText, z.enum(['http', 'https']).optional()),
  username: optText(),
  password: optText(),
  cacert: optText(),
  cert: optText(),
  key: optText(),
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

const credentialsShape = () => z.strictObject({ username: text(), password: optText() });
const credentials = () => z.preprocess(asMap, credentialsShape());
const optCredentials = () => z.preprocess(blank, credentialsShape().optional());

const CALLBACKS = ['on_start', 'on_stop', 'on_restart', 'on_reload', 'on_role_change'] as const;

const postgresqlSection = section({
  listen: listen(5432),
  connect_address: hostPortText(5432),
  data_dir: text(),
  bin_dir: optText(),
  config_dir: optText(),
  pgpass: optText(),
  authentication: section({
    superuser: credentials(),
    replication: credentials(),
    rewind: optCredentials(),
  }),
  parameters: parameters(),
  pg_hba: textList(),
  pg_ident: textList(),
  callbacks: section(
    Object.fromEntries(CALLBACKS.map((c) => [c, optText()])) as Record<
      (typeof CALLBACKS)[number],
      ReturnType<typeof optText>
    >,
  ),
  create_replica_methods: z.preprocess(
    blank,
    z.array(z.preprocess(asText, z.string())).min(1).default(['basebackup']),
  ),
  basebackup: toolOptions(),
  use_unix_socket: bool(false),
  unix_socket_directories: optText(),
  remove_data_directory_on_rewind_failure: bool(false),
  remove_data_directory_on_diverged_timelines: bool(false),
  os_user: z.preprocess(asText, z.string().min(1).default('postgres')),
});

const bootstrapSection = section({
  dcs: z.preprocess(asMap, z.record(z.string(), z.unknown())),
  initdb: toolOptions(),
  pg_hba: textList(),
  users: z.preprocess(
    blank,
    z
      .record(z.string(), z.preprocess(asMap, z.strictObject({ password: optText(), options: textList() })))
      .optional(),
  ),
  post_bootstrap: optText(),
  post_init: optText(),
  method: optText(),
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
    nofailover: bool(false),
    noloadbalance: bool(false),
    clonefrom: bool(false),
    nosync: bool(false),
    nostream: optBool(),
    failover_priority: z.preprocess(asInt, z.number().int().min(0).optional()),
    replicatefrom: optText(),
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
  listen: listen(5433).default({ hosts: ['0.0.0.0'], port: 5433 }),
  replica_listen: z.preprocess(blank, listen(5434).optional()),
  status_listen: z.preprocess(blank, listen(8009).optional()),
  balance: z.preprocess(
    (v) => (typeof v === 'string' ? v.trim().toLowerCase().replaceAll('_', '-') : blank(v)),
    z.enum(['round-robin', 'least-connections']).default('round-robin'),
  ),
  max_lag: bytes(),
  fallback_to_primary: bool(false),
  wait_timeout: seconds(30),
  connect_timeout: seconds(5),
  check_interval: z.preprocess(
    (v) => (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : blank(v)),
    z.number().min(0.05).default(1),
  ),
  verify_primary: bool(true),
});

/**
 * `vip:` — `pgha vip`, the virtual IP (pgha extension; Keepalived's part in the seed). Types: `VipConfig`;
 * the router health URL's default (from `router.status_listen`) is filled by `src/vip/config.ts`.
 */
export const vipSection = z
  .strictObject({
    /** The virtual address clients connect to (IPv4 or IPv6). */
    address: z.preprocess(
      asText,
      z.string().refine((s) => isIP(s.trim()) !== 0, {
        error: (iss) => `expected an IPv4 or IPv6 address, got ${describe(iss.input)}`,
      }),
    ),
    /** Prefix length of the address on the interface; 32 (IPv4) or 128 (IPv6) when absent, as Keepalived. */
    prefix: z.preprocess(asInt, z.number().int().min(1).max(128).optional()),
    /** The network interface that carries the address. */
    interface: z.preprocess(
      asText,
      z.string().refine((s) => /^[^\s/:]{1,15}$/.test(s), {
        error: (iss) =>
          `expected an interface name (1-15 characters, no spaces, "/" or ":"), got ${describe(iss.input)}`,
      }),
    ),
    /** `leader`: on the node holding the leader key; `router`: on one node whose local router is healthy. */
    mode: z.preprocess(
      (v) => (typeof v === 'string' ? v.trim().toLowerCase() : blank(v)),
      z.enum(['leader', 'router']).default('leader'),
    ),
    /** Seconds the VIP key's etcd lease lives without renewal; the address is dropped 2 s before. */
    ttl: int(4, 10),
    /** Seconds between checks (etcd renewal, router health, the address on the interface). */
    check_interval: z.preprocess(
      (v) => (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : blank(v)),
      z.number().min(0.1).default(1),
    ),
    /** Router mode: the local router's status URL; 2xx means healthy. */
    router_health_url: z.preprocess(
      asText,
      z
        .string()
        .refine((s) => /^https?:\/\/[^/]/.test(s) && URL.canParse(s), {
          error: (iss) => `expected an http(s) URL, got ${describe(iss.input)}`,
        })
        .optional(),
    ),
    /** Router mode: consecutive failed checks (timeouts, errors) before the router counts as down. */
    fall: int(1, 2),
    /** Router mode: consecutive good checks before a down router counts as healthy again. */
    rise: int(1, 1),
    /** Gratuitous ARP packets sent on takeover (IPv4; 0: none). */
    arp_count: int(0, 3),
    /** HTTP status (`GET /status`) and Prometheus metrics (`GET /metrics`). Absent: none. */
    status_listen: z.preprocess(blank, listen(8010).optional()),
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
  scope: text(),
  namespace: z.preprocess(asText, z.string().default('/service/')),
  name: text(),
  restapi: section({
    listen: listen(),
    connect_address: hostPortText(),
    authentication: z.preprocess(blank, z.strictObject({ username: text(), password: text() }).optional()),
    certfile: optText(),
    keyfile: optText(),
    keyfile_password: optText(),
    cafile: optText(),
    verify_client: z.preprocess(asText, z.enum(['none', 'optional', 'required']).optional()),
    allowlist: textList(),
    allowlist_include_members: optBool(),
    http_extra_headers: z.preprocess(
      blank,
      z.record(z.string(), z.preprocess(asText, z.string())).optional(),
    ),
  }),
  etcd3: z.preprocess(blank, etcdSection.optional()),
  etcd: z.preprocess(blank, etcdSection.optional()),
  bootstrap: bootstrapSection,
  postgresql: postgresqlSection,
  tags: tagsSection,
  watchdog: section({
    mode: watchdogMode,
    device: z.preprocess(asText, z.string().min(1).default('/dev/watchdog')),
    safety_margin: int(-1, 5),
  }),
  log: section({
    type: z.preprocess(
      (v) => (typeof v === 'string' ? v.trim().toLowerCase() : blank(v)),
      z.enum(['plain', 'json']).default('plain'),
    ),
    level: z.preprocess(
      (v) => (typeof v === 'string' ? v.trim().toUpperCase() : blank(v)),
      z.enum(LOG_LEVELS).default('INFO'),
    ),
    dir: optText(),
  }),
  router: routerSection,
  vip: z.preprocess(blank, vipSection.optional()),
});

export type ParsedFile = z.output<typeof fileSchema>;

/**
 * Keys Patroni knows that pgha accepts but does not act on (patterns, `*` = one key). Anything else
 * unrecognised is reported as "unknown key".
 */
export const UNSUPPORTED_KEYS: readonly string[] = [
  'ctl',
  'citus',
  'consul',
  'zookeeper',
  'exhibitor',
  'kubernetes',
  'raft',
  'etcd3.proxy',
  'etcd3.srv',
  'etcd3.srv_suffix',
  'etcd3.use_proxies',
  'etcd3.retry_timeout',
  'etcd.proxy',
  'etcd.srv',
  'etcd.srv_suffix',
  'etcd.use_proxies',
  'restapi.https_extra_headers',
  'restapi.request_queue_size',
  'restapi.ciphers',
  'restapi.server_tokens',
  'restapi.proxy_address',
  'postgresql.authentication.*.ssl*',
  'postgresql.authentication.*.gssencmode',
  'postgresql.authentication.*.channel_binding',
  'postgresql.proxy_address',
  'postgresql.custom_conf',
  'postgresql.recovery_conf',
  'postgresql.pg_ctl_timeout',
  'postgresql.use_pg_rewind',
  'postgresql.use_slots',
  'postgresql.use_unix_socket_repl',
  'postgresql.pre_promote',
  'postgresql.before_stop',
  'postgresql.bin_name',
  'watchdog.driver',
  'log.format',
  'log.dateformat',
  'log.traceback_level',
  'log.max_queue_size',
  'log.file_num',
  'log.file_size',
  'log.loggers',
  'log.static_fields',
  'log.mode',
  'log.deduplicate_heartbeat_logs',
];

const UNSUPPORTED_RE = UNSUPPORTED_KEYS.map(
  (p) =>
    new RegExp(
      '^' +
        p
          .split('.')
          .map((s) => s.replace(/[|\\{}()[\]^$+?]/g, '\\$&').replaceAll('*', '[^.]*'))
          .join('\\.') +
        '$',
    ),
);

/** True when `dottedPath` is a Patroni key that pgha knowingly ignores. */
export function isUnsupportedKey(dottedPath: string): boolean {
  return UNSUPPORTED_RE.some((re) => re.test(dottedPath));
}

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

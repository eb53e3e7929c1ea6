/**
 * The normalised configuration, after YAML, environment overrides and defaults.
 * Key names follow Patroni's YAML on purpose (snake_case), so a reader can map each field to
 * Patroni's documentation; `src/config/schema.ts` is the single source of validation and defaults.
 */

export interface HostPort {
  host: string;
  port: number;
}

/** A `listen` value: Patroni accepts `host:port` with several comma-separated hosts. */
export interface ListenAddress {
  hosts: string[];
  port: number;
}

/**
 * libpq's TLS and GSS connection settings a role may carry under `postgresql.authentication.<role>`
 * (Patroni passes them to every connection it makes as that role).
 */
export const LIBPQ_TLS_KEYS = [
  'sslmode',
  'sslkey',
  'sslpassword',
  'sslcert',
  'sslrootcert',
  'sslcrl',
  'sslcrldir',
  'sslnegotiation',
  'gssencmode',
  'channel_binding',
] as const;
export type LibpqTlsKey = (typeof LIBPQ_TLS_KEYS)[number];

export interface Credentials extends Partial<Record<LibpqTlsKey, string>> {
  username: string;
  password?: string;
}

export interface EtcdConfig {
  /** `host:port` entries, normalised from `host`, `hosts` (list or comma-separated) or `url(s)`. */
  hosts: string[];
  protocol: 'http' | 'https';
  username?: string;
  password?: string;
  cacert?: string;
  cert?: string;
  key?: string;
}

export interface RestApiConfig {
  listen: ListenAddress;
  /** host:port other members and tools use to reach this API. */
  connect_address: string;
  authentication?: Credentials & { password: string };
  certfile?: string;
  keyfile?: string;
  keyfile_password?: string;
  cafile?: string;
  verify_client?: 'none' | 'optional' | 'required';
  allowlist?: string[];
  allowlist_include_members?: boolean;
  http_extra_headers?: Record<string, string>;
}

/** The `ctl:` keys that decide how REST API clients use TLS (the agent's requests to peers too). */
export interface CtlTlsConfig {
  insecure?: boolean;
  cacert?: string;
  certfile?: string;
  keyfile?: string;
  keyfile_password?: string;
}

export type CallbackName = 'on_start' | 'on_stop' | 'on_restart' | 'on_reload' | 'on_role_change';

export interface PostgresqlConfig {
  listen: ListenAddress;
  connect_address: string;
  data_dir: string;
  /** Resolved at load time when not given: the newest installed PostgreSQL 13..17 (Debian layout). */
  bin_dir: string;
  /** Where postgresql.conf / pg_hba.conf live (Debian's split layout); defaults to data_dir. */
  config_dir: string;
  pgpass: string;
  authentication: {
    superuser: Credentials;
    replication: Credentials;
    rewind?: Credentials;
  };
  parameters: Record<string, string | number | boolean>;
  pg_hba?: string[];
  pg_ident?: string[];
  callbacks: Partial<Record<CallbackName, string>>;
  create_replica_methods: string[];
  /** pg_basebackup options: list of `flag` or `{flag: value}` entries, as in Patroni. */
  basebackup: Array<string | Record<string, string | number>>;
  use_unix_socket: boolean;
  unix_socket_directories?: string;
  remove_data_directory_on_rewind_failure: boolean;
  remove_data_directory_on_diverged_timelines: boolean;
  /** pgha extension: OS user that owns and runs PostgreSQL when the agent runs as root. */
  os_user: string;
  /** Recovery settings (restore_command, ...) every replica of this node runs with (Patroni's). */
  recovery_conf?: Record<string, string | number | boolean>;
  /**
   * The sections of custom replica creation methods (`postgresql.<method>`), by method name: `command`,
   * `keep_data`, `no_params`, `no_leader` (`no_master`) and any other key, passed as `--key=value`.
   */
  replica_methods?: Record<string, ReplicaMethodConfig>;
}

/** A custom way to create a replica's data (`postgresql.create_replica_methods` names it). */
export interface ReplicaMethodConfig {
  /** The command; the method's name when absent (Patroni runs the name as the command). */
  command?: string;
  /** Leave the data directory as it is before the command runs (default: emptied). */
  keep_data: boolean;
  /** Pass no `--scope`, `--role`, `--datadir`, `--connstring` and no other option. */
  no_params: boolean;
  /** Works without a running member to copy from (a restore from a backup). */
  no_leader: boolean;
  /** The other keys, passed to the command as `--key=value`. */
  options: Record<string, string>;
}

/** The section a custom `bootstrap.method` names (`bootstrap.<method>`). */
export interface BootstrapMethodConfig {
  command: string;
  /** Pass no `--scope` and `--datadir`. */
  no_params: boolean;
  /** Keep the recovery configuration the command left (standby.signal / recovery.signal). */
  keep_existing_recovery_conf: boolean;
  /** Recovery settings to start the restored data with (recovery.signal and these parameters). */
  recovery_conf?: Record<string, string | number | boolean>;
}

/** `standby_cluster` of the dynamic configuration: this cluster replicates from another one. */
export interface StandbyClusterConfig {
  host?: string;
  port?: number;
  primary_slot_name?: string;
  restore_command?: string;
  archive_cleanup_command?: string;
  recovery_min_apply_delay?: string;
  /** How the standby leader creates its data; default basebackup from host:port. */
  create_replica_methods?: string[];
}

export interface BootstrapConfig {
  /** Raw dynamic configuration written to the `config` key by the node that initialises the cluster. */
  dcs: Record<string, unknown>;
  /** initdb options: `flag` or `{flag: value}` entries, as in Patroni. */
  initdb: Array<string | Record<string, string | number>>;
  pg_hba?: string[];
  users?: Record<string, { password?: string; options?: string[] }>;
  post_bootstrap?: string;
  post_init?: string;
  /** Patroni's `bootstrap.method`: `initdb` (the default) or the name of a section in `methods`. */
  method?: string;
  /** The section `method` names, when it is not initdb. */
  methods?: Record<string, BootstrapMethodConfig>;
}

export interface TagsConfig {
  /** Unset: failover_priority decides (0 or less: never promoted), as Patroni. */
  nofailover?: boolean;
  noloadbalance: boolean;
  clonefrom: boolean;
  nosync: boolean;
  nostream?: boolean;
  failover_priority?: number;
  replicatefrom?: string;
  /** Any other user-defined tags, published as they are. */
  [tag: string]: unknown;
}

export interface WatchdogConfig {
  mode: 'off' | 'automatic' | 'required';
  device: string;
  /** `default` (Linux device) or `testing` (Patroni's named-pipe test device); others: no watchdog. */
  driver: string;
  safety_margin: number;
}

export interface LogConfig {
  type: 'plain' | 'json';
  level: string;
  dir?: string;
}

/** `router:` — `pgha router`, the connection router (pgha extension; Patroni has none). */
export interface RouterConfig {
  /** Read-write port: every connection goes to the primary. Default `0.0.0.0:5433` (the seed's HAProxy port). */
  listen: ListenAddress;
  /** Read-only port: connections spread over healthy streaming replicas. Absent: no read-only port. */
  replica_listen?: ListenAddress;
  /** HTTP status (`GET /status`) and Prometheus metrics (`GET /metrics`). Absent: none. */
  status_listen?: ListenAddress;
  /** How the read-only port picks a replica. */
  balance: 'round-robin' | 'least-connections';
  /** Replicas further behind the leader than this many bytes are not used (`16MB` style allowed). */
  max_lag?: number;
  /** Read-only port: use the primary when no replica qualifies. */
  fallback_to_primary: boolean;
  /** Seconds a new connection waits for a primary (or a replica) before it is refused. */
  wait_timeout: number;
  /** Seconds to wait for a backend's TCP connect. */
  connect_timeout: number;
  /** Seconds between the linearizable etcd reads that prove the router's view is current. */
  check_interval: number;
  /** Ask a new primary's agent (`GET /primary`) before sending writes to it. */
  verify_primary: boolean;
  /** Who copies bytes after the startup phase: `native` (required), `javascript`, or `auto`. */
  data_path: 'auto' | 'native' | 'javascript';
  /** Seconds a replica may stay unfit for reads before its read-only sessions are closed. */
  replica_grace: number;
  /** Threads of the native data path (1 to 16). */
  relay_threads: number;
  /** Seconds a switchover lets transactions finish before it cuts their sessions. */
  drain_timeout: number;
  /** The router terminates clients' TLS with this certificate and key (PEM files). */
  tls?: { certificate: string; key: string };
}

/** `vip:` — `pgha vip`, the virtual IP (pgha extension; Keepalived's part in the seed). */
export interface VipConfig {
  /** The virtual address, IPv4 or IPv6 (IPv6 in canonical form). */
  address: string;
  family: 4 | 6;
  /** Prefix length on the interface: 32 / 128 by default, as Keepalived. */
  prefix: number;
  /** The network interface that carries the address. */
  interface: string;
  /** `leader`: the node holding the leader key holds the VIP; `router`: one node whose router is healthy. */
  mode: 'leader' | 'router';
  /** Seconds the VIP key's etcd lease lives without renewal. */
  ttl: number;
  /** Seconds between checks. */
  check_interval: number;
  /** Router mode: the local router's status URL (default from `router.status_listen`). */
  router_health_url?: string;
  /** Router mode: failed checks before the router counts as down, good checks before it is up again. */
  fall: number;
  rise: number;
  /** Gratuitous ARP packets sent on takeover (IPv4). */
  arp_count: number;
  /** HTTP status and Prometheus metrics. Absent: none. */
  status_listen?: ListenAddress;
}

export interface PghaConfig {
  scope: string;
  /** Always starts and ends with `/` (Patroni's default is `/service/`). */
  namespace: string;
  name: string;
  restapi: RestApiConfig;
  etcd: EtcdConfig;
  bootstrap: BootstrapConfig;
  postgresql: PostgresqlConfig;
  tags: TagsConfig;
  watchdog: WatchdogConfig;
  log: LogConfig;
  /**
   * `ctl:` TLS settings, which the agent also uses for its requests to other members' REST APIs
   * (as Patroni's): a client certificate and key, the CA, and `insecure` (no host name check).
   */
  ctl?: CtlTlsConfig;
  /** `router:` section; only `pgha router` reads it (`loadRouterConfig` in `src/router/command.ts`). */
  router?: RouterConfig;
  /** `vip:` section; only `pgha vip` reads it (`loadVipConfig` in `src/vip/config.ts`). */
  vip?: VipConfig;
  /** Path of the YAML file the config came from, when any. */
  source?: string;
}

/** One permanent replication slot of the dynamic configuration (`slots.<name>`). */
export type PermanentSlot =
  | {
      name: string;
      type: 'physical';
      /** Only in a primary (`primary`) or a standby (`standby`) cluster; absent: both. */
      cluster_type?: 'primary' | 'standby';
    }
  | { name: string; type: 'logical'; database: string; plugin: string };

/** One `ignore_slots` entry: a slot matching every attribute given (any subset) is ignored. */
export interface IgnoreSlotMatcher {
  name?: string;
  type?: string;
  database?: string;
  plugin?: string;
}

/**
 * The dynamic configuration stored in the `config` key, with defaults applied.
 * Unknown keys are kept in `raw` so a round trip through pgha never drops what Patroni wrote.
 */
export interface DynamicConfig {
  ttl: number;
  loop_wait: number;
  retry_timeout: number;
  maximum_lag_on_failover: number;
  /** Bytes a synchronous standby may lag before it is replaced; 0 or less: never. */
  maximum_lag_on_syncnode: number;
  primary_start_timeout: number;
  primary_stop_timeout: number;
  synchronous_mode: boolean | 'quorum';
  synchronous_mode_strict: boolean;
  synchronous_node_count: number;
  failsafe_mode: boolean;
  /**
   * pgha extension: when the leader's PostgreSQL and REST ports both refuse connections (its host is
   * up, its processes are gone), replicas release its key at once instead of waiting out its lease.
   */
  fast_failover: boolean;
  /**
   * pgha extension: the leader's agent hands etcd's raft leadership away from the member on its own
   * host, so that losing that host does not also cost etcd an election (ha/etcd-leader.ts).
   */
  move_etcd_leader: boolean;
  check_timeline: boolean;
  pause: boolean;
  /**
   * Permanent replication slots (`slots`; Patroni also reads `permanent_slots` and
   * `permanent_replication_slots`), valid entries only, in the order written.
   */
  slots: PermanentSlot[];
  /** `ignore_slots`: slots matching any of these are never dropped. */
  ignore_slots: IgnoreSlotMatcher[];
  /** Seconds the slot of a member whose key is gone is kept (Patroni 4; default 30 min, 0: at once). */
  member_slots_ttl: number;
  postgresql: {
    use_pg_rewind: boolean;
    use_slots: boolean;
    parameters: Record<string, string | number | boolean>;
    pg_hba?: string[];
    recovery_conf?: Record<string, string | number | boolean>;
  };
  /** Set when this is a standby cluster (a section naming host, port or restore_command, as Patroni). */
  standby_cluster?: StandbyClusterConfig;
  raw: Record<string, unknown>;
  /**
   * Set when the configuration holds a key pgha cannot honour safely (see `config/keys.ts`): why the
   * agents must not act on PostgreSQL while it is there.
   */
  hold?: string;
}

export interface LoadResult {
  config?: PghaConfig;
  /** Fatal problems, each `path.to.key: what is wrong`. */
  errors: string[];
  /** Keys that are valid Patroni but not acted on by pgha yet, and other non-fatal remarks. */
  warnings: string[];
  /**
   * Keys pgha cannot safely ignore (`standby_cluster`, `postgresql.pre_promote`, ...): the agent refuses
   * to start on any of them; other commands (pgha ctl, router) carry on.
   */
  refusals?: string[];
}

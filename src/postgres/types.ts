/**
 * What the HA loop needs from the local PostgreSQL server. Only `src/postgres/` spawns PostgreSQL
 * tools or opens SQL connections to the local node; `ha/` sees these plain types.
 */

export type StopMode = 'smart' | 'fast' | 'immediate';

/** How to reach another member's PostgreSQL (from its `conn_url`), for cloning and streaming. */
export interface ConnTarget {
  host: string;
  port: number;
  /** Member name of the source, used for logging and for application_name on our side. */
  member: string;
}

/** The parts of `pg_controldata` the agent reasons about. */
export interface ControlData {
  systemIdentifier: string;
  /** "in production", "shut down", "shut down in recovery", "in archive recovery", "in crash recovery", ... */
  clusterState: string;
  /** Timeline of the latest checkpoint. */
  timeline: number;
  /** LSN of the latest checkpoint (redo location in bytes). */
  checkpointLsn: number;
  /** Minimum recovery ending location, for a stopped replica. */
  minRecoveryLsn: number;
  dataChecksums: boolean;
  walLogHints: boolean;
  raw: Record<string, string>;
}

/** One line of a timeline history file: `timeline` ended at `lsn` (and why, as PostgreSQL wrote it). */
export interface TimelineSwitch {
  timeline: number;
  lsn: number;
  reason?: string;
}

/** A replication slot on this server (temporary ones are left out), from pg_replication_slots. */
export interface ReplicationSlot {
  name: string;
  type: 'physical' | 'logical';
  active: boolean;
  /** Logical: its database and output plugin. */
  database: string | null;
  plugin: string | null;
  restartLsn: number | null;
  /** Logical: how far its consumer confirmed. */
  confirmedFlushLsn: number | null;
  catalogXmin: number | null;
  /** Physical: the xmin hot_standby_feedback set through it. */
  xmin: number | null;
  /** PostgreSQL 13+: reserved, extended, unreserved or lost. */
  walStatus: string | null;
  /** PostgreSQL 17+: a failover slot (PostgreSQL synchronises it to standbys itself). */
  failover: boolean;
}

/** A logical slot on the leader, with its state file, for a replica to install as its own copy. */
export interface SlotCopy {
  name: string;
  database: string;
  plugin: string;
  confirmedFlushLsn: number;
  /** Where decoding of the copy starts: a replica needs the WAL from here on. */
  restartLsn: number;
  catalogXmin: number | null;
  /** The content of `pg_replslot/<name>/state` on the leader. */
  state: Uint8Array;
}

/** The outcome of pg_replication_slot_advance. */
export type AdvanceResult =
  | { ok: true }
  /** `walGone`: the WAL it needs is gone or the slot was invalidated (a fresh copy is needed). */
  | { ok: false; error: string; walGone: boolean };

/** A record a replica could not apply, from its server log (a fork on the same timeline number). */
export interface ReplayError {
  lsn: number;
  message: string;
}

/** A snapshot of a running server, read with SQL. */
export interface ServerStatus {
  inRecovery: boolean;
  timeline: number;
  /** Primary: pg_current_wal_lsn. Replica: the greater of receive and replay LSN. */
  walPosition: number;
  receiveLsn?: number;
  replayLsn?: number;
  replayTimestamp?: string | null;
  replayPaused?: boolean;
  /** Replica: 'streaming' when a WAL receiver is connected. */
  replicationState?: string;
  /** Replica: host of the upstream the WAL receiver streams from. */
  receiverUpstream?: { host: string; port: number } | null;
  systemIdentifier: string;
  serverVersion: number;
  postmasterStartTime: string;
  pendingRestart: boolean;
  /** Primary: rows of pg_stat_replication. */
  replication: Array<{
    usename: string;
    application_name: string;
    client_addr: string | null;
    state: string;
    sync_state: string;
    sync_priority: number;
    write_lsn?: number;
    flush_lsn?: number;
    replay_lsn?: number;
  }>;
  /** Primary: synchronous_commit in force (which standby position a commit waits for). */
  synchronousCommit?: string;
}

/** One walsender as the leader's standby watch sees it (pg_stat_replication). */
export interface WalSender {
  pid: number;
  /** application_name: the member's name. */
  name: string;
  streaming: boolean;
  /** WAL positions: sent to the standby, and flushed there by its last answer. */
  sent?: number;
  flushed?: number;
  /** When its last answer arrived (PostgreSQL's text), compared for change only. */
  replyTime: string | null;
}

/** How the server should run when (re)configured. */
export interface RoleConfig {
  role: 'primary' | 'replica';
  /** Replica: where to stream from; null means a replica with no upstream (waits for a leader). */
  upstream?: ConnTarget | null;
  /** Replica: physical slot on the upstream to use (`primary_slot_name`). */
  slotName?: string | null;
  /** Server parameters from the dynamic config merged with local ones (local wins). */
  parameters: Record<string, string | number | boolean>;
  /** pg_hba lines; when undefined, the existing pg_hba.conf is left as it is. */
  pgHba?: string[];
  /** Replica: recovery settings written with primary_conninfo (restore_command, ...). */
  recovery?: Record<string, string>;
  /**
   * Primary role only, while a restored backup starts (a custom bootstrap): `recovery` writes
   * recovery.signal with `recovery` settings (archive recovery, then promotion); `keep` leaves the
   * signal files the restore left. Default: no signal file.
   */
  signal?: 'recovery' | 'keep';
}

/** What a user's command (custom bootstrap, replica method, post_bootstrap) ended with. */
export interface CommandResult {
  code: number | null;
  /** The last lines it printed. */
  output: string;
}

export interface PostgresNode {
  /** `empty` (missing or no files), `initialized` (has PG_VERSION), or `invalid` (files but no cluster). */
  dataDirectoryState(): Promise<'empty' | 'initialized' | 'invalid'>;
  controlData(): Promise<ControlData | null>;
  /** True when a postmaster for this data directory is alive (postmaster.pid + signal 0). */
  isRunning(): Promise<boolean>;
  /** Pid of the running postmaster, or null. */
  postmasterPid(): Promise<number | null>;
  /** Reads status over SQL; null when the server does not accept connections. */
  status(signal?: AbortSignal): Promise<ServerStatus | null>;
  /**
   * Calls `listener` when the agent's session to the server ends without the agent ending it (a
   * crash, a kill, a stop by someone else): the HA loop then looks at once.
   */
  onConnectionLost?(listener: () => void): void;
  /**
   * Primary: its walsenders now (pg_stat_replication); null when the server takes no connection.
   * Light enough to ask often.
   */
  walSenders?(signal?: AbortSignal): Promise<WalSender[] | null>;
  /** Ends the session `walSenders` keeps open, when there is nothing more to watch. */
  endWalSenders?(): Promise<void>;
  /**
   * Primary: writes one small WAL record (a logical decoding message, prefix `pgha`, not
   * transactional: no commit waits for it), so every standby receives WAL and answers within the
   * WAL writer's delay.
   */
  nudgeStandbys?(): Promise<void>;
  /** Why the last `status()` got no connection (e.g. a wrong password), or null when it got one. */
  readonly lastConnectionError?: string | null;
  /** The major version of the binaries in bin_dir, e.g. 15. */
  binaryVersion(): Promise<number>;

  /** Runs initdb with the configured options (data checksums on) as the OS user. */
  initdb(options: Array<string | Record<string, string | number>>, signal?: AbortSignal): Promise<void>;
  /** Clones from another member with pg_basebackup (progress reported through `onProgress`). */
  basebackup(
    source: ConnTarget,
    options: Array<string | Record<string, string | number>>,
    onProgress?: (line: string) => void,
    signal?: AbortSignal,
  ): Promise<void>;
  /** Rewinds a stopped former primary onto `source`'s timeline. Throws when pg_rewind fails. */
  rewind(source: ConnTarget, signal?: AbortSignal, onProgress?: (line: string) => void): Promise<void>;
  /** Deletes the data directory's contents (never the directory's parent). */
  removeDataDirectory(): Promise<void>;

  /** Writes postgresql.conf (pgha's part), pg_hba.conf, standby.signal as the role requires. */
  configure(config: RoleConfig): Promise<void>;
  start(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  stop(mode: StopMode, timeoutMs: number): Promise<void>;
  restart(timeoutMs: number): Promise<void>;
  reload(): Promise<void>;
  /** Promotes a replica and waits until it accepts writes. */
  promote(timeoutMs: number): Promise<void>;
  checkpoint(): Promise<void>;

  /** Runs SQL as the superuser on the local server. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[], signal?: AbortSignal): Promise<T[]>;
  /** Creates or updates the superuser, replication and rewind roles from the config. */
  createUsers(): Promise<void>;
  /** The non-temporary replication slots of the running server. */
  replicationSlots(): Promise<ReplicationSlot[]>;
  /** Where the oldest WAL segment in pg_wal starts; null when unknown. */
  oldestWalLsn(): Promise<number | null>;
  /** Creates a physical slot that reserves WAL at once (as Patroni); no-op when it exists. */
  createPhysicalSlot(name: string): Promise<void>;
  /**
   * Creates a logical slot in `database` with output `plugin`; no-op when it exists. Gives up after
   * `timeoutMs` (it waits for the transactions running when it starts).
   */
  createLogicalSlot(name: string, database: string, plugin: string, timeoutMs: number): Promise<void>;
  /** pg_replication_slot_advance, in the slot's database for a logical one; no statement timeout. */
  advanceSlot(
    name: string,
    database: string | null,
    lsn: number,
    signal?: AbortSignal,
  ): Promise<AdvanceResult>;
  /** Drops a slot unless it is in use; true when it was dropped (false: gone or in use). */
  dropSlot(name: string): Promise<boolean>;
  /** The leader's logical slots of these names with their state files (rewind or superuser credentials). */
  leaderSlotCopies(leader: ConnTarget, names: string[]): Promise<SlotCopy[]>;
  /** catalog_xmin of these slots on the leader (absent: no such slot, or the leader is not a primary). */
  leaderCatalogXmins(leader: ConnTarget, names: string[]): Promise<Record<string, number | null>>;
  /** Installs copies of the leader's logical slots into the stopped data directory (replacing any). */
  installSlotCopies(copies: SlotCopy[]): Promise<void>;
  /** The value of a server setting (`SHOW`), or null when the server is not reachable. */
  setting(name: string): Promise<string | null>;

  /** The ancestors of `timeline` from its history file in pg_wal (empty for timeline 1 or none). */
  timelineHistory(timeline: number): Promise<TimelineSwitch[]>;
  /** Whether standby.signal or recovery.signal exists (the data runs as a replica when started). */
  recoverySignalled(): Promise<boolean>;
  /**
   * Records the server log reported it could not apply since the last call: `invalid record length`,
   * `incorrect prev-link`, ... A stuck replica repeats them at the position it cannot pass.
   */
  replayErrors(): Promise<ReplayError[]>;
  /**
   * The agent's own note that it waits for an operator (a failed rewind), kept beside the data
   * directory so it survives an agent restart; null when none. `null` as value clears it.
   */
  readHold(): Promise<string | null>;
  writeHold(reason: string | null): Promise<void>;

  /**
   * Runs a user's command line (split as a POSIX shell would, run without one) with `args` appended,
   * as the OS user PostgreSQL runs as, from the agent's working directory.
   */
  runCommand(
    command: string,
    args: string[],
    opts?: { env?: Record<string, string>; onLine?: (line: string) => void; signal?: AbortSignal },
  ): Promise<CommandResult>;
  /** Removes the data directory when it is empty, so a restore command can create it. */
  prepareForRestore(): Promise<void>;
  /** Makes a data directory a restore command created fit to start (owner, mode 0700). */
  adoptRestoredDataDirectory(): Promise<void>;
  /** Creates the roles of `bootstrap.users` (name → password, options), skipping pgha's own. */
  createBootstrapUsers(users: Record<string, { password?: string; options?: string[] }>): Promise<void>;
  /** A libpq connection string to `source` as the replication user, and a pgpass for it. */
  replicationConnection(source: ConnTarget): Promise<{ connstring: string; env: Record<string, string> }>;
  /** The data directory (absolute). */
  readonly dataDirectory: string;
  /** A libpq connection string for the local server as the superuser, and a pgpass for it. */
  localConnection(): Promise<{ connstring: string; env: Record<string, string> }>;
  /**
   * Writes `patroni.dynamic.json` in the data directory (Patroni's cache of the dynamic
   * configuration); false when there is no initialised data directory to write it in.
   */
  saveDynamicCache(json: string): Promise<boolean>;

  /** Closes SQL connections. */
  close(): Promise<void>;
}

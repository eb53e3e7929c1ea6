/**
 * The local PostgreSQL server: the only code that spawns PostgreSQL programs or opens SQL to the
 * local node. Every program runs as `postgresql.os_user` when the agent runs as root.
 *
 * Files this class owns:
 * - `<config_dir>/postgresql.conf`: rewritten by `configure`; the original becomes `postgresql.base.conf`
 *   and is included (as Patroni does).
 * - `<config_dir>/pg_hba.conf`, `pg_ident.conf`: rewritten only when lines are configured.
 * - `postgresql.pgpass`: the replication, rewind and superuser passwords.
 * - the server log `<data_dir>.log` (a sibling of the data directory, so pg_basebackup and pg_rewind
 *   neither copy nor overwrite it): where `pg_ctl -l` sends the postmaster's stderr.
 */
import { constants as fsc, existsSync } from 'node:fs';
import {
  access,
  chmod,
  chown,
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readFile,
  readdir,
  readlink,
  realpath,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { localHostOf } from '../config/schema.js';
import type { PostgresqlConfig } from '../config/types.js';
import { PostgresError, errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { run, runAsUser, signalPid, type OsUser, type RunResult } from '../util/process.js';
import { splitCommandLine } from '../util/shell.js';
import {
  conninfo,
  PATRONI_DEFAULT_PARAMETERS,
  isManagedConf,
  optionNames,
  renderLinesFile,
  renderPgpass,
  renderPostgresqlConf,
  serverParameters,
  RECOVERY_PARAMETERS,
  toolOptions,
} from './conf.js';
import { describeConverted, describeDropped, settingFromRow, type SettingEntry } from './guc.js';
import {
  formatLsn,
  historyFileName,
  parseHistoryFile,
  parseLsn,
  parseLsnOrUndefined,
  timelineFromWalFileName,
} from './lsn.js';
import { attachedProcesses, lockFilePid, sharedMemoryId, socketLockFiles } from './leftovers.js';
import { procStat } from '../util/proc-stat.js';
import { isValidSlotName } from './slots.js';
import { libpqTls, mayTryNext, noTlsOnServer, tlsAttempts, type TlsAttempt } from './tls.js';
import type {
  AdvanceResult,
  CommandResult,
  ConnTarget,
  ControlData,
  PostgresNode,
  ReplayError,
  ReplicationSlot,
  RoleConfig,
  ServerStatus,
  SlotCopy,
  StopMode,
  TimelineSwitch,
  WalSender,
} from './types.js';
import { ParameterValidator } from './validator.js';
import { deadline } from '../util/abort.js';

export interface PostgresOptions {
  /** Member name: `application_name` towards the upstream and, by default, `cluster_name`. */
  name: string;
  /** Cluster scope; when given it is the default `cluster_name` (what Patroni uses). */
  scope?: string;
  logger?: Logger;
  /** Server log for `pg_ctl -l`; defaults to `<data_dir>.log`. */
  logFile?: string;
}

/** The local server did not accept a connection (down, starting, or refusing us). */
/** The LSN a WAL segment file (`TTTTTTTTXXXXXXXXYYYYYYYY`) starts at, for segments of `segBytes`. */
export function walSegmentStart(name: string, segBytes: number): number {
  const perId = 0x100000000 / segBytes;
  return (parseInt(name.slice(8, 16), 16) * perId + parseInt(name.slice(16, 24), 16)) * segBytes;
}

/** The version `postgres --version` prints (`postgres (PostgreSQL) 15.8 (Debian ...)`); null when none. */
export function parseVersionOutput(text: string): { major: number; minor: number } | null {
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(text);
  return m ? { major: Number(m[1]), minor: Number(m[2] ?? 0) } : null;
}

export class PostgresConnectionError extends PostgresError {
  constructor(message: string, cause?: unknown) {
    super(message, { cause, retryable: true });
  }
}

const CONNECT_TIMEOUT_MS = 3000;
const QUERY_TIMEOUT_MS = 10_000;
const TOOL_TIMEOUT_MS = 30_000;
const INITDB_TIMEOUT_MS = 300_000;
const CHECKPOINT_TIMEOUT_MS = 300_000;
const SINGLE_USER_TIMEOUT_MS = 1_800_000;
/** Bound for each step of escalation after the requested stop mode timed out. */
const ESCALATION_TIMEOUT_MS = 30_000;
/** SQLSTATE of a session the server ended for `idle_session_timeout`. */
const IDLE_SESSION_TIMEOUT = '57P05';
/** How long to wait for a killed postmaster to finish exiting (gone, or a zombie) before a new start. */
const EXIT_WAIT_MS = 10_000;
/** How long crash recovery in single-user mode waits for a crashed postmaster's backends to end. */
const LEFTOVER_WAIT_MS = 60_000;

const INITDB_FORBIDDEN = new Set([
  'pgdata',
  'D',
  'pwfile',
  'pwprompt',
  'W',
  'username',
  'U',
  'sync-only',
  'S',
  'version',
  'V',
  'help',
]);
const BASEBACKUP_FORBIDDEN = new Set([
  'pgdata',
  'D',
  'format',
  'F',
  'host',
  'h',
  'port',
  'p',
  'username',
  'U',
  'dbname',
  'd',
  'password',
  'W',
  'no-password',
  'w',
]);

/** The parts of a clean shutdown in `pg_controldata`'s "Database cluster state". */
const CLEAN_STATES = new Set(['shut down', 'shut down in recovery']);

/** Files in the data directory that pg_rewind overwrites with the source's copy; kept across a rewind. */
const CONFIG_FILES = ['postgresql.conf', 'postgresql.base.conf', 'pg_hba.conf', 'pg_ident.conf'];

/** Functions pg_rewind calls on the source; granted to a non-superuser rewind role (as Patroni does). */
const REWIND_FUNCTIONS = [
  'pg_catalog.pg_ls_dir(text, boolean, boolean)',
  'pg_catalog.pg_stat_file(text, boolean)',
  'pg_catalog.pg_read_binary_file(text)',
  'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)',
];

const TS_FORMAT = `'YYYY-MM-DD HH24:MI:SS.USTZH:TZM'`;

const STATUS_SQL = `
SELECT pg_is_in_recovery() AS in_recovery,
  current_setting('server_version_num')::int AS server_version,
  to_char(pg_postmaster_start_time(), ${TS_FORMAT}) AS postmaster_start_time,
  (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
  EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart) AS pending_restart,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_walfile,
  pg_last_wal_receive_lsn()::text AS receive_lsn,
  pg_last_wal_replay_lsn()::text AS replay_lsn,
  to_char(pg_last_xact_replay_timestamp(), ${TS_FORMAT}) AS replay_timestamp,
  CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS replay_paused,
  (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline,
  current_setting('synchronous_commit') AS synchronous_commit,
  r.status AS receiver_status, r.received_tli, r.sender_host, r.sender_port
FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver r ON true`;

const REPLICATION_SQL = `
SELECT usename::text, application_name, client_addr::text, state, sync_state, sync_priority,
  write_lsn::text, flush_lsn::text, replay_lsn::text
FROM pg_stat_replication ORDER BY application_name, pid`;

const WALSENDERS_SQL = `SELECT pid, application_name, state, sent_lsn::text, flush_lsn::text, reply_time::text
FROM pg_stat_replication ORDER BY pid`;
/** How long the standby watch waits after a refused session before it tries again (ms). */
const WATCH_RETRY_MS = 5000;
/**
 * The standby watch's session asks five times a second: its statements stay out of the server's
 * log whatever `log_statement` or `log_min_duration_statement` say (the agent connects as superuser,
 * who may set them at connection).
 */
const QUIET_SESSION =
  '-c log_statement=none -c log_min_duration_statement=-1 -c log_min_duration_sample=-1 -c log_duration=off';

interface WalSenderRow {
  pid: number;
  application_name: string;
  state: string;
  sent_lsn: string | null;
  flush_lsn: string | null;
  reply_time: string | null;
}

interface StatusRow {
  in_recovery: boolean;
  server_version: number;
  postmaster_start_time: string;
  system_identifier: string;
  pending_restart: boolean;
  current_lsn: string | null;
  current_walfile: string | null;
  receive_lsn: string | null;
  replay_lsn: string | null;
  replay_timestamp: string | null;
  replay_paused: boolean;
  checkpoint_timeline: number;
  synchronous_commit: string;
  receiver_status: string | null;
  received_tli: number | null;
  sender_host: string | null;
  sender_port: number | null;
}

interface ReplicationRow {
  usename: string;
  application_name: string;
  client_addr: string | null;
  state: string;
  sync_state: string;
  sync_priority: number;
  write_lsn: string | null;
  flush_lsn: string | null;
  replay_lsn: string | null;
}

/** Quotes a word for /bin/sh (pg_ctl passes `-o` through the shell). */
function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function lastLines(text: string, n = 15): string {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-n)
    .join('\n');
}

function toolOutput(res: RunResult): string {
  return lastLines([res.stdout, res.stderr].join('\n'));
}

/** A server-side SQL error (has a SQLSTATE) that leaves the connection usable. */
function isSqlError(e: unknown): boolean {
  if (!(e instanceof pg.DatabaseError) || typeof e.code !== 'string') return false;
  // 08: connection exceptions; 57P: shutdown / crash of the server: the session is gone.
  return !e.code.startsWith('08') && !e.code.startsWith('57P');
}

/** The SQLSTATE of a server error (its `cause` chain followed), or undefined. */
function sqlState(e: unknown): string | undefined {
  for (let x: unknown = e; x; x = (x as { cause?: unknown }).cause) {
    if (x instanceof pg.DatabaseError && typeof x.code === 'string') return x.code;
    if (typeof x !== 'object') break;
  }
  return undefined;
}

/** fsync of a file or a directory (so a rename or a new entry in it is durable). */
async function fsyncPath(p: string): Promise<void> {
  const fh = await open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A number from a JSON value of pg_replication_slots (xids and LSNs come as text). */
function slotNumber(v: unknown, lsn: boolean): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return null;
  return lsn ? (parseLsnOrUndefined(v) ?? null) : Number.isFinite(Number(v)) ? Number(v) : null;
}

/** One row of pg_replication_slots (as to_jsonb) as a `ReplicationSlot`. */
export function slotFromRow(s: Record<string, unknown>): ReplicationSlot {
  const text = (k: string) => (typeof s[k] === 'string' ? s[k] : null);
  return {
    name: String(s.slot_name),
    type: s.slot_type === 'logical' ? 'logical' : 'physical',
    active: s.active === true,
    database: text('database'),
    plugin: text('plugin'),
    restartLsn: slotNumber(s.restart_lsn, true),
    confirmedFlushLsn: slotNumber(s.confirmed_flush_lsn, true),
    catalogXmin: slotNumber(s.catalog_xmin, false),
    xmin: slotNumber(s.xmin, false),
    walStatus: text('wal_status'),
    failover: s.failover === true,
  };
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p, fsc.F_OK);
    return true;
  } catch {
    return false;
  }
}

async function readText(p: string): Promise<string | null> {
  try {
    return await readFile(p, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** A PostgreSQL server managed through its data directory, as `PostgresNode` describes. */
/** Parameters a replica needs at least as high as its primary had, and their pg_controldata names. */
const RECOVERY_MINIMUMS: ReadonlyArray<[string, string]> = [
  ['max_connections', 'max_connections setting'],
  ['max_worker_processes', 'max_worker_processes setting'],
  ['max_wal_senders', 'max_wal_senders setting'],
  ['max_prepared_transactions', 'max_prepared_xacts setting'],
  ['max_locks_per_transaction', 'max_locks_per_xact setting'],
];

export class Postgres implements PostgresNode {
  readonly name: string;
  /** Where `pg_ctl -l` writes the server's output. */
  readonly logFile: string;
  private readonly cfg: PostgresqlConfig;
  private readonly clusterName: string;
  private readonly log: Logger;
  private readonly dataDir: string;
  private readonly configDir: string;
  private osUser: OsUser | null | undefined;
  private client: pg.Client | null = null;
  private connecting: Promise<pg.Client> | null = null;
  /** The standby watch's own session (`walSenders`), and when it may next try to open one. */
  private watchSession: Promise<pg.Client> | null = null;
  private watchRetryAt = 0;
  private watchWarned = false;
  /** Sessions the agent ended itself, or whose loss was already told: their end is no news. */
  private readonly ended = new WeakSet<pg.Client>();
  private readonly lostListeners = new Set<() => void>();
  /** `stop` calls running: sessions that end meanwhile end because the agent stops the server. */
  private stopsInProgress = 0;
  private version: number | null = null;
  private postPromoteCheckpoint: Promise<void> | null = null;
  private readonly validator: ParameterValidator;

  constructor(cfg: PostgresqlConfig, opts: PostgresOptions) {
    this.cfg = cfg;
    this.name = opts.name;
    this.clusterName = opts.scope ?? opts.name;
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.dataDir = resolve(cfg.data_dir);
    this.configDir = resolve(cfg.config_dir || cfg.data_dir);
    this.logFile = opts.logFile ?? `${this.dataDir}.log`;
    this.validator = new ParameterValidator({
      binDir: cfg.bin_dir,
      user: () => this.user,
      logger: this.log,
      serverSettings: () => this.serverSettings(),
    });
  }

  /** The OS user programs run as, or null when we are not root (programs run as ourselves). */
  private get user(): OsUser | null {
    if (this.osUser === undefined) this.osUser = runAsUser(this.cfg.os_user);
    return this.osUser;
  }

  private get confPath(): string {
    return join(this.configDir, 'postgresql.conf');
  }

  private bin(program: string): string {
    return join(this.cfg.bin_dir, program);
  }

  /** Runs a PostgreSQL program as the OS user. Non-zero exits are returned, timeouts thrown. */
  private async tool(
    program: string,
    args: string[],
    opts: {
      timeoutMs?: number;
      signal?: AbortSignal;
      env?: NodeJS.ProcessEnv;
      onLine?: (line: string) => void;
      input?: string;
    } = {},
  ): Promise<RunResult> {
    this.log.debug({ program, args }, 'running PostgreSQL program');
    try {
      return await run(this.bin(program), args, {
        user: this.user,
        timeoutMs: opts.timeoutMs,
        signal: opts.signal,
        env: { ...process.env, ...opts.env },
        onLine: opts.onLine ? (l) => opts.onLine?.(l) : undefined,
        input: opts.input,
      });
    } catch (e) {
      throw new PostgresError(`${program} failed: ${errorMessage(e)}`, { cause: e, retryable: true });
    }
  }

  // ---- files and ownership -------------------------------------------------------------------

  private async chownToUser(p: string): Promise<void> {
    const u = this.user;
    if (u) await chown(p, u.uid, u.gid);
  }

  /** Creates `dir` (and missing parents, owned by the OS user); sets `mode` on a created or data dir. */
  private async ensureDir(dir: string, mode: number, forceMode: boolean): Promise<void> {
    const first = await mkdir(dir, { recursive: true, mode });
    if (first !== undefined) {
      // Every directory we just created, from the first one down to `dir`.
      let p = dir;
      const created: string[] = [];
      while (p.length >= first.length) {
        created.push(p);
        if (p === first) break;
        p = dirname(p);
      }
      for (const c of created) await this.chownToUser(c);
      await chmod(dir, mode);
      return;
    }
    if (forceMode) {
      const st = await stat(dir);
      const u = this.user;
      if (u && (st.uid !== u.uid || st.gid !== u.gid)) await chown(dir, u.uid, u.gid);
      if ((st.mode & 0o777) !== mode) await chmod(dir, mode);
    }
  }

  private async ensureDataDir(): Promise<void> {
    await this.ensureDir(this.dataDir, 0o700, true);
  }

  /**
   * Writes a file atomically (temp + rename), owned by the OS user from before its first byte.
   * A temporary file inside the data directory goes to `base/pgsql_tmp/`, which pg_basebackup and
   * pg_rewind skip: a clone or a rewind running at that moment never sees a file it cannot read.
   */
  private async writeOwned(path: string, content: string, mode = 0o600): Promise<void> {
    await this.ensureDir(dirname(path), 0o755, false);
    const inData = resolve(path).startsWith(this.dataDir + '/');
    let tmpDir = dirname(path);
    if (inData) {
      tmpDir = join(this.dataDir, 'base', 'pgsql_tmp');
      if (!(await exists(join(this.dataDir, 'base')))) tmpDir = dirname(path);
      else await this.ensureDir(tmpDir, 0o700, false);
    }
    const tmp = join(tmpDir, `pgsql_tmp.pgha.${basename(path)}.${process.pid}`);
    const fh = await open(tmp, 'w', mode);
    try {
      const u = this.user;
      if (u) await fh.chown(u.uid, u.gid);
      await fh.chmod(mode);
      await fh.writeFile(content);
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  }

  /** Writes the pgpass file with the superuser, replication and rewind credentials. */
  private async writePgpass(): Promise<void> {
    const a = this.cfg.authentication;
    const users = [a.replication, ...(a.rewind ? [a.rewind] : []), a.superuser];
    await this.writeOwned(this.cfg.pgpass, renderPgpass(users), 0o600);
  }

  private hasPassword(user: { password?: string }): boolean {
    return user.password !== undefined;
  }

  /** Creates the log file owned by the OS user (its directory may not be writable by that user). */
  private async ensureLogFile(): Promise<number> {
    await this.ensureDir(dirname(this.logFile), 0o755, false);
    const fh = await open(this.logFile, 'a', 0o600);
    try {
      const st = await fh.stat();
      const u = this.user;
      if (u && (st.uid !== u.uid || st.gid !== u.gid)) await fh.chown(u.uid, u.gid);
      return st.size;
    } finally {
      await fh.close();
    }
  }

  /** The lines the server wrote to its log since `offset` (at most the last `n`). */
  private async logTail(offset = 0, n = 20): Promise<string> {
    try {
      const fh = await open(this.logFile, 'r');
      try {
        const size = (await fh.stat()).size;
        const from = Math.max(offset, size - 16384);
        const buf = Buffer.alloc(Math.max(0, size - from));
        await fh.read(buf, 0, buf.length, from);
        return lastLines(buf.toString('utf8'), n);
      } finally {
        await fh.close();
      }
    } catch {
      return '(no server log)';
    }
  }

  // ---- state ------------------------------------------------------------------------------------

  async dataDirectoryState(): Promise<'empty' | 'initialized' | 'invalid'> {
    let entries: string[];
    try {
      entries = await readdir(this.dataDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'empty';
      throw new PostgresError(`cannot read data directory ${this.dataDir}: ${errorMessage(e)}`, { cause: e });
    }
    if (entries.length === 0) return 'empty';
    return entries.includes('PG_VERSION') ? 'initialized' : 'invalid';
  }

  async controlData(): Promise<ControlData | null> {
    if (!(await exists(join(this.dataDir, 'global', 'pg_control')))) return null;
    const res = await this.tool('pg_controldata', ['-D', this.dataDir], {
      timeoutMs: TOOL_TIMEOUT_MS,
      env: { LC_ALL: 'C', LANG: 'C' },
    });
    if (res.code !== 0)
      throw new PostgresError(`pg_controldata -D ${this.dataDir} failed: ${toolOutput(res)}`);
    return parseControlData(res.stdout);
  }

  /** Pid of the postmaster named in postmaster.pid, when that process is alive and is a postgres. */
  async postmasterPid(): Promise<number | null> {
    const text = await readText(join(this.dataDir, 'postmaster.pid'));
    const pid = text === null ? null : lockFilePid(text);
    return pid !== null && (await this.isOurPostgres(pid)) ? pid : null;
  }

  async isRunning(): Promise<boolean> {
    return (await this.postmasterPid()) !== null;
  }

  /** True when `pid` is alive, not a zombie, runs a postgres binary and (when visible) sits in our data dir. */
  private async isOurPostgres(pid: number): Promise<boolean> {
    if (!signalPid(pid, 0)) return false;
    const st = procStat(pid);
    if (st === null || st.dying) return false;
    const cmdline = await readText(`/proc/${pid}/cmdline`).catch(() => null);
    if (cmdline === null || !/postgres|postmaster/.test(cmdline)) return false;
    try {
      // The postmaster chdirs into its data directory; readable when we are root or the same user.
      const cwd = await readlink(`/proc/${pid}/cwd`);
      const real = await realpath(this.dataDir).catch(() => this.dataDir);
      return cwd === real || cwd === this.dataDir;
    } catch {
      return true;
    }
  }

  async binaryVersion(): Promise<number> {
    if (this.version !== null) return this.version;
    const res = await this.tool('postgres', ['-V'], { timeoutMs: TOOL_TIMEOUT_MS });
    const v = res.code === 0 ? parseVersionOutput(res.stdout) : null;
    if (!v) throw new PostgresError(`cannot read the version of ${this.bin('postgres')}: ${toolOutput(res)}`);
    this.version = v.major >= 10 ? v.major : Number(`${v.major}${String(v.minor).padStart(2, '0')}`) / 100;
    return this.version;
  }

  // ---- SQL ------------------------------------------------------------------------------------------

  /** Host for local SQL: the unix socket dir, loopback for a wildcard listen, else the first listen host. */
  private localHost(): string {
    if (this.cfg.use_unix_socket) {
      const dir = (
        this.cfg.parameters.unix_socket_directories ??
        this.cfg.unix_socket_directories ??
        '/var/run/postgresql'
      ).toString();
      const first = dir.split(',')[0]?.trim();
      if (first && isAbsolute(first)) return first;
    }
    return localHostOf(this.cfg.listen.hosts[0] ?? '');
  }

  private clientConfig(): pg.ClientConfig {
    const su = this.cfg.authentication.superuser;
    return {
      host: this.localHost(),
      port: this.cfg.listen.port,
      user: su.username,
      password: su.password,
      database: 'postgres',
      application_name: 'pgha',
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    };
  }

  /**
   * Opens a connection to the local server as the superuser, with the role's TLS settings followed
   * as libpq follows them (`prefer` tries TLS, then plain). Rejects with the most telling error.
   */
  private async openClient(extra: pg.ClientConfig = {}): Promise<pg.Client> {
    const attempts = tlsAttempts(this.cfg.authentication.superuser, this.localHost().startsWith('/'));
    let first: unknown = null;
    for (const [i, attempt] of attempts.entries()) {
      const client = new pg.Client({
        ...this.clientConfig(),
        ...extra,
        ssl: attempt.tls ? attempt.options : false,
      });
      client.on('error', () => undefined); // replaced by the caller's handler once connected
      try {
        await client.connect();
        return client;
      } catch (e) {
        void client.end().catch(() => undefined);
        if (first === null || noTlsOnServer(first)) first = e;
        if (i === attempts.length - 1 || !mayTryNext(e)) throw first;
      }
    }
    throw new Error('no connection attempt was made');
  }

  private async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    if (this.connecting) return this.connecting;
    this.connecting = this.openClient()
      .then((client) => {
        client.on('error', (e) => {
          this.log.debug({ err: errorMessage(e) }, 'local PostgreSQL connection lost');
          this.lost(client, e);
        });
        client.on('end', () => this.lost(client));
        this.client = client;
        return client;
      })
      .catch((e: unknown) => {
        throw new PostgresConnectionError(
          `cannot connect to PostgreSQL at ${this.localHost()}:${this.cfg.listen.port}: ${errorMessage(e)}`,
          e,
        );
      })
      .finally(() => {
        this.connecting = null;
      });
    return this.connecting;
  }

  private dropClient(client: pg.Client | null = this.client): void {
    if (!client) return;
    this.ended.add(client);
    if (this.client === client) this.client = null;
    void client.end().catch(() => undefined);
  }

  /**
   * Calls `listener` when the agent's session to the server ends without the agent ending it: the
   * server crashed, was killed or stopped by someone else, or terminated the session.
   */
  onConnectionLost(listener: () => void): void {
    this.lostListeners.add(listener);
  }

  /**
   * `client` went away under us (its error, its end, or a query that found it dead). Not news while
   * the agent itself stops the server (a query may open a session between `stop`'s close and its
   * signal), nor when the server ended an idle session on purpose (`idle_session_timeout`).
   */
  private lost(client: pg.Client, err?: unknown): void {
    if (this.client === client) this.client = null;
    if (this.ended.has(client)) return;
    this.ended.add(client);
    if (this.stopsInProgress > 0 || sqlState(err) === IDLE_SESSION_TIMEOUT) return;
    for (const listener of this.lostListeners) {
      try {
        listener();
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'a connection-lost listener failed');
      }
    }
  }

  async query<T = Record<string, unknown>>(
    sql: string,
    params: unknown[] = [],
    signal?: AbortSignal,
    timeoutMs = QUERY_TIMEOUT_MS,
  ): Promise<T[]> {
    for (let attempt = 0; ; attempt++) {
      const reused = this.client !== null;
      const client = await this.connect();
      try {
        return await this.withAbort(
          client,
          client.query(sql, params).then((r) => r.rows as T[]),
          timeoutMs,
          signal,
        );
      } catch (e) {
        if (isSqlError(e)) throw new PostgresError(`query failed: ${errorMessage(e)}`, { cause: e });
        // Timed out or cancelled (withAbort ended the session): do not run it again.
        if (e instanceof PostgresError) {
          this.dropClient(client);
          throw e;
        }
        this.lost(client, e);
        this.dropClient(client);
        // A kept connection may have died since its last use (restart): retry once on a fresh one.
        if (reused && attempt === 0 && !signal?.aborted) continue;
        throw new PostgresConnectionError(`query failed, connection lost: ${errorMessage(e)}`, e);
      }
    }
  }

  /** Races a query against a timeout and an abort; on either, the connection is closed. */
  private async withAbort<T>(
    client: pg.Client,
    p: Promise<T>,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<T> {
    const limit = deadline(timeoutMs, signal);
    const abort = limit.signal;
    p.catch(() => undefined);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        this.dropClient(client);
        // The session is closed either way, so callers see it like a lost connection.
        reject(
          new PostgresConnectionError(
            signal?.aborted ? 'query was cancelled' : `query timed out after ${timeoutMs} ms`,
          ),
        );
      };
      if (abort.aborted) onAbort();
      else abort.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    try {
      return await Promise.race([p, aborted]);
    } finally {
      if (onAbort) abort.removeEventListener('abort', onAbort);
      limit.clear();
    }
  }

  lastConnectionError: string | null = null;
  /** The highest timeline this postmaster (by start time) reported while in recovery. */
  private seenTimeline: { since: string; timeline: number } | null = null;

  async status(signal?: AbortSignal): Promise<ServerStatus | null> {
    let row: StatusRow | undefined;
    let replication: ReplicationRow[];
    try {
      row = (await this.query<StatusRow>(STATUS_SQL, [], signal))[0];
      replication = await this.query<ReplicationRow>(REPLICATION_SQL, [], signal);
    } catch (e) {
      if (e instanceof PostgresConnectionError) {
        this.log.debug({ err: e.message }, 'PostgreSQL does not accept connections');
        this.lastConnectionError = e.message;
        return null;
      }
      throw e;
    }
    this.lastConnectionError = null;
    if (!row) return null;
    const st = statusFromRows(row, replication);
    if (st.inRecovery) {
      // While the WAL receiver reconnects, pg_stat_wal_receiver is empty and the checkpoint's
      // timeline lags until the next restartpoint; the timeline this postmaster already received
      // WAL on is the one it is on (it never goes back), so keep the highest seen.
      const seen = this.seenTimeline;
      if (seen && seen.since === row.postmaster_start_time && seen.timeline > st.timeline)
        st.timeline = seen.timeline;
      this.seenTimeline = { since: row.postmaster_start_time, timeline: st.timeline };
    } else {
      this.seenTimeline = null;
    }
    return st;
  }

  async walSenders(signal?: AbortSignal): Promise<WalSender[] | null> {
    // Not while the agent stops the server: a new session would hold up a smart shutdown.
    if (this.stopsInProgress > 0 || (!this.watchSession && Date.now() < this.watchRetryAt)) return null;
    const session = (this.watchSession ??= this.openClient({
      application_name: 'pgha standby watch',
      options: QUIET_SESSION,
    }).then((client) => {
      const forget = () => {
        if (this.watchSession === session) this.watchSession = null;
      };
      client.on('error', forget);
      client.on('end', forget);
      return client;
    }));
    let client: pg.Client;
    try {
      client = await session;
    } catch (e) {
      // Refused (a server starting, a superuser that may not set the log parameters): try again
      // in a while rather than five times a second.
      if (this.watchSession === session) this.watchSession = null;
      this.watchRetryAt = Date.now() + WATCH_RETRY_MS;
      // Said once when the agent's own session works: then it is not a server starting up.
      if (this.client && !this.watchWarned) {
        this.watchWarned = true;
        this.log.warn(
          `the standby watch cannot open its session (${errorMessage(e)}): a synchronous standby that ` +
            'dies is noticed at the next HA cycle only; the configured superuser must be allowed to set log_statement',
        );
      } else this.log.debug({ err: errorMessage(e) }, 'the standby watch could not connect');
      return null;
    }
    try {
      const rows = await this.withAbort(
        client,
        client.query(WALSENDERS_SQL).then((r) => r.rows as WalSenderRow[]),
        QUERY_TIMEOUT_MS,
        signal,
      );
      return rows.map((r) => ({
        pid: r.pid,
        name: r.application_name,
        streaming: r.state === 'streaming',
        sent: parseLsnOrUndefined(r.sent_lsn),
        flushed: parseLsnOrUndefined(r.flush_lsn),
        replyTime: r.reply_time,
      }));
    } catch (e) {
      if (this.watchSession === session) this.watchSession = null;
      void client.end().catch(() => undefined);
      if (isSqlError(e)) throw new PostgresError(`query failed: ${errorMessage(e)}`, { cause: e });
      return null;
    }
  }

  async nudgeStandbys(): Promise<void> {
    await this.query(`SELECT pg_logical_emit_message(false, 'pgha', 'synchronous_standby_names')`);
  }

  async endWalSenders(): Promise<void> {
    const watch = this.watchSession;
    this.watchSession = null;
    const w = await watch?.catch(() => null);
    await w?.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.endWalSenders();
    const c = this.client ?? (await this.connecting?.catch(() => null)) ?? null;
    this.client = null;
    if (!c) return;
    this.ended.add(c);
    await c.end().catch(() => undefined);
  }

  // ---- lifecycle --------------------------------------------------------------------------------

  async start(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (await this.isRunning()) {
      this.log.info({ dataDir: this.dataDir }, 'PostgreSQL is already running');
      return;
    }
    if (!(await exists(this.confPath)))
      throw new PostgresError(`${this.confPath} does not exist; configure the node before starting it`);
    await this.preparePidFile(Date.now() + timeoutMs, signal);
    const logOffset = await this.ensureLogFile();
    const secs = Math.max(1, Math.ceil(timeoutMs / 1000));
    this.log.info({ dataDir: this.dataDir, logFile: this.logFile }, 'starting PostgreSQL');
    // pg_ctl detaches the postmaster (own session), so it survives the agent being killed.
    const args = [
      'start',
      '-w',
      '-t',
      String(secs),
      '-D',
      this.dataDir,
      '-l',
      this.logFile,
      '-o',
      `--config-file=${shellQuote(this.confPath)}`,
    ];
    let res: RunResult;
    try {
      res = await this.tool('pg_ctl', args, { timeoutMs: timeoutMs + 5000, signal });
    } catch (e) {
      throw new PostgresError(`${errorMessage(e)}\n--- ${this.logFile}:\n${await this.logTail(logOffset)}`, {
        cause: e,
        retryable: true,
      });
    }
    if (res.code === 0) return;
    const running = await this.isRunning();
    const why = running ? `did not become ready within ${secs} s (it is still starting)` : 'failed to start';
    throw new PostgresError(
      `PostgreSQL ${why}: ${toolOutput(res)}\n--- last lines of ${this.logFile}:\n${await this.logTail(logOffset)}`,
      {
        retryable: running,
      },
    );
  }

  /**
   * Prepares a leftover postmaster.pid for a new start. One naming a live process that is not our
   * postgres (pid reuse after a crash) would make PostgreSQL refuse to start: it is removed. One
   * naming a postmaster still exiting is waited for until it is gone or a zombie (an exiting
   * process's cmdline reads empty: it must not be taken for another program). A dead pid is
   * otherwise left alone, as PostgreSQL checks the file itself; but the backends of a crashed
   * postmaster that still run a statement keep its shared memory attached, and PostgreSQL refuses to
   * start until they end: wait for them until `waitUntil` (leftovers.ts). A zombie postmaster (dead,
   * not yet collected by its parent: `pg_ctl` leaves it to the host's init, and some inits collect
   * orphans only every few seconds) still owns its pid, which PostgreSQL's lock-file check takes for
   * a live server: once no process holds its shared memory, its file is removed. PostgreSQL still
   * refuses to start over shared memory that a process of the old server holds.
   */
  private async preparePidFile(waitUntil: number, signal?: AbortSignal): Promise<void> {
    const pidFile = join(this.dataDir, 'postmaster.pid');
    const text = await readText(pidFile);
    if (text === null) return;
    const pid = lockFilePid(text);
    if (pid === null) return;
    const deadline = Date.now() + EXIT_WAIT_MS;
    let st = procStat(pid);
    while (st?.dying && !st.dead && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      st = procStat(pid);
    }
    const zombie = st?.dead === true;
    if (signalPid(pid, 0) && !zombie) {
      // Alive, or still exiting: pg_ctl says what it sees — unless it is another program.
      if (st?.dying || (await this.isOurPostgres(pid))) return;
      this.log.warn({ pid }, 'postmaster.pid names a process that is not this PostgreSQL; removing it');
      await unlink(pidFile).catch(() => undefined);
      return;
    }
    const shmid = sharedMemoryId(text);
    if (shmid !== null && !(await this.sharedMemoryReleased(shmid, pid, waitUntil, signal))) return;
    // Gone (PostgreSQL checks the file itself), or collected meanwhile (its pid free for reuse).
    if (!zombie || !signalPid(pid, 0)) return;
    const dirs = this.cfg.parameters.unix_socket_directories ?? this.cfg.unix_socket_directories;
    const stale = [pidFile];
    for (const f of socketLockFiles(text, dirs === undefined ? undefined : String(dirs))) {
      const lock = await readText(f).catch(() => null);
      if (lock !== null && lockFilePid(lock) === pid) stale.push(f);
    }
    this.log.info(
      { pid, files: stale },
      `the previous postmaster (pid ${pid}) is dead but not yet collected by its parent: removing its lock files, ` +
        'which PostgreSQL would take for a running server',
    );
    for (const f of stale) await unlink(f).catch(() => undefined);
  }

  /** Waits until no process holds shared memory `shmid` of postmaster `pid`; false at `waitUntil`. */
  private async sharedMemoryReleased(
    shmid: number,
    pid: number,
    waitUntil: number,
    signal?: AbortSignal,
  ): Promise<boolean> {
    let said = false;
    for (;;) {
      const attached = attachedProcesses((await readText('/proc/sysvipc/shm')) ?? '', shmid);
      if (!attached) return true;
      if (Date.now() >= waitUntil || signal?.aborted) {
        this.log.warn(
          { attached, shmid },
          'processes of the previous postmaster still hold its shared memory; starting anyway (PostgreSQL will refuse)',
        );
        return false;
      }
      if (!said) {
        said = true;
        this.log.warn(
          { attached, shmid, postmaster: pid },
          `${attached} process(es) of the previous postmaster (pid ${pid}, gone) still hold its shared memory: ` +
            'waiting for them to end (a backend ends when its running statement does)',
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Stops the server by signalling the postmaster directly (SIGTERM smart, SIGINT fast, SIGQUIT
   * immediate, as pg_ctl does) and watching for postmaster.pid to go, every 10 ms: a switchover's
   * write gap is mostly this wait. On timeout it escalates smart → fast → immediate.
   */
  async stop(mode: StopMode, timeoutMs: number): Promise<void> {
    this.stopsInProgress++;
    try {
      await this.stopServer(mode, timeoutMs);
    } finally {
      this.stopsInProgress--;
    }
  }

  private async stopServer(mode: StopMode, timeoutMs: number): Promise<void> {
    if (!(await this.isRunning())) return;
    // Our own session would hold up a smart shutdown.
    await this.close();
    const order: StopMode[] =
      mode === 'smart'
        ? ['smart', 'fast', 'immediate']
        : mode === 'fast'
          ? ['fast', 'immediate']
          : ['immediate'];
    const signals: Record<StopMode, NodeJS.Signals> = {
      smart: 'SIGTERM',
      fast: 'SIGINT',
      immediate: 'SIGQUIT',
    };
    for (const [i, m] of order.entries()) {
      const t = i === 0 ? timeoutMs : ESCALATION_TIMEOUT_MS;
      const pid = await this.postmasterPid();
      if (pid === null) return;
      this.log.info({ mode: m, pid }, 'stopping PostgreSQL');
      if (!signalPid(pid, signals[m])) return;
      const deadline = Date.now() + t;
      while (Date.now() < deadline) {
        if (!existsSync(join(this.dataDir, 'postmaster.pid')) || !(await this.isRunning())) return;
        await new Promise((r) => setTimeout(r, 10));
      }
      this.log.warn({ mode: m, timeoutMs: t }, 'PostgreSQL did not stop in time; escalating');
    }
    throw new PostgresError(`PostgreSQL in ${this.dataDir} did not stop even in immediate mode`, {
      retryable: true,
    });
  }

  async restart(timeoutMs: number): Promise<void> {
    await this.stop('fast', timeoutMs);
    await this.start(timeoutMs);
  }

  async reload(): Promise<void> {
    if (!(await this.isRunning())) {
      this.log.debug('reload skipped: PostgreSQL is not running');
      return;
    }
    const res = await this.tool('pg_ctl', ['reload', '-D', this.dataDir], { timeoutMs: TOOL_TIMEOUT_MS });
    if (res.code !== 0) throw new PostgresError(`pg_ctl reload failed: ${toolOutput(res)}`);
  }

  /**
   * Promotes with `pg_promote(wait => false)` on the agent's own connection and then watches
   * `pg_is_in_recovery()` every 10 ms, so the new primary is known the moment it takes writes.
   */
  async promote(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const before = await this.status();
    if (!before)
      throw new PostgresError('cannot promote: PostgreSQL is not running or does not accept connections', {
        retryable: true,
      });
    if (!before.inRecovery) return;
    const [req] = await this.query<{ ok: boolean }>('SELECT pg_catalog.pg_promote(false) AS ok');
    if (!req?.ok)
      throw new PostgresError('PostgreSQL refused the promote request (pg_promote returned false)');
    for (;;) {
      const rows = await this.query<{ r: boolean }>('SELECT pg_catalog.pg_is_in_recovery() AS r').catch(
        () => null,
      );
      if (rows?.[0]?.r === false) {
        this.checkpointInBackground();
        return;
      }
      if (rows === null && !(await this.isRunning()))
        throw new PostgresError('promotion did not complete: PostgreSQL stopped', { retryable: true });
      if (Date.now() > deadline) {
        throw new PostgresError(`promotion did not complete within ${timeoutMs} ms`, { retryable: true });
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * After a promotion, like Patroni, force a checkpoint so pg_control shows the new timeline soon:
   * pg_rewind on a former primary reads the source's timeline from there. It runs on its own
   * connection and is not awaited, so the HA loop is not held up by a long checkpoint.
   */
  private checkpointInBackground(): void {
    const done = (async () => {
      let client: pg.Client | null = null;
      const timer = setTimeout(() => void client?.end().catch(() => undefined), CHECKPOINT_TIMEOUT_MS);
      timer.unref();
      try {
        client = await this.openClient();
        await client.query('CHECKPOINT');
        this.log.info('checkpoint after promotion done');
      } catch (e) {
        this.log.warn({ err: errorMessage(e) }, 'checkpoint after promotion failed');
      } finally {
        clearTimeout(timer);
        await client?.end().catch(() => undefined);
      }
    })();
    this.postPromoteCheckpoint = done;
    void done.finally(() => {
      if (this.postPromoteCheckpoint === done) this.postPromoteCheckpoint = null;
    });
  }

  /** Resolves once the checkpoint started after the last promotion has finished (or failed). */
  async checkpointAfterPromote(): Promise<void> {
    await this.postPromoteCheckpoint;
  }

  async checkpoint(): Promise<void> {
    await this.query('CHECKPOINT', [], undefined, CHECKPOINT_TIMEOUT_MS);
  }

  // ---- creating data ----------------------------------------------------------------------------

  async initdb(
    options: Array<string | Record<string, string | number>>,
    signal?: AbortSignal,
  ): Promise<void> {
    if ((await this.dataDirectoryState()) !== 'empty')
      throw new PostgresError(`cannot initdb: data directory ${this.dataDir} is not empty`);
    let userArgs: string[];
    try {
      userArgs = toolOptions('initdb', options, INITDB_FORBIDDEN);
    } catch (e) {
      throw new PostgresError(`bootstrap.initdb: ${errorMessage(e)}`, { cause: e });
    }
    await this.ensureDataDir();
    const su = this.cfg.authentication.superuser;
    const args = ['-D', this.dataDir, '-U', su.username, ...userArgs];
    const names = optionNames(userArgs);
    if (!names.has('data-checksums') && !names.has('k')) args.push('--data-checksums');
    let pwDir: string | null = null;
    try {
      if (this.hasPassword(su)) {
        pwDir = await mkdtemp(join(tmpdir(), 'pgha-initdb-'));
        await this.chownToUser(pwDir);
        const pwFile = join(pwDir, 'pwfile');
        await writeFile(pwFile, `${su.password}\n`, { mode: 0o600 });
        await this.chownToUser(pwFile);
        args.push(`--pwfile=${pwFile}`);
      }
      this.log.info({ args: userArgs }, 'initializing a new cluster with initdb');
      const res = await this.tool('initdb', args, { timeoutMs: INITDB_TIMEOUT_MS, signal });
      if (res.code !== 0) throw new PostgresError(`initdb failed: ${toolOutput(res)}`);
    } finally {
      if (pwDir) await rm(pwDir, { recursive: true, force: true });
    }
  }

  async basebackup(
    source: ConnTarget,
    options: Array<string | Record<string, string | number>>,
    onProgress?: (line: string) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    if ((await this.dataDirectoryState()) !== 'empty') {
      throw new PostgresError(`refusing to clone into ${this.dataDir}: the data directory is not empty`);
    }
    let userArgs: string[];
    try {
      userArgs = toolOptions('pg_basebackup', options, BASEBACKUP_FORBIDDEN);
    } catch (e) {
      throw new PostgresError(`postgresql.basebackup: ${errorMessage(e)}`, { cause: e });
    }
    await this.ensureDataDir();
    await this.writePgpass();
    const repl = this.cfg.authentication.replication;
    const names = optionNames(userArgs);
    const args = [
      '-D',
      this.dataDir,
      '-h',
      source.host,
      '-p',
      String(source.port),
      '-U',
      repl.username,
      '-w',
    ];
    // The replication role's TLS settings go in as a connection string (-d), which libpq merges with -h/-p/-U.
    const tls = libpqTls(repl);
    if (Object.keys(tls).length > 0 && !names.has('dbname') && !names.has('d'))
      args.push('-d', conninfo(tls));
    if (!names.has('wal-method') && !names.has('X')) args.push('-X', 'stream');
    if (!names.has('checkpoint') && !names.has('c')) args.push('-c', 'fast');
    if (!names.has('progress') && !names.has('P')) args.push('--progress');
    if (!names.has('verbose') && !names.has('v')) args.push('--verbose');
    args.push(...userArgs);
    const tail: string[] = [];
    this.log.info(
      { source: source.member, host: source.host, port: source.port },
      'cloning with pg_basebackup',
    );
    let res: RunResult;
    try {
      res = await this.tool('pg_basebackup', args, {
        signal,
        env: { PGPASSFILE: this.cfg.pgpass, PGAPPNAME: this.name, PGCONNECT_TIMEOUT: '10' },
        onLine: (line) => {
          tail.push(line);
          if (tail.length > 20) tail.shift();
          onProgress?.(line);
        },
      });
    } catch (e) {
      await this.clearDataDirectory();
      throw e;
    }
    if (res.code !== 0) {
      await this.clearDataDirectory();
      throw new PostgresError(
        `pg_basebackup from ${source.member} (${source.host}:${source.port}) failed: ${lastLines(tail.join('\n'))}`,
        { retryable: true },
      );
    }
    await chmod(this.dataDir, 0o700);
  }

  async rewind(source: ConnTarget, signal?: AbortSignal, onProgress?: (line: string) => void): Promise<void> {
    if (await this.isRunning()) throw new PostgresError('cannot rewind: PostgreSQL is running');
    const cd = await this.controlData();
    if (!cd) throw new PostgresError(`cannot rewind: no cluster in ${this.dataDir}`);
    if (!cd.dataChecksums && !cd.walLogHints)
      throw new PostgresError('cannot rewind: the cluster has neither data checksums nor wal_log_hints');
    if (!CLEAN_STATES.has(cd.clusterState)) await this.ensureCleanShutdown(cd.clusterState, signal);
    await this.writePgpass();
    const a = this.cfg.authentication;
    const user = a.rewind ?? a.superuser;
    const src = conninfo({
      host: source.host,
      port: source.port,
      user: user.username,
      dbname: 'postgres',
      ...libpqTls(user),
    });
    const saved = await this.saveConfigFiles();
    this.log.info({ source: source.member, host: source.host, port: source.port }, 'running pg_rewind');
    const tail: string[] = [];
    let res: RunResult;
    try {
      res = await this.tool(
        'pg_rewind',
        [`--target-pgdata=${this.dataDir}`, `--source-server=${src}`, '--progress'],
        {
          signal,
          env: { PGPASSFILE: this.cfg.pgpass, PGCONNECT_TIMEOUT: '10', PGAPPNAME: this.name, LC_ALL: 'C' },
          onLine: (line) => {
            tail.push(line);
            if (tail.length > 20) tail.shift();
            onProgress?.(line);
          },
        },
      );
    } finally {
      await this.restoreConfigFiles(saved);
    }
    if (res.code !== 0)
      throw new PostgresError(
        `pg_rewind from ${source.member} (${source.host}:${source.port}) failed: ${lastLines(tail.join('\n'))}`,
      );
    if (/no rewind required/.test(res.stdout + res.stderr)) this.log.info('pg_rewind: no rewind required');
  }

  /**
   * Completes crash recovery in single-user mode so pg_rewind accepts the target, as Patroni does
   * (with archiving forced on and failing, so no WAL is archived or recycled meanwhile).
   */
  private async ensureCleanShutdown(state: string, signal?: AbortSignal): Promise<void> {
    this.log.info(
      { state },
      'data directory was not shut down cleanly; running crash recovery in single-user mode',
    );
    await this.preparePidFile(Date.now() + LEFTOVER_WAIT_MS, signal);
    // Single-user mode refuses standby mode.
    for (const f of ['standby.signal', 'recovery.signal']) await rm(join(this.dataDir, f), { force: true });
    const args = [
      '--single',
      '-D',
      this.dataDir,
      '-c',
      `config_file=${this.confPath}`,
      '-c',
      'archive_mode=on',
      '-c',
      'archive_command=false',
      'postgres',
    ];
    let res: RunResult;
    try {
      res = await run(this.bin('postgres'), args, {
        user: this.user,
        timeoutMs: SINGLE_USER_TIMEOUT_MS,
        signal,
        input: '',
      });
    } catch (e) {
      throw new PostgresError(`crash recovery in single-user mode failed: ${errorMessage(e)}`, { cause: e });
    }
    const after = await this.controlData();
    if (res.code !== 0 || !after || !CLEAN_STATES.has(after.clusterState)) {
      throw new PostgresError(
        `crash recovery in single-user mode failed (state ${after?.clusterState ?? 'unknown'}): ${toolOutput(res)}`,
      );
    }
  }

  /** pg_rewind copies the source's config files over ours when they live in the data directory. */
  private async saveConfigFiles(): Promise<Map<string, Buffer>> {
    const saved = new Map<string, Buffer>();
    if (this.configDir !== this.dataDir) return saved;
    for (const f of CONFIG_FILES) {
      const p = join(this.dataDir, f);
      try {
        saved.set(p, await readFile(p));
      } catch {
        // absent: nothing to keep
      }
    }
    return saved;
  }

  private async restoreConfigFiles(saved: Map<string, Buffer>): Promise<void> {
    for (const [p, content] of saved) {
      await writeFile(p, content, { mode: 0o600 });
      await this.chownToUser(p);
    }
  }

  async removeDataDirectory(): Promise<void> {
    if (await this.isRunning())
      throw new PostgresError(`refusing to remove ${this.dataDir}: PostgreSQL is running`);
    await this.clearDataDirectory();
  }

  /** Deletes everything inside the data dir (and inside a symlinked pg_wal), keeping the dir itself. */
  private async clearDataDirectory(): Promise<void> {
    const dir = this.dataDir;
    if (dir === '/' || dir === '' || !isAbsolute(dir) || dirname(dir) === dir || basename(dir) === '') {
      throw new PostgresError(`refusing to remove the contents of "${dir}"`);
    }
    this.log.warn({ dataDir: dir }, 'removing the contents of the data directory');
    let entries: string[];
    try {
      entries = await readdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const walLink = join(dir, 'pg_wal');
    try {
      if ((await lstat(walLink)).isSymbolicLink()) {
        const target = resolve(dir, await readlink(walLink));
        if (target !== '/' && target !== dir) {
          for (const e of await readdir(target)) await rm(join(target, e), { recursive: true, force: true });
        }
      }
    } catch {
      // no pg_wal: nothing more to clear
    }
    for (const e of entries) await rm(join(dir, e), { recursive: true, force: true });
  }

  // ---- configuration ----------------------------------------------------------------------------

  async configure(role: RoleConfig): Promise<void> {
    const cfg = this.cfg;
    const split = this.configDir !== this.dataDir;
    if (split) await this.ensureDir(this.configDir, 0o755, false);
    else await this.ensureDataDir();
    if (split) await this.adoptConfigFromDataDir();

    // Values PostgreSQL would refuse are dropped first, so a minimum replaces a valid value only.
    const checked = await this.checkedParameters(role.parameters);
    const parameters =
      role.role === 'replica' || role.signal ? await this.withRecoveryMinimums(checked) : checked;
    const userHba = parameters.hba_file;
    const userIdent = parameters.ident_file;
    const hbaPath =
      userHba !== undefined ? resolve(this.configDir, String(userHba)) : join(this.configDir, 'pg_hba.conf');
    const identPath =
      userIdent !== undefined
        ? resolve(this.configDir, String(userIdent))
        : join(this.configDir, 'pg_ident.conf');

    // Keep the original postgresql.conf once, as Patroni does, and include it.
    const basePath = join(this.configDir, 'postgresql.base.conf');
    const current = await readText(this.confPath);
    if (current !== null && !isManagedConf(current)) {
      if (await exists(basePath))
        this.log.warn(
          { file: this.confPath },
          'postgresql.conf was edited; overwriting it (postgresql.base.conf already exists)',
        );
      else {
        this.log.info(
          { file: this.confPath },
          'keeping the original postgresql.conf as postgresql.base.conf',
        );
        await rename(this.confPath, basePath);
      }
    }

    const hbaLines = role.pgHba ?? cfg.pg_hba;
    if (hbaLines) await this.writeOwned(hbaPath, renderLinesFile('pg_hba.conf', hbaLines), 0o600);
    if (cfg.pg_ident) await this.writeOwned(identPath, renderLinesFile('pg_ident.conf', cfg.pg_ident), 0o600);
    await this.writePgpass();

    const include = (await exists(basePath)) ? 'postgresql.base.conf' : null;
    const { params, ignored } = serverParameters({
      cfg,
      name: this.name,
      clusterName: this.clusterName,
      role: { ...role, parameters },
      include,
      hbaFile: userHba === undefined && (await exists(hbaPath)) ? hbaPath : null,
      identFile: userIdent === undefined && (await exists(identPath)) ? identPath : null,
      passfile: this.hasPassword(cfg.authentication.replication) ? resolve(cfg.pgpass) : null,
    });
    if (ignored.length > 0)
      this.log.warn({ ignored }, 'parameters pgha sets itself (or invalid names) were ignored');
    await this.writeOwned(this.confPath, renderPostgresqlConf(params, include), 0o600);
    await this.sanitizeAutoConf();

    const standby = join(this.dataDir, 'standby.signal');
    if (role.role === 'replica') {
      await this.writeOwned(standby, '', 0o600);
      await rm(join(this.dataDir, 'recovery.signal'), { force: true });
    } else if (role.signal === 'keep') {
      // a restored backup keeps the recovery configuration its restore left
    } else if (role.signal === 'recovery') {
      await rm(standby, { force: true });
      await this.writeOwned(join(this.dataDir, 'recovery.signal'), '', 0o600);
    } else {
      await rm(standby, { force: true });
      await rm(join(this.dataDir, 'recovery.signal'), { force: true });
    }
  }

  /**
   * The parameters PostgreSQL will take: renamed ones converted and every value PostgreSQL would
   * refuse dropped, each with a warning, so one bad value (from etcd, or a Patroni tool writing it)
   * cannot keep the server from starting. When the binary cannot be asked, the parameters go
   * through unchecked (PostgreSQL itself then reports what it refuses).
   */
  private async checkedParameters(
    input: Record<string, string | number | boolean>,
  ): Promise<Record<string, string | number | boolean>> {
    const opts: { walSegmentBytes?: number } = {};
    if (Object.keys(input).some((k) => k.toLowerCase() === 'wal_keep_segments')) {
      const bytes = Number((await this.controlData().catch(() => null))?.raw['Bytes per WAL segment']);
      if (bytes > 0) opts.walSegmentBytes = bytes;
    }
    const review = await this.validator.review(input, opts).catch((e: unknown) => {
      this.log.warn(`could not check postgresql.parameters, writing them unchecked: ${errorMessage(e)}`);
      return null;
    });
    if (!review) return input;
    for (const c of review.converted)
      this.log.info(`postgresql parameter converted: ${describeConverted(c)}`);
    for (const d of review.dropped)
      this.log.warn(
        { parameter: d.name, value: d.value, reason: d.reason },
        `ignoring postgresql parameter ${describeDropped(d)}`,
      );
    return review.params;
  }

  /**
   * Problems PostgreSQL would have with these parameters, as `name: what is wrong` (for a
   * configuration about to be written to etcd). Empty when the binary cannot be asked.
   */
  async parameterProblems(params: Record<string, string | number | boolean>): Promise<string[]> {
    try {
      return await this.validator.problems(params);
    } catch (e) {
      this.log.warn(`could not check postgresql.parameters: ${errorMessage(e)}`);
      return [];
    }
  }

  /** pg_settings of the running server (units and enum values), or null when it does not answer. */
  private async serverSettings(): Promise<{ major: number; settings: Record<string, SettingEntry> } | null> {
    if (!(await this.isRunning())) return null;
    const rows = await this.query<{
      v: number;
      name: string;
      context: string;
      vartype: string;
      unit: string | null;
      min_val: string | null;
      max_val: string | null;
      enumvals: string[] | null;
    }>(
      `SELECT current_setting('server_version_num')::int AS v, name, context, vartype, unit, min_val, max_val,
         enumvals FROM pg_settings WHERE name NOT LIKE '%.%'`,
    );
    const settings: Record<string, SettingEntry> = {};
    for (const r of rows) settings[r.name] = settingFromRow(r);
    return rows[0] ? { major: Math.floor(rows[0].v / 10000), settings } : null;
  }

  /**
   * Split layout (config_dir != data_dir): when the config dir lacks a file that initdb or
   * pg_basebackup put in the data dir, copy it over, so the cluster keeps its settings.
   */
  private async adoptConfigFromDataDir(): Promise<void> {
    const copyIfMissing = async (src: string, dst: string) => {
      if (!(await exists(src)) || (await exists(dst))) return;
      this.log.info({ from: src, to: dst }, 'copying configuration from the data directory to config_dir');
      await copyFile(src, dst);
      await chmod(dst, 0o600);
      await this.chownToUser(dst);
    };
    for (const f of ['postgresql.base.conf', 'pg_hba.conf', 'pg_ident.conf'])
      await copyIfMissing(join(this.dataDir, f), join(this.configDir, f));
    const dataConf = await readText(join(this.dataDir, 'postgresql.conf'));
    if (dataConf !== null && !isManagedConf(dataConf) && !(await exists(this.confPath))) {
      await copyIfMissing(
        join(this.dataDir, 'postgresql.conf'),
        join(this.configDir, 'postgresql.base.conf'),
      );
    }
  }

  /** ALTER SYSTEM (or pg_basebackup -R) may set recovery settings that would override ours; drop them. */
  private async sanitizeAutoConf(): Promise<void> {
    const p = join(this.dataDir, 'postgresql.auto.conf');
    const text = await readText(p);
    if (text === null) return;
    const lines = text.split('\n');
    const kept = lines.filter((l) => {
      const m = /^\s*([A-Za-z_.]+)\s*=?/.exec(l);
      return !(m && RECOVERY_PARAMETERS.has((m[1] as string).toLowerCase()));
    });
    if (kept.length !== lines.length) {
      this.log.info('removing recovery settings from postgresql.auto.conf');
      await this.writeOwned(p, kept.join('\n'), 0o600);
    }
  }

  // ---- roles and slots ----------------------------------------------------------------------------

  async createUsers(): Promise<void> {
    const a = this.cfg.authentication;
    const lit = (s: string) => pg.escapeLiteral(s);
    const id = (s: string) => pg.escapeIdentifier(s);
    const roleExists = async (name: string) =>
      (await this.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).length > 0;
    const upsert = async (name: string, attrs: string, password?: string) => {
      const pw = password !== undefined ? ` PASSWORD ${lit(password)}` : '';
      const verb = (await roleExists(name)) ? 'ALTER' : 'CREATE';
      await this.query(`${verb} ROLE ${id(name)} WITH ${attrs}${pw}`);
    };
    await upsert(a.superuser.username, 'SUPERUSER LOGIN', a.superuser.password);
    if (a.replication.username !== a.superuser.username)
      await upsert(a.replication.username, 'REPLICATION LOGIN', a.replication.password);
    const rw = a.rewind;
    if (rw && rw.username !== a.superuser.username) {
      await upsert(rw.username, 'LOGIN', rw.password);
      for (const fn of REWIND_FUNCTIONS)
        await this.query(`GRANT EXECUTE ON FUNCTION ${fn} TO ${id(rw.username)}`);
    }
  }

  /**
   * A server in recovery refuses to run with fewer connections, workers, WAL senders, prepared
   * transactions or locks than the primary whose WAL it replays had (pg_control records them): those
   * parameters are raised to the recorded values, as Patroni does.
   */
  private async withRecoveryMinimums(
    params: Record<string, string | number | boolean>,
  ): Promise<Record<string, string | number | boolean>> {
    const cd = await this.controlData().catch(() => null);
    if (!cd) return params;
    const out = { ...params };
    for (const [param, key] of RECOVERY_MINIMUMS) {
      const recorded = Number(cd.raw[key]);
      if (!Number.isInteger(recorded)) continue;
      const given = out[param] ?? PATRONI_DEFAULT_PARAMETERS[param];
      const mine = Number(given);
      if (given === undefined || !Number.isFinite(mine) || mine < recorded) {
        if (given !== undefined)
          this.log.info(
            `${param} raised from ${String(given)} to ${recorded}, the value the primary ran with`,
          );
        out[param] = recorded;
      }
    }
    return out;
  }

  /**
   * Removes an empty data directory so that a restore command can create it (as Patroni, whose data
   * directory does not exist before one runs); a mount point that cannot go stays.
   */
  async prepareForRestore(): Promise<void> {
    try {
      if ((await readdir(this.dataDir)).length === 0) await rmdir(this.dataDir);
    } catch {
      // absent, not empty, or a mount point: the command gets it as it is
    }
  }

  async createBootstrapUsers(
    users: Record<string, { password?: string; options?: string[] }>,
  ): Promise<void> {
    const a = this.cfg.authentication;
    const own = new Set([a.superuser.username, a.replication.username, a.rewind?.username]);
    for (const [name, u] of Object.entries(users)) {
      if (own.has(name)) continue;
      const options = (u.options ?? []).map((o) => o.trim().toUpperCase()).filter((o) => o !== '');
      for (const o of options)
        if (!/^[A-Z_]+( [A-Z0-9_]+)*$/.test(o))
          throw new PostgresError(`bootstrap.users.${name}.options: "${o}" is not a role option`);
      if (!options.includes('LOGIN') && !options.includes('NOLOGIN')) options.push('LOGIN');
      const pw = u.password !== undefined ? ` PASSWORD ${pg.escapeLiteral(u.password)}` : '';
      const exists = (await this.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).length > 0;
      await this.query(
        `${exists ? 'ALTER' : 'CREATE'} ROLE ${pg.escapeIdentifier(name)} WITH ${options.join(' ')}${pw}`,
      );
      this.log.info({ role: name }, `${exists ? 'updated' : 'created'} role ${name} (bootstrap.users)`);
    }
  }

  async runCommand(
    command: string,
    args: string[],
    opts: { env?: Record<string, string>; onLine?: (line: string) => void; signal?: AbortSignal } = {},
  ): Promise<CommandResult> {
    const argv = [...splitCommandLine(command), ...args];
    const file = argv[0];
    if (file === undefined) throw new PostgresError('empty command');
    const tail: string[] = [];
    // Connection strings on command lines may carry a password: never into the log.
    this.log.info(
      { cmd: argv.join(' ').replace(/(password\s*=\s*)('[^']*'|\S+)/gi, '$1***') },
      'running command',
    );
    let res: RunResult;
    try {
      res = await run(file, argv.slice(1), {
        user: this.user,
        cwd: process.cwd(),
        signal: opts.signal,
        env: { ...process.env, ...opts.env },
        onLine: (line) => {
          tail.push(line);
          if (tail.length > 20) tail.shift();
          opts.onLine?.(line);
        },
      });
    } catch (e) {
      return { code: null, output: errorMessage(e) };
    }
    return { code: res.code, output: lastLines(tail.join('\n')) };
  }

  async adoptRestoredDataDirectory(): Promise<void> {
    if (!(await exists(this.dataDir))) return;
    const u = this.user;
    if (u) {
      const st = await stat(this.dataDir);
      if (st.uid !== u.uid || st.gid !== u.gid) await chown(this.dataDir, u.uid, u.gid);
    }
    await chmod(this.dataDir, 0o700);
  }

  get dataDirectory(): string {
    return this.dataDir;
  }

  async replicationConnection(
    source: ConnTarget,
  ): Promise<{ connstring: string; env: Record<string, string> }> {
    await this.writePgpass();
    const connstring = conninfo({
      dbname: 'postgres',
      user: this.cfg.authentication.replication.username,
      host: source.host,
      port: source.port,
    });
    return { connstring, env: { PGPASSFILE: this.cfg.pgpass, PGAPPNAME: this.name } };
  }

  async localConnection(): Promise<{ connstring: string; env: Record<string, string> }> {
    await this.writePgpass();
    const su = this.cfg.authentication.superuser;
    const host = this.cfg.use_unix_socket
      ? (this.cfg.unix_socket_directories?.split(',')[0]?.trim() ?? undefined)
      : (this.cfg.listen.hosts.find((h) => h !== '*' && h !== '0.0.0.0' && h !== '::') ?? '127.0.0.1');
    const connstring = conninfo({
      dbname: 'postgres',
      user: su.username,
      host,
      port: this.cfg.listen.port,
    });
    return { connstring, env: { PGPASSFILE: this.cfg.pgpass, PGOPTIONS: '-c synchronous_commit=local' } };
  }

  private savedDynamicCache = '';

  /** Writes patroni.dynamic.json when it changed; false while there is no data directory. */
  async saveDynamicCache(json: string): Promise<boolean> {
    if (json === this.savedDynamicCache) return true;
    if ((await this.dataDirectoryState()) !== 'initialized') return false;
    await this.writeOwned(join(this.dataDir, 'patroni.dynamic.json'), json, 0o600);
    this.savedDynamicCache = json;
    return true;
  }

  async replicationSlots(): Promise<ReplicationSlot[]> {
    // to_jsonb of the row: the view's columns differ between versions (wal_status 13+, failover 17+).
    const rows = await this.query<{ s: Record<string, unknown> }>(
      'SELECT to_jsonb(s) AS s FROM pg_replication_slots s WHERE NOT temporary ORDER BY slot_name',
    );
    return rows.map(({ s }) => slotFromRow(s));
  }

  async createPhysicalSlot(name: string): Promise<void> {
    if (!isValidSlotName(name)) {
      this.log.warn({ slot: name }, 'not a valid replication slot name; skipped');
      return;
    }
    this.log.info({ slot: name }, 'creating physical replication slot');
    // immediately_reserve = true, as Patroni does, so WAL is kept from the moment the slot exists.
    await this.query(
      `SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
      [name],
    );
  }

  async createLogicalSlot(name: string, database: string, plugin: string, timeoutMs: number): Promise<void> {
    if (!isValidSlotName(name)) {
      this.log.warn({ slot: name }, 'not a valid replication slot name; skipped');
      return;
    }
    this.log.info({ slot: name, database, plugin }, 'creating logical replication slot');
    await this.inDatabase(database, { statementTimeoutMs: timeoutMs }, (client) =>
      client.query(
        `SELECT pg_create_logical_replication_slot($1, $2)
         WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_type = 'logical' AND slot_name = $1)`,
        [name, plugin],
      ),
    );
  }

  async advanceSlot(
    name: string,
    database: string | null,
    lsn: number,
    signal?: AbortSignal,
  ): Promise<AdvanceResult> {
    try {
      await this.inDatabase(database ?? 'postgres', { statementTimeoutMs: 0, signal }, (client) =>
        client.query('SELECT pg_replication_slot_advance($1, $2::pg_lsn)', [name, formatLsn(lsn)]),
      );
      return { ok: true };
    } catch (e) {
      const code = sqlState(e);
      // 58P01: a WAL segment it needs is gone; 55000: the slot was invalidated.
      return { ok: false, error: errorMessage(e), walGone: code === '58P01' || code === '55000' };
    }
  }

  async dropSlot(name: string): Promise<boolean> {
    const rows = await this.query<{ dropped: boolean }>(
      `SELECT true AS dropped FROM (SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
       WHERE slot_name = $1 AND NOT active) d`,
      [name],
    );
    return rows.length > 0;
  }

  async leaderSlotCopies(leader: ConnTarget, names: string[]): Promise<SlotCopy[]> {
    if (names.length === 0) return [];
    const rows = await this.onLeader(leader, (client) =>
      client.query<{
        slot_name: string;
        datname: string;
        plugin: string;
        catalog_xmin: string | null;
        confirmed: string;
        restart: string;
        state: Buffer;
      }>(
        `SELECT slot_name::text, datname::text, plugin::text, catalog_xmin::text,
           pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint::text AS confirmed,
           pg_wal_lsn_diff(restart_lsn, '0/0')::bigint::text AS restart,
           pg_read_binary_file('pg_replslot/' || slot_name || '/state') AS state
         FROM pg_get_replication_slots() JOIN pg_database ON datoid = oid
         WHERE NOT pg_is_in_recovery() AND slot_type = 'logical' AND slot_name = ANY($1)`,
        [names],
      ),
    );
    return rows.rows.map((r) => ({
      name: r.slot_name,
      database: r.datname,
      plugin: r.plugin,
      confirmedFlushLsn: Number(r.confirmed),
      restartLsn: Number(r.restart),
      catalogXmin: r.catalog_xmin === null ? null : Number(r.catalog_xmin),
      state: new Uint8Array(r.state),
    }));
  }

  /** Where the oldest WAL segment in pg_wal starts (an LSN); null when there is none. */
  async oldestWalLsn(): Promise<number | null> {
    const rows = await this.query<{ name: string | null; seg: string }>(
      `SELECT min(name) AS name, (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS seg
         FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'`,
    );
    const name = rows[0]?.name;
    const seg = Number(rows[0]?.seg);
    if (!name || !(seg > 0)) return null;
    return walSegmentStart(name, seg);
  }

  async leaderCatalogXmins(leader: ConnTarget, names: string[]): Promise<Record<string, number | null>> {
    const rows = await this.onLeader(leader, (client) =>
      client.query<{ slot_name: string; catalog_xmin: string | null }>(
        `SELECT slot_name::text, catalog_xmin::text FROM pg_get_replication_slots()
         WHERE NOT pg_is_in_recovery() AND slot_name = ANY($1)`,
        [names],
      ),
    );
    const out: Record<string, number | null> = {};
    for (const r of rows.rows) out[r.slot_name] = r.catalog_xmin === null ? null : Number(r.catalog_xmin);
    return out;
  }

  /**
   * Writes each copy as `pg_replslot/<name>/state`, as PostgreSQL keeps a slot: into `<name>.tmp`
   * first (which PostgreSQL removes at start if left over), fsync'd, then renamed into place. The
   * server must be stopped: it reads slot files only when it starts.
   */
  async installSlotCopies(copies: SlotCopy[]): Promise<void> {
    if (copies.length === 0) return;
    if (await this.isRunning()) throw new PostgresError('cannot install slot copies: PostgreSQL is running');
    const replslot = join(this.dataDir, 'pg_replslot');
    // Group access when the data directory allows it (initdb --allow-group-access), as PostgreSQL.
    const group = ((await stat(this.dataDir)).mode & 0o070) !== 0;
    const dirMode = group ? 0o750 : 0o700;
    const fileMode = group ? 0o640 : 0o600;
    for (const c of copies) {
      if (!isValidSlotName(c.name)) throw new PostgresError(`not a valid replication slot name: ${c.name}`);
      const dir = join(replslot, c.name);
      const tmp = `${dir}.tmp`;
      await rm(tmp, { recursive: true, force: true });
      await mkdir(tmp, { mode: dirMode });
      await this.chownToUser(tmp);
      await chmod(tmp, dirMode);
      const fh = await open(join(tmp, 'state'), 'w', fileMode);
      try {
        const u = this.user;
        if (u) await fh.chown(u.uid, u.gid);
        await fh.chmod(fileMode);
        await fh.writeFile(c.state);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsyncPath(tmp);
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
      await fsyncPath(dir);
    }
    await fsyncPath(replslot);
  }

  /** Runs `fn` on a connection of its own to `database` of the local server, then closes it. */
  private async inDatabase<T>(
    database: string,
    opts: { statementTimeoutMs: number; signal?: AbortSignal | undefined },
    fn: (client: pg.Client) => Promise<T>,
  ): Promise<T> {
    const cfg: pg.ClientConfig = { ...this.clientConfig(), database };
    if (opts.statementTimeoutMs > 0) cfg.statement_timeout = opts.statementTimeoutMs;
    const tls = tlsAttempts(this.cfg.authentication.superuser, this.localHost().startsWith('/'));
    const timeoutMs = opts.statementTimeoutMs > 0 ? opts.statementTimeoutMs + 5000 : 0;
    return this.oneShot(cfg, tls, fn, timeoutMs, opts.signal);
  }

  /** Runs `fn` on the leader's `postgres` database as the rewind user (or the superuser), as Patroni. */
  private async onLeader<T>(leader: ConnTarget, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const a = this.cfg.authentication;
    const user = a.rewind ?? a.superuser;
    const cfg: pg.ClientConfig = {
      host: leader.host,
      port: leader.port,
      user: user.username,
      password: user.password,
      database: 'postgres',
      application_name: 'pgha',
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      statement_timeout: QUERY_TIMEOUT_MS,
    };
    return this.oneShot(cfg, tlsAttempts(user, leader.host.startsWith('/')), fn, QUERY_TIMEOUT_MS + 5000);
  }

  /**
   * One connection for one job: connect (with the role's TLS settings, as libpq follows them), run,
   * close (also when it fails, times out or is aborted).
   */
  private async oneShot<T>(
    cfg: pg.ClientConfig,
    tls: TlsAttempt[],
    fn: (client: pg.Client) => Promise<T>,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<T> {
    let client: pg.Client | null = null;
    const close = () => void client?.end().catch(() => undefined);
    // Ending a client whose connection is still being made leaves its connect() pending for good
    // (node-postgres): a cancelled or timed-out call settles through `given`, not through the client.
    let over = false;
    let giveUp: (e: Error) => void = () => undefined;
    const given = new Promise<never>((_, reject) => (giveUp = reject));
    given.catch(() => undefined);
    const stop = (why: string) => {
      over = true;
      giveUp(new Error(why));
      close();
    };
    const timer =
      timeoutMs > 0 ? setTimeout(() => stop(`no answer within ${timeoutMs} ms`), timeoutMs) : null;
    const onAbort = () => stop('cancelled');
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    const work = async (): Promise<T> => {
      let first: unknown = null;
      for (const [i, attempt] of tls.entries()) {
        if (over) throw new Error('given up');
        const c = new pg.Client({ ...cfg, ssl: attempt.tls ? attempt.options : false });
        c.on('error', () => undefined);
        client = c;
        try {
          await c.connect();
          break;
        } catch (e) {
          void c.end().catch(() => undefined);
          client = null;
          if (first === null || noTlsOnServer(first)) first = e;
          if (i === tls.length - 1 || !mayTryNext(e) || signal?.aborted) throw first;
        }
      }
      if (!client) throw new Error('no connection attempt was made');
      if (over) {
        // Connected just as the call was given up: the caller has its answer already.
        close();
        throw new Error('given up');
      }
      return await fn(client);
    };
    const working = work();
    working.catch(() => undefined);
    try {
      return await Promise.race([working, given]);
    } catch (e) {
      if (signal?.aborted) throw new PostgresConnectionError('cancelled', e);
      if (isSqlError(e)) throw new PostgresError(errorMessage(e), { cause: e });
      throw new PostgresConnectionError(`${cfg.host ?? ''}:${cfg.port ?? ''}: ${errorMessage(e)}`, e);
    } finally {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      over = true;
      close();
    }
  }

  async setting(name: string): Promise<string | null> {
    try {
      const rows = await this.query<{ v: string }>('SELECT current_setting($1) AS v', [name]);
      return rows[0]?.v ?? null;
    } catch (e) {
      if (e instanceof PostgresConnectionError) return null;
      throw e;
    }
  }

  async timelineHistory(timeline: number): Promise<TimelineSwitch[]> {
    if (timeline <= 1) return [];
    const text = await readText(join(this.dataDir, 'pg_wal', historyFileName(timeline)));
    if (text === null) return [];
    return parseHistoryFile(text).map((h) => ({ timeline: h.timeline, lsn: h.lsn, reason: h.reason }));
  }

  async recoverySignalled(): Promise<boolean> {
    return (
      (await exists(join(this.dataDir, 'standby.signal'))) || exists(join(this.dataDir, 'recovery.signal'))
    );
  }

  private replayLogOffset: number | null = null;

  async replayErrors(): Promise<ReplayError[]> {
    let fh;
    try {
      fh = await open(this.logFile, 'r');
    } catch {
      return [];
    }
    try {
      const size = (await fh.stat()).size;
      // The first call only remembers where the log ends: older lines belong to older runs.
      const from = this.replayLogOffset === null || this.replayLogOffset > size ? size : this.replayLogOffset;
      this.replayLogOffset = size;
      const len = Math.min(size - from, 1 << 20);
      if (len <= 0) return [];
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, size - len);
      return parseReplayErrors(buf.toString('utf8'));
    } finally {
      await fh.close();
    }
  }

  private get holdFile(): string {
    return `${this.dataDir}.pgha-hold`;
  }

  async readHold(): Promise<string | null> {
    const text = await readText(this.holdFile);
    return text === null || text.trim() === '' ? null : text.trim();
  }

  async writeHold(reason: string | null): Promise<void> {
    if (reason === null) await rm(this.holdFile, { force: true });
    else await writeFile(this.holdFile, `${reason}\n`, { mode: 0o600 });
  }
}

/**
 * Messages a startup process logs when the WAL it streamed does not continue what it replayed.
 * Right after a start one such line is normal (the end of the local WAL); the same position
 * reported again while WAL keeps arriving is a fork.
 */
const REPLAY_ERROR_RE =
  /(invalid record length|incorrect prev-link|record with incorrect prev-link|invalid magic number|unexpected pageaddr|invalid resource manager ID|invalid record offset|contrecord is requested)[^\n]*?at ([0-9A-F]+\/[0-9A-F]+)/i;

/** The replay errors in a chunk of server log. */
export function parseReplayErrors(text: string): ReplayError[] {
  const out: ReplayError[] = [];
  for (const line of text.split('\n')) {
    const m = REPLAY_ERROR_RE.exec(line);
    if (!m) continue;
    try {
      out.push({
        lsn: parseLsn(m[2] as string),
        message: line.replace(/^.*?(LOG|WARNING|FATAL):\s*/, '').trim(),
      });
    } catch {
      // not a position after all
    }
  }
  return out;
}

/** Parses `pg_controldata` output (run with LC_ALL=C). */
export function parseControlData(text: string): ControlData {
  const raw: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    raw[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  const get = (k: string): string => {
    const v = raw[k];
    if (v === undefined) throw new PostgresError(`pg_controldata output lacks "${k}"`);
    return v;
  };
  const lsn = (k: string) => {
    try {
      return parseLsn(get(k));
    } catch (e) {
      throw new PostgresError(`pg_controldata: ${k}: ${errorMessage(e)}`, { cause: e });
    }
  };
  return {
    systemIdentifier: get('Database system identifier'),
    clusterState: get('Database cluster state'),
    timeline: Number(get("Latest checkpoint's TimeLineID")),
    checkpointLsn: lsn('Latest checkpoint location'),
    minRecoveryLsn: lsn('Minimum recovery ending location'),
    dataChecksums: Number(raw['Data page checksum version'] ?? '0') > 0,
    walLogHints: raw['wal_log_hints setting'] === 'on',
    raw,
  };
}

function statusFromRows(row: StatusRow, replication: ReplicationRow[]): ServerStatus {
  const receiveLsn = parseLsnOrUndefined(row.receive_lsn);
  const replayLsn = parseLsnOrUndefined(row.replay_lsn);
  let timeline: number;
  let walPosition: number;
  if (!row.in_recovery && row.current_walfile && row.current_lsn) {
    timeline = timelineFromWalFileName(row.current_walfile);
    walPosition = parseLsn(row.current_lsn);
  } else {
    timeline = row.received_tli ?? row.checkpoint_timeline;
    walPosition = Math.max(receiveLsn ?? 0, replayLsn ?? 0);
  }
  const st: ServerStatus = {
    inRecovery: row.in_recovery,
    timeline,
    walPosition,
    systemIdentifier: row.system_identifier,
    serverVersion: row.server_version,
    postmasterStartTime: row.postmaster_start_time,
    pendingRestart: row.pending_restart,
    replication: replication.map((r) => ({
      usename: r.usename,
      application_name: r.application_name,
      client_addr: r.client_addr,
      state: r.state,
      sync_state: r.sync_state,
      sync_priority: r.sync_priority,
      write_lsn: parseLsnOrUndefined(r.write_lsn),
      flush_lsn: parseLsnOrUndefined(r.flush_lsn),
      replay_lsn: parseLsnOrUndefined(r.replay_lsn),
    })),
  };
  if (!row.in_recovery) st.synchronousCommit = row.synchronous_commit;
  if (row.in_recovery) {
    st.receiveLsn = receiveLsn;
    st.replayLsn = replayLsn;
    st.replayTimestamp = row.replay_timestamp;
    st.replayPaused = row.replay_paused;
    st.replicationState = row.receiver_status ?? undefined;
    st.receiverUpstream =
      row.sender_host !== null && row.sender_port !== null
        ? { host: row.sender_host, port: row.sender_port }
        : null;
  }
  return st;
}

/**
 * A simulated PostgreSQL for the model test. It keeps what the safety rules are about and nothing
 * else: the WAL as stretches of one writer on one timeline (two primaries that write on the same
 * timeline number make two stretches, as real forks do), pg_control's state, standby mode, slots,
 * synchronous_standby_names, and the faults a real server shows (a start that fails, a promotion
 * that takes long, a crash). Replication, commits and acknowledgements are driven by world.ts.
 */
import type {
  CommandResult,
  ConnTarget,
  ControlData,
  AdvanceResult,
  ReplicationSlot,
  SlotCopy,
  PostgresNode,
  ReplayError,
  RoleConfig,
  ServerStatus,
  StopMode,
  TimelineSwitch,
  WalSender,
} from '../../postgres/types.js';
import { PostgresError } from '../../util/errors.js';
import type { SimClock } from './sim-clock.js';

/** One writer's stretch of WAL on one timeline: positions [from, to). */
export interface Stretch {
  uid: number;
  tl: number;
  from: number;
  to: number;
  writer: string;
}

let nextUid = 1;
export function resetUids(): void {
  nextUid = 1;
}

export class Wal {
  constructor(public stretches: Stretch[] = []) {}

  get end(): number {
    return this.stretches.at(-1)?.to ?? 0;
  }

  get timeline(): number {
    return this.stretches.at(-1)?.tl ?? 1;
  }

  copy(upTo = this.end): Wal {
    const out: Stretch[] = [];
    for (const s of this.stretches) {
      if (s.from > upTo || (s.from === upTo && out.length > 0 && s.to > s.from)) break;
      out.push({ ...s, to: Math.min(s.to, upTo) });
    }
    return new Wal(out);
  }

  stretchAt(pos: number): Stretch | undefined {
    return this.stretches.find((s) => s.from <= pos && pos < s.to);
  }

  /** Whether this WAL holds position `pos` as written in stretch `uid`. */
  holds(pos: number, uid: number): boolean {
    return this.stretchAt(pos)?.uid === uid;
  }

  /** Whether every record of this WAL is in `other` (so streaming from it can continue this). */
  prefixOf(other: Wal): boolean {
    if (this.end > other.end) return false;
    for (const s of this.stretches) {
      if (s.to === s.from) continue;
      const o = other.stretches.find((x) => x.uid === s.uid);
      if (!o || o.from !== s.from || o.to < s.to) return false;
    }
    return true;
  }

  /** Appends `n` bytes written by `writer` (a new stretch when someone else wrote the last one). */
  append(n: number, writer: string): Stretch {
    let last = this.stretches.at(-1);
    if (!last || last.writer !== writer) {
      last = { uid: nextUid++, tl: last?.tl ?? 1, from: this.end, to: this.end, writer };
      this.stretches.push(last);
    }
    last.to += n;
    return last;
  }

  /** A promotion: a new timeline, numbered one past the newest this WAL knows. */
  switchTimeline(writer: string): number {
    const tl = Math.max(1, ...this.stretches.map((s) => s.tl)) + 1;
    this.stretches.push({ uid: nextUid++, tl, from: this.end, to: this.end, writer });
    return tl;
  }

  /** The history file of the current timeline: each ancestor timeline and where it ended. */
  history(): TimelineSwitch[] {
    const out: TimelineSwitch[] = [];
    for (let i = 0; i + 1 < this.stretches.length; i++) {
      const s = this.stretches[i] as Stretch;
      const n = this.stretches[i + 1] as Stretch;
      if (n.tl !== s.tl) out.push({ timeline: s.tl, lsn: n.from, reason: 'no recovery target specified' });
    }
    return out;
  }
}

/**
 * One of a primary's walsenders: the connection of a standby, kept by PostgreSQL until the standby
 * closes it or, when its host vanished without closing it, until wal_sender_timeout.
 */
export interface SimWalSender {
  pid: number;
  /** WAL sent into the connection, and flushed by the standby as of its last answer. */
  sent: number;
  flushed: number;
  /** When its last answer arrived (monotonic ms). */
  replyAt: number;
}

/** The machine's PostgreSQL: data and server, surviving agent restarts. */
export class SimServer {
  data: 'empty' | 'initialized' = 'empty';
  sysid = '';
  wal = new Wal();
  running = false;
  /** Accepting connections from this monotonic time on. */
  readyAt = 0;
  inRecovery = false;
  standbySignal = false;
  clusterState = 'shut down';
  checkpointLsn = 0;
  minRecoveryLsn = 0;
  pid = 0;
  upstream: string | null = null;
  slotName: string | null = null;
  /** synchronous_standby_names written to the config, and the one in force (after a reload/start). */
  ssnConfigured = '';
  ssnActive = '';
  slots = new Map<string, ReplicationSlot>();
  /** As a primary: its walsenders, by standby name (the world keeps them, see World.replicate). */
  readonly walSenders = new Map<string, SimWalSender>();
  streaming = false;
  hold: string | null = null;
  /** Faults. */
  failStart = false;
  promoteDelayMs = 0;
  promotion: { doneAt: number; run: number } | null = null;
  /** Bumped on every start and stop: work begun under an older run is void. */
  run = 0;
  /** Called as a primary stops cleanly: its walsenders hand the shutdown checkpoint to the streaming replicas. */
  onCleanPrimaryStop: (s: SimServer) => void = () => undefined;
  /** The agents' sessions to this server (one is open while it runs): told when it crashes. */
  readonly sessionLost = new Set<() => void>();

  constructor(
    readonly name: string,
    private readonly sysids: { next(): string },
  ) {}

  writable(now: number): boolean {
    return this.running && now >= this.readyAt && !this.inRecovery;
  }

  ready(now: number): boolean {
    return this.running && now >= this.readyAt;
  }

  initdb(): void {
    this.data = 'initialized';
    this.sysid = this.sysids.next();
    this.wal = new Wal();
    this.wal.append(100, this.name);
    this.clusterState = 'shut down';
    this.checkpointLsn = this.wal.end;
  }

  /** The postmaster is killed (a fault, not the agent's stop): its sessions end under their clients. */
  crash(): void {
    if (!this.running) return;
    this.stop(false);
    for (const lost of [...this.sessionLost]) lost();
  }

  /** Stops the server: clean (`fast`/`smart`) or not (`immediate`, a crash). */
  stop(clean: boolean): void {
    if (!this.running) return;
    this.run++;
    this.running = false;
    this.streaming = false;
    this.walSenders.clear();
    this.promotion = null;
    if (this.inRecovery) {
      this.clusterState = clean ? 'shut down in recovery' : 'in archive recovery';
      this.minRecoveryLsn = this.wal.end;
      this.checkpointLsn = this.wal.stretches.at(-1)?.from ?? 0;
    } else {
      if (clean) {
        const last = this.wal.stretches.at(-1);
        if (last && last.writer === this.name) last.to += 40;
        else this.wal.append(40, this.name);
        this.checkpointLsn = this.wal.end - 40;
        this.onCleanPrimaryStop(this);
      }
      this.clusterState = clean ? 'shut down' : 'in production';
    }
    for (const s of this.slots.values()) s.active = false;
  }

  /** What a promotion does once it is through. */
  finishPromotion(): void {
    this.wal.switchTimeline(this.name);
    this.inRecovery = false;
    this.standbySignal = false;
    this.upstream = null;
    this.clusterState = 'in production';
    this.promotion = null;
  }
}

/** The `PostgresNode` an agent incarnation sees; dead once its agent is killed. */
function simSlot(name: string, type: 'physical' | 'logical', lsn: number): ReplicationSlot {
  return {
    name,
    type,
    active: false,
    database: null,
    plugin: null,
    restartLsn: lsn,
    confirmedFlushLsn: type === 'logical' ? lsn : null,
    catalogXmin: null,
    xmin: null,
    walStatus: 'reserved',
    failover: false,
  };
}

export class SimPostgres implements PostgresNode {
  lastConnectionError: string | null = null;
  private dead = false;

  constructor(
    private readonly s: SimServer,
    private readonly clock: SimClock,
    private readonly world: { members(): Map<string, SimServer>; addressOf(name: string): string },
  ) {}

  private readonly lostListeners: Array<() => void> = [];

  kill(): void {
    this.dead = true;
    // A dead agent's session and listeners are gone with it.
    for (const l of this.lostListeners) this.s.sessionLost.delete(l);
  }

  onConnectionLost(listener: () => void): void {
    this.lostListeners.push(listener);
    this.s.sessionLost.add(listener);
  }

  private async op<T>(fn: () => T, ms = 5): Promise<T> {
    if (this.dead) return new Promise<T>(() => undefined); // a dead process's calls never return
    await this.clock.sleep(ms);
    if (this.dead) return new Promise<T>(() => undefined);
    return fn();
  }

  dataDirectoryState(): Promise<'empty' | 'initialized' | 'invalid'> {
    return this.op(() => this.s.data);
  }

  controlData(): Promise<ControlData | null> {
    return this.op(() =>
      this.s.data === 'empty'
        ? null
        : {
            systemIdentifier: this.s.sysid,
            clusterState: this.s.running
              ? this.s.inRecovery
                ? 'in archive recovery'
                : 'in production'
              : this.s.clusterState,
            timeline: this.s.wal.timeline,
            checkpointLsn: this.s.checkpointLsn,
            minRecoveryLsn: this.s.minRecoveryLsn,
            dataChecksums: true,
            walLogHints: false,
            raw: {},
          },
    );
  }

  isRunning(): Promise<boolean> {
    return this.op(() => this.s.running, 1);
  }

  postmasterPid(): Promise<number | null> {
    return this.op(() => (this.s.running ? this.s.pid : null), 1);
  }

  status(): Promise<ServerStatus | null> {
    return this.op(() => statusOf(this.s, this.clock.mono(), this.world));
  }

  binaryVersion(): Promise<number> {
    return Promise.resolve(15);
  }

  initdb(): Promise<void> {
    return this.op(() => {
      if (this.s.data !== 'empty') throw new PostgresError('cannot initdb: data directory is not empty');
      this.s.initdb();
    }, 200);
  }

  basebackup(source: ConnTarget): Promise<void> {
    return this.op(() => {
      const src = this.world.members().get(source.member);
      if (!src?.ready(this.clock.mono()))
        throw new PostgresError(`pg_basebackup: could not connect to ${source.member}`);
      if (this.s.data !== 'empty')
        throw new PostgresError('refusing to clone into a non-empty data directory');
      this.s.data = 'initialized';
      this.s.sysid = src.sysid;
      this.s.wal = src.wal.copy();
      this.s.clusterState = 'in archive recovery';
      this.s.minRecoveryLsn = this.s.wal.end;
      this.s.checkpointLsn = this.s.wal.end;
    }, 300);
  }

  rewind(source: ConnTarget): Promise<void> {
    return this.op(() => {
      const src = this.world.members().get(source.member);
      if (!src?.ready(this.clock.mono()))
        throw new PostgresError(`pg_rewind: could not connect to server ${source.member}`);
      if (this.s.running) throw new PostgresError('pg_rewind: target server must be shut down cleanly');
      // pg_rewind compares timeline histories by number and switch point, as the real tool does:
      // the same history means "no rewind required", even when the stretches were written apart.
      const mine = JSON.stringify([
        this.s.wal.timeline,
        this.s.wal.history().map((h) => [h.timeline, h.lsn]),
      ]);
      const theirs = JSON.stringify([src.wal.timeline, src.wal.history().map((h) => [h.timeline, h.lsn])]);
      if (mine === theirs) return;
      this.s.wal = src.wal.copy();
      this.s.clusterState = 'in archive recovery';
      this.s.minRecoveryLsn = this.s.wal.end;
    }, 200);
  }

  removeDataDirectory(): Promise<void> {
    return this.op(() => {
      if (this.s.running)
        throw new PostgresError('refusing to remove the data directory: PostgreSQL is running');
      this.s.data = 'empty';
      this.s.wal = new Wal();
      this.s.slots.clear();
      this.s.sysid = '';
    });
  }

  configure(role: RoleConfig): Promise<void> {
    return this.op(() => {
      this.s.standbySignal = role.role === 'replica';
      this.s.upstream = role.upstream?.member ?? null;
      this.s.slotName = role.slotName ?? null;
      this.s.ssnConfigured = String(role.parameters.synchronous_standby_names ?? '');
    });
  }

  async start(timeoutMs: number): Promise<void> {
    await this.op(() => undefined);
    if (this.s.running) return;
    if (this.s.failStart)
      throw new PostgresError(
        'PostgreSQL failed to start: FATAL: invalid value for parameter "work_mem": "nonsense"',
      );
    const s = this.s;
    s.run++;
    s.running = true;
    s.pid += 1;
    s.readyAt = this.clock.mono() + 50 + (s.pid % 5) * 60;
    s.ssnActive = s.ssnConfigured;
    // Standby mode only with standby.signal: a replica's data started without it comes up as a
    // primary on the same timeline (the hazard the HA rules must never cause).
    s.inRecovery = s.standbySignal;
    s.clusterState = s.inRecovery ? 'in archive recovery' : 'in production';
    await this.clock.sleep(Math.min(timeoutMs, s.readyAt - this.clock.mono()));
  }

  async stop(mode: StopMode): Promise<void> {
    await this.op(() => this.s.stop(mode !== 'immediate'));
  }

  async restart(timeoutMs: number): Promise<void> {
    await this.stop('fast');
    await this.start(timeoutMs);
  }

  reload(): Promise<void> {
    return this.op(() => {
      if (this.s.running) this.s.ssnActive = this.s.ssnConfigured;
    });
  }

  async promote(timeoutMs: number): Promise<void> {
    const s = this.s;
    await this.op(() => undefined);
    if (!s.ready(this.clock.mono()))
      throw new PostgresError('cannot promote: PostgreSQL is not running', { retryable: true });
    if (!s.inRecovery) return;
    if (!s.promotion) {
      const run = s.run;
      const doneAt = this.clock.mono() + s.promoteDelayMs;
      s.promotion = { doneAt, run };
      s.promoteDelayMs = 0;
      this.clock.setTimer(() => {
        if (s.run === run && s.promotion?.run === run && s.inRecovery) s.finishPromotion();
      }, doneAt - this.clock.mono());
    }
    const until = this.clock.mono() + timeoutMs;
    // Polls as the real one does, and gives up as soon as the server is gone.
    while (s.inRecovery && s.running && this.clock.mono() < until) await this.clock.sleep(100);
    if (!s.running)
      throw new PostgresError('promotion did not complete: PostgreSQL stopped', { retryable: true });
    if (s.inRecovery)
      throw new PostgresError(`promotion did not complete within ${timeoutMs} ms`, { retryable: true });
  }

  checkpoint(): Promise<void> {
    return this.op(() => undefined);
  }

  query<T>(): Promise<T[]> {
    return Promise.reject(new Error('the simulated server runs no SQL: use a PostgresNode method'));
  }

  createUsers(): Promise<void> {
    return this.op(() => undefined);
  }

  replicationSlots(): Promise<ReplicationSlot[]> {
    return this.op(() => [...this.s.slots.values()].map((x) => ({ ...x })));
  }

  createPhysicalSlot(name: string): Promise<void> {
    return this.op(() => {
      if (!this.s.slots.has(name)) this.s.slots.set(name, simSlot(name, 'physical', this.s.wal.end));
    });
  }

  createLogicalSlot(name: string, database: string, plugin: string): Promise<void> {
    return this.op(() => {
      if (!this.s.slots.has(name))
        this.s.slots.set(name, { ...simSlot(name, 'logical', this.s.wal.end), database, plugin });
    });
  }

  advanceSlot(name: string, _database: string | null, lsn: number): Promise<AdvanceResult> {
    return this.op((): AdvanceResult => {
      const slot = this.s.slots.get(name);
      if (!slot) return { ok: false, error: `replication slot "${name}" does not exist`, walGone: false };
      const to = Math.min(lsn, this.s.wal.end);
      if (slot.type === 'logical') slot.confirmedFlushLsn = Math.max(slot.confirmedFlushLsn ?? 0, to);
      slot.restartLsn = Math.max(slot.restartLsn ?? 0, to);
      return { ok: true };
    });
  }

  dropSlot(name: string): Promise<boolean> {
    return this.op(() => {
      const slot = this.s.slots.get(name);
      if (!slot || slot.active) return false;
      return this.s.slots.delete(name);
    });
  }

  /** The simulation has no logical slots to copy (the model configures none). */
  oldestWalLsn(): Promise<number | null> {
    return Promise.resolve(null);
  }

  leaderSlotCopies(): Promise<SlotCopy[]> {
    return this.op(() => []);
  }

  leaderCatalogXmins(): Promise<Record<string, number | null>> {
    return this.op(() => ({}));
  }

  installSlotCopies(): Promise<void> {
    return Promise.resolve();
  }

  setting(name: string): Promise<string | null> {
    return this.op(() => (name === 'synchronous_standby_names' && this.s.running ? this.s.ssnActive : null));
  }

  timelineHistory(timeline: number): Promise<TimelineSwitch[]> {
    return this.op(() => (timeline === this.s.wal.timeline ? this.s.wal.history() : []));
  }

  recoverySignalled(): Promise<boolean> {
    return this.op(() => this.s.standbySignal);
  }

  replayErrors(): Promise<ReplayError[]> {
    return Promise.resolve([]);
  }

  readHold(): Promise<string | null> {
    return this.op(() => this.s.hold);
  }

  writeHold(reason: string | null): Promise<void> {
    return this.op(() => {
      this.s.hold = reason;
    });
  }

  runCommand(): Promise<CommandResult> {
    return Promise.resolve({ code: 1, output: 'the simulated server runs no commands' });
  }

  prepareForRestore(): Promise<void> {
    return Promise.resolve();
  }

  adoptRestoredDataDirectory(): Promise<void> {
    return Promise.resolve();
  }

  createBootstrapUsers(): Promise<void> {
    return this.op(() => undefined);
  }

  readonly dataDirectory = '/sim/data';

  replicationConnection(): Promise<{ connstring: string; env: Record<string, string> }> {
    return Promise.resolve({ connstring: '', env: {} });
  }

  localConnection(): Promise<{ connstring: string; env: Record<string, string> }> {
    return Promise.resolve({ connstring: '', env: {} });
  }

  saveDynamicCache(): Promise<boolean> {
    return Promise.resolve(false);
  }

  walSenders(): Promise<WalSender[] | null> {
    return this.op(() => {
      const s = this.s;
      if (!s.ready(this.clock.mono()) || s.inRecovery) return null;
      return [...s.walSenders].map(([name, w]) => ({
        pid: w.pid,
        name,
        streaming: true,
        sent: w.sent,
        flushed: w.flushed,
        replyTime: String(w.replyAt),
      }));
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** What `status()` reads from a running server that accepts connections. */
export function statusOf(
  s: SimServer,
  now: number,
  world: { members(): Map<string, SimServer>; addressOf(name: string): string },
): ServerStatus | null {
  if (!s.ready(now)) return null;
  const replication: ServerStatus['replication'] = [];
  if (!s.inRecovery) {
    const listed = parseSsn(s.ssnActive);
    // pg_stat_replication lists every walsender, answered or not: a standby whose host vanished
    // stays 'streaming' at its last flush position until wal_sender_timeout.
    for (const [name, w] of s.walSenders) {
      const flushed = w.flushed;
      const syncState =
        listed && listed.names.some((n) => n === name || n === '*')
          ? listed.any
            ? 'quorum'
            : 'sync'
          : 'async';
      replication.push({
        usename: 'replicator',
        application_name: name,
        client_addr: world.addressOf(name),
        state: 'streaming',
        sync_state: syncState,
        sync_priority: syncState === 'async' ? 0 : 1,
        write_lsn: flushed,
        flush_lsn: flushed,
        replay_lsn: flushed,
      });
    }
  }
  const st: ServerStatus = {
    inRecovery: s.inRecovery,
    timeline: s.wal.timeline,
    walPosition: s.wal.end,
    systemIdentifier: s.sysid,
    serverVersion: 150000,
    postmasterStartTime: `pid-${s.pid}`,
    pendingRestart: false,
    replication,
  };
  if (s.inRecovery) {
    st.receiveLsn = s.wal.end;
    st.replayLsn = s.wal.end;
    if (s.streaming) st.replicationState = 'streaming';
    st.receiverUpstream = s.streaming && s.upstream ? { host: s.upstream, port: 5432 } : null;
  }
  return st;
}

/** synchronous_standby_names as the model reads it: `FIRST n (a,b)`, `ANY n (a,b)`, `a`, `*`. */
export function parseSsn(ssn: string): { any: boolean; n: number; names: string[] } | null {
  const t = ssn.trim();
  if (t === '') return null;
  const m = /^(FIRST|ANY)\s+(\d+)\s*\((.*)\)$/i.exec(t);
  const list = (text: string) => text.split(',').map((x) => x.trim().replace(/^"|"$/g, ''));
  if (m) return { any: m[1]?.toUpperCase() === 'ANY', n: Number(m[2]), names: list(m[3] ?? '') };
  return { any: false, n: 1, names: list(t) };
}

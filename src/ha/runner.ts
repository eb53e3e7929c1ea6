/**
 * The HA loop: observes the store and the local PostgreSQL, asks `decide` for one step, carries it
 * out, and publishes the member key. Implementations of the store and PostgreSQL are injected (this
 * folder imports only their types), so the same loop runs against real etcd and PostgreSQL in the
 * agent and in the integration tests.
 */
import type { CallbackName, DynamicConfig, PghaConfig } from '../config/types.js';
import type { ClusterState, Dcs, Member, MemberData } from '../dcs/types.js';
import type { ConnTarget, ControlData, PostgresNode, RoleConfig, ServerStatus } from '../postgres/types.js';
import type { Logger } from '../util/log.js';
import { urlHostPort } from '../util/net.js';
import type { LeaderWatchdog } from '../watchdog/watchdog.js';
import { errorMessage } from '../util/errors.js';
import { decide } from './decide.js';
import {
  failsafePeers,
  failsafeTopology,
  FailsafeHeartbeats,
  sameTopology,
  withFailsafeLeader,
  type FailsafeAnswer,
  type FailsafeLeader,
} from './failsafe.js';
import { planSync } from './sync.js';
import { mergeTimelineHistory } from './history.js';
import { evaluateRace, findMember, isPrimaryRole, needsRewind } from './rules.js';
import type { Decision, LocalPostgres, PeerStatus } from './types.js';

export interface RunnerDeps {
  config: PghaConfig;
  dcs: Dcs;
  pg: PostgresNode;
  logger: Logger;
  /** Parses the `config` key (or bootstrap.dcs) into the dynamic config with defaults. */
  parseDynamic(raw: Record<string, unknown>): DynamicConfig;
  /** Asks a peer's REST API for its status (`GET /patroni`), within the signal's deadline. */
  fetchPeer(member: Member, signal: AbortSignal): Promise<PeerStatus>;
  /** The watchdog pinged with every renewal while leader (absent: none, as `watchdog.mode: off`). */
  watchdog?: LeaderWatchdog;
  /** One TCP connection attempt (`fast_failover` probes of the leader); absent: no fast failover. */
  probePort?(host: string, port: number): Promise<'open' | 'refused' | 'unknown'>;
  /** `POST /failsafe` to a peer (failsafe_mode); absent: every peer counts as not confirming. */
  postFailsafe?(member: Member, leader: FailsafeLeader, signal: AbortSignal): Promise<FailsafeAnswer>;
  /** Runs a user callback (`on_start`, ...) without waiting for it. */
  runCallback(action: CallbackName, role: string): void;
  /** Physical slot name for a member (Patroni's rule). */
  slotName(member: string): string;
  version: string;
  now?: () => number;
}

/** What the REST API and the ctl read about this node; updated once per cycle. */
export interface AgentSnapshot {
  name: string;
  scope: string;
  /** Patroni's member state: running, starting, stopped, crashed, creating replica, ... */
  state: string;
  role: 'primary' | 'replica' | 'uninitialized' | 'demoted';
  cluster: ClusterState | null;
  dynamic: DynamicConfig;
  status: ServerStatus | null;
  running: boolean;
  /** Seconds since epoch of the last successful read from the store. */
  dcsLastSeen: number | null;
  lastLoop: number | null;
  lastDecision: Decision | null;
  isLeader: boolean;
  sysid: string | null;
  paused: boolean;
  /** The store is unreachable and every member confirmed this primary over `POST /failsafe`. */
  failsafeActive: boolean;
}

const LEASE_SAFETY_MIN_S = 2;
/** How long a switchover waits for its candidate to stream from us (a walreceiver retries every 5 s). */
const SWITCHOVER_CONNECT_WAIT_MS = 12_000;
/** fast_failover: a replica probes its leader this often; this many refusals in a row prove it gone. */
const LEADER_PROBE_MS = 300;
const LEADER_GONE_AFTER = 3;
const WAKE_KEYS = new Set(['leader', 'failover', 'config', 'initialize', 'sync']);

/** Logs a tool's lines; its `n/m kB (p%)` progress lines at most every 10 s, with the numbers. */
function progressLogger(log: Logger, tool: string): (line: string) => void {
  let last = 0;
  return (line) => {
    const m = /(\d+)\/(\d+) kB \((\d+)%\)/.exec(line);
    if (!m) return log.info(`${tool}: ${line}`);
    if (Date.now() - last < 10_000 && m[3] !== '100') return;
    last = Date.now();
    log.info(
      { progress: { done_kb: Number(m[1]), total_kb: Number(m[2]), percent: Number(m[3]) } },
      `${tool}: ${line.trim()}`,
    );
  };
}

export class HaRunner {
  private readonly d: RunnerDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  private dynamic: DynamicConfig;
  private stopping = false;
  private wakeUp: (() => void) | null = null;
  private wakePending = false;
  private stopWatch: (() => Promise<void>) | null = null;
  private lastMessage = '';
  private lastPublished = '';
  private lastStatusKey = '';
  private configuredUpstream: string | null = null;
  private upstreamKnown = false;
  private operatorHold: string | null = null;
  private fenceTimer: NodeJS.Timeout | null = null;
  private fenced = false;
  private lastLeaseSent: number | null = null;
  private dcsFailing = false;
  private busyState: string | null = null;
  /** Replication slots on this leader, and when their member was last seen. */
  private readonly slotSeen = new Map<string, number>();
  private slotsSeeded = false;
  private loopDone: Promise<void> = Promise.resolve();
  private keeperTimer: NodeJS.Timeout | null = null;
  /** synchronous_standby_names this leader put in force, and the WAL position at that moment. */
  private ssn = '';
  private ssnSince = 0;
  private lastSyncWhy = '';
  /** The last pg_controldata read (taken while PostgreSQL was down). */
  private lastControl: ControlData | null = null;
  /** Parameters and pg_hba last written to the server's configuration (null: not since start). */
  private appliedServerConfig: string | null = null;
  private mutex: Promise<void> = Promise.resolve();
  private currentOperation: string | null = null;
  /** A switchover waiting for its candidate to stream from us: which request, since when. */
  private switchoverWait: { key: string; since: number } | null = null;
  /** Replica side of failsafe_mode: the leader's last `POST /failsafe`. */
  private readonly failsafeHeartbeats = new FailsafeHeartbeats();
  private lastFailsafeReport = '';
  private probeTimer: NodeJS.Timeout | null = null;
  /** Since when this replica's WAL receiver has not been streaming (null: it streams). */
  private notStreamingSince: number | null = null;
  private leaderRefusals = { key: '', count: 0 };
  /** Set by the probe when the leader's processes are proven gone; the next cycle acts on it. */
  private leaderGone: { name: string; modRevision: string; why: string } | null = null;
  /** Published as `scheduled_restart` in the member key while a restart is scheduled. */
  scheduledRestart: Record<string, unknown> | null = null;
  readonly snapshot: AgentSnapshot;

  constructor(deps: RunnerDeps) {
    this.d = deps;
    this.log = deps.logger;
    this.now = deps.now ?? Date.now;
    this.dynamic = deps.parseDynamic(deps.config.bootstrap.dcs);
    this.snapshot = {
      name: deps.config.name,
      scope: deps.config.scope,
      state: 'starting',
      role: 'uninitialized',
      cluster: null,
      dynamic: this.dynamic,
      status: null,
      running: false,
      dcsLastSeen: null,
      lastLoop: null,
      lastDecision: null,
      isLeader: false,
      sysid: null,
      paused: false,
      failsafeActive: false,
    };
  }

  get me(): string {
    return this.d.config.name;
  }

  /** Starts the loop; resolves once the first cycle has run. */
  async start(): Promise<void> {
    this.stopWatch = this.d.dcs.watch((keys) => {
      // Members' own keys change with every write they see; only the keys that can change a
      // decision wake the loop at once (an empty list means events may have been missed).
      if (keys.length === 0 || keys.some((k) => WAKE_KEYS.has(k))) this.wake();
    });
    let firstDone!: () => void;
    const first = new Promise<void>((r) => (firstDone = r));
    this.loopDone = this.loop(firstDone);
    await first;
    this.scheduleKeeper();
    this.scheduleLeaderProbe();
  }

  /**
   * The leader's lease keeper: renews between cycles, so a long step of the loop (a switchover's
   * checkpoint, a slow peer) does not let the lease run out. It renews only while the loop
   * completes cycles, so a stuck agent still loses the lease and the cluster fails over.
   */
  private scheduleKeeper(): void {
    if (this.stopping) return;
    const every = Math.max(250, (this.dynamic.ttl * 1000) / 5);
    this.keeperTimer = setTimeout(() => {
      void this.keepLease().finally(() => this.scheduleKeeper());
    }, every);
  }

  private async keepLease(): Promise<void> {
    const armedAt = this.lastLeaseSent;
    if (this.stopping || !this.snapshot.isLeader || armedAt === null) return;
    if (this.now() - (this.snapshot.lastLoop ?? 0) * 1000 > this.dynamic.ttl * 1000) return;
    try {
      const deadline = () => AbortSignal.timeout(this.dynamic.retry_timeout * 1000);
      const lease = this.d.dcs.leaseId;
      const sent = await this.d.dcs.refreshLease(deadline());
      // The leader key hangs on this lease, so the lease alive until sent + ttl keeps the key ours
      // until then: re-arm at once, before the key check that may wait on an etcd election. A new
      // lease means the old one (and the key with it) expired: no re-arming on that.
      if (lease !== null && this.d.dcs.leaseId === lease && this.lastLeaseSent !== null && !this.stopping)
        this.armFence(sent);
      const held = await this.d.dcs.updateLeader(deadline());
      // A replaced lease (the key re-attached to it by updateLeader) is armed only now. Re-arm only
      // if nothing disarmed the fence meanwhile (a switchover, a demotion).
      if (held && this.lastLeaseSent !== null && this.lastLeaseSent !== sent && !this.stopping)
        this.armFence(sent);
    } catch {
      // The loop reports store failures; the fence still guards the deadline.
    }
  }

  /** Wakes the loop early (a watch event, an API request). */
  wake(): void {
    this.wakePending = true;
    this.wakeUp?.();
  }

  private async loop(firstDone: () => void): Promise<void> {
    while (!this.stopping) {
      const started = this.now();
      this.wakePending = false;
      try {
        await this.exclusive('HA cycle', () => this.cycle());
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, `HA cycle failed: ${errorMessage(err)}`);
      }
      firstDone();
      this.snapshot.lastLoop = this.now() / 1000;
      if (this.stopping) break;
      // While the store is failing, retry every second so a leader renews as soon as it is back.
      const waitMs = this.dcsFailing ? 1000 : this.dynamic.loop_wait * 1000 - (this.now() - started);
      if (!this.wakePending) await this.sleep(Math.max(0, waitMs));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wakeUp = null;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  /**
   * Runs `fn` while no HA cycle and no other exclusive operation runs (operator requests such as a
   * restart use this, so they never interleave with a decision being carried out).
   */
  async exclusive<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.mutex;
    let release!: () => void;
    this.mutex = new Promise<void>((r) => (release = r));
    await previous;
    this.currentOperation = what;
    try {
      return await fn();
    } finally {
      this.currentOperation = null;
      release();
    }
  }

  /** What runs right now under `exclusive` (null when idle). */
  get busy(): string | null {
    return this.busyState ?? (this.currentOperation === 'HA cycle' ? null : this.currentOperation);
  }

  /** Re-reads PostgreSQL's status into the snapshot, within a short deadline. */
  async refreshStatus(): Promise<void> {
    if (!this.snapshot.running) return;
    const status = await this.d.pg.status(AbortSignal.timeout(1000)).catch(() => null);
    if (status) this.snapshot.status = status;
    else if (!(await this.d.pg.isRunning().catch(() => true))) {
      this.snapshot.running = false;
      this.snapshot.status = null;
    }
  }

  /** Sets or clears the member state shown while an operator action runs (`restarting`, ...). */
  setBusyState(state: string | null): void {
    this.busyState = state;
  }

  /** The dynamic configuration in force. */
  get dynamicConfig(): DynamicConfig {
    return this.dynamic;
  }

  /** One observe–decide–act–publish cycle. */
  private async cycle(): Promise<void> {
    const deadline = () => AbortSignal.timeout(this.dynamic.retry_timeout * 1000);
    let cluster: ClusterState;
    let leaseSent: number;
    try {
      cluster = await this.d.dcs.readCluster(deadline());
      leaseSent = await this.d.dcs.refreshLease(deadline());
      this.dcsFailing = false;
    } catch (err) {
      this.onDcsFailure(err);
      await this.failsafeRound();
      return;
    }
    cluster = await this.releaseGoneLeader(cluster);
    this.snapshot.dcsLastSeen = Math.floor(this.now() / 1000);
    this.snapshot.failsafeActive = false;
    this.lastFailsafeReport = '';
    this.applyDynamic(cluster);
    if (this.dynamic.failsafe_mode && !cluster.leader) {
      // A leader that lost the store but still calls us over POST /failsafe is alive: follow it.
      const vouched = this.failsafeHeartbeats.leader(this.now(), this.dynamic.ttl);
      if (vouched && vouched.name !== this.me) cluster = withFailsafeLeader(cluster, vouched);
    }
    this.snapshot.cluster = cluster;

    const pg = await this.observe(cluster);
    if (cluster.leader?.name === this.me) {
      let held: boolean;
      try {
        held = await this.d.dcs.updateLeader(deadline());
      } catch (err) {
        this.onDcsFailure(err);
        await this.failsafeRound();
        return;
      }
      const noWatchdog = held ? this.watchdogRefusal() : null;
      if (noWatchdog) {
        this.log.error(`${noWatchdog}: releasing the leader key and stopping PostgreSQL`);
        this.disarmFence();
        await this.d.dcs.deleteLeader().catch(() => false);
        this.snapshot.isLeader = false;
        if (pg.running) await this.stopFastOrImmediate();
        return;
      }
      if (held && pg.running && pg.status && !pg.status.inRecovery) this.armFence(leaseSent);
      if (!held) {
        cluster = { ...cluster, leader: null };
        this.disarmFence();
      }
    } else {
      this.disarmFence();
    }
    this.snapshot.isLeader = cluster.leader?.name === this.me;

    const decision = decide({
      me: this.me,
      now: this.now(),
      cluster,
      config: this.dynamic,
      tags: this.d.config.tags,
      pg,
      // A key in the dynamic configuration pgha cannot honour (standby_cluster) holds like an operator.
      operatorHold: this.operatorHold ?? this.dynamic.hold ?? null,
    });
    this.snapshot.lastDecision = decision;
    try {
      await this.execute(decision, cluster, pg, leaseSent);
    } catch (err) {
      this.busyState = null;
      this.log.error(
        { decision: decision.kind, err: errorMessage(err) },
        `${decision.why}: ${decision.kind} failed: ${errorMessage(err)}`,
      );
    }
    if (decision.kind === 'idle' || decision.kind === 'renew') await this.applyServerConfig();
    await this.publish();
  }

  private serverConfigKey(): string {
    return JSON.stringify({ parameters: this.parameters(), pgHba: this.pgHba() });
  }

  /**
   * Re-renders postgresql.conf and pg_hba.conf and reloads when the parameters in force changed
   * (`edit-config`, PATCH /config, a new local config), as Patroni does; parameters that need a
   * restart then show as pending_restart.
   */
  private async applyServerConfig(): Promise<void> {
    if (this.dynamic.pause || !this.snapshot.running || !this.snapshot.status) return;
    const key = this.serverConfigKey();
    if (key === this.appliedServerConfig) return;
    try {
      await this.d.pg.configure(this.currentRoleConfig());
      await this.d.pg.reload();
      if (this.appliedServerConfig !== null) {
        this.log.info('server parameters changed: rewrote the configuration and reloaded PostgreSQL');
        this.d.runCallback('on_reload', this.snapshot.role);
      }
      this.appliedServerConfig = key;
    } catch (err) {
      this.log.error(`could not apply the changed server parameters: ${errorMessage(err)}`);
    }
  }

  private onDcsFailure(err: unknown): void {
    if (!this.dcsFailing) {
      const holding = this.snapshot.isLeader && this.lastLeaseSent !== null;
      const until = holding
        ? `; as leader I keep PostgreSQL writable until ${new Date(this.fenceDeadline(this.lastLeaseSent ?? 0)).toISOString()} at the latest`
        : '';
      this.log.error({ err: errorMessage(err) }, `store unreachable: ${errorMessage(err)}${until}`);
    }
    this.dcsFailing = true;
  }

  private applyDynamic(cluster: ClusterState): void {
    const raw = cluster.config?.value ?? this.d.config.bootstrap.dcs;
    const next = this.d.parseDynamic(raw);
    if (next.ttl !== this.dynamic.ttl) this.d.dcs.setTtl(next.ttl);
    this.dynamic = next;
    this.snapshot.dynamic = next;
    this.snapshot.paused = next.pause;
  }

  /** Reads the local PostgreSQL state. */
  private async observe(cluster: ClusterState): Promise<LocalPostgres> {
    const pg = this.d.pg;
    const dataState = await pg.dataDirectoryState();
    const running = dataState === 'initialized' && (await pg.isRunning());
    const status = running ? await pg.status() : null;
    // pg_controldata costs a process per cycle; a running server tells the same over SQL.
    let control: ControlData | null = null;
    if (status) {
      const base = this.lastControl;
      control = {
        systemIdentifier: status.systemIdentifier,
        clusterState: status.inRecovery ? 'in archive recovery' : 'in production',
        timeline: status.timeline,
        checkpointLsn: base?.checkpointLsn ?? 0,
        minRecoveryLsn: 0,
        dataChecksums: base?.dataChecksums ?? false,
        walLogHints: base?.walLogHints ?? false,
        raw: base?.raw ?? {},
      };
    } else if (dataState === 'initialized') {
      control = await pg.controlData();
      this.lastControl = control;
    }
    this.snapshot.running = running;
    this.snapshot.status = status;
    this.snapshot.sysid = control?.systemIdentifier ?? null;
    if (status) {
      this.snapshot.role = status.inRecovery ? 'replica' : 'primary';
      if (!this.upstreamKnown) {
        // After an agent restart, learn which member the running replica streams from.
        this.configuredUpstream = status.inRecovery ? this.memberAt(cluster, status.receiverUpstream) : null;
        this.upstreamKnown = true;
      }
    } else if (!running) {
      this.snapshot.role = dataState === 'initialized' ? this.snapshot.role : 'uninitialized';
    }
    const receiverDown = status !== null && status.inRecovery && status.replicationState !== 'streaming';
    if (!receiverDown) this.notStreamingSince = null;
    else this.notStreamingSince ??= this.now();
    return {
      dataState,
      control,
      running,
      status,
      connectionError: running && !status ? (pg.lastConnectionError ?? null) : null,
      configuredUpstream: this.configuredUpstream,
      notStreamingForMs: this.notStreamingSince === null ? 0 : this.now() - this.notStreamingSince,
    };
  }

  private memberAt(
    cluster: ClusterState,
    addr: { host: string; port: number } | null | undefined,
  ): string | null {
    if (!addr) return null;
    for (const m of cluster.members) {
      const t = connTarget(m);
      if (t && t.port === addr.port && (t.host === addr.host || isLoopback(t.host) === isLoopback(addr.host)))
        return m.name;
    }
    return null;
  }

  // ---- fencing -------------------------------------------------------------------------------

  private safetyMarginS(): number {
    const ttl = this.dynamic.ttl;
    return Math.min(Math.max(this.d.config.watchdog.safety_margin, LEASE_SAFETY_MIN_S), ttl / 2);
  }

  private fenceDeadline(leaseSent: number): number {
    return leaseSent + (this.dynamic.ttl - this.safetyMarginS()) * 1000;
  }

  /**
   * After each successful renewal, schedules the fence: if no later renewal succeeds, PostgreSQL is
   * stopped before the lease can expire in etcd (which happens no earlier than send time + ttl), so
   * another member can never be promoted while this one still takes writes.
   */
  private armFence(leaseSent: number): void {
    this.lastLeaseSent = leaseSent;
    this.fenced = false;
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    const delay = Math.max(0, this.fenceDeadline(leaseSent) - this.now());
    this.fenceTimer = setTimeout(() => void this.fence(leaseSent), delay);
    // The hardware backstop of the same promise, for when this process cannot run the timer.
    this.d.watchdog?.keepalive(this.dynamic.ttl, this.dynamic.loop_wait);
  }

  private disarmFence(): void {
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    this.fenceTimer = null;
    this.lastLeaseSent = null;
    this.d.watchdog?.disable();
  }

  /** With `watchdog.mode: required`, why this node may not lead now (no usable watchdog); else null. */
  private watchdogRefusal(): string | null {
    const w = this.d.watchdog;
    if (!w || w.mode !== 'required') return null;
    const why = w.activate(this.dynamic.ttl, this.dynamic.loop_wait);
    return why === null ? null : `watchdog.mode is required and the watchdog is unusable: ${why}`;
  }

  private async fence(leaseSent: number): Promise<void> {
    if (this.lastLeaseSent !== leaseSent || this.fenced) return;
    this.fenced = true;
    const expires = new Date(leaseSent + this.dynamic.ttl * 1000).toISOString();
    this.log.error(
      `could not renew the leader lease since ${new Date(leaseSent).toISOString()} (it expires at ${expires}); ` +
        'stopping PostgreSQL so that it takes no writes once another member may be promoted',
    );
    try {
      this.busyState = 'stopping';
      await this.d.pg.stop('fast', Math.max(1000, this.safetyMarginS() * 500));
    } catch (err) {
      this.log.error(`fast stop failed (${errorMessage(err)}); stopping immediately`);
      await this.d.pg
        .stop('immediate', 5000)
        .catch((e: unknown) => this.log.error(`immediate stop failed: ${errorMessage(e)}`));
    } finally {
      this.busyState = null;
    }
    this.snapshot.role = 'demoted';
    // The loop re-arms when it renews again (and restarts PostgreSQL if the lock is still ours).
    this.disarmFence();
    this.d.runCallback('on_role_change', 'demoted');
  }

  // ---- acting --------------------------------------------------------------------------------

  private say(decision: Decision, did: string, level: 'info' | 'warn' | 'error' = 'info'): void {
    const line = `${decision.why}: ${did}`;
    if (line === this.lastMessage && level === 'info') {
      this.log.debug({ decision: decision.kind }, line);
      return;
    }
    this.lastMessage = line;
    this.log[level]({ decision: decision.kind }, line);
  }

  private async execute(
    d: Decision,
    cluster: ClusterState,
    pg: LocalPostgres,
    leaseSent: number,
  ): Promise<void> {
    switch (d.kind) {
      case 'idle':
        return this.say(d, 'no action');
      case 'refuse':
        this.snapshot.state = pg.running ? 'running' : 'stopped';
        return this.say(d, 'waiting for an operator', 'error');
      case 'bootstrap':
        return this.bootstrap(d, cluster);
      case 'adopt':
        return this.adopt(d, cluster, pg, leaseSent);
      case 'clone':
        return this.clone(d, cluster);
      case 'start_primary':
        this.say(d, 'starting PostgreSQL as primary in place');
        await this.startAs({ role: 'primary' }, 'on_start');
        this.armFence(leaseSent);
        return;
      case 'start_replica':
        return this.startReplica(d, cluster, d.upstream, d.rewind);
      case 'race':
        return this.race(d, cluster, pg, leaseSent);
      case 'renew':
        await this.leaderDuties(cluster, pg.status);
        return this.say(d, 'renewed the leader lease');
      case 'promote':
        this.say(d, 'promoting');
        await this.promote(cluster, leaseSent);
        return;
      case 'demote':
        return this.demote(d, cluster);
      case 'follow':
        return this.follow(d, cluster);
      case 'switchover':
        return this.switchover(d, cluster, pg);
      case 'cancel_switchover':
        await this.d.dcs.clearFailover();
        return this.say(d, 'cleared it', 'warn');
    }
  }

  private parameters(): Record<string, string | number | boolean> {
    const params = { ...this.dynamic.postgresql.parameters, ...this.d.config.postgresql.parameters };
    // The leader owns synchronous_standby_names (Patroni does the same); replicas run without it.
    params.synchronous_standby_names = this.snapshot.isLeader ? this.ssn : '';
    return params;
  }

  private pgHba(): string[] | undefined {
    return (
      this.d.config.postgresql.pg_hba ?? this.dynamic.postgresql.pg_hba ?? this.d.config.bootstrap.pg_hba
    );
  }

  private roleConfig(
    role: 'primary' | 'replica',
    cluster: ClusterState | null,
    upstream: string | null,
  ): RoleConfig {
    const cfg: RoleConfig = { role, parameters: this.parameters(), pgHba: this.pgHba() };
    if (role === 'replica') {
      const m = cluster && upstream ? findMember(cluster, upstream) : undefined;
      cfg.upstream = m ? connTarget(m) : null;
      cfg.slotName = this.dynamic.postgresql.use_slots && cfg.upstream ? this.d.slotName(this.me) : null;
    }
    return cfg;
  }

  private async startAs(
    opts: { role: 'primary' } | { role: 'replica'; cluster: ClusterState; upstream: string | null },
    callback: CallbackName,
  ): Promise<void> {
    this.appliedServerConfig = this.serverConfigKey();
    const rc =
      opts.role === 'primary'
        ? this.roleConfig('primary', null, null)
        : this.roleConfig('replica', opts.cluster, opts.upstream);
    await this.d.pg.configure(rc);
    this.busyState = 'starting';
    // A replica may not reach consistency before it streams, and it cannot stream before the
    // leader made its slot, which the leader does for members it sees: show ourselves first.
    if (opts.role === 'replica') {
      this.snapshot.running = false;
      await this.publish().catch((err: unknown) => this.log.warn(`could not publish: ${errorMessage(err)}`));
    }
    try {
      await this.d.pg.start(this.dynamic.primary_start_timeout * 1000);
    } finally {
      this.busyState = null;
    }
    this.configuredUpstream = rc.upstream ? rc.upstream.member : null;
    this.upstreamKnown = true;
    this.snapshot.role = opts.role;
    this.d.runCallback(callback, opts.role);
  }

  private async bootstrap(d: Decision, cluster: ClusterState): Promise<void> {
    const method = this.d.config.bootstrap.method;
    if (method !== undefined && method !== 'initdb') {
      this.operatorHold =
        `bootstrap.method is "${method}", which pgha cannot run (only initdb); refusing to create an empty ` +
        'cluster in its place. Restore the data directory by hand and start the agent again, or remove bootstrap.method';
      return this.say(d, 'not bootstrapping', 'error');
    }
    const noWatchdog = this.watchdogRefusal();
    if (noWatchdog) return this.say(d, `not bootstrapping: ${noWatchdog}`, 'error');
    if (!(await this.d.dcs.initialize('', true))) {
      return this.say(d, 'another member won the initialisation race; waiting for it');
    }
    this.say(d, 'won the initialisation race; running initdb');
    this.busyState = 'initializing new cluster';
    try {
      await this.d.pg.initdb(this.d.config.bootstrap.initdb);
      await this.d.pg.configure(this.roleConfig('primary', null, null));
      await this.d.pg.start(this.dynamic.primary_start_timeout * 1000);
      if (!(await this.d.dcs.attemptToAcquireLeader()))
        throw new Error('could not take the leader key after initdb');
      await this.d.pg.createUsers();
      const control = await this.d.pg.controlData();
      if (!control) throw new Error('pg_controldata gave nothing after initdb');
      await this.d.dcs.initialize(control.systemIdentifier, false);
      if (!cluster.config) await this.d.dcs.setConfig(this.d.config.bootstrap.dcs);
    } catch (err) {
      this.log.error(
        `bootstrap failed: ${errorMessage(err)}; removing the half-made data directory and releasing the race`,
      );
      await this.d.pg.stop('immediate', 10_000).catch(() => undefined);
      await this.d.dcs.deleteLeader().catch(() => false);
      await this.d.dcs.cancelInitialization().catch(() => undefined);
      await this.d.pg.removeDataDirectory().catch(() => undefined);
      throw err;
    } finally {
      this.busyState = null;
    }
    this.configuredUpstream = null;
    this.upstreamKnown = true;
    this.snapshot.role = 'primary';
    this.d.runCallback('on_start', 'primary');
    this.log.info(`initialised a new cluster; I am the leader`);
  }

  private async adopt(
    d: Decision,
    cluster: ClusterState,
    pg: LocalPostgres,
    leaseSent: number,
  ): Promise<void> {
    const sysid = pg.control?.systemIdentifier;
    if (!sysid) throw new Error('cannot read the system identifier of the existing data directory');
    if (!(await this.d.dcs.initialize(sysid, true))) {
      return this.say(
        d,
        'another member initialised the cluster first; will check whether my data belongs to it',
      );
    }
    if (!(await this.d.dcs.attemptToAcquireLeader())) {
      return this.say(d, 'registered the cluster but another member holds the leader key');
    }
    this.say(d, `adopted my data directory (system ${sysid}) as the cluster; starting as primary`);
    if (!cluster.config) await this.d.dcs.setConfig(this.d.config.bootstrap.dcs);
    if (pg.running) await this.d.pg.stop('fast', this.dynamic.primary_start_timeout * 1000);
    await this.startAs({ role: 'primary' }, 'on_start');
    this.armFence(leaseSent);
    await this.d.pg.createUsers();
  }

  private async clone(d: Extract<Decision, { kind: 'clone' }>, cluster: ClusterState): Promise<void> {
    // Listing only other methods means "never pg_basebackup from the leader" (a large database, an
    // archive to restore from): pgha runs no other method, so it does not clone at all.
    const methods = this.d.config.postgresql.create_replica_methods;
    if (!methods.includes('basebackup')) {
      this.operatorHold =
        `postgresql.create_replica_methods is [${methods.join(', ')}]: pgha clones with pg_basebackup only, ` +
        'and basebackup is not listed; refusing to clone. Create the data directory by hand (e.g. restore a ' +
        'backup) and start the agent again, or add basebackup to create_replica_methods';
      return this.say(d, 'not cloning', 'error');
    }
    const source = findMember(cluster, d.from);
    const target = source ? connTarget(source) : null;
    if (!target) return this.say(d, `leader ${d.from} publishes no usable conn_url`, 'warn');
    this.say(d, `running pg_basebackup from ${target.host}:${target.port}`);
    this.busyState = 'creating replica';
    try {
      await this.d.pg.basebackup(
        target,
        this.d.config.postgresql.basebackup,
        progressLogger(this.log, 'pg_basebackup'),
      );
    } catch (err) {
      this.log.error(
        `cloning from ${d.from} failed: ${errorMessage(err)}; removing the partial copy, will retry`,
      );
      await this.d.pg.removeDataDirectory().catch(() => undefined);
      throw err;
    } finally {
      this.busyState = null;
    }
    await this.startAs({ role: 'replica', cluster, upstream: d.from }, 'on_start');
    this.log.info(`replica created from ${d.from}; streaming`);
  }

  /** Rewinds onto `upstream`'s timeline, or removes the data when allowed; returns false when stuck. */
  private async rewindOnto(cluster: ClusterState, upstream: string): Promise<boolean> {
    const pgc = this.d.config.postgresql;
    const target = findMember(cluster, upstream);
    const source = target ? connTarget(target) : null;
    if (!source) throw new Error(`leader ${upstream} publishes no usable conn_url`);
    if (!this.dynamic.postgresql.use_pg_rewind) {
      if (pgc.remove_data_directory_on_diverged_timelines) {
        this.log.warn(
          'my timeline diverged and use_pg_rewind is off; removing my data to clone afresh (allowed by remove_data_directory_on_diverged_timelines)',
        );
        await this.d.pg.removeDataDirectory();
        return false;
      }
      this.operatorHold =
        `my timeline diverged from leader ${upstream} and use_pg_rewind is off; set use_pg_rewind: true, ` +
        `or run "pgha ctl reinit <scope> ${this.me}" to replace my data with a fresh copy`;
      return false;
    }
    this.busyState = 'rewinding';
    try {
      this.log.info(`running pg_rewind from ${upstream} (${source.host}:${source.port})`);
      await this.d.pg.rewind(source, undefined, progressLogger(this.log, 'pg_rewind'));
      this.log.info('pg_rewind finished');
      return true;
    } catch (err) {
      // The source being unreachable for a moment (it is restarting, a network blip) says nothing
      // about our data: try again on a later cycle, as Patroni does, instead of waiting for a human.
      if (
        /could not connect|connection refused|connection to server|timeout expired|no route to host/i.test(
          errorMessage(err),
        )
      ) {
        this.log.warn(`pg_rewind from ${upstream} could not reach it (${errorMessage(err)}); will retry`);
        return false;
      }
      if (pgc.remove_data_directory_on_rewind_failure) {
        this.log.error(
          `pg_rewind failed (${errorMessage(err)}); removing my data to clone afresh (allowed by remove_data_directory_on_rewind_failure)`,
        );
        await this.d.pg.removeDataDirectory();
        return false;
      }
      this.operatorHold =
        `pg_rewind from ${upstream} failed: ${errorMessage(err)}; my data is left untouched. ` +
        `Run "pgha ctl reinit <scope> ${this.me}" to replace it, or set remove_data_directory_on_rewind_failure`;
      return false;
    } finally {
      this.busyState = null;
    }
  }

  private async startReplica(
    d: Decision,
    cluster: ClusterState,
    upstream: string | null,
    rewind: boolean,
  ): Promise<void> {
    if (rewind && upstream) {
      this.say(d, 'rewinding before start');
      if (!(await this.rewindOnto(cluster, upstream))) return;
    } else {
      this.say(d, `starting PostgreSQL as a replica${upstream ? ` of ${upstream}` : ''}`);
    }
    await this.startAs({ role: 'replica', cluster, upstream }, 'on_start');
  }

  private async fetchPeers(cluster: ClusterState, only?: string | null): Promise<PeerStatus[]> {
    const known = [...cluster.members];
    // Under failsafe_mode, members whose keys expired still count when the last leader knew them.
    if (this.dynamic.failsafe_mode && cluster.failsafe)
      for (const m of failsafePeers(cluster.failsafe, this.me))
        if (!known.some((k) => k.name === m.name)) known.push(m);
    const others = known.filter((m) => m.name !== this.me && m.data.api_url && (!only || m.name === only));
    return Promise.all(
      others.map((m) =>
        this.d
          .fetchPeer(m, AbortSignal.timeout(2000))
          .catch((): PeerStatus => ({ name: m.name, reachable: false })),
      ),
    );
  }

  private async race(
    d: Decision,
    cluster: ClusterState,
    pg: LocalPostgres,
    leaseSent: number,
  ): Promise<void> {
    const status = pg.status;
    if (!status) return;
    // A manual failover naming this node needs no opinion from the peers: answer it at once.
    const named = cluster.failover?.member === this.me;
    const peers = named ? [] : await this.fetchPeers(cluster);
    const verdict = evaluateRace({
      me: this.me,
      cluster,
      config: this.dynamic,
      tags: this.d.config.tags,
      status,
      peers,
    });
    if (!verdict.ok) return this.say(d, `not taking the leader key: ${verdict.why}`);
    const noWatchdog = this.watchdogRefusal();
    if (noWatchdog) return this.say(d, `not taking the leader key: ${noWatchdog}`, 'error');
    if (!(await this.d.dcs.attemptToAcquireLeader())) {
      return this.say(d, 'another member took the leader key first');
    }
    if (verdict.risk)
      this.log.warn({ event: 'manual_promotion_risk' }, `promoting on request although ${verdict.risk}`);
    this.snapshot.isLeader = true;
    this.armFence(leaseSent);
    if (status.inRecovery) {
      this.say(d, `took the leader key (${verdict.why}); promoting`);
      await this.promote(cluster, leaseSent);
    } else {
      this.say(d, `took the leader key (${verdict.why}); staying primary`);
    }
  }

  private async promote(cluster: ClusterState, leaseSent: number): Promise<void> {
    const started = this.now();
    this.busyState = 'promoting';
    try {
      await this.d.pg.promote(this.dynamic.primary_start_timeout * 1000);
    } finally {
      this.busyState = null;
    }
    this.armFence(leaseSent);
    this.configuredUpstream = null;
    this.snapshot.role = 'primary';
    // Tell routers and peers at once that this member now runs as primary.
    await this.publish();
    this.d.runCallback('on_role_change', 'primary');
    const status = this.snapshot.status;
    this.log.info(
      { event: 'promoted', timeline: status?.timeline, duration_ms: this.now() - started },
      `promoted to primary on timeline ${status?.timeline ?? '?'} in ${this.now() - started} ms`,
    );
    if (cluster.failover) await this.d.dcs.clearFailover().catch(() => undefined);
    await this.recordHistory(cluster, status);
    await this.leaderDuties(cluster, status);
  }

  private async recordHistory(cluster: ClusterState, status: ServerStatus | null): Promise<void> {
    if (!status) return;
    try {
      const tl = status.timeline.toString(16).toUpperCase().padStart(8, '0');
      const rows = await this.d.pg.query<{ content: string }>('SELECT pg_read_file($1) AS content', [
        `pg_wal/${tl}.history`,
      ]);
      const content = rows[0]?.content ?? '';
      const history = mergeTimelineHistory(cluster.history, content, new Date(this.now()), this.me);
      await this.d.dcs.setHistory(history);
    } catch (err) {
      this.log.warn(`could not record the timeline history: ${errorMessage(err)}`);
    }
  }

  /** Leader's upkeep each cycle: `status` (optime) and one replication slot per member. */
  private async leaderDuties(cluster: ClusterState, status: ServerStatus | null): Promise<void> {
    if (!status || status.inRecovery) return;
    await this.maintainFailsafeKey(cluster);
    if (this.dynamic.postgresql.use_slots) {
      const names = await this.slotsToKeep(cluster);
      await this.d.pg
        .syncReplicationSlots(names)
        .catch((err: unknown) => this.log.warn(`replication slots: ${errorMessage(err)}`));
    }
    await this.manageSync(cluster, status);
    const key = JSON.stringify({ optime: status.walPosition });
    if (key !== this.lastStatusKey) {
      await this.d.dcs.setStatus({ optime: status.walPosition });
      this.lastStatusKey = key;
    }
  }

  /** One step of synchronous replication management (see sync.ts); the leader owns both sides. */
  private async manageSync(cluster: ClusterState, status: ServerStatus): Promise<void> {
    const mode = this.dynamic.synchronous_mode;
    const plan = planSync({
      me: this.me,
      mode,
      strict: this.dynamic.synchronous_mode_strict,
      count: this.dynamic.synchronous_node_count,
      members: cluster.members,
      replication: status.replication,
      syncKey: cluster.sync,
      currentSsn: this.ssn,
      ssnSince: this.ssnSince,
    });
    if (plan.syncKey) {
      const res = await this.d.dcs.setSync(plan.syncKey, cluster.sync?.modRevision);
      if (!res.ok) {
        this.log.warn('the sync key changed under us; will retry on the next cycle');
        return;
      }
    }
    if (plan.ssn !== this.ssn) {
      this.ssn = plan.ssn;
      this.ssnSince = status.walPosition;
    }
    if (mode && plan.why !== this.lastSyncWhy)
      this.log.info({ synchronous_standby_names: this.ssn }, `synchronous replication: ${plan.why}`);
    this.lastSyncWhy = plan.why;
  }

  /**
   * One slot per other member. A member whose key vanished keeps its slot for a while (an agent
   * restart, a short outage) so it can resume streaming; after that the slot goes, so WAL does not
   * pile up without bound for a member that is gone for good.
   */
  private async slotsToKeep(cluster: ClusterState): Promise<string[]> {
    const now = this.now();
    if (!this.slotsSeeded) {
      // Slots that exist when this node becomes leader count as seen now.
      const rows = await this.d.pg.query<{ slot_name: string }>(
        "SELECT slot_name::text FROM pg_replication_slots WHERE slot_type = 'physical' AND NOT temporary",
      );
      for (const r of rows) this.slotSeen.set(r.slot_name, now);
      this.slotsSeeded = true;
    }
    for (const m of cluster.members) if (m.name !== this.me) this.slotSeen.set(this.d.slotName(m.name), now);
    this.slotSeen.delete(this.d.slotName(this.me));
    const retainMs = Math.max(300, this.dynamic.ttl * 10) * 1000;
    for (const [slot, seen] of this.slotSeen) if (now - seen > retainMs) this.slotSeen.delete(slot);
    return [...this.slotSeen.keys()];
  }

  private async demote(d: Extract<Decision, { kind: 'demote' }>, cluster: ClusterState): Promise<void> {
    this.say(d, 'demoting: stopping PostgreSQL');
    this.disarmFence();
    this.busyState = 'stopping';
    try {
      await this.stopFastOrImmediate();
    } finally {
      this.busyState = null;
    }
    this.snapshot.role = 'demoted';
    this.d.runCallback('on_role_change', 'replica');
    const control = await this.d.pg.controlData();
    const leaderTimeline = d.upstream ? findMember(cluster, d.upstream)?.data.timeline : undefined;
    const rewind = d.upstream !== null && needsRewind({ control, leaderTimeline, history: cluster.history });
    await this.startReplica(d, cluster, d.upstream, rewind);
  }

  private async stopFastOrImmediate(): Promise<void> {
    try {
      await this.d.pg.stop('fast', Math.max(5000, this.dynamic.primary_stop_timeout * 1000 || 30_000));
    } catch (err) {
      this.log.warn(`fast stop failed (${errorMessage(err)}); stopping immediately`);
      await this.d.pg.stop('immediate', 10_000);
    }
  }

  private async follow(d: Extract<Decision, { kind: 'follow' }>, cluster: ClusterState): Promise<void> {
    if (d.rewind) {
      this.say(d, 'stopping to rewind');
      await this.stopFastOrImmediate();
      return this.startReplica(d, cluster, d.upstream, true);
    }
    this.say(d, `pointing replication at ${d.upstream}`);
    const rc = this.roleConfig('replica', cluster, d.upstream);
    await this.d.pg.configure(rc);
    // primary_conninfo and primary_slot_name are reloadable since PostgreSQL 13.
    await this.d.pg.reload();
    this.configuredUpstream = rc.upstream ? rc.upstream.member : null;
    this.d.runCallback('on_role_change', 'replica');
  }

  /** Graceful switchover: checkpoint, fast stop, wait for the candidate to hold our last WAL, release. */
  private async switchover(
    d: Extract<Decision, { kind: 'switchover' }>,
    cluster: ClusterState,
    pg: LocalPostgres,
  ): Promise<void> {
    // A named candidate is the only peer whose health matters.
    const peers = await this.fetchPeers(cluster, d.candidate);
    const healthy = peers.filter(
      (p) => p.reachable && !isPrimaryRole(p.role) && p.state === 'running' && p.tags?.nofailover !== true,
    );
    const candidate = d.candidate
      ? healthy.find((p) => p.name === d.candidate)
      : healthy.sort((a, b) => (b.walPosition ?? 0) - (a.walPosition ?? 0))[0];
    if (!candidate) {
      const why = d.candidate
        ? `candidate ${d.candidate} is not a healthy running replica (${describePeer(peers.find((p) => p.name === d.candidate))})`
        : 'no healthy running replica without nofailover to switch over to';
      await this.d.dcs.clearFailover();
      return this.say(d, `switchover cancelled: ${why}`, 'warn');
    }
    // The walsender hands the shutdown checkpoint only to receivers connected at that moment: a
    // candidate that is reconnecting (after a restart of either side, say) would never receive it
    // once we stop. Wait for it without holding the loop, up to SWITCHOVER_CONNECT_WAIT_MS.
    if (!(await this.isStreamingFromMe(candidate.name))) {
      const key = `${candidate.name}@${cluster.failover?.modRevision ?? ''}`;
      if (this.switchoverWait?.key !== key) this.switchoverWait = { key, since: this.now() };
      const waited = this.now() - this.switchoverWait.since;
      if (waited < SWITCHOVER_CONNECT_WAIT_MS) {
        setTimeout(() => this.wake(), 100);
        return this.say(d, `waiting for ${candidate.name} to stream from this primary before stopping`);
      }
      this.switchoverWait = null;
      await this.d.dcs.clearFailover();
      return this.say(
        d,
        `switchover cancelled: candidate ${candidate.name} did not stream from this primary within ` +
          `${SWITCHOVER_CONNECT_WAIT_MS} ms (no pg_stat_replication row in state streaming), so it could ` +
          'not receive the shutdown checkpoint',
        'warn',
      );
    }
    this.switchoverWait = null;
    const started = this.now();
    this.say(d, `switching over to ${candidate.name}: checkpoint, then fast stop`);
    await this.d.pg.checkpoint();
    // The lease is not renewed from here on: the wait below must end while it is still ours.
    const leaseUntil = this.fenceDeadline(this.lastLeaseSent ?? this.now());
    this.disarmFence();
    this.busyState = 'stopping';
    try {
      await this.stopFastOrImmediate();
    } finally {
      this.busyState = null;
    }
    // Peers read GET /patroni during the race: it must not show the stopped primary as running.
    this.snapshot.running = false;
    this.snapshot.status = null;
    this.snapshot.role = 'demoted';
    const control = await this.d.pg.controlData();
    const target = control?.checkpointLsn ?? 0;
    const member = findMember(cluster, candidate.name);
    const waitMs = Math.max(1000, Math.min(10_000, leaseUntil - this.now()));
    const caughtUp = member ? await this.waitForPeerWal(member, target, waitMs) : false;
    if (!caughtUp) {
      await this.d.dcs.clearFailover().catch(() => undefined);
      // Restart as primary only while the leader key is still provably ours; otherwise the next
      // cycle sees the cluster as it is and follows the new leader or joins the race.
      const leaseSent = this.now();
      const held = await this.d.dcs
        .updateLeader(AbortSignal.timeout(this.dynamic.retry_timeout * 1000))
        .catch(() => false);
      this.log.error(
        `switchover to ${candidate.name} aborted: it did not receive the shutdown checkpoint ${target} ` +
          `within ${waitMs} ms; ${held ? 'restarting as primary' : 'the leader key is no longer ours, leaving PostgreSQL stopped'}`,
      );
      if (!held) return;
      await this.startAs({ role: 'primary' }, 'on_start');
      this.armFence(leaseSent);
      return;
    }
    await this.d.dcs.deleteLeader();
    this.snapshot.isLeader = false;
    this.d.runCallback('on_role_change', 'replica');
    await this.startAs({ role: 'replica', cluster, upstream: candidate.name }, 'on_start');
    this.log.info(
      {
        event: 'switchover',
        from: this.me,
        to: candidate.name,
        duration_ms: this.now() - started,
        timeline: pg.status?.timeline,
      },
      `switched over to ${candidate.name} in ${this.now() - started} ms; now its replica`,
    );
  }

  /** Whether `name` has a row in our pg_stat_replication in state `streaming`. */
  private async isStreamingFromMe(name: string): Promise<boolean> {
    const status = await this.d.pg.status().catch(() => null);
    return status?.replication.some((r) => r.application_name === name && r.state === 'streaming') ?? false;
  }

  private async waitForPeerWal(member: Member, lsn: number, timeoutMs: number): Promise<boolean> {
    const until = this.now() + timeoutMs;
    while (this.now() < until) {
      const p = await this.d.fetchPeer(member, AbortSignal.timeout(1000)).catch(() => null);
      if (p && (p.walPosition ?? 0) > lsn) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  }

  // ---- fast_failover -------------------------------------------------------------------------

  private scheduleLeaderProbe(): void {
    if (this.stopping || !this.d.probePort) return;
    this.probeTimer = setTimeout(() => {
      void this.probeLeader()
        .catch((err: unknown) => this.log.debug(`leader probe failed: ${errorMessage(err)}`))
        .finally(() => this.scheduleLeaderProbe());
    }, LEADER_PROBE_MS);
  }

  /**
   * A replica's check that its leader still exists: both its PostgreSQL and its REST port refusing
   * connections (a reset from a live host, never a timeout) several times in a row mean the agent
   * and the postmaster are both gone, so nobody can write there or renew the lease.
   */
  private async probeLeader(): Promise<void> {
    const cluster = this.snapshot.cluster;
    const leader = cluster?.leader;
    const m = leader ? findMember(cluster, leader.name) : undefined;
    const pg = urlHostPort(m?.data.conn_url);
    const api = urlHostPort(m?.data.api_url);
    const probe = this.d.probePort?.bind(this.d);
    if (
      !this.dynamic.fast_failover ||
      this.dynamic.pause ||
      !leader ||
      leader.name === this.me ||
      !pg ||
      !api ||
      !probe
    ) {
      this.leaderRefusals = { key: '', count: 0 };
      return;
    }
    const [a, b] = await Promise.all([probe(pg.host, pg.port), probe(api.host, api.port)]);
    if (a !== 'refused' || b !== 'refused') {
      this.leaderRefusals = { key: '', count: 0 };
      return;
    }
    const key = `${leader.name}@${leader.modRevision}`;
    if (this.leaderRefusals.key !== key) this.leaderRefusals = { key, count: 0 };
    this.leaderRefusals.count++;
    if (this.leaderRefusals.count === LEADER_GONE_AFTER) {
      this.leaderGone = {
        name: leader.name,
        modRevision: leader.modRevision,
        why: `its PostgreSQL (${pg.host}:${pg.port}) and REST API (${api.host}:${api.port}) refused ${LEADER_GONE_AFTER} connection attempts in a row`,
      };
      this.wake();
    }
  }

  /** Deletes the key of a leader proven gone (compare-and-set on its revision), so the race starts now. */
  private async releaseGoneLeader(cluster: ClusterState): Promise<ClusterState> {
    const gone = this.leaderGone;
    this.leaderGone = null;
    const l = cluster.leader;
    if (!gone || !l || l.name !== gone.name || l.modRevision !== gone.modRevision || l.name === this.me)
      return cluster;
    const released = await this.d.dcs.deleteLeaderOf(gone.name, gone.modRevision).catch(() => false);
    if (!released) return cluster;
    this.log.warn(
      { event: 'leader_gone', leader: gone.name },
      `leader ${gone.name} is gone: ${gone.why}; released its leader key without waiting for its lease to expire`,
    );
    return { ...cluster, leader: null };
  }

  // ---- failsafe_mode ----------------------------------------------------------------------

  private myConnUrl(): string {
    return `postgres://${this.d.config.postgresql.connect_address}/postgres`;
  }

  private myApiUrl(): string {
    const cfg = this.d.config.restapi;
    return `${cfg.certfile ? 'https' : 'http'}://${cfg.connect_address}/patroni`;
  }

  /** The leader keeps the `failsafe` key listing every member (and removes it without failsafe_mode). */
  private async maintainFailsafeKey(cluster: ClusterState): Promise<void> {
    try {
      if (!this.dynamic.failsafe_mode) {
        if (cluster.failsafe) await this.d.dcs.setFailsafe(null);
        return;
      }
      const topology = failsafeTopology(cluster, this.me, this.myApiUrl());
      if (!sameTopology(cluster.failsafe, topology)) await this.d.dcs.setFailsafe(topology);
    } catch (err) {
      this.log.warn(`could not write the failsafe key: ${errorMessage(err)}`);
    }
  }

  /**
   * The store is unreachable: a leader running as primary with failsafe_mode asks every member of
   * the last known `failsafe` key to confirm it. Only if all do, the fence is re-armed from the
   * moment the round started (each member then vouches for us for ttl from a later moment);
   * otherwise the fence armed by the last renewal stops PostgreSQL at its deadline.
   */
  private async failsafeRound(): Promise<void> {
    const s = this.snapshot;
    const primary = s.running && s.status !== null && !s.status.inRecovery;
    if (!this.dynamic.failsafe_mode || this.dynamic.pause || !primary || !s.isLeader || this.stopping) {
      s.failsafeActive = false;
      return;
    }
    const failsafe = s.cluster?.failsafe;
    if (!failsafe || !(this.me in failsafe)) {
      s.failsafeActive = false;
      return this.reportFailsafe(
        'warn',
        'failsafe_mode is on but the last failsafe key read does not list this member; the fence applies',
      );
    }
    const started = this.now();
    const leader: FailsafeLeader = {
      name: this.me,
      conn_url: this.myConnUrl(),
      api_url: this.myApiUrl(),
    };
    const peers = failsafePeers(failsafe, this.me);
    const answers = await Promise.all(
      peers.map((m) =>
        this.d.postFailsafe
          ? this.d
              .postFailsafe(m, leader, AbortSignal.timeout(2000))
              .catch((err: unknown): FailsafeAnswer => ({
                name: m.name,
                accepted: false,
                detail: errorMessage(err),
              }))
          : Promise.resolve<FailsafeAnswer>({ name: m.name, accepted: false, detail: 'no REST client' }),
      ),
    );
    const refused = answers.filter((a) => !a.accepted);
    if (refused.length > 0 || this.stopping || !this.snapshot.isLeader) {
      s.failsafeActive = false;
      return this.reportFailsafe(
        'error',
        `failsafe_mode: not every member confirmed this primary (${refused.map((a) => `${a.name}: ${a.detail}`).join('; ')}); ` +
          'the fence will stop PostgreSQL at the lease deadline',
      );
    }
    this.armFence(started);
    s.failsafeActive = true;
    const names = peers.map((p) => p.name).join(', ') || 'none, single member';
    this.reportFailsafe(
      'warn',
      `continuing to run as leader because failsafe mode is enabled and all members are accessible (${names})`,
    );
  }

  private reportFailsafe(level: 'warn' | 'error', message: string): void {
    if (message === this.lastFailsafeReport) return;
    this.lastFailsafeReport = message;
    this.log[level]({ event: 'failsafe' }, message);
  }

  /**
   * `POST /failsafe` from a leader that lost the store (Patroni's `update_failsafe`): a primary
   * refuses it; a replica records the heartbeat and answers with its WAL position.
   */
  acceptFailsafe(leader: FailsafeLeader): { status: number; text: string; lsn?: number } {
    if (!this.dynamic.failsafe_mode) return { status: 502, text: 'failsafe_mode is not enabled' };
    const s = this.snapshot;
    if (s.running && s.status && !s.status.inRecovery && s.state === 'running')
      return { status: 500, text: 'Running as a leader' };
    this.failsafeHeartbeats.record(leader, this.now());
    const lsn = s.status?.walPosition;
    return lsn === undefined ? { status: 200, text: 'Accepted' } : { status: 200, text: 'Accepted', lsn };
  }

  // ---- publishing ----------------------------------------------------------------------------

  private memberState(): string {
    if (this.busyState) return this.busyState;
    if (!this.snapshot.running) return this.snapshot.state === 'crashed' ? 'crashed' : 'stopped';
    const s = this.snapshot.status;
    if (!s) return 'starting';
    if (s.inRecovery && s.replicationState === 'streaming') return 'streaming';
    if (s.inRecovery) return 'in archive recovery';
    return 'running';
  }

  /** Writes `members/<me>` when anything in it changed (it lives on our lease either way). */
  async publish(): Promise<void> {
    const status = this.snapshot.running ? await this.d.pg.status().catch(() => null) : null;
    this.snapshot.status = status;
    if (status) this.snapshot.role = status.inRecovery ? 'replica' : 'primary';
    this.snapshot.state = this.memberState();
    const cfg = this.d.config;
    const data: MemberData = {
      conn_url: this.myConnUrl(),
      api_url: this.myApiUrl(),
      state:
        this.snapshot.state === 'streaming' || this.snapshot.state === 'in archive recovery'
          ? this.snapshot.state
          : this.snapshot.state,
      role: this.snapshot.role,
      version: this.d.version,
    };
    if (status) {
      data.xlog_location = status.walPosition;
      data.timeline = status.timeline;
      if (status.inRecovery) {
        if (status.replicationState) data.replication_state = status.replicationState;
        if (status.receiveLsn !== undefined) data.receive_lsn = status.receiveLsn;
        if (status.replayLsn !== undefined) data.replay_lsn = status.replayLsn;
      }
      if (status.pendingRestart) data.pending_restart = true;
    }
    const tags = publishedTags(cfg.tags);
    if (Object.keys(tags).length > 0) data.tags = tags;
    if (this.dynamic.pause) data.pause = true;
    if (this.scheduledRestart) data.scheduled_restart = this.scheduledRestart;
    // A new lease (ttl changed, or the old one expired) needs the key put again on it.
    const text = `${this.d.dcs.leaseId ?? ''} ${JSON.stringify(data)}`;
    if (text === this.lastPublished) return;
    try {
      await this.d.dcs.touchMember(data);
      this.lastPublished = text;
    } catch (err) {
      this.onDcsFailure(err);
    }
  }

  /** Stops the loop. As leader, stops PostgreSQL first and then releases the key, as Patroni does. */
  async shutdown(opts: { stopPostgres?: boolean } = {}): Promise<void> {
    this.stopping = true;
    if (this.keeperTimer) clearTimeout(this.keeperTimer);
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.wake();
    await this.loopDone;
    await this.stopWatch?.();
    const wasLeader = this.snapshot.isLeader;
    this.disarmFence();
    if (opts.stopPostgres !== false && (await this.d.pg.isRunning())) {
      this.log.info('shutting down: stopping PostgreSQL');
      await this.stopFastOrImmediate().catch((err: unknown) =>
        this.log.error(`stop failed: ${errorMessage(err)}`),
      );
      this.d.runCallback('on_stop', this.snapshot.role);
    }
    if (wasLeader) await this.d.dcs.deleteLeader().catch(() => false);
    await this.d.dcs.close({ revokeLease: true }).catch(() => undefined);
    await this.d.pg.close();
  }

  /** Replaces this node's data with a fresh copy of the leader (`reinit`); allowed on a non-leader. */
  async reinitialize(force: boolean): Promise<string> {
    if (!force && this.busy) throw new Error(`an operation is in progress (${this.busy}); use force`);
    return this.exclusive('reinitialize', () => this.reinitializeNow());
  }

  private async reinitializeNow(): Promise<string> {
    if (this.snapshot.isLeader) throw new Error('I am the leader; reinitialising the leader is not allowed');
    const cluster = this.snapshot.cluster;
    if (!cluster?.leader) throw new Error('there is no leader to clone from');
    this.operatorHold = null;
    if (await this.d.pg.isRunning()) await this.d.pg.stop('immediate', 10_000);
    await this.d.pg.removeDataDirectory();
    this.log.info(`reinitialise requested: data directory removed, will clone from ${cluster.leader.name}`);
    this.wake();
    return `reinitialize started: cloning from ${cluster.leader.name}`;
  }

  /**
   * The server configuration for the role this node runs in now, rendered from the current dynamic and
   * local parameters (operator reload/restart re-render postgresql.conf with it; see ha/operator.ts).
   */
  currentRoleConfig(): RoleConfig {
    const s = this.snapshot;
    const primary = s.status ? !s.status.inRecovery : s.role === 'primary';
    return primary
      ? this.roleConfig('primary', null, null)
      : this.roleConfig('replica', s.cluster, this.configuredUpstream);
  }
}

/** Host and port from a member's `conn_url` (postgres://host:port/db). */
export function connTarget(m: Member): ConnTarget | null {
  const hp = urlHostPort(m.data.conn_url);
  return hp ? { ...hp, member: m.name } : null;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1';
}

function publishedTags(tags: PghaConfig['tags']): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(tags)) {
    if (v === false || v === undefined || v === null) continue;
    out[k] = v;
  }
  return out;
}

function describePeer(p: PeerStatus | undefined): string {
  if (!p) return 'not a member';
  if (!p.reachable) return 'its REST API did not answer';
  return `role ${p.role ?? '?'}, state ${p.state ?? '?'}${p.tags?.nofailover === true ? ', tagged nofailover' : ''}`;
}

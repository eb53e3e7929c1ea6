/**
 * The HA loop: observe the store and the local PostgreSQL, ask `decide` for one step, carry it out
 * (actions.ts, leader.ts, switchover-run.ts), publish the member key. The store, PostgreSQL, the
 * peers' REST API and the clock are injected (this folder imports only their types), so the same
 * loop runs against real etcd and PostgreSQL in the agent and against simulations in the model test.
 */
import type { DynamicConfig } from '../config/types.js';
import type { ClusterState, WatchEvent } from '../dcs/types.js';
import type { ConnTarget, RoleConfig, ServerStatus } from '../postgres/types.js';
import { systemClock, type Clock } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import { Serial } from '../util/serial.js';
import type { Logger } from '../util/log.js';
import * as act from './actions.js';
import { bootstrap } from './bootstrap.js';
import {
  initialState,
  rememberCluster,
  type AgentSnapshot,
  type RunnerContext,
  type RunnerDeps,
  type RunnerState,
} from './context.js';
import { decide } from './decide.js';
import { withFailsafeLeader, type FailsafeLeader } from './failsafe.js';
import { FailsafeGuard } from './failsafe-run.js';
import { leaderDuties, maintainSlots, myMemberData, renewMyKey } from './leader.js';
import { SlotKeeper } from './slots-run.js';
import { LeaseGuard, storeLossNote } from './lease.js';
import { canCloneWithoutLeader } from './replica-methods.js';
import { Observer } from './observe.js';
import { LeaderProbe } from './probe.js';
import { SyncStandbyWatch } from './standby-watch.js';
import { remoteKey, remoteTarget, roleConfigFor, serverParameters, serverPgHba } from './server-config.js';
import { REMOTE_UPSTREAM } from './standby.js';
import { switchover } from './switchover-run.js';
import { earlyWakeAllowed } from './timing.js';
import type { Decision, LocalPostgres, PeerStatus } from './types.js';

export type { AgentSnapshot, RunnerDeps } from './context.js';
export { connTarget } from './actions.js';

const WAKE_KEYS = new Set(['leader', 'failover', 'config', 'initialize', 'sync']);
/** Members not seen for this many ttls are forgotten (Patroni's `old_cluster` is one cycle old). */
const KNOWN_MEMBER_TTLS = 10;

/** Whether a watch batch is only the current leader rewriting its key (a renewal, or another member's key write). */
export function renewalsOnly(events: WatchEvent[], leader: string | undefined): boolean {
  return (
    leader !== undefined &&
    events.some((e) => e.key === 'leader') &&
    events.every((e) => e.key !== 'leader' || e.value === leader) &&
    events.every((e) => e.key === 'leader' || !WAKE_KEYS.has(e.key))
  );
}

export class HaRunner implements RunnerContext {
  readonly d: RunnerDeps;
  readonly log: Logger;
  readonly clock: Clock;
  readonly st: RunnerState = initialState();
  readonly snapshot: AgentSnapshot;
  readonly lease: LeaseGuard;
  readonly slots = new SlotKeeper();
  private readonly probe: LeaderProbe;
  private readonly standbyWatch: SyncStandbyWatch;
  private dyn: DynamicConfig;
  private stopping = false;
  private wakeUp: (() => void) | null = null;
  private wakePending = false;
  private stopWatch: (() => Promise<void>) | null = null;
  private lastMessage = '';
  private lastPublished = '';
  private dcsFailing = false;
  private lastCycleMono: number | null = null;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly serial = new Serial();
  private readonly observer: Observer;
  private readonly failsafe: FailsafeGuard;
  /** Published as `scheduled_restart` in the member key while a restart is scheduled. */
  scheduledRestart: Record<string, unknown> | null = null;

  constructor(deps: RunnerDeps) {
    this.d = deps;
    this.log = deps.logger;
    this.clock = deps.clock ?? systemClock;
    this.dyn = deps.parseDynamic(deps.config.bootstrap.dcs);
    this.snapshot = {
      name: deps.config.name,
      scope: deps.config.scope,
      state: 'starting',
      role: 'uninitialized',
      cluster: null,
      dynamic: this.dyn,
      status: null,
      running: false,
      dcsLastSeen: null,
      lastLoop: null,
      lastDecision: null,
      isLeader: false,
      sysid: null,
      paused: false,
      failsafeActive: false,
      diverged: null,
      standbyCluster: this.dyn.standby_cluster !== undefined,
    };
    this.lease = new LeaseGuard({
      clock: this.clock,
      dcs: deps.dcs,
      logger: this.log,
      ...(deps.watchdog ? { watchdog: deps.watchdog } : {}),
      ttlS: () => this.dyn.ttl,
      loopWaitS: () => this.dyn.loop_wait,
      retryTimeoutS: () => this.dyn.retry_timeout,
      configuredMarginS: deps.config.watchdog.safety_margin,
      paused: () => this.dyn.pause,
      isLeader: () => this.snapshot.isLeader,
      progress: () => ({ lastCycleMono: this.lastCycleMono, longActionSinceMono: this.st.longActionSince }),
      fence: (reason) => this.fence(reason),
      // failsafe_mode: a loop still waiting for an unreachable store at the fence's eve would ask
      // the members too late; ask them now (a confirmed round re-arms the fence from its start).
      beforeFence: () =>
        this.dyn.failsafe_mode ? this.failsafe.round(this.stopping, { demote: false }) : Promise.resolve(),
    });
    this.probe = new LeaderProbe(this);
    this.standbyWatch = new SyncStandbyWatch(this);
    this.observer = new Observer(this);
    this.failsafe = new FailsafeGuard(this);
  }

  get me(): string {
    return this.d.config.name;
  }

  dynamic(): DynamicConfig {
    return this.dyn;
  }

  /** The dynamic configuration in force. */
  get dynamicConfig(): DynamicConfig {
    return this.dyn;
  }

  /** Starts the loop; resolves once the first cycle has run. */
  async start(): Promise<void> {
    this.st.operatorHold = await this.d.pg.readHold().catch(() => null);
    if (this.st.operatorHold)
      this.log.error(`waiting for an operator (kept from before a restart): ${this.st.operatorHold}`);
    this.stopWatch = this.d.dcs.watch((keys, events) => {
      if (events) this.probe.watched(events);
      // Members' own keys change with every write they see; only the keys that can change a
      // decision wake the loop at once (an empty list means events may have been missed). The
      // leader rewrites its key at every renewal: that changes nothing to decide.
      if (events && renewalsOnly(events, this.snapshot.cluster?.leader?.name)) return;
      if (keys.length === 0 || keys.some((k) => WAKE_KEYS.has(k))) this.wake();
    });
    // The server went away under the agent's own session (a crash, a kill): look now, not after
    // loop_wait, so a primary is restarted (or replaced) in about a second whatever loop_wait is.
    // Once per loop_wait at most: a server that crashes again and again restarts at the loop's pace.
    let lostWakeAt = -Infinity;
    this.d.pg.onConnectionLost?.(() => {
      const now = this.clock.mono();
      if (this.stopping || !earlyWakeAllowed(lostWakeAt, now, this.dyn.loop_wait)) return;
      lostWakeAt = now;
      this.log.info('the session to the local PostgreSQL was lost: checking it now');
      this.wake();
    });
    let firstDone!: () => void;
    const first = new Promise<void>((r) => (firstDone = r));
    this.loopDone = this.loop(firstDone);
    await first;
    this.lease.startKeeper();
    this.probe.start();
    this.standbyWatch.start();
  }

  /** Wakes the loop early (a watch event, an API request). */
  wake(): void {
    this.wakePending = true;
    this.wakeUp?.();
  }

  private async loop(firstDone: () => void): Promise<void> {
    while (!this.stopping) {
      const started = this.clock.mono();
      this.wakePending = false;
      try {
        await this.exclusive('HA cycle', () => this.cycle());
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, `HA cycle failed: ${errorMessage(err)}`);
      }
      firstDone();
      this.lastCycleMono = this.clock.mono();
      this.snapshot.lastLoop = this.clock.now() / 1000;
      if (this.stopping) break;
      // While the store is failing, retry every second so a leader renews as soon as it is back.
      const waitMs = this.dcsFailing ? 1000 : this.dyn.loop_wait * 1000 - (this.clock.mono() - started);
      if (!this.wakePending) await this.sleep(Math.max(0, waitMs));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.clock.clearTimer(t);
        this.wakeUp = null;
        resolve();
      };
      const t = this.clock.setTimer(done, ms);
      this.wakeUp = done;
    });
  }

  /**
   * Runs `fn` while no HA cycle and no other exclusive operation runs (operator requests such as a
   * restart use this, so they never interleave with a decision being carried out).
   */
  exclusive<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return this.serial.run(what, fn);
  }

  /** What runs right now under `exclusive` (null when idle). */
  get busy(): string | null {
    return this.st.busyState ?? (this.serial.current === 'HA cycle' ? null : this.serial.current);
  }

  /** Re-reads PostgreSQL's status into the snapshot, within a short deadline. */
  async refreshStatus(): Promise<void> {
    if (!this.snapshot.running) return;
    const status = await this.d.pg.status(this.clock.timeout(1000)).catch(() => null);
    if (status) this.snapshot.status = status;
    else if (!(await this.d.pg.isRunning().catch(() => true))) {
      this.snapshot.running = false;
      this.snapshot.status = null;
    }
  }

  /** Sets or clears the member state shown while an operator action runs (`restarting`, ...). */
  setBusyState(state: string | null): void {
    this.st.busyState = state;
  }

  async during<T>(state: string, fn: () => Promise<T>, long = false): Promise<T> {
    this.st.busyState = state;
    if (long) this.st.longActionSince = this.clock.mono();
    try {
      return await fn();
    } finally {
      this.st.busyState = null;
      if (long) this.st.longActionSince = null;
    }
  }

  async setHold(reason: string | null, persist = true): Promise<void> {
    this.st.operatorHold = reason;
    if (persist || reason === null)
      await this.d.pg
        .writeHold(reason)
        .catch((err: unknown) => this.log.warn(`could not record the hold: ${errorMessage(err)}`));
  }

  /** One observe–decide–act–publish cycle. */
  private async cycle(): Promise<void> {
    const deadline = () => this.clock.timeout(this.dyn.retry_timeout * 1000);
    let cluster: ClusterState;
    let leaseSent: number | null;
    try {
      cluster = await this.d.dcs.readCluster(deadline());
      leaseSent = await this.d.dcs.refreshLease(deadline());
      this.dcsFailing = false;
    } catch (err) {
      this.onDcsFailure(err);
      await this.failsafe.round(this.stopping);
      return;
    }
    cluster = await this.probe.releaseGone(cluster);
    this.snapshot.dcsLastSeen = Math.floor(this.clock.now() / 1000);
    this.snapshot.failsafeActive = this.failsafe.heardFromLeader();
    this.failsafe.reset();
    this.applyDynamic(cluster);
    if (this.dyn.failsafe_mode && !cluster.leader) {
      // A leader that lost the store but still calls us over POST /failsafe is alive: follow it.
      const vouched = this.failsafe.heartbeats.leader(this.clock.now(), this.dyn.ttl);
      if (vouched && vouched.name !== this.me) cluster = withFailsafeLeader(cluster, vouched);
    }
    rememberCluster(this.st, cluster, this.me, this.clock.mono(), KNOWN_MEMBER_TTLS * this.dyn.ttl * 1000);
    this.snapshot.cluster = cluster;

    const pg = await this.observer.observe(cluster);
    if (cluster.leader?.name === this.me) {
      let renewed: Awaited<ReturnType<typeof renewMyKey>>;
      try {
        renewed = await renewMyKey(this, cluster, pg, deadline());
      } catch (err) {
        this.onDcsFailure(err);
        await this.failsafe.round(this.stopping);
        return;
      }
      if (renewed === 'stopped') return;
      ({ cluster, leaseSent } = renewed);
    } else {
      this.lease.disarm();
    }
    this.snapshot.isLeader = cluster.leader?.name === this.me;
    if (this.dyn.pause) this.d.watchdog?.disable();

    const decision = decide({
      me: this.me,
      now: this.clock.now(),
      cluster,
      config: this.dyn,
      tags: this.d.config.tags,
      pg,
      memory: {
        uninitializedForMs:
          this.st.uninitializedSince === null ? null : this.clock.mono() - this.st.uninitializedSince,
        knownMembers: [...this.st.knownMembers.values()].map((k) => k.member),
      },
      local: {
        removeDataOnDivergedTimelines: this.d.config.postgresql.remove_data_directory_on_diverged_timelines,
        cloneWithoutLeader: canCloneWithoutLeader(this.d.config.postgresql),
      },
      // A key in the dynamic configuration pgha cannot honour (standby_cluster) holds like an operator.
      operatorHold: this.st.operatorHold ?? this.dyn.hold ?? null,
    });
    this.snapshot.lastDecision = decision;
    try {
      await this.execute(decision, cluster, pg, leaseSent);
    } catch (err) {
      this.st.busyState = null;
      this.log.error(
        { decision: decision.kind, err: errorMessage(err) },
        `${decision.why}: ${decision.kind} failed: ${errorMessage(err)}`,
      );
    }
    this.st.ledBefore = this.snapshot.isLeader;
    if (decision.kind === 'idle' || decision.kind === 'renew') await this.applyServerConfig();
    await this.settleRole();
    await this.publish();
  }

  /**
   * A running replica becomes the standby leader when it holds the key of a standby cluster and
   * streams from its source, and stops being it when either goes; both run on_role_change, as Patroni.
   */
  private async settleRole(): Promise<void> {
    if (!this.snapshot.running) return;
    const status = await this.d.pg.status().catch(() => null);
    if (!status?.inRecovery) return;
    const want = this.roleOf(status);
    if (want === this.snapshot.role) return;
    const was = this.snapshot.role;
    this.snapshot.role = want;
    if (was === 'replica' || was === 'standby_leader') {
      this.log.info(`role changed from ${was} to ${want}`);
      this.d.runCallback('on_role_change', want);
    }
  }

  roleOf(status: ServerStatus): 'primary' | 'replica' | 'standby_leader' {
    if (!status.inRecovery) return 'primary';
    return this.dyn.standby_cluster &&
      this.snapshot.isLeader &&
      this.st.configuredUpstream === REMOTE_UPSTREAM
      ? 'standby_leader'
      : 'replica';
  }

  remoteTarget(): ConnTarget | null {
    return remoteTarget(this.dyn);
  }
  remoteKey(): string {
    return remoteKey(this.dyn);
  }

  /** Carries out one decision; every kind has its case (checked at compile time). */
  private async execute(
    d: Decision,
    cluster: ClusterState,
    pg: LocalPostgres,
    leaseSent: number | null,
  ): Promise<void> {
    switch (d.kind) {
      case 'idle':
        if (!this.snapshot.isLeader && pg.running && pg.status?.inRecovery)
          await maintainSlots(this, cluster, 'replica', pg.status);
        return this.say(d, 'no action', d.why.includes('diverged') ? 'error' : 'info');
      case 'refuse':
        return this.say(d, 'waiting for an operator', 'error');
      case 'bootstrap':
        return bootstrap(this, d, cluster);
      case 'adopt':
        return act.adopt(this, d, cluster, pg);
      case 'clone':
        return act.clone(this, d, cluster);
      case 'start_primary':
        return act.startPrimary(this, d, cluster, leaseSent);
      case 'start_replica':
        return act.startReplica(this, d, cluster, d.upstream, d.rewind);
      case 'release_leader':
        return act.releaseLeader(this, d, cluster);
      case 'race':
        return act.race(this, d, cluster, pg, leaseSent);
      case 'renew':
        await leaderDuties(this, cluster, pg.status);
        return this.say(d, 'renewed the leader lease');
      case 'promote':
        this.say(d, 'promoting');
        return act.promote(this, cluster);
      case 'demote':
        return act.demote(this, d, cluster);
      case 'follow':
        return act.follow(this, d, cluster);
      case 'reinit':
        return act.reinit(this, d);
      case 'switchover':
        return switchover(this, d, cluster, pg, leaseSent);
      case 'cancel_switchover':
        await this.d.dcs.clearFailover();
        return this.say(d, 'cleared it', 'warn');
      default: {
        const unhandled: never = d;
        throw new Error(`unhandled decision ${JSON.stringify(unhandled)}`);
      }
    }
  }

  /** Keeps what the store may lose: members seen, when `initialize` vanished, who led before. */
  private serverConfigKey(): string {
    return JSON.stringify({ parameters: this.parameters(), pgHba: serverPgHba(this.dyn, this.d.config) });
  }

  markServerConfigApplied(): void {
    this.st.appliedServerConfig = this.serverConfigKey();
  }

  /**
   * Re-renders postgresql.conf and pg_hba.conf and reloads when the parameters in force changed
   * (`edit-config`, PATCH /config, a new local config), as Patroni does; parameters that need a
   * restart then show as pending_restart. In maintenance mode too, as Patroni: a reload starts,
   * stops or promotes nothing.
   */
  private async applyServerConfig(): Promise<void> {
    if (!this.snapshot.running || !this.snapshot.status) return;
    const key = this.serverConfigKey();
    if (key === this.st.appliedServerConfig) return;
    try {
      await this.d.pg.configure(this.currentRoleConfig());
      await this.d.pg.reload();
      if (this.st.appliedServerConfig !== null) {
        this.log.info('server parameters changed: rewrote the configuration and reloaded PostgreSQL');
        this.d.runCallback('on_reload', this.snapshot.role);
      }
      this.st.appliedServerConfig = key;
    } catch (err) {
      this.log.error(`could not apply the changed server parameters: ${errorMessage(err)}`);
    }
  }

  private onDcsFailure(err: unknown): void {
    if (!this.dcsFailing) {
      const left = this.lease.remainingMs(this.clock.mono());
      const until = this.snapshot.isLeader ? storeLossNote(left, this.dyn.pause) : '';
      this.log.error({ err: errorMessage(err) }, `store unreachable: ${errorMessage(err)}${until}`);
    }
    this.dcsFailing = true;
  }

  private applyDynamic(cluster: ClusterState): void {
    // A store that lost the config key (a wiped namespace) leaves the last configuration in force,
    // as Patroni: falling back to bootstrap.dcs could silently undo a pause or a ttl change.
    const next = cluster.config ? this.d.parseDynamic(cluster.config.value) : this.dyn;
    if (next.ttl !== this.dyn.ttl) this.d.dcs.setTtl(next.ttl);
    if (next.retry_timeout !== this.dyn.retry_timeout)
      this.d.dcs.setRequestTimeout?.(next.retry_timeout * 1000);
    if (next.pause && !this.dyn.pause) this.lease.disarm();
    this.dyn = next;
    this.snapshot.dynamic = next;
    this.snapshot.paused = next.pause;
    this.snapshot.standbyCluster = next.standby_cluster !== undefined;
    // patroni.dynamic.json in the data directory, as Patroni keeps it (tools written for it read it).
    if (cluster.config)
      this.d.pg
        .saveDynamicCache(JSON.stringify(cluster.config.value))
        .catch((err: unknown) =>
          this.log.debug(`could not write patroni.dynamic.json: ${errorMessage(err)}`),
        );
  }

  fetchPeers(cluster: ClusterState, only?: string | null): Promise<PeerStatus[]> {
    return act.fetchPeers(this, cluster, only, (name) => this.probe.prefetched(name));
  }

  // ---- fencing ------------------------------------------------------------------------------

  /** The fence fired: stop PostgreSQL before the lease can expire (fast, then immediate). */
  private async fence(reason: string): Promise<void> {
    this.log.error(
      `${reason}: stopping PostgreSQL so that it takes no writes once another member may be promoted`,
    );
    try {
      await this.during('stopping', () => this.d.pg.stop('fast', Math.max(1000, this.lease.marginMs() / 2)));
    } catch (err) {
      this.log.error(`fast stop failed (${errorMessage(err)}); stopping immediately`);
      await this.d.pg
        .stop('immediate', 5000)
        .catch((e: unknown) => this.log.error(`immediate stop failed: ${errorMessage(e)}`));
    }
    this.snapshot.role = 'demoted';
    this.d.runCallback('on_role_change', 'demoted');
  }

  async stopFastOrImmediate(): Promise<void> {
    try {
      await this.d.pg.stop('fast', Math.max(5000, this.dyn.primary_stop_timeout * 1000 || 30_000));
    } catch (err) {
      this.log.warn(`fast stop failed (${errorMessage(err)}); stopping immediately`);
      await this.d.pg.stop('immediate', 10_000);
    }
  }

  /** `POST /failsafe` from a leader that lost the store (see failsafe-run.ts). */
  acceptFailsafe(leader: FailsafeLeader): { status: number; text: string; lsn?: number } {
    return this.failsafe.accept(leader);
  }

  // ---- publishing ---------------------------------------------------------------------------

  say(decision: Decision, did: string, level: 'info' | 'warn' | 'error' = 'info'): void {
    const line = `${decision.why}: ${did}`;
    if (line === this.lastMessage && level === 'info') {
      this.log.debug({ decision: decision.kind }, line);
      return;
    }
    this.lastMessage = line;
    this.log[level]({ decision: decision.kind }, line);
  }

  /** Writes `members/<me>` when anything in it changed (it lives on our lease either way). */
  async publish(): Promise<void> {
    const status = this.snapshot.running ? await this.d.pg.status().catch(() => null) : null;
    this.snapshot.status = status;
    if (status) this.snapshot.role = this.roleOf(status);
    const data = myMemberData(this, status, this.scheduledRestart);
    this.snapshot.state = data.state ?? 'stopped';
    // A new lease (ttl changed, or the old one expired) needs the key put again on it.
    const text = `${this.d.dcs.leaseId ?? ''} ${JSON.stringify(data)}`;
    if (text === this.lastPublished) return;
    try {
      await this.d.dcs.touchMember(data, this.clock.timeout(this.dyn.retry_timeout * 1000));
      this.lastPublished = text;
    } catch (err) {
      this.onDcsFailure(err);
    }
  }

  /**
   * Stops the loop. As leader, stops PostgreSQL first and then releases the key, as Patroni does;
   * in maintenance mode it leaves PostgreSQL running and the key (and lease) in place, so an agent
   * started again picks the running primary up as leader.
   */
  async shutdown(opts: { stopPostgres?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.probe.stop();
    this.standbyWatch.stop();
    this.wake();
    await this.loopDone;
    await this.stopWatch?.();
    const wasLeader = this.snapshot.isLeader;
    const paused = this.dyn.pause;
    this.lease.stop();
    if (paused) {
      this.log.info('maintenance mode: leaving PostgreSQL running and the leader key in place');
      await this.d.dcs.close({ revokeLease: false }).catch(() => undefined);
      await this.d.pg.close();
      return;
    }
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
    return this.exclusive('reinitialize', () => act.reinitializeNow(this));
  }

  private parameters(): Record<string, string | number | boolean> {
    return serverParameters({
      dyn: this.dyn,
      config: this.d.config,
      isLeader: this.snapshot.isLeader,
      ssn: this.st.ssn,
    });
  }

  roleConfig(role: 'primary' | 'replica', cluster: ClusterState | null, upstream: string | null): RoleConfig {
    const { dyn } = this;
    const common = {
      dyn,
      config: this.d.config,
      parameters: this.parameters(),
      slotName: this.d.slotName(this.me),
    };
    return roleConfigFor({ ...common, role, cluster, upstream, connTarget: act.connTarget });
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
      : this.roleConfig('replica', s.cluster, this.st.configuredUpstream);
  }
}

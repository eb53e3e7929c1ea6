/**
 * The `pgha vip` loop: every `check_interval`, and at once when etcd reports a change of the
 * `leader` key or of the VIP key, it renews its etcd lease, learns whether this node may hold the
 * VIP (`eligibility`), claims or releases the VIP key, and makes the interface agree (`addressStep`).
 * A timer independent of the loop removes the address at the lease deadline, like the agent's fence,
 * so a loop stuck on an unreachable etcd cannot keep it. With `failsafe_mode`, while etcd does not
 * answer, the holder asks the members' agents (`GET /primary`) and keeps the address past that
 * deadline only while the last known leader says it is the primary in failsafe mode
 * (`failsafeHoldUntil`); meanwhile no other node takes the key (`takeoverBlock`).
 */
import type { VipConfig } from '../config/types.js';
import { parseDynamicConfig } from '../config/schema.js';
import type { ClusterState, Dcs } from '../dcs/types.js';
import { FailsafeProbe, PRIMARY_ANSWER_TIMEOUT_MS, type ProbeTarget } from '../ha/failsafe-probe.js';
import type { PrimaryAnswer } from '../ha/failsafe-view.js';
import { vipRenewWithinMs } from '../ha/timing.js';
import { systemClock, type Clock } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import {
  INITIAL_HEALTH,
  addressStep,
  eligibility,
  failsafeHoldUntil,
  heldUntil as heldUntilFor,
  keyStep,
  nextHealth,
  takeoverBlock,
  type HealthState,
  type ProbeResult,
} from './decide.js';
import type { AddressControl } from './iproute.js';

/** The part of the DCS the VIP uses. */
export type VipStore = Pick<
  Dcs,
  'prefix' | 'refreshLease' | 'readCluster' | 'claimKey' | 'releaseKey' | 'watch'
>;

export interface VipManagerDeps {
  config: VipConfig;
  /** This node's name (the YAML's `name`): the VIP key's value. */
  me: string;
  store: VipStore;
  net: AddressControl;
  /** Router mode: checks the local router. */
  probe?: () => Promise<ProbeResult>;
  log: Logger;
  /** Monotonic time for every deadline, wall time for what is shown (default: the process's). */
  clock?: Clock;
  /** failsafe_mode: how to ask a member's agent for `GET /primary` (default over HTTP). */
  askPrimary?: (t: ProbeTarget) => Promise<PrimaryAnswer>;
}

/** What `GET /status` shows and the metrics read. */
export interface VipStatus {
  node: string;
  address: string;
  prefix: number;
  interface: string;
  mode: 'leader' | 'router';
  /** The address is on this node's interface and the key is ours. */
  held: boolean;
  /** Who holds the VIP key, per the last answer from etcd. */
  holder: string | null;
  eligible: boolean;
  why: string;
  router: { healthy: boolean; why: string } | null;
  leader: string | null;
  /** Until when the key is known to be ours (ISO time), null when it is not. */
  heldUntil: string | null;
  lastChange: string | null;
  takeovers: number;
  etcd: { lastRenewal: string | null; error: string | null };
  /** Why failsafe_mode keeps the address past the key's deadline; null when it does not. */
  failsafe: string | null;
}

/** Relative key of the VIP lock under the cluster prefix. */
export function vipKey(address: string): string {
  return `vip/${address}`;
}

/** Runs the VIP loop for one address on one node. */
export class VipManager {
  private readonly d: VipManagerDeps;
  private readonly clock: Clock;
  private readonly key: string;
  private health: HealthState = INITIAL_HEALTH;
  private leader: string | null | undefined = undefined;
  private holder: string | null = null;
  private sameNameElsewhere = false;
  private keyHeldUntil: number | null = null;
  private present = false;
  /** When the kernel lifetime this process last gave the address ends. */
  private lifetimeEndsAt: number | null = null;
  private dadFailed = false;
  private eligible = false;
  private why = 'starting';
  private lastRenewal: number | null = null;
  private etcdError: string | null = null;
  private lastChange: number | null = null;
  private takeoversCount = 0;

  private timer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private stopWatch: (() => Promise<void>) | null = null;
  private ticking: Promise<void> | null = null;
  private again = false;
  private stopping = false;
  /** Serialises changes of the address (the loop and the deadline timer). */
  private addressLock: Promise<void> = Promise.resolve();
  private lastMessage = '';
  /** From the last good etcd read: `failsafe_mode`, the cluster's ttl, the members' REST URLs. */
  private failsafeMode = false;
  private clusterTtl = 30;
  private members: ProbeTarget[] = [];
  /**
   * The failsafe hold last logged (its end; null: none). Only for saying when it starts, moves and
   * ends: the hold itself is derived from the latest answers each time (`failsafeHoldNow`).
   */
  private failsafeSaid: number | null = null;
  private readonly failsafe: FailsafeProbe;

  constructor(d: VipManagerDeps) {
    this.d = d;
    this.clock = d.clock ?? systemClock;
    this.key = vipKey(d.config.address);
    this.failsafe = new FailsafeProbe({
      intervalMs: d.config.check_interval * 1000,
      timeoutMs: PRIMARY_ANSWER_TIMEOUT_MS,
      now: () => this.clock.mono(),
      onAnswer: () => this.failsafeAnswered(),
      onError: (err) => this.say('error', `failsafe check failed: ${errorMessage(err)}`),
      ...(d.askPrimary ? { ask: d.askPrimary } : {}),
    });
  }

  /** Starts the loop: reads the interface, watches etcd, runs the first check at once. */
  async start(): Promise<void> {
    this.present = (await this.d.net.inspect()).present;
    if (this.present)
      this.d.log.info(`${this.d.net.label} is already on the interface; checking the VIP key`);
    this.stopWatch = this.d.store.watch((keys) => {
      if (keys.length === 0 || keys.some((k) => k === 'leader' || k === this.key)) this.trigger();
    });
    this.trigger();
  }

  get takeovers(): number {
    return this.takeoversCount;
  }

  status(): VipStatus {
    const c = this.d.config;
    const now = this.clock.mono();
    const hold = this.failsafeHoldNow();
    // Monotonic moments shown as wall-clock times.
    const iso = (t: number | null) =>
      t === null ? null : new Date(this.clock.now() + (t - this.clock.mono())).toISOString();
    return {
      node: this.d.me,
      address: c.address,
      prefix: c.prefix,
      interface: c.interface,
      mode: c.mode,
      held: this.present && (this.heldUntil() ?? -Infinity) > now,
      holder: this.holder,
      eligible: this.eligible,
      why: this.why,
      router: c.mode === 'router' ? { healthy: this.health.healthy, why: this.health.why } : null,
      leader: this.leader ?? null,
      heldUntil: iso(this.heldUntil()),
      lastChange: iso(this.lastChange),
      takeovers: this.takeoversCount,
      etcd: { lastRenewal: iso(this.lastRenewal), error: this.etcdError },
      failsafe: hold.until === null ? null : hold.why,
    };
  }

  /** Runs a check now and waits until no check is running (the tests drive the loop with it). */
  async checkNow(): Promise<void> {
    this.trigger();
    while (this.ticking) await this.ticking;
  }

  /** Runs a check now (or right after the one running). */
  trigger(): void {
    if (this.stopping) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.ticking = this.tick()
      .catch((err: unknown) => this.say('error', `VIP check failed: ${errorMessage(err)}`))
      .finally(() => {
        this.ticking = null;
        if (this.stopping) return;
        if (this.again) {
          this.again = false;
          this.trigger();
        } else {
          this.timer = setTimeout(() => this.trigger(), this.d.config.check_interval * 1000);
        }
      });
  }

  private say(level: 'info' | 'warn' | 'error', msg: string): void {
    if (msg === this.lastMessage) return;
    this.lastMessage = msg;
    this.d.log[level](msg);
  }

  /** One check: observe, decide, act. */
  private async tick(): Promise<void> {
    const c = this.d.config;
    if (c.mode === 'router' && this.d.probe) {
      const before = this.health.healthy;
      this.health = nextHealth(this.health, await this.d.probe(), c);
      if (before !== this.health.healthy)
        this.d.log.info(`local router is ${this.health.healthy ? 'healthy' : 'down'}: ${this.health.why}`);
    }

    let leaseSent: number | null = null;
    try {
      leaseSent = await this.d.store.refreshLease();
      this.observe(await this.d.store.readCluster());
      this.lastRenewal = leaseSent;
      this.etcdError = null;
      if (this.failsafe.active) this.d.log.info('etcd answers again: failsafe checks stopped');
      this.failsafe.stop();
      this.failsafeSaid = null;
    } catch (err) {
      leaseSent = null;
      this.etcdError = errorMessage(err);
      this.say('warn', `etcd: ${this.etcdError}`);
      if (this.failsafeMode && this.leader && this.keyHeldUntil !== null) {
        if (!this.failsafe.active)
          this.d.log.warn(
            `failsafe_mode: asking the agents whether ${this.leader} runs on as primary in failsafe mode`,
          );
        this.failsafe.start(this.members);
      }
    }

    const e = eligibility({ mode: c.mode, me: this.d.me, leader: this.leader, router: this.health });
    if (e.eligible !== this.eligible || e.why !== this.why)
      this.d.log.info(`${e.eligible ? 'may hold' : 'may not hold'} the VIP: ${e.why}`);
    this.eligible = e.eligible;
    this.why = e.why;

    await this.withAddressLock(async () => {
      const seen = await this.d.net.inspect();
      this.present = seen.present;
      this.dadFailed = seen.dadFailed;
      if (!seen.present) this.lifetimeEndsAt = null;
      const keyOurs = this.keyHeldUntil !== null;
      const block = takeoverBlock({ failsafeMode: this.failsafeMode, leader: this.leader });
      const step = keyStep({
        eligible: e.eligible,
        keyOurs,
        present: this.present,
        takeover: block === null,
      });
      if (block !== null && e.eligible && !keyOurs) this.say('info', `not taking the VIP: ${block}`);
      if (leaseSent !== null && step === 'claim') {
        try {
          const r = await this.d.store.claimKey(this.key, this.d.me);
          this.holder = r.holder;
          this.sameNameElsewhere = !r.held && r.holder === this.d.me;
          this.setHeldUntil(r.held ? heldUntilFor(leaseSent, c.ttl) : null);
          if (this.sameNameElsewhere)
            this.say(
              'warn',
              `the VIP key holds this node's name on another etcd lease; waiting for it to expire`,
            );
        } catch (err) {
          this.etcdError = errorMessage(err);
          this.say('warn', `etcd: ${this.etcdError}`);
        }
      }
      await this.applyAddress();
      await this.maybeRelease(leaseSent !== null);
    });
  }

  /** Makes the interface agree with the decision. Runs under the address lock. */
  private async applyAddress(): Promise<void> {
    this.sayFailsafe();
    const step = addressStep({
      now: this.clock.mono(),
      eligible: this.eligible && !this.stopping,
      heldUntil: this.heldUntil(),
      sameNameElsewhere: this.sameNameElsewhere,
      present: this.present,
      lifetimeEndsAt: this.lifetimeEndsAt,
      renewWithinMs: vipRenewWithinMs(this.d.config.ttl),
      why: this.stopping ? 'pgha vip is stopping' : this.why,
      holder: this.holder,
    });
    switch (step.step) {
      case 'add':
        await this.d.net.add(step.lifetimeS);
        this.present = true;
        this.lifetimeEndsAt = this.clock.mono() + step.lifetimeS * 1000;
        this.lastChange = this.clock.mono();
        this.takeoversCount++;
        this.d.net.announce();
        this.lastMessage = '';
        this.d.log.info(`took over the VIP ${this.d.net.label}: ${step.why}`);
        break;
      case 'renew': {
        if (this.dadFailed) {
          // IPv6 duplicate address detection failed: some other host on the link uses the address.
          await this.d.net.remove();
          this.present = false;
          this.lifetimeEndsAt = null;
          this.dadFailed = false;
          this.lastChange = this.clock.mono();
          this.say('error', `another host on the link answers for ${this.d.config.address}; removed it here`);
          break;
        }
        await this.d.net.renew(step.lifetimeS);
        this.lifetimeEndsAt = this.clock.mono() + step.lifetimeS * 1000;
        break;
      }
      case 'remove':
        await this.d.net.remove();
        this.present = false;
        this.lifetimeEndsAt = null;
        this.lastChange = this.clock.mono();
        this.lastMessage = '';
        this.d.log.info(`released the VIP ${this.d.net.label}: ${step.why}`);
        break;
      case 'none':
        break;
    }
  }

  /** Releases a key we hold once the address is gone and we may not hold it. */
  private async maybeRelease(etcdOk: boolean): Promise<void> {
    const step = keyStep({
      eligible: this.eligible && !this.stopping,
      keyOurs: this.keyHeldUntil !== null,
      present: this.present,
    });
    if (step !== 'release' || !etcdOk) return;
    try {
      await this.d.store.releaseKey(this.key, this.d.me);
      this.holder = null;
      this.setHeldUntil(null);
    } catch (err) {
      // It expires with the lease; the address is already gone.
      this.say('warn', `could not release the VIP key: ${errorMessage(err)}`);
    }
  }

  /** What the last good etcd read says about the cluster. */
  private observe(cluster: ClusterState): void {
    this.leader = cluster.leader?.name ?? null;
    const dynamic = parseDynamicConfig(cluster.config?.value ?? {}).config;
    this.failsafeMode = dynamic.failsafe_mode;
    this.clusterTtl = dynamic.ttl;
    this.members = (cluster.members ?? []).flatMap((m) =>
      typeof m.data.api_url === 'string' ? [{ name: m.name, apiUrl: m.data.api_url }] : [],
    );
  }

  /**
   * Until when the address may stay: the key's deadline, or later while failsafe_mode keeps it.
   * The hold is read from the latest answers at each call, never from an older result: a result of
   * an answer that came before the key's deadline (while the key itself kept the address) would
   * drop, just past that deadline, an address the primary's confirmation keeps.
   */
  private heldUntil(): number | null {
    if (this.keyHeldUntil === null) return null;
    return Math.max(this.keyHeldUntil, this.failsafeHoldNow().until ?? -Infinity);
  }

  /** The failsafe hold as of now; none while etcd answers (the probe is stopped, no answers). */
  private failsafeHoldNow(): { until: number | null; why: string } {
    if (!this.failsafe.active) return { until: null, why: 'etcd answers' };
    return failsafeHoldUntil({
      failsafeMode: this.failsafeMode,
      now: this.clock.mono(),
      keyHeldUntil: this.keyHeldUntil,
      leader: this.leader ?? null,
      answers: this.failsafe.latest(),
      vipTtl: this.d.config.ttl,
      clusterTtl: this.clusterTtl,
    });
  }

  /** Logs when the failsafe hold starts and ends; true when it changed since it was last said. */
  private sayFailsafe(): boolean {
    const before = this.failsafeSaid;
    const h = this.failsafeHoldNow();
    this.failsafeSaid = h.until;
    if (h.until !== null && before === null)
      this.say('warn', `etcd unreachable: keeping the VIP while ${h.why}`);
    if (h.until === null && before !== null)
      this.say('error', `failsafe_mode no longer keeps the VIP: ${h.why}`);
    return h.until !== before;
  }

  /** An agent answered: keep, extend or end the failsafe hold, and make the interface agree. */
  private failsafeAnswered(): void {
    if (this.stopping) return;
    if (!this.sayFailsafe()) return;
    this.armDeadline();
    void this.withAddressLock(() => this.applyAddress()).catch((err: unknown) =>
      this.say('error', `updating the VIP failed: ${errorMessage(err)}`),
    );
  }

  /** Records the key's deadline and arms the timer that drops the address when it passes. */
  private setHeldUntil(t: number | null): void {
    this.keyHeldUntil = t;
    this.armDeadline();
  }

  /** Arms the timer that drops the address once `heldUntil()` passes without renewal. */
  private armDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    const t = this.heldUntil();
    if (t === null) return;
    this.deadlineTimer = setTimeout(
      () => {
        this.deadlineTimer = null;
        void this.withAddressLock(async () => {
          if (this.keyHeldUntil === null) return;
          const until = this.heldUntil();
          if (until !== null && this.clock.mono() < until) {
            this.armDeadline(); // renewed, or kept by failsafe_mode, meanwhile
            return;
          }
          this.sayFailsafe();
          this.say(
            'error',
            `could not renew the VIP key for ${this.lastRenewal === null ? 'ever' : `${Math.round((this.clock.mono() - this.lastRenewal) / 1000)} s`}; ` +
              'removing the address before another node may take it',
          );
          await this.applyAddress();
        }).catch((err: unknown) => this.say('error', `removing the VIP failed: ${errorMessage(err)}`));
      },
      Math.max(0, t - this.clock.mono()),
    );
  }

  private withAddressLock(fn: () => Promise<void>): Promise<void> {
    const next = this.addressLock.then(fn);
    this.addressLock = next.catch(() => undefined);
    return next;
  }

  /** Stops the loop, removes the address and releases the key. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.failsafe.stop();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.stopWatch?.();
    await this.ticking;
    this.eligible = false;
    this.why = 'pgha vip is stopping';
    await this.withAddressLock(async () => {
      this.present = (await this.d.net.inspect()).present;
      // A key held by another process under our name is not ours to drop, nor is its address.
      if (this.present && !this.sameNameElsewhere) {
        await this.d.net.remove();
        this.present = false;
        this.lifetimeEndsAt = null;
        this.d.log.info(`removed ${this.d.net.label}`);
      }
      await this.maybeRelease(true);
    });
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    await this.d.net.close();
  }
}

/**
 * The leader's side of the lease (effects; the formulas are in timing.ts):
 * - the fence: after each renewal that proved the leader key ours, a timer at the renewal's send
 *   time + ttl − margin stops PostgreSQL unless a later renewal moved it — independently of the
 *   loop, so a loop stuck in a slow step cannot keep a primary writable past its lease;
 * - the keeper: renews between cycles while the loop makes progress (or a long action it waits
 *   for runs), so a slow step does not let the lease run out;
 * - the watchdog: pinged with every arming, disarmed with the fence.
 * In maintenance mode nothing is armed: Patroni keeps a paused primary running whatever the store.
 */
import type { Dcs } from '../dcs/types.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { LeaderWatchdog } from '../watchdog/watchdog.js';
import {
  fenceDeadline,
  keeperIntervalMs,
  keeperMayRenew,
  leaseExpiresNotBefore,
  safetyMarginMs,
} from './timing.js';

/** What a leader that lost the store keeps doing, for the log: `ms` of fence left, or maintenance mode. */
export function storeLossNote(ms: number | null, paused: boolean): string {
  if (ms !== null)
    return `; as leader I keep PostgreSQL writable for ${Math.max(0, Math.round(ms / 1000))} s at most`;
  return paused ? '; maintenance mode: PostgreSQL keeps running' : '';
}

export interface LeaseGuardDeps {
  clock: Clock;
  dcs: Pick<Dcs, 'renewLeader'>;
  logger: Logger;
  watchdog?: LeaderWatchdog;
  ttlS(): number;
  loopWaitS(): number;
  retryTimeoutS(): number;
  /** `watchdog.safety_margin` (seconds). */
  configuredMarginS: number;
  paused(): boolean;
  /** Whether this node holds the leader key as far as the loop knows. */
  isLeader(): boolean;
  /** The monotonic time the loop last completed a cycle, and since when a long action runs. */
  progress(): { lastCycleMono: number | null; longActionSinceMono: number | null };
  /** Stops PostgreSQL: the lease could expire before another renewal. */
  fence(reason: string): Promise<void>;
  /**
   * Runs {@link PRE_FENCE_MS} before the fence, when no renewal moved it since: a last chance to
   * re-arm it by other means (failsafe_mode's round); it must never stop PostgreSQL itself.
   */
  beforeFence?(): Promise<void>;
}

/**
 * How long before the fence `beforeFence` runs: a failsafe round (2 s per request) must be able to
 * finish before the fence fires.
 */
export const PRE_FENCE_MS = 2500;

export class LeaseGuard {
  private readonly d: LeaseGuardDeps;
  private fenceTimer: TimerHandle | null = null;
  private preFenceTimer: TimerHandle | null = null;
  private keeperTimer: TimerHandle | null = null;
  private armedFrom: number | null = null;
  private fencing = false;
  private stopped = false;

  constructor(deps: LeaseGuardDeps) {
    this.d = deps;
  }

  /** Send time (monotonic) of the renewal the fence is armed from; null when disarmed. */
  get armedAt(): number | null {
    return this.armedFrom;
  }

  marginMs(): number {
    return safetyMarginMs(this.d.ttlS(), this.d.configuredMarginS);
  }

  /** When the armed fence fires (monotonic), or null. */
  deadline(): number | null {
    return this.armedFrom === null ? null : fenceDeadline(this.armedFrom, this.d.ttlS(), this.marginMs());
  }

  /** Milliseconds until the fence fires, from `nowMono`; null when it is not armed. */
  remainingMs(nowMono: number): number | null {
    const d = this.deadline();
    return d === null ? null : d - nowMono;
  }

  /** When a fence armed from a renewal sent at `sentMono` would fire (monotonic). */
  deadlineFrom(sentMono: number): number {
    return fenceDeadline(sentMono, this.d.ttlS(), this.marginMs());
  }

  /** When the lease renewed at `armedAt` can expire at the earliest (monotonic), or null. */
  expiresNotBefore(): number | null {
    return this.armedFrom === null ? null : leaseExpiresNotBefore(this.armedFrom, this.d.ttlS());
  }

  /**
   * Arms the fence from a renewal sent at `sentMono` that proved the key ours (never from one
   * that did not: a replica may have released our key, see fast-failover.ts). Never moves an armed
   * fence earlier than a later renewal allows, never arms in maintenance mode.
   */
  arm(sentMono: number): void {
    if (this.stopped) return;
    if (this.d.paused()) return this.disarm();
    if (this.armedFrom !== null && sentMono < this.armedFrom) return;
    this.armedFrom = sentMono;
    this.fencing = false;
    this.d.clock.clearTimer(this.fenceTimer);
    const delay = Math.max(0, (this.deadline() ?? 0) - this.d.clock.mono());
    this.fenceTimer = this.d.clock.setTimer(() => void this.fire(sentMono), delay);
    this.d.clock.clearTimer(this.preFenceTimer);
    this.preFenceTimer = null;
    const before = this.d.beforeFence?.bind(this.d);
    if (before && delay > PRE_FENCE_MS)
      this.preFenceTimer = this.d.clock.setTimer(() => {
        this.preFenceTimer = null;
        if (this.armedFrom !== sentMono || this.fencing || this.stopped) return;
        void before().catch((err: unknown) => this.d.logger.warn(`before the fence: ${errorMessage(err)}`));
      }, delay - PRE_FENCE_MS);
    // The hardware backstop of the same promise, for when this process cannot run the timer.
    this.d.watchdog?.keepalive(this.d.ttlS(), this.d.loopWaitS());
  }

  disarm(): void {
    this.d.clock.clearTimer(this.fenceTimer);
    this.fenceTimer = null;
    this.d.clock.clearTimer(this.preFenceTimer);
    this.preFenceTimer = null;
    this.armedFrom = null;
    this.d.watchdog?.disable();
  }

  private async fire(sentMono: number): Promise<void> {
    if (this.armedFrom !== sentMono || this.fencing || this.stopped) return;
    this.fencing = true;
    this.d.clock.clearTimer(this.fenceTimer);
    this.fenceTimer = null;
    this.armedFrom = null;
    await this.d.fence(
      `could not renew the leader lease for ${Math.round((this.d.clock.mono() - sentMono) / 1000)} s ` +
        `(it may expire ${this.d.ttlS()} s after the last renewal)`,
    );
  }

  /** Starts the keeper; it renews every keeperIntervalMs(ttl) while it may. */
  startKeeper(): void {
    if (this.stopped) return;
    this.keeperTimer = this.d.clock.setTimer(() => {
      void this.keep().finally(() => this.startKeeper());
    }, keeperIntervalMs(this.d.ttlS()));
  }

  private async keep(): Promise<void> {
    if (this.stopped || !this.d.isLeader() || this.armedFrom === null || this.d.paused()) return;
    const p = this.d.progress();
    if (!keeperMayRenew({ nowMono: this.d.clock.mono(), ttlS: this.d.ttlS(), ...p })) return;
    try {
      const sent = await this.d.dcs.renewLeader(this.d.clock.timeout(this.d.retryTimeoutS() * 1000));
      // Re-arm only if nothing disarmed the fence meanwhile (a switchover, a demotion).
      if (sent !== null && this.armedFrom !== null && !this.stopped) this.arm(sent);
    } catch (err) {
      this.d.logger.debug(`lease keeper: ${errorMessage(err)}`);
      // The loop reports store failures; the fence still guards the deadline.
    }
  }

  /** Stops the keeper and the fence for good (agent shutdown). */
  stop(): void {
    this.stopped = true;
    this.d.clock.clearTimer(this.keeperTimer);
    this.disarm();
  }
}

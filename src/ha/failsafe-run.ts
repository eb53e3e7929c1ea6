/**
 * The effect side of `failsafe_mode` (failsafe.ts has the rules): the leader's rounds of
 * `POST /failsafe` while the store is unreachable, and the replica's answer to them.
 */
import { errorMessage } from '../util/errors.js';
import type { RunnerContext } from './context.js';
import {
  failsafeApplies,
  failsafeMembers,
  failsafeSlotView,
  failsafePeers,
  failsafeVerdict,
  FailsafeHeartbeats,
  type FailsafeAnswer,
  type FailsafeLeader,
} from './failsafe.js';
import { maintainSlots, myApiUrl, myConnUrl } from './leader.js';
import { currentPositions } from './slot-plan.js';
import { startAs } from './actions.js';
import { emptyCluster } from '../dcs/keys.js';

export class FailsafeGuard {
  /** Replica side: the leader's last `POST /failsafe`. */
  readonly heartbeats = new FailsafeHeartbeats();
  private lastReport = '';

  constructor(private readonly c: RunnerContext) {}

  /** The store answered again: forget the last report. */
  reset(): void {
    this.lastReport = '';
  }

  /** Whether a leader called this member over `POST /failsafe` within ttl (shown by the REST API). */
  heardFromLeader(): boolean {
    return this.heartbeats.active(this.c.clock.now(), this.c.dynamic().ttl, this.c.me);
  }

  /**
   * The store is unreachable: a leader running as primary with failsafe_mode asks every member of
   * the last known `failsafe` key to confirm it. Only if all do is the fence re-armed, from the
   * moment the round started; otherwise the fence armed by the last renewal stops PostgreSQL.
   * Also run just before the fence fires while the loop still waits for the store (lease.ts
   * `beforeFence`, `demote: false`): a confirmation then keeps the primary, a refusal leaves the
   * fence to do its work.
   */
  async round(stopping: boolean, opts: { demote: boolean } = { demote: true }): Promise<void> {
    const s = this.c.snapshot;
    const primary = s.running && s.status !== null && !s.status.inRecovery;
    if (
      !failsafeApplies({
        enabled: this.c.dynamic().failsafe_mode,
        paused: this.c.dynamic().pause,
        primary,
        leader: s.isLeader,
        stopping: stopping,
      })
    ) {
      s.failsafeActive = this.heardFromLeader();
      await this.replicaSlots();
      return;
    }
    const failsafe = failsafeMembers(s.cluster?.failsafe, this.c.st.failsafeWritten);
    const started = this.c.clock.mono();
    let answers: FailsafeAnswer[] | null = null;
    if (failsafe && this.c.me in failsafe) {
      const slots = await this.slotPositions();
      const leader: FailsafeLeader = {
        name: this.c.me,
        conn_url: myConnUrl(this.c),
        api_url: myApiUrl(this.c),
        ...(slots ? { slots } : {}),
      };
      answers = await Promise.all(
        failsafePeers(failsafe, this.c.me).map((m) =>
          this.c.d.postFailsafe
            ? this.c.d
                .postFailsafe(m, leader, this.c.clock.timeout(2000))
                .catch((err: unknown): FailsafeAnswer => ({
                  name: m.name,
                  accepted: false,
                  detail: errorMessage(err),
                }))
            : Promise.resolve<FailsafeAnswer>({ name: m.name, accepted: false, detail: 'no REST client' }),
        ),
      );
    }
    const verdict = failsafeVerdict(this.c.me, failsafe, answers);
    if (!verdict.confirmed && !opts.demote) {
      // The round before the fence: the last confirmation and the fence it armed still stand (the
      // fence stops PostgreSQL when due), so "failsafe active" stays what that confirmation made it.
      this.report(verdict.level, verdict.message);
      return;
    }
    if (!verdict.confirmed || stopping || !this.c.snapshot.isLeader) {
      s.failsafeActive = false;
      if (!verdict.confirmed) {
        this.report(verdict.level, verdict.message);
        if (!stopping && this.c.snapshot.isLeader) await this.demote();
      }
      return;
    }
    this.c.lease.arm(started);
    s.failsafeActive = true;
    this.report('warn', verdict.message);
  }

  /**
   * Patroni's `demote('offline')`: no more writes (the fence is disarmed, as the lease is no longer
   * ours to keep), fast stop, then start again as a standby of nobody, at once: the member key waits
   * for the store (the next cycle that reaches it publishes it). Once the store answers, the
   * HA loop takes it from there: a leader key still ours promotes it again, another leader is followed.
   */
  private async demote(): Promise<void> {
    const c = this.c;
    c.lease.disarm();
    c.snapshot.isLeader = false;
    c.st.ledBefore = false;
    await c.during('stopping', () => c.stopFastOrImmediate());
    c.snapshot.running = false;
    c.snapshot.status = null;
    c.snapshot.role = 'demoted';
    const cluster = c.snapshot.cluster ?? emptyCluster('0');
    try {
      await startAs(
        c,
        { role: 'replica', cluster, upstream: null, storeUnreachable: true },
        'on_role_change',
      );
      c.log.warn(
        { event: 'failsafe' },
        'failsafe_mode: demoted to a read-only standby until the store answers',
      );
    } catch (err) {
      c.log.error(`failsafe_mode: could not start as a read-only standby: ${errorMessage(err)}`);
    }
  }

  /** Leader: where the slots it publishes are now, to send with `POST /failsafe` (none: undefined). */
  private async slotPositions(): Promise<Record<string, number> | undefined> {
    const last = this.c.slots.published?.slots;
    if (!last || Object.keys(last).length === 0) return undefined;
    const status = this.c.snapshot.status;
    const existing = await this.c.d.pg.replicationSlots().catch(() => null);
    if (!existing) return last;
    return currentPositions(last, existing, this.c.d.slotName(this.c.me), status?.walPosition ?? null);
  }

  /**
   * Replica, store unreachable: while a leader calls it over `POST /failsafe`, its logical slot
   * copies keep following the positions that leader sends (Patroni advances them the same way;
   * it copies no new slot meanwhile, and neither does pgha: copying needs the leader's file state).
   */
  private async replicaSlots(): Promise<void> {
    const s = this.c.snapshot;
    if (!this.c.dynamic().failsafe_mode || s.isLeader || !s.cluster || !s.status?.inRecovery) return;
    const leader = this.heartbeats.leader(this.c.clock.now(), this.c.dynamic().ttl);
    if (!leader || leader.name === this.c.me) return;
    const view = failsafeSlotView(s.cluster, leader);
    if (!view) return;
    // The HA loop's status is from the last cycle that reached the store: read what it replays now,
    // or no copy could move past where it was when the store went away.
    const status = await this.c.d.pg
      .status(this.c.clock.timeout(this.c.dynamic().retry_timeout * 1000))
      .catch(() => null);
    if (status?.inRecovery) await maintainSlots(this.c, view, 'replica', status, false);
  }

  private report(level: 'warn' | 'error', message: string): void {
    if (message === this.lastReport) return;
    this.lastReport = message;
    this.c.log[level]({ event: 'failsafe' }, message);
  }

  /**
   * `POST /failsafe` from a leader that lost the store (Patroni's `update_failsafe`): a primary
   * refuses it; a replica records the heartbeat and answers with its WAL position.
   */
  accept(leader: FailsafeLeader): { status: number; text: string; lsn?: number } {
    if (!this.c.dynamic().failsafe_mode) return { status: 502, text: 'failsafe_mode is not enabled' };
    const s = this.c.snapshot;
    if (s.running && s.status && !s.status.inRecovery && s.state === 'running')
      return { status: 500, text: 'Running as a leader' };
    this.heartbeats.record(leader, this.c.clock.now());
    s.failsafeActive = true;
    const lsn = s.status?.walPosition;
    return lsn === undefined ? { status: 200, text: 'Accepted' } : { status: 200, text: 'Accepted', lsn };
  }
}

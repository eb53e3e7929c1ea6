/**
 * The effect side of `failsafe_mode` (failsafe.ts has the rules): the leader's rounds of
 * `POST /failsafe` while the store is unreachable, and the replica's answer to them.
 */
import { errorMessage } from '../util/errors.js';
import type { RunnerContext } from './context.js';
import {
  failsafeApplies,
  failsafeMembers,
  failsafePeers,
  failsafeVerdict,
  FailsafeHeartbeats,
  type FailsafeAnswer,
  type FailsafeLeader,
} from './failsafe.js';
import { myApiUrl, myConnUrl } from './leader.js';
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
   */
  async round(stopping: boolean): Promise<void> {
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
      return;
    }
    const failsafe = failsafeMembers(s.cluster?.failsafe, this.c.st.failsafeWritten);
    const started = this.c.clock.mono();
    let answers: FailsafeAnswer[] | null = null;
    if (failsafe && this.c.me in failsafe) {
      const leader: FailsafeLeader = {
        name: this.c.me,
        conn_url: myConnUrl(this.c),
        api_url: myApiUrl(this.c),
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
   * ours to keep), fast stop, then start again as a standby of nobody. Once the store answers, the
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
      await startAs(c, { role: 'replica', cluster, upstream: null }, 'on_role_change');
      c.log.warn(
        { event: 'failsafe' },
        'failsafe_mode: demoted to a read-only standby until the store answers',
      );
    } catch (err) {
      c.log.error(`failsafe_mode: could not start as a read-only standby: ${errorMessage(err)}`);
    }
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

/**
 * The effect side of `failsafe_mode` (failsafe.ts has the rules): the leader's rounds of
 * `POST /failsafe` while the store is unreachable, and the replica's answer to them.
 */
import { errorMessage } from '../util/errors.js';
import type { RunnerContext } from './context.js';
import {
  failsafeApplies,
  failsafePeers,
  failsafeVerdict,
  FailsafeHeartbeats,
  type FailsafeAnswer,
  type FailsafeLeader,
} from './failsafe.js';
import { myApiUrl, myConnUrl } from './leader.js';

export class FailsafeGuard {
  /** Replica side: the leader's last `POST /failsafe`. */
  readonly heartbeats = new FailsafeHeartbeats();
  private lastReport = '';

  constructor(private readonly c: RunnerContext) {}

  /** The store answered again: forget the last report. */
  reset(): void {
    this.lastReport = '';
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
      s.failsafeActive = false;
      return;
    }
    const failsafe = s.cluster?.failsafe ?? null;
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
      if (!verdict.confirmed) this.report(verdict.level, verdict.message);
      return;
    }
    this.c.lease.arm(started);
    s.failsafeActive = true;
    this.report('warn', verdict.message);
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
    const lsn = s.status?.walPosition;
    return lsn === undefined ? { status: 200, text: 'Accepted' } : { status: 200, text: 'Accepted', lsn };
  }
}

/**
 * The leader's watch on its synchronous standbys, every STANDBY_WATCH_MS while
 * synchronous_standby_names names any: when one of them stops streaming (its server died, its
 * host reset the connection), commits may wait for it until the loop names another standby, so the
 * loop is woken at once instead of at its next cycle, up to loop_wait later. The watch decides
 * nothing itself: the cycle it wakes plans the change (sync.ts) as any other cycle would.
 */
import type { TimerHandle } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import type { RunnerContext } from './context.js';
import { lostSyncStandbys } from './sync.js';

/** How often the leader looks at pg_stat_replication while a standby is synchronous (ms). */
export const STANDBY_WATCH_MS = 200;

export class SyncStandbyWatch {
  private timer: TimerHandle | null = null;
  private stopped = false;
  private streaming = new Set<string>();

  constructor(private readonly c: RunnerContext) {}

  start(): void {
    if (this.stopped || !this.c.d.pg.streamingStandbys) return;
    this.timer = this.c.clock.setTimer(() => {
      void this.look()
        .catch((err: unknown) => this.c.log.debug(`standby watch failed: ${errorMessage(err)}`))
        .finally(() => this.start());
    }, STANDBY_WATCH_MS);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.c.clock.clearTimer(this.timer);
    this.timer = null;
  }

  private async look(): Promise<void> {
    const { c } = this;
    const ssn = c.st.ssn;
    const primary = c.snapshot.isLeader && c.snapshot.running && c.snapshot.status?.inRecovery === false;
    if (!primary || ssn === '') {
      this.streaming.clear();
      return;
    }
    const rows = await c.d.pg.streamingStandbys!();
    if (rows === null || this.stopped) return;
    const seen = lostSyncStandbys(ssn, this.streaming, rows);
    this.streaming = seen.streaming;
    if (seen.lost.length === 0) return;
    c.log.info(
      `synchronous standby ${seen.lost.join(', ')} stopped streaming: commits may wait for it; checking now`,
    );
    c.wake();
  }
}

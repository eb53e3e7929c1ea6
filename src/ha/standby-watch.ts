/**
 * The leader's watch on its synchronous standbys, every STANDBY_WATCH_MS while
 * synchronous_standby_names names any. Commits wait for those standbys; when one of them stops
 * streaming (its server died) or falls silent (streaming for PostgreSQL, but answering nothing for
 * SILENT_STANDBY_MS while WAL sent to it waits: its host vanished without closing the connection),
 * the loop is woken at once instead of at its next cycle, up to loop_wait later, and the cycle
 * leaves the silent ones out (`RunnerState.silentStandbys`). The watch decides nothing itself: the
 * cycle it wakes plans the change (sync.ts) as any other cycle would.
 */
import type { TimerHandle } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import type { RunnerContext } from './context.js';
import { lostSyncStandbys, SILENT_STANDBY_MS, trackSilence, type Silence } from './sync.js';

/** How often the leader looks at pg_stat_replication while a standby is synchronous (ms). */
export const STANDBY_WATCH_MS = 200;

export class SyncStandbyWatch {
  private timer: TimerHandle | null = null;
  private stopped = false;
  /** The synchronous standbys that answered at the last look. */
  private answering = new Set<string>();
  private sightings = new Map<string, Silence>();

  constructor(private readonly c: RunnerContext) {}

  start(): void {
    if (this.stopped || !this.c.d.pg.walSenders) return;
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
      this.answering.clear();
      this.sightings.clear();
      c.st.silentStandbys = [];
      return;
    }
    const senders = await c.d.pg.walSenders!();
    if (senders === null || this.stopped) return;
    const silence = trackSilence(this.sightings, senders, c.clock.mono(), SILENT_STANDBY_MS);
    this.sightings = silence.sightings;
    c.st.silentStandbys = silence.silent;
    const answering = senders
      .filter((s) => s.streaming && !silence.silent.includes(s.name))
      .map((s) => s.name);
    const seen = lostSyncStandbys(ssn, this.answering, answering);
    this.answering = seen.streaming;
    if (seen.lost.length === 0) return;
    const why = seen.lost
      .map((n) =>
        silence.silent.includes(n)
          ? `${n} answered nothing for ${SILENT_STANDBY_MS / 1000} s while WAL sent to it waited`
          : `${n} stopped streaming`,
      )
      .join('; ');
    c.log.warn(`synchronous standby ${why}: commits may wait for it; checking now`);
    c.wake();
  }
}

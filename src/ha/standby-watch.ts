/**
 * The leader's watch on its standbys in synchronous mode, every STANDBY_WATCH_MS. Commits wait for
 * the standbys synchronous_standby_names names; when one of them stops streaming (its server died)
 * or falls silent (streaming for PostgreSQL, but answering nothing while WAL sent to it waits, for
 * 2 s when a spare standby answers meanwhile, 5 s otherwise: its host vanished without closing the
 * connection; sync.ts trackSilence),
 * the loop is woken at once instead of at its next cycle, up to loop_wait later, and the cycles
 * leave the silent ones out (`RunnerState.silentStandbys`) until they answer again. The watch
 * decides nothing itself: the cycle it wakes plans the change (sync.ts) as any other cycle would.
 */
import type { TimerHandle } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import type { RunnerContext } from './context.js';
import { lostSyncStandbys, syncSpares, trackSilence, type Silence } from './sync.js';

/** How often the leader looks at pg_stat_replication in synchronous mode (ms). */
export const STANDBY_WATCH_MS = 200;
/** The watch wakes the loop at most this often (ms): a standby that crashes again and again does not spin it. */
const WAKE_EVERY_MS = 1000;

export class SyncStandbyWatch {
  private timer: TimerHandle | null = null;
  private stopped = false;
  /** The synchronous standbys that answered at the last look. */
  private answering = new Set<string>();
  private sightings = new Map<number, Silence>();
  private wokeAt = -Infinity;
  private wakeTimer: TimerHandle | null = null;

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
    for (const t of [this.timer, this.wakeTimer]) if (t) this.c.clock.clearTimer(t);
    this.timer = null;
    this.wakeTimer = null;
  }

  private async look(): Promise<void> {
    const { c } = this;
    // Silence is tracked whatever the list names now: a silent standby dropped from it still
    // streams for PostgreSQL, and must not be named again until it answers.
    const watching = c.snapshot.isLeader && c.snapshot.running && !!c.dynamic().synchronous_mode;
    if (!watching) {
      this.answering.clear();
      this.sightings.clear();
      c.st.silentStandbys = [];
      // No idle session left on a primary that leaves synchronous mode (or stops leading).
      await c.d.pg.endWalSenders?.();
      return;
    }
    if (c.snapshot.status?.inRecovery !== false) return;
    const all = await c.d.pg.walSenders!();
    if (all === null || this.stopped) return;
    // Members only: a logical replication client is no synchronous standby of this cluster.
    const members = c.snapshot.cluster?.members ?? [];
    const names = new Set(members.map((m) => m.name));
    const senders = all.filter((s) => names.has(s.name));
    const silence = trackSilence(
      this.sightings,
      senders,
      c.clock.mono(),
      syncSpares(c.dynamic().synchronous_mode, c.st.ssn, c.me, members),
    );
    this.sightings = silence.sightings;
    c.st.silentStandbys = silence.silent;
    const seen = lostSyncStandbys(c.st.ssn, this.answering, silence.answering);
    this.answering = seen.streaming;
    if (seen.lost.length === 0) return;
    const why = seen.lost
      .map((n) =>
        silence.silent.includes(n)
          ? `${n} answered nothing for ${((silence.quietMs.get(n) ?? 0) / 1000).toFixed(1)} s while WAL sent to it waited`
          : `${n} stopped streaming`,
      )
      .join('; ');
    c.log.warn(`synchronous standby ${why}: commits may wait for it; checking now`);
    this.wakeLoop();
  }

  /** Wakes the loop now, or as soon as WAKE_EVERY_MS has passed since the last wake. */
  private wakeLoop(): void {
    if (this.wakeTimer) return;
    const now = this.c.clock.mono();
    const wait = Math.max(0, this.wokeAt + WAKE_EVERY_MS - now);
    this.wokeAt = now + wait;
    if (wait === 0) return this.c.wake();
    this.wakeTimer = this.c.clock.setTimer(() => {
      this.wakeTimer = null;
      if (!this.stopped) this.c.wake();
    }, wait);
  }
}

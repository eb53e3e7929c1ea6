/**
 * The replica's watch on its leader, every LEADER_PROBE_MS:
 * - silence (silence.ts, always on): when the leader key has stood at one revision for ttl on this
 *   node's clock, the leader's own fence has fired; ask its REST API, again and again, from when
 *   the key is overdue (so the race need not wait for an unreachable host), then release the key;
 * - `fast_failover`: probe the leader's ports and, once fast-failover.ts finds it proven gone,
 *   release its key without waiting.
 * Either way the key is deleted by compare-and-set on its revision (a leader that renewed or
 * re-took the key since has another revision, so nothing happens).
 */
import type { ClusterState, WatchEvent } from '../dcs/types.js';
import type { TimerHandle } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import { urlHostPort } from '../util/net.js';
import type { RunnerContext } from './context.js';
import type { PeerStatus } from './types.js';
import { countRefusals, LEADER_PROBE_MS, leaderGoneVerdict, REFUSALS_NEEDED } from './fast-failover.js';
import { findMember } from './rules.js';
import { outlastsLease, sight, silenceVerdict, type Sighting } from './silence.js';

/**
 * How long an unanswered request to the silent leader stands in for asking it again (ms): longer
 * than one request's 2 s plus a tick, so that while the requests follow each other one always
 * stands. The race then hears of the lost leader at once, as Patroni would after its own 2 s.
 */
const PREFETCH_FRESH_MS = 2500;
/** A silent leader's REST API is asked again at most this often (ms). */
const PREFETCH_EVERY_MS = 1000;
/** The loop is woken at most this often for the same silent revision (ms). */
const SILENCE_WAKE_MS = 1000;
/** How often the silence is checked (ms). */
const SILENCE_TICK_MS = 250;

/** One request to the silent leader's REST API, made before its key is released. */
interface Ask {
  answer: Promise<PeerStatus>;
  startMono: number;
  doneMono: number | null;
  reachable: boolean;
}

/** The requests made about one silent revision of the leader key: the newest, the last answered. */
interface Prefetch {
  key: string;
  newest: Ask;
  done: Ask | null;
}

export class LeaderProbe {
  private timer: TimerHandle | null = null;
  private silenceTimer: TimerHandle | null = null;
  private refusals = { key: '', count: 0 };
  private gone: { name: string; modRevision: string; why: string } | null = null;
  private stopped = false;
  private sighting: Sighting | null = null;
  private prefetch: Prefetch | null = null;
  private silenceWoke: { key: string; atMono: number } | null = null;

  constructor(private readonly c: RunnerContext) {}

  start(): void {
    this.startSilence();
    this.startProbe();
  }

  /** fast_failover's probe rounds (a round may wait for connections that time out). */
  private startProbe(): void {
    if (this.stopped) return;
    this.timer = this.c.clock.setTimer(() => {
      void this.probe()
        .catch((err: unknown) => this.c.log.debug(`leader probe failed: ${errorMessage(err)}`))
        .finally(() => this.startProbe());
    }, LEADER_PROBE_MS);
  }

  /** The silence check, on its own timer so that a slow probe round never delays it. */
  private startSilence(): void {
    if (this.stopped) return;
    this.silenceTimer = this.c.clock.setTimer(() => {
      try {
        this.watchSilence();
      } finally {
        this.startSilence();
      }
    }, SILENCE_TICK_MS);
  }

  /** Leader-key changes the watch saw (each one after etcd applied it, so never too early). */
  watched(events: WatchEvent[]): void {
    const now = this.c.clock.mono();
    for (const e of events)
      if (e.key === 'leader')
        this.sighting =
          e.value === null ? null : sight(this.sighting, { name: e.value, modRevision: e.modRevision }, now);
  }

  /**
   * The answer of the request made to `name` as its key went silent, when it is still on its way
   * or came back unanswered just now; null when `name` should be asked afresh.
   */
  prefetched(name: string): Promise<PeerStatus> | null {
    const p = this.prefetch;
    if (p === null || !p.key.startsWith(`${name}@`)) return null;
    const d = p.done;
    if (d?.doneMono != null && !d.reachable && this.c.clock.mono() - d.doneMono <= PREFETCH_FRESH_MS)
      return d.answer;
    return p.newest.doneMono === null ? p.newest.answer : null;
  }

  /** Records `leader` as seen at `now` and says what its silence allows. */
  private verdictNow(leader: { name: string; modRevision: string } | null, now: number) {
    this.sighting = sight(this.sighting, leader, now);
    const s = this.sighting;
    const d = this.c.dynamic();
    return {
      s,
      v: silenceVerdict({
        sighting: s,
        nowMono: now,
        ttlS: d.ttl,
        loopWaitS: d.loop_wait,
        paused: d.pause,
        me: this.c.me,
      }),
    };
  }

  private watchSilence(): void {
    const c = this.c;
    const now = c.clock.mono();
    const { s, v } = this.verdictNow(c.snapshot.cluster?.leader ?? null, now);
    if (v.kind === 'quiet' || !s) return;
    const key = `${s.name}@${s.modRevision}`;
    const p = this.prefetch?.key === key ? this.prefetch : null;
    if (p === null || (p.newest.doneMono !== null && now - p.newest.startMono >= PREFETCH_EVERY_MS)) {
      const m = c.snapshot.cluster ? findMember(c.snapshot.cluster, s.name) : undefined;
      if (m?.data.api_url) {
        const unreachable: PeerStatus = { name: m.name, reachable: false };
        const answer = c.d.fetchPeer(m, c.clock.timeout(2000)).catch(() => unreachable);
        const ask: Ask = { answer, startMono: now, doneMono: null, reachable: false };
        const next: Prefetch = p ?? { key, newest: ask, done: null };
        next.newest = ask;
        this.prefetch = next;
        void answer.then((st) => {
          ask.reachable = st.reachable;
          ask.doneMono = c.clock.mono();
          next.done = ask;
        });
      }
    }
    if (v.kind !== 'release') return;
    if (this.silenceWoke?.key === key && now - this.silenceWoke.atMono < SILENCE_WAKE_MS) return;
    this.silenceWoke = { key, atMono: now };
    c.wake();
  }

  stop(): void {
    this.stopped = true;
    this.c.clock.clearTimer(this.timer);
    this.c.clock.clearTimer(this.silenceTimer);
  }

  private async probe(): Promise<void> {
    const c = this.c;
    const cluster = c.snapshot.cluster;
    const leader = cluster?.leader;
    const m = leader ? findMember(cluster, leader.name) : undefined;
    const pg = urlHostPort(m?.data.conn_url);
    const api = urlHostPort(m?.data.api_url);
    const probePort = c.d.probePort?.bind(c.d);
    if (
      !c.dynamic().fast_failover ||
      c.dynamic().pause ||
      !leader ||
      leader.name === c.me ||
      !pg ||
      !api ||
      !probePort
    ) {
      this.refusals = { key: '', count: 0 };
      return;
    }
    const [a, b] = await Promise.all([probePort(pg.host, pg.port), probePort(api.host, api.port)]);
    const key = `${leader.name}@${leader.modRevision}`;
    this.refusals = countRefusals(this.refusals, key, a, b);
    if (this.refusals.count < REFUSALS_NEEDED) return;
    const silent = await c.d.dcs.leaseSilentMs(leader.lease, c.clock.timeout(1000)).catch(() => null);
    const verdict = leaderGoneVerdict({
      refusals: this.refusals.count,
      leaseSilentMs: silent,
      ttlS: c.dynamic().ttl,
      pgAddress: `${pg.host}:${pg.port}`,
      apiAddress: `${api.host}:${api.port}`,
    });
    if (!verdict.gone) {
      if (this.refusals.count === REFUSALS_NEEDED)
        c.log.info(`leader ${leader.name} not replaced early: ${verdict.why}`);
      return;
    }
    this.gone = { name: leader.name, modRevision: leader.modRevision, why: verdict.why };
    c.wake();
  }

  /**
   * Deletes the key of a leader proven gone or silent for ttl (compare-and-set on its revision),
   * so the race starts now.
   */
  async releaseGone(cluster: ClusterState): Promise<ClusterState> {
    const silent = await this.releaseSilent(cluster);
    if (silent !== cluster) return silent;
    const gone = this.gone;
    this.gone = null;
    const l = cluster.leader;
    if (!gone || !l || l.name !== gone.name || l.modRevision !== gone.modRevision || l.name === this.c.me)
      return cluster;
    const released = await this.c.d.dcs.deleteLeaderOf(gone.name, gone.modRevision).catch(() => false);
    if (!released) return cluster;
    this.c.log.warn(
      { event: 'leader_gone', leader: gone.name },
      `leader ${gone.name} is gone: ${gone.why}; released its leader key without waiting for its lease to expire`,
    );
    this.refusals = { key: '', count: 0 };
    return { ...cluster, leader: null };
  }

  private async releaseSilent(cluster: ClusterState): Promise<ClusterState> {
    const c = this.c;
    const l = cluster.leader;
    const { s, v } = this.verdictNow(l, c.clock.mono());
    if (v.kind !== 'release' || !s || !l) return cluster;
    // The leader's lease may carry a longer ttl than this node read (a change not seen yet here).
    const granted = await c.d.dcs.leaseGrantedTtlS(l.lease, c.clock.timeout(1000)).catch(() => undefined);
    if (granted === undefined || !outlastsLease(c.clock.mono() - s.atMono, granted)) return cluster;
    const released = await c.d.dcs.deleteLeaderOf(s.name, s.modRevision).catch(() => false);
    if (!released) return cluster;
    c.log.warn(
      { event: 'leader_silent', leader: s.name, silentMs: Math.round(v.silentMs) },
      `leader ${s.name} is gone: ${v.why}; released its leader key (its own fence has stopped it by now)`,
    );
    this.sighting = null;
    return { ...cluster, leader: null };
  }
}

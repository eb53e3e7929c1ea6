/**
 * Timeline histories: where two nodes' WAL parts, and whether a node must be rewound before it can
 * stream from a leader. Two histories that share timeline numbers but not switch points (two
 * different "timeline 2"s, made by two promotions that did not see each other) are told apart by
 * their switch points, never followed blindly.
 */
import type { HistoryEntry } from '../dcs/types.js';
import type { ControlData } from '../postgres/types.js';
import type { TimelineSwitch } from './types.js';

/** A node's WAL as timelines: ancestors (each ended at `lsn`) and the timeline it is on now. */
export interface WalHistory {
  timeline: number;
  switches: TimelineSwitch[];
}

/** The `history` key's entries as switch points (the leader's timeline history). */
export function switchesFromKey(history: HistoryEntry[]): TimelineSwitch[] {
  return history.map((h) => ({ timeline: h[0], lsn: h[1] })).sort((a, b) => a.timeline - b.timeline);
}

/**
 * Patroni's cluster timeline: one past the last entry of the `history` key (1 for an empty list,
 * 0 when there is no history at all, meaning unknown).
 */
export function clusterTimeline(history: HistoryEntry[] | null | undefined): number {
  if (!history) return 0;
  if (history.length === 0) return 1;
  return Math.max(...history.map((h) => h[0])) + 1;
}

/** Which timeline a history puts at `lsn`. */
function timelineAt(h: WalHistory, lsn: number): number {
  for (const s of h.switches) if (lsn < s.lsn) return s.timeline;
  return h.timeline;
}

/**
 * The first WAL position at which two histories put different timelines, or null when they agree
 * everywhere both describe (the same history, or one a prefix of the other).
 */
export function firstDifference(a: WalHistory, b: WalHistory): number | null {
  const points = new Set<number>([0]);
  for (const s of [...a.switches, ...b.switches]) points.add(s.lsn);
  for (const p of [...points].sort((x, y) => x - y)) {
    if (timelineAt(a, p) !== timelineAt(b, p)) return p;
  }
  return null;
}

/**
 * Whether this node's data has diverged from the leader's, so it cannot stream from it without
 * pg_rewind. The fork is where the histories first differ (from this node's own history file
 * when known, else the switch point of its timeline in the leader's `history`). A cleanly stopped
 * node whose last WAL record lies before the fork follows as it is: that is what makes a graceful
 * switchover rewind-free.
 */
export function needsRewind(opts: {
  control: ControlData | null;
  /** Last WAL position of a running replica, when known. */
  position?: number;
  timeline?: number;
  /** This node's own ancestor timelines, when read. */
  history?: TimelineSwitch[];
  leaderTimeline: number | undefined;
  /** The `history` key: the leader's ancestor timelines. */
  leaderHistory: HistoryEntry[];
}): boolean {
  const { control, leaderTimeline } = opts;
  if (control === null || leaderTimeline === undefined) return false;
  const myTimeline = opts.timeline ?? control.timeline;
  const leaderSwitches = switchesFromKey(opts.leaderHistory);
  const knownLeader = leaderSwitches.some((s) => s.timeline === leaderTimeline - 1) || leaderTimeline === 1;
  let fork: number | undefined;
  if (opts.history !== undefined && knownLeader) {
    const diff = firstDifference(
      { timeline: myTimeline, switches: opts.history },
      { timeline: leaderTimeline, switches: leaderSwitches.filter((s) => s.timeline < leaderTimeline) },
    );
    if (diff === null) return false; // one history continues the other
    fork = diff;
  } else {
    if (myTimeline === leaderTimeline) return false;
    if (myTimeline > leaderTimeline) return true;
    fork = leaderSwitches.find((s) => s.timeline === myTimeline)?.lsn;
  }
  if (myTimeline > leaderTimeline) return true;
  if (control.clusterState === 'in production') return true; // crashed primary: end of WAL unknown
  // A standby that stopped without a clean shutdown: its checkpoint's timeline may be older than the
  // WAL it holds, and making it rewindable needs crash recovery outside standby mode, which would
  // write WAL of its own. Start it as a replica; if it really diverged it cannot stream, and the
  // running-replica rule rewinds it after a clean stop.
  if (control.clusterState === 'in archive recovery' && opts.position === undefined) return false;
  if (fork === undefined) return control.clusterState === 'shut down'; // cannot prove it is safe
  // A running replica's position is the end of its last record: equal to the fork point is fine.
  if (opts.position !== undefined) return opts.position > fork;
  // Stopped: the last checkpoint record must start before the fork point.
  return control.checkpointLsn >= fork || control.minRecoveryLsn > fork;
}

/** A replay error seen in the server log, with when (monotonic) the agent read it. */
export interface SeenReplayError {
  lsn: number;
  message: string;
  atMono: number;
}

/**
 * Evidence that a running replica forked from its leader on the *same* timeline number, where
 * histories cannot tell (a replica once started as a primary by hand, say): its WAL does not
 * continue the leader's. Null when there is none. Either
 * - replay has been stuck at one position for `graceMs` while WAL keeps arriving, and the server
 *   log reports that very record as unreadable (`incorrect prev-link`, `invalid record length`) at
 *   least twice since; or
 * - it streams from the leader, yet for `graceMs` its replay stayed past everything received and
 *   past the position the leader published: the leader has less WAL than this replica replayed on
 *   the same timeline.
 */
export function divergenceEvidence(opts: {
  receiveLsn: number | undefined;
  replayLsn: number | undefined;
  timeline: number;
  streaming: boolean;
  /** Since when (monotonic) replay has stayed at `replayLsn`; null when it moves. */
  replayStuckSince: number | null;
  /**
   * Since when (monotonic) this replica, streaming from its leader, has replayed past everything
   * it received from it; null when it has not.
   */
  aheadSince: number | null;
  notStreamingForMs: number;
  errors: SeenReplayError[];
  leaderTimeline: number | undefined;
  leaderPosition: number | undefined;
  nowMono: number;
  graceMs: number;
}): string | null {
  const { replayLsn, receiveLsn } = opts;
  if (
    replayLsn !== undefined &&
    receiveLsn !== undefined &&
    receiveLsn > replayLsn &&
    opts.replayStuckSince !== null &&
    opts.nowMono - opts.replayStuckSince >= opts.graceMs
  ) {
    const since = opts.replayStuckSince;
    const here = opts.errors.filter((e) => e.lsn === replayLsn && e.atMono >= since);
    if (here.length >= 2)
      return `replay stuck at ${formatLsnShort(replayLsn)}: ${here[here.length - 1]?.message ?? ''}`;
  }
  // WAL replayed here that the leader does not have: records of another history on the same
  // timeline number. A leader that published a position at least as far has that WAL: a stream
  // that restarted mid-segment reports its start as received until the leader writes past what
  // this replica already replayed, which an idle leader does not.
  const leaderHasIt =
    opts.leaderPosition !== undefined &&
    opts.leaderTimeline === opts.timeline &&
    replayLsn !== undefined &&
    opts.leaderPosition >= replayLsn;
  if (
    opts.aheadSince !== null &&
    opts.nowMono - opts.aheadSince >= opts.graceMs &&
    replayLsn !== undefined &&
    !leaderHasIt
  )
    return `my WAL ends at ${formatLsnShort(replayLsn)}, past all the leader sends (${formatLsnShort(receiveLsn ?? 0)}) on the same timeline ${opts.timeline}`;
  return null;
}

function formatLsnShort(lsn: number): string {
  const hi = Math.floor(lsn / 0x1_0000_0000);
  return `${hi.toString(16).toUpperCase()}/${(lsn % 0x1_0000_0000).toString(16).toUpperCase()}`;
}

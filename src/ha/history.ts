import type { HistoryEntry } from '../dcs/types.js';
import type { TimelineSwitch } from '../postgres/types.js';
import { isoTime } from '../util/clock.js';

/**
 * Turns a node's timeline history (its history file's lines) into Patroni's `history` entries,
 * keeping entries already known and stamping new ones with `now` and the new leader's name.
 */
export function mergeTimelineHistory(
  known: HistoryEntry[],
  switches: TimelineSwitch[],
  now: Date,
  newLeader: string,
): HistoryEntry[] {
  const byTimeline = new Map<number, HistoryEntry>(known.map((e) => [e[0], e]));
  for (const s of switches) {
    const k = byTimeline.get(s.timeline);
    // A known entry with another switch point belongs to another history: ours wins.
    if (k && k[1] === s.lsn) continue;
    byTimeline.set(s.timeline, [s.timeline, s.lsn, s.reason ?? '', isoTime(now.getTime()), newLeader]);
  }
  return [...byTimeline.values()]
    .filter((e) => switches.some((s) => s.timeline === e[0]))
    .sort((a, b) => a[0] - b[0]);
}

/** Whether the `history` key already says what the leader's own history file says. */
export function historyMatches(known: HistoryEntry[], switches: TimelineSwitch[]): boolean {
  return (
    known.length === switches.length &&
    switches.every((s) => known.some((k) => k[0] === s.timeline && k[1] === s.lsn))
  );
}

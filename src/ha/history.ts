import type { HistoryEntry } from '../dcs/types.js';
import { parseLsn } from '../postgres/lsn.js';

/**
 * Turns the content of a PostgreSQL timeline history file (`0000000N.history`: one
 * `parentTLI<TAB>switchpoint<TAB>reason` line per ancestor) into Patroni's `history` entries,
 * keeping entries already known and stamping new ones with `now` and the new leader's name.
 */
export function mergeTimelineHistory(
  known: HistoryEntry[],
  historyFile: string,
  now: Date,
  newLeader: string,
): HistoryEntry[] {
  const byTimeline = new Map<number, HistoryEntry>(known.map((e) => [e[0], e]));
  for (const line of historyFile.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [tli, lsn, ...reason] = trimmed.split(/\s+/);
    const timeline = Number(tli);
    const position = lsnOrNull(lsn);
    if (!Number.isInteger(timeline) || position === null || byTimeline.has(timeline)) continue;
    byTimeline.set(timeline, [timeline, position, reason.join(' '), now.toISOString(), newLeader]);
  }
  return [...byTimeline.values()].sort((a, b) => a[0] - b[0]);
}

function lsnOrNull(text: string | undefined): number | null {
  if (text === undefined) return null;
  try {
    return parseLsn(text);
  } catch {
    return null;
  }
}

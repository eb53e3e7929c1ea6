/**
 * WAL positions (LSNs). PostgreSQL prints them as two hex halves (`16/B374D848`); the agent, like
 * Patroni's `xlog_location`, handles them as one integer of bytes. A JS number holds LSNs exactly up
 * to 2^53 bytes (8 PiB of WAL), which no cluster reaches in practice.
 */

const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Parses `0/3000028` into a byte position. Throws on anything else. */
export function parseLsn(text: string): number {
  const m = LSN_RE.exec(text.trim());
  if (!m) throw new RangeError(`not a WAL location: "${text}"`);
  return parseInt(m[1] as string, 16) * 0x1_0000_0000 + parseInt(m[2] as string, 16);
}

/** Like `parseLsn`, but null/undefined/empty (a NULL from SQL) give `undefined`. */
export function parseLsnOrUndefined(text: string | null | undefined): number | undefined {
  if (text === null || text === undefined || text === '') return undefined;
  return parseLsn(text);
}

/** Formats a byte position as PostgreSQL does (`16/B374D848`, upper-case hex, no padding). */
export function formatLsn(lsn: number): string {
  if (!Number.isSafeInteger(lsn) || lsn < 0) throw new RangeError(`not a WAL location: ${lsn}`);
  const hi = Math.floor(lsn / 0x1_0000_0000);
  const lo = lsn % 0x1_0000_0000;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/**
 * The timeline encoded in a WAL segment file name (`000000020000000000000003` → 2), as returned by
 * `pg_walfile_name()`.
 */
export function timelineFromWalFileName(name: string): number {
  if (!/^[0-9A-Fa-f]{24}$/.test(name)) throw new RangeError(`not a WAL file name: "${name}"`);
  return parseInt(name.slice(0, 8), 16);
}

/** The history file name of a timeline in pg_wal (`00000002.history`). */
export function historyFileName(timeline: number): string {
  return `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
}

/**
 * Parses a timeline history file (`parentTLI<TAB>switchpoint<TAB>reason` per ancestor; `#`
 * comments). Lines that do not parse are skipped.
 */
export function parseHistoryFile(text: string): Array<{ timeline: number; lsn: number; reason: string }> {
  const out: Array<{ timeline: number; lsn: number; reason: string }> = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [tli, lsn, ...reason] = trimmed.split(/\s+/);
    const timeline = Number(tli);
    let position: number;
    try {
      position = parseLsn(lsn ?? '');
    } catch {
      continue;
    }
    if (!Number.isInteger(timeline) || timeline < 1) continue;
    out.push({ timeline, lsn: position, reason: reason.join(' ') });
  }
  return out.sort((a, b) => a.timeline - b.timeline);
}

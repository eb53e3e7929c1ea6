/**
 * What `bench:soak` reads in the agents' logs: how close a leader that lost etcd for a while came
 * to the fence (the deadline it logs with "store unreachable", against its next renewal).
 */

const round1 = (n: number) => Math.round(n * 10) / 10;

/** A leader that found etcd unreachable: how long before its fence deadline it renewed again. */
export interface FenceMargin {
  node: string;
  /** Seconds since pgbench started when the agent logged "store unreachable". */
  at: number;
  deadline: string;
  renewedAt: string | null;
  /** deadline − the first "renewed the leader lease" line after it (negative: too late); null: none. */
  marginS: number | null;
}

/** `2026-11-24 09:18:47.941 ERROR: ...` (UTC, as src/util/log.ts writes plain lines) to ms. */
export function lineTime(line: string): number | null {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) /.exec(line);
  return m ? Date.parse(`${m[1]}T${m[2]}Z`) : null;
}

/**
 * Each "store unreachable ... as leader I keep PostgreSQL writable until X" of a leader, paired
 * with its next "renewed the leader lease" (a DEBUG line; test/support runs the agents at DEBUG).
 * The renewal line is written when the cycle ends, so the margin is a lower bound.
 */
export function fenceMargins(node: string, lines: string[], t0: number): FenceMargin[] {
  const found: FenceMargin[] = [];
  lines.forEach((line, i) => {
    const m = /keep PostgreSQL writable until (\S+) at the latest/.exec(line);
    const at = lineTime(line);
    if (!m || at === null) return;
    const deadline = Date.parse(m[1]!);
    const next = lines.slice(i + 1).find((l) => /renewed the leader lease/.test(l));
    const renewed = next ? lineTime(next) : null;
    found.push({
      node,
      at: round1((at - t0) / 1000),
      deadline: new Date(deadline).toISOString(),
      renewedAt: renewed === null ? null : new Date(renewed).toISOString(),
      marginS: renewed === null ? null : round1((deadline - renewed) / 1000),
    });
  });
  return found;
}

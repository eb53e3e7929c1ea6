/**
 * The chaos suite's verdict: pure functions from what a run recorded (every write sent through the
 * router, every direct probe write on each node, the cluster as etcd showed it every half second,
 * the faults injected, and the rows the final leader holds) to a report. No processes, no clock:
 * `chaos/checker.test.ts` covers every rule with plain objects.
 *
 * All times are milliseconds since the epoch. Server times (`serverAt`) come from PostgreSQL's
 * `clock_timestamp()`; every node of the lab runs on the same kernel clock, so they are comparable
 * across nodes to the microsecond.
 */

export type SyncMode = 'async' | 'on' | 'quorum';

/** One write the writer sent through the router (`INSERT ... RETURNING` the node and timeline). */
export interface WriteRecord {
  id: number;
  sentAt: number;
  doneAt: number;
  /**
   * `ack`: committed and acknowledged. `local`: acknowledged together with PostgreSQL's "canceling
   * wait for synchronous replication" warning, i.e. committed on one node only. `error`: no
   * acknowledgement; the row may or may not exist.
   */
  outcome: 'ack' | 'local' | 'error';
  node?: string;
  timeline?: number;
  /** The server's clock when the row was written. */
  serverAt?: number;
  error?: string;
}

/** One tiny write the sampler tried straight on a node's PostgreSQL (bypassing the router). */
export interface ProbeRecord {
  node: string;
  sentAt: number;
  doneAt: number;
  /** `ok`: acknowledged; `local`: only with the sync-cancel warning; `refused`: an SQL error; `down`: no connection. */
  outcome: 'ok' | 'local' | 'refused' | 'down';
  serverAt?: number;
  timeline?: number;
  error?: string;
}

/** The cluster as etcd showed it at one moment. */
export interface HealthSample {
  at: number;
  /** Set when etcd could not be read; the sample then counts as unhealthy. */
  error?: string;
  leader: string | null;
  members: Array<{ name: string; role?: string; state?: string; timeline?: number }>;
  /** Members named in the `sync` key. */
  sync: string[];
  /** etcd members whose `/health` said true. */
  etcdUp: number;
}

/** One injected fault, as the runner carried it out. */
export interface FaultRecord {
  n: number;
  kind: string;
  /** The node (or etcd member) it hit. */
  target: string;
  detail: string;
  injectedAt: number;
  /** When the fault was undone (process restarted, partition healed, SIGCONT, request answered). */
  restoredAt: number;
  leaderBefore: string | null;
  /** The fault could not be carried out as planned (e.g. a switchover refused). */
  error?: string;
}

/** What the run found at the end, after every fault was undone and the replicas caught up. */
export interface FinalState {
  leader: string | null;
  /** The node whose rows `ids` are: the leader, or without one the node holding the most. */
  source: string | null;
  healthy: boolean;
  /** ids in the table on the final leader; null when they could not be read. */
  ids: number[] | null;
  /** The same on each replica (after it replayed everything the leader had). */
  replicas: Record<string, number[] | null>;
  error?: string;
}

/** Everything a run recorded, the checker's only input. */
export interface ChaosData {
  mode: SyncMode;
  nodes: string[];
  /** Start of the run. */
  t0: number;
  /** The writer's first attempt and its stop: the window availability is measured over. */
  writerStart: number;
  writerEnd: number;
  writes: WriteRecord[];
  probes: ProbeRecord[];
  samples: HealthSample[];
  faults: FaultRecord[];
  final: FinalState | null;
  /** The run was stopped by SIGINT/SIGTERM or an error before it finished. */
  interrupted?: string;
}

export interface CheckOptions {
  /** A gap between acknowledged writes longer than this is an outage. */
  outageThresholdMs: number;
  /** The cluster counts as healthy again once it has stayed healthy this long. */
  stableMs: number;
}

export const DEFAULT_CHECK_OPTIONS: CheckOptions = { outageThresholdMs: 1000, stableMs: 2000 };

/** Time during which some node accepted writes, from consecutive successful writes there. */
export interface WritableSpan {
  node: string;
  timeline: number | undefined;
  from: number;
  to: number;
  source: 'probe' | 'write';
  count: number;
}

/** A moment at which two nodes both accepted writes. */
export interface TwoWritableMoment {
  fromMs: number;
  toMs: number;
  nodes: [string, string];
  /** Timelines of the two nodes' writes, as `pg1@2`. */
  detail: string;
  sources: string;
  /** The fault active then (its number), if any. */
  fault: number | null;
}

export interface FaultOutcome {
  n: number;
  kind: string;
  target: string;
  detail: string;
  error?: string;
  injectedAtMs: number;
  restoredAtMs: number;
  leaderBefore: string | null;
  leaderAfter: string | null;
  /** From the fault to the first acknowledged write after it. */
  firstAckMs: number | null;
  /** Longest gap between acknowledged writes from the fault until the next fault (or the end). */
  longestGapMs: number;
  /** From the fault to the acknowledged write that ended its outage (first ack when writes never stopped). */
  writesBackMs: number | null;
  /** From the fault to the first acknowledged write on the new leader, when the leader changed. */
  firstAckNewLeaderMs: number | null;
  /** From the fault to the cluster healthy again (stable for `stableMs`); null: never. */
  healthyMs: number | null;
  recovered: boolean;
  /** Acknowledged rows lost whose acknowledgement came while this fault was the latest. */
  lostRows: number;
  twoWritable: number;
}

export interface ChaosReport {
  ok: boolean;
  failures: string[];
  warnings: string[];
  mode: SyncMode;
  nodes: string[];
  startedAt: string;
  durationMs: number;
  interrupted: string | null;
  writes: {
    attempted: number;
    acknowledged: number;
    /** Acknowledged with the sync-cancel warning (committed on one node only). */
    localOnly: number;
    failed: number;
    /** Failed writes whose row exists anyway (committed, acknowledgement lost): allowed. */
    committedUnacknowledged: number | null;
  };
  lostRows: { count: number | null; ids: number[]; localOnlyMissing: number | null };
  replicas: Record<string, { missing: number; extra: number } | null>;
  twoWritable: { count: number; totalMs: number; moments: TwoWritableMoment[] };
  availability: {
    fromMs: number;
    toMs: number;
    thresholdMs: number;
    fraction: number;
    unavailableMs: number;
    outages: number;
    longestOutageMs: number;
    longestOutageAtMs: number | null;
  };
  probes: { total: number; ok: number; local: number; refused: number; down: number };
  faults: FaultOutcome[];
  /** Leader changes as the monitor saw them. */
  leaders: Array<{ atMs: number; leader: string | null }>;
  final: {
    leader: string | null;
    source: string | null;
    healthy: boolean;
    rows: number | null;
    error: string | null;
  };
}

/** True when the sample shows a running primary holding the leader key and every other member streaming. */
export function isHealthy(s: HealthSample, nodes: string[], mode: SyncMode): boolean {
  if (s.error || !s.leader) return false;
  const lead = s.members.find((m) => m.name === s.leader);
  if (lead?.role !== 'primary' || lead.state !== 'running') return false;
  const streaming = new Set(
    s.members.filter((m) => m.name !== s.leader && m.state === 'streaming').map((m) => m.name),
  );
  if (streaming.size < nodes.length - 1) return false;
  if (s.etcdUp < nodes.length) return false;
  // In synchronous modes the leader must have named a synchronous standby that streams again.
  if (mode !== 'async' && (s.sync.length === 0 || !s.sync.some((n) => streaming.has(n)))) return false;
  return true;
}

/**
 * The first moment at or after `from` from which the cluster stayed healthy for `stableMs`, proven
 * by a later sample; null when no such moment is recorded (yet).
 */
export function healthyAgainAt(
  samples: HealthSample[],
  from: number,
  stableMs: number,
  nodes: string[],
  mode: SyncMode,
): number | null {
  let start: number | null = null;
  for (const s of samples) {
    if (s.at < from) continue;
    if (!isHealthy(s, nodes, mode)) {
      start = null;
      continue;
    }
    start ??= s.at;
    if (s.at - start >= stableMs) return start;
  }
  return null;
}

/**
 * Spans of writability. Probes: consecutive acknowledged probes on one node and timeline form a
 * span; any other outcome ends it. Writes through the router: each acknowledged write is a point
 * (the writer is sequential, so its own writes never overlap). `local` outcomes are not writes a
 * client could rely on and count for nothing.
 */
export function writableSpans(probes: ProbeRecord[], writes: WriteRecord[]): WritableSpan[] {
  const spans: WritableSpan[] = [];
  const byNode = new Map<string, ProbeRecord[]>();
  for (const p of probes) {
    const list = byNode.get(p.node) ?? [];
    list.push(p);
    byNode.set(p.node, list);
  }
  for (const [node, list] of byNode) {
    list.sort((a, b) => a.sentAt - b.sentAt);
    let cur: WritableSpan | null = null;
    for (const p of list) {
      if (p.outcome !== 'ok' || p.serverAt === undefined) {
        cur = null;
        continue;
      }
      if (cur && cur.timeline === p.timeline) {
        cur.to = p.serverAt;
        cur.count++;
      } else {
        cur = { node, timeline: p.timeline, from: p.serverAt, to: p.serverAt, source: 'probe', count: 1 };
        spans.push(cur);
      }
    }
  }
  for (const w of writes) {
    if (w.outcome !== 'ack' || !w.node || w.serverAt === undefined) continue;
    spans.push({
      node: w.node,
      timeline: w.timeline,
      from: w.serverAt,
      to: w.serverAt,
      source: 'write',
      count: 1,
    });
  }
  return spans.sort((a, b) => a.from - b.from || a.to - b.to);
}

/**
 * Moments when two different nodes both accepted writes: overlaps of writable spans of different
 * nodes. Overlaps of the same pair of nodes less than `mergeMs` apart are one moment (the evidence
 * is sampled: a writer's acknowledgements are points, probes come every ~200 ms).
 */
export function twoWritableMoments(
  spans: WritableSpan[],
  t0: number,
  faultAt: (at: number) => number | null = () => null,
  mergeMs = 1000,
): TwoWritableMoment[] {
  const sorted = [...spans].sort((a, b) => a.from - b.from);
  const raw: Array<{ from: number; to: number; a: WritableSpan; b: WritableSpan }> = [];
  const active: WritableSpan[] = [];
  for (const s of sorted) {
    for (let i = active.length - 1; i >= 0; i--) if (active[i]!.to < s.from) active.splice(i, 1);
    for (const o of active) {
      if (o.node === s.node) continue;
      raw.push({ from: s.from, to: Math.min(o.to, s.to), a: o, b: s });
    }
    active.push(s);
  }
  const merged: TwoWritableMoment[] = [];
  const key = (a: string, b: string) => [a, b].sort() as [string, string];
  const label = (x: WritableSpan) => `${x.node}@${x.timeline ?? '?'}`;
  for (const r of raw.sort((x, y) => x.from - y.from)) {
    const nodes = key(r.a.node, r.b.node);
    const last = merged.findLast((m) => m.nodes[0] === nodes[0] && m.nodes[1] === nodes[1]);
    const sources = [...new Set([r.a.source, r.b.source])].sort().join('+');
    if (last && r.from - t0 <= last.toMs + mergeMs) {
      last.toMs = Math.max(last.toMs, r.to - t0);
      if (!last.sources.includes(sources)) last.sources = [...new Set([last.sources, sources])].join(',');
      continue;
    }
    merged.push({
      fromMs: r.from - t0,
      toMs: r.to - t0,
      nodes,
      detail: `${label(r.a)} and ${label(r.b)}`,
      sources,
      fault: faultAt(r.from),
    });
  }
  return merged;
}

/** Acknowledged ids missing from `present`, and `local` ones missing, and failed ones present. */
export function lostRows(
  writes: WriteRecord[],
  present: number[],
): { lost: number[]; localMissing: number[]; committedUnacknowledged: number[] } {
  const have = new Set(present);
  const lost: number[] = [];
  const localMissing: number[] = [];
  const committedUnacknowledged: number[] = [];
  for (const w of writes) {
    const there = have.has(w.id);
    if (w.outcome === 'ack' && !there) lost.push(w.id);
    else if (w.outcome === 'local' && !there) localMissing.push(w.id);
    else if (w.outcome === 'error' && there) committedUnacknowledged.push(w.id);
  }
  return { lost, localMissing, committedUnacknowledged };
}

/** Acknowledgement times (acks only) in order. */
function ackTimes(writes: WriteRecord[]): number[] {
  return writes
    .filter((w) => w.outcome === 'ack')
    .map((w) => w.doneAt)
    .sort((a, b) => a - b);
}

/**
 * Availability over [from, to]: every gap between acknowledged writes (and from `from` to the first,
 * and from the last to `to`) longer than `thresholdMs` counts whole as unavailable time.
 */
export function availability(
  writes: WriteRecord[],
  from: number,
  to: number,
  thresholdMs: number,
): { fraction: number; unavailableMs: number; outages: number; longestMs: number; longestAt: number | null } {
  const acks = ackTimes(writes).filter((t) => t >= from && t <= to);
  const points = [from, ...acks, to];
  let unavailable = 0;
  let outages = 0;
  let longest = 0;
  let longestAt: number | null = null;
  for (let i = 1; i < points.length; i++) {
    const gap = points[i]! - points[i - 1]!;
    if (gap > longest) {
      longest = gap;
      longestAt = points[i - 1]!;
    }
    if (gap > thresholdMs) {
      unavailable += gap;
      outages++;
    }
  }
  const span = Math.max(1, to - from);
  return {
    fraction: Math.max(0, 1 - unavailable / span),
    unavailableMs: unavailable,
    outages,
    longestMs: longest,
    longestAt,
  };
}

/** The number of the fault that was the latest one at `at` (null before the first). */
export function faultAtTime(faults: FaultRecord[], at: number): number | null {
  let n: number | null = null;
  for (const f of faults) if (f.injectedAt <= at) n = f.n;
  return n;
}

/** Recovery figures of each fault, from the writes and the health samples. */
export function faultOutcomes(data: ChaosData, opts: CheckOptions, lost: Set<number>): FaultOutcome[] {
  const acks = data.writes.filter((w) => w.outcome === 'ack').sort((a, b) => a.doneAt - b.doneAt);
  const moments = twoWritableMoments(writableSpans(data.probes, data.writes), data.t0, (at) =>
    faultAtTime(data.faults, at),
  );
  return data.faults.map((f, i) => {
    const windowEnd = data.faults[i + 1]?.injectedAt ?? data.writerEnd;
    const healthyAt = healthyAgainAt(data.samples, f.restoredAt, opts.stableMs, data.nodes, data.mode);
    const after = healthyAt === null ? undefined : data.samples.find((s) => s.at === healthyAt);
    const leaderAfter = after?.leader ?? null;
    const first = acks.find((a) => a.doneAt > f.injectedAt);
    // The outage a fault causes starts at the last acknowledgement before it.
    let prev = acks.findLast((a) => a.doneAt <= f.injectedAt)?.doneAt ?? f.injectedAt;
    let longest = 0;
    let longestEnd: number | null = null;
    for (const a of acks) {
      if (a.doneAt <= f.injectedAt) continue;
      if (a.doneAt > windowEnd) break;
      if (a.doneAt - prev > longest) {
        longest = a.doneAt - prev;
        longestEnd = a.doneAt;
      }
      prev = a.doneAt;
    }
    if (windowEnd - prev > longest) {
      longest = windowEnd - prev;
      longestEnd = null;
    }
    const writesBack =
      longest > opts.outageThresholdMs
        ? longestEnd === null
          ? null
          : longestEnd - f.injectedAt
        : first
          ? first.doneAt - f.injectedAt
          : null;
    const newLeaderAck =
      leaderAfter && leaderAfter !== f.leaderBefore
        ? acks.find((a) => a.doneAt > f.injectedAt && a.node === leaderAfter)
        : undefined;
    const lostHere = data.writes.filter(
      (w) => lost.has(w.id) && w.doneAt >= f.injectedAt && w.doneAt < windowEnd,
    ).length;
    return {
      n: f.n,
      kind: f.kind,
      target: f.target,
      detail: f.detail,
      ...(f.error ? { error: f.error } : {}),
      injectedAtMs: f.injectedAt - data.t0,
      restoredAtMs: f.restoredAt - data.t0,
      leaderBefore: f.leaderBefore,
      leaderAfter,
      firstAckMs: first ? first.doneAt - f.injectedAt : null,
      longestGapMs: longest,
      writesBackMs: writesBack,
      firstAckNewLeaderMs: newLeaderAck ? newLeaderAck.doneAt - f.injectedAt : null,
      healthyMs: healthyAt === null ? null : healthyAt - f.injectedAt,
      recovered: healthyAt !== null,
      lostRows: lostHere,
      twoWritable: moments.filter((m) => m.fault === f.n).length,
    };
  });
}

/** Leader changes in the samples (a sample that could not read etcd is skipped). */
export function leaderChanges(
  samples: HealthSample[],
  t0: number,
): Array<{ atMs: number; leader: string | null }> {
  const out: Array<{ atMs: number; leader: string | null }> = [];
  let last: string | null | undefined;
  for (const s of samples) {
    if (s.error) continue;
    if (s.leader !== last) out.push({ atMs: s.at - t0, leader: s.leader });
    last = s.leader;
  }
  return out;
}

const ETCD_FAULTS = new Set(['kill-etcd-member', 'kill-etcd-leader']);
/** Faults that must not move the leader: the primary itself never stopped being reachable and alive. */
const NO_FAILOVER_FAULTS = new Set([
  ...ETCD_FAULTS,
  'kill-agent',
  'kill-postmaster',
  'kill-replica',
  'partition-replica',
]);

/** Checks a run: the report with its verdict (`ok`, `failures`, `warnings`). */
export function check(data: ChaosData, opts: CheckOptions = DEFAULT_CHECK_OPTIONS): ChaosReport {
  const failures: string[] = [];
  const warnings: string[] = [];
  const sync = data.mode !== 'async';
  const final = data.final;

  const rows = final?.ids ? lostRows(data.writes, final.ids) : null;
  const lostSet = new Set(rows?.lost ?? []);
  if (data.interrupted) failures.push(`the run did not finish: ${data.interrupted}`);
  if (!final || !final.ids)
    failures.push(`the final rows could not be read${final?.error ? `: ${final.error}` : ''}`);
  else if (!final.healthy || !final.leader)
    failures.push(`the cluster was not healthy at the end${final.error ? `: ${final.error}` : ''}`);
  if (rows && rows.lost.length > 0) {
    const text = `${rows.lost.length} acknowledged rows lost (ids ${rows.lost.slice(0, 10).join(', ')}${rows.lost.length > 10 ? ', ...' : ''})`;
    if (sync) failures.push(`${text} in synchronous mode ${data.mode}`);
    else warnings.push(`${text}: possible in asynchronous mode`);
  }

  const replicas: ChaosReport['replicas'] = {};
  if (final?.ids) {
    const leaderIds = new Set(final.ids);
    for (const [name, ids] of Object.entries(final.replicas)) {
      if (!ids) {
        replicas[name] = null;
        failures.push(`replica ${name}: its rows could not be read`);
        continue;
      }
      const mine = new Set(ids);
      const missing = final.ids.filter((id) => !mine.has(id)).length;
      const extra = ids.filter((id) => !leaderIds.has(id)).length;
      replicas[name] = { missing, extra };
      if (missing || extra)
        failures.push(
          `replica ${name} differs from the leader after catching up: ${missing} rows missing, ${extra} extra`,
        );
    }
  }

  const moments = twoWritableMoments(writableSpans(data.probes, data.writes), data.t0, (at) =>
    faultAtTime(data.faults, at),
  );
  if (moments.length > 0) {
    const m = moments[0]!;
    failures.push(
      `${moments.length} moments when two nodes accepted writes (first at ${(m.fromMs / 1000).toFixed(3)} s: ${m.detail}, seen by ${m.sources}${m.fault ? `, during fault ${m.fault}` : ''})`,
    );
  }

  const faults = faultOutcomes(data, opts, lostSet);
  for (const f of faults) {
    if (!f.recovered)
      failures.push(`fault ${f.n} (${f.kind} on ${f.target}): the cluster did not become healthy again`);
    if (f.error) warnings.push(`fault ${f.n} (${f.kind}): ${f.error}`);
    if (NO_FAILOVER_FAULTS.has(f.kind) && f.leaderAfter && f.leaderBefore && f.leaderAfter !== f.leaderBefore)
      warnings.push(
        `fault ${f.n} (${f.kind} on ${f.target}) moved the leader from ${f.leaderBefore} to ${f.leaderAfter}`,
      );
  }

  const local = data.writes.filter((w) => w.outcome === 'local').length;
  if (local > 0)
    warnings.push(
      `${local} writes were acknowledged with "canceling wait for synchronous replication" (committed on one node only)`,
    );

  const avail = availability(data.writes, data.writerStart, data.writerEnd, opts.outageThresholdMs);
  const count = (o: ProbeRecord['outcome']) => data.probes.filter((p) => p.outcome === o).length;
  return {
    ok: failures.length === 0,
    failures,
    warnings,
    mode: data.mode,
    nodes: data.nodes,
    startedAt: new Date(data.t0).toISOString(),
    durationMs: data.writerEnd - data.t0,
    interrupted: data.interrupted ?? null,
    writes: {
      attempted: data.writes.length,
      acknowledged: data.writes.filter((w) => w.outcome === 'ack').length,
      localOnly: local,
      failed: data.writes.filter((w) => w.outcome === 'error').length,
      committedUnacknowledged: rows ? rows.committedUnacknowledged.length : null,
    },
    lostRows: {
      count: rows ? rows.lost.length : null,
      ids: rows ? rows.lost.slice(0, 100) : [],
      localOnlyMissing: rows ? rows.localMissing.length : null,
    },
    replicas,
    twoWritable: {
      count: moments.length,
      totalMs: moments.reduce((s, m) => s + (m.toMs - m.fromMs), 0),
      moments: moments.slice(0, 50),
    },
    availability: {
      fromMs: data.writerStart - data.t0,
      toMs: data.writerEnd - data.t0,
      thresholdMs: opts.outageThresholdMs,
      fraction: avail.fraction,
      unavailableMs: avail.unavailableMs,
      outages: avail.outages,
      longestOutageMs: avail.longestMs,
      longestOutageAtMs: avail.longestAt === null ? null : avail.longestAt - data.t0,
    },
    probes: {
      total: data.probes.length,
      ok: count('ok'),
      local: count('local'),
      refused: count('refused'),
      down: count('down'),
    },
    faults,
    leaders: leaderChanges(data.samples, data.t0),
    final: {
      leader: final?.leader ?? null,
      source: final?.source ?? null,
      healthy: final?.healthy ?? false,
      rows: final?.ids ? final.ids.length : null,
      error: final?.error ?? null,
    },
  };
}

const sec = (ms: number | null) => (ms === null ? '—' : `${(ms / 1000).toFixed(2)} s`);

/** The report as a few readable lines (what the CLI prints and `summary.txt` holds). */
export function formatSummary(r: ChaosReport): string {
  const lines: string[] = [];
  lines.push(
    `chaos: ${r.ok ? 'PASSED' : 'FAILED'} — mode ${r.mode}, ${r.nodes.length} nodes, ${r.faults.length} faults, ${sec(r.durationMs)}`,
  );
  lines.push(
    `writes: ${r.writes.attempted} sent, ${r.writes.acknowledged} acknowledged, ${r.writes.failed} failed` +
      (r.writes.committedUnacknowledged
        ? ` (${r.writes.committedUnacknowledged} of them committed anyway)`
        : '') +
      (r.writes.localOnly ? `, ${r.writes.localOnly} acknowledged locally only` : ''),
  );
  lines.push(
    `acknowledged rows lost: ${r.lostRows.count ?? 'unknown'}` +
      (r.final.source && r.final.source !== r.final.leader
        ? ` (no leader at the end: compared with ${r.final.source}, the node holding the most rows)`
        : ''),
  );
  lines.push(
    `moments with two writable primaries: ${r.twoWritable.count}${r.twoWritable.count ? ` (${sec(r.twoWritable.totalMs)} in all)` : ''}`,
  );
  lines.push(
    `availability: ${(r.availability.fraction * 100).toFixed(2)} % of ${sec(r.availability.toMs - r.availability.fromMs)}, ` +
      `${r.availability.outages} outages over ${sec(r.availability.thresholdMs)}, longest ${sec(r.availability.longestOutageMs)}` +
      (r.availability.longestOutageAtMs === null ? '' : ` at ${sec(r.availability.longestOutageAtMs)}`),
  );
  lines.push(
    `probes: ${r.probes.total} direct writes on the nodes, ${r.probes.ok} accepted, ${r.probes.local} local only`,
  );
  if (r.faults.length) {
    lines.push('');
    lines.push(
      '  #  at       fault              target  leader      first ack  writes back  longest gap  healthy',
    );
    for (const f of r.faults) {
      const leader =
        f.leaderAfter && f.leaderAfter !== f.leaderBefore
          ? `${f.leaderBefore}→${f.leaderAfter}`
          : `${f.leaderBefore ?? '—'}`;
      lines.push(
        `${String(f.n).padStart(3)}  ${sec(f.injectedAtMs).padStart(8)} ${f.kind.padEnd(18)} ${f.target.padEnd(7)} ${leader.padEnd(11)} ` +
          `${sec(f.firstAckMs).padStart(9)}  ${sec(f.writesBackMs).padStart(11)}  ${sec(f.longestGapMs).padStart(11)}  ${f.recovered ? sec(f.healthyMs) : 'NEVER'}` +
          (f.lostRows ? `  LOST ${f.lostRows}` : '') +
          (f.twoWritable ? `  TWO-WRITABLE ${f.twoWritable}` : '') +
          (f.error ? `  (${f.error})` : ''),
      );
    }
  }
  if (r.failures.length) {
    lines.push('');
    for (const f of r.failures) lines.push(`FAIL: ${f}`);
  }
  if (r.warnings.length) {
    lines.push('');
    for (const w of r.warnings) lines.push(`warning: ${w}`);
  }
  return lines.join('\n');
}

/**
 * Which replication slots a node keeps, creates, drops, advances and copies, as Patroni decides it
 * (3.0.2, with the member slot retention of Patroni 4, `member_slots_ttl`). Pure: the caller reads
 * the slots and the store, and carries the plan out (ha/leader.ts).
 *
 * What each node wants:
 * - The leader: a physical slot for every other member, and for a member whose key is gone for
 *   `member_slots_ttl` longer (an agent restart, a short outage); the permanent slots of the
 *   dynamic configuration, physical and logical.
 * - A replica (with `member_slots_ttl` > 0, as Patroni 4): the same physical member slots and
 *   permanent physical slots, kept at the positions the leader publishes in `status.slots`, so that
 *   after a failover the new leader already holds WAL for everyone; and copies of the permanent
 *   logical slots, taken from the leader's own slot files and advanced to the `confirmed_flush_lsn`
 *   the leader publishes, so that logical consumers carry on after a failover. With
 *   `member_slots_ttl: 0` a replica keeps no member slots (Patroni 3.0.2).
 *   A member tagged nofailover never becomes leader: it keeps no permanent or member slots.
 *
 * Invariants (tested in slot-plan.test.ts):
 * - A slot a consumer needs is never dropped unless the configuration says so: no active slot, no
 *   slot matching `ignore_slots`, no permanent slot that matches its configuration, no member slot
 *   within its retention, and on the primary no logical slot at all unless it is a permanent slot
 *   whose type, database or plugin the configuration changed. Nothing is dropped in maintenance mode.
 * - A replica never holds a logical slot ahead of what the primary confirmed: a copy starts from the
 *   primary's own slot file and is only ever advanced to the position the primary published, and
 *   never past what the replica has replayed.
 */
import type { IgnoreSlotMatcher, PermanentSlot } from '../config/types.js';

/** A replication slot on this server, as pg_replication_slots shows it. */
export interface ExistingSlot {
  name: string;
  type: 'physical' | 'logical';
  active: boolean;
  database?: string | null;
  plugin?: string | null;
  restartLsn?: number | null;
  /** Logical: how far its consumer confirmed. */
  confirmedFlushLsn?: number | null;
  catalogXmin?: number | null;
  /** Physical: the xmin hot_standby_feedback set through it (null when none). */
  xmin?: number | null;
  /** PostgreSQL 13+: `lost` when the WAL it needs is gone. */
  walStatus?: string | null;
  /** PostgreSQL 17+: a failover slot, which PostgreSQL's own slot synchronisation manages. */
  failover?: boolean;
}

/** Another member in the store. */
export interface SlotMember {
  name: string;
  /** Its physical slot name (Patroni's rule, postgres/slots.ts). */
  slot: string;
  /** The WAL position it published (`xlog_location`). */
  lsn?: number;
  /**
   * It streams from this node (ha/standby.ts slotMembers): from the leader unless it names another
   * member in `replicatefrom`, from a replica that it names; never with `nostream`.
   */
  streamsFromMe: boolean;
}

export interface SlotPlanInput {
  /** A standby leader (in recovery, leading a standby cluster) keeps physical slots only. */
  role: 'primary' | 'standby_leader' | 'replica';
  mySlot: string;
  /** Other members in the store. */
  members: SlotMember[];
  useSlots: boolean;
  paused: boolean;
  /** This member may not become leader (tag nofailover): no permanent or member slots. */
  nofailover: boolean;
  /** A leader holds the key (a replica's inactive slots with an xmin are then safe to recreate). */
  leaderKnown: boolean;
  permanent: PermanentSlot[];
  ignore: IgnoreSlotMatcher[];
  memberSlotsTtlMs: number;
  existing: ExistingSlot[];
  /** `status.slots`: positions the leader published (replica), by slot name. */
  published: Readonly<Record<string, number>>;
  /** `status.retain_slots`: member slots the leader keeps for members gone from the store. */
  publishedRetain: readonly string[];
  /** Replica: what it has replayed; a logical slot is never advanced past it. */
  replayLsn: number | null;
  /** Leader: this server's WAL position (published under its own slot name). */
  myLsn: number | null;
  /** Leader: member slots and when (monotonic ms) their member was last in the store. */
  retained: ReadonlyMap<string, number>;
  nowMono: number;
  /** This node just became leader: retention starts over for what it inherited. */
  newLeader: boolean;
}

export interface SlotPlan {
  drop: Array<{ name: string; why: string }>;
  createPhysical: string[];
  createLogical: Array<{ name: string; database: string; plugin: string }>;
  /** pg_replication_slot_advance: physical slots (database null) and logical ones (in their database). */
  advance: Array<{ name: string; database: string | null; lsn: number }>;
  /** Replica: logical slots to copy from the leader's slot files (needs a restart of PostgreSQL). */
  copy: string[];
  /** The leader's retention memory after this cycle. */
  retained: Map<string, number>;
  /** Leader: what the `status` key publishes besides the optime. */
  publish: { slots: Record<string, number>; retainSlots: string[] } | null;
  /** Configuration problems worth a log line (conflicting names, a lost logical slot). */
  problems: string[];
}

type Want =
  | { type: 'physical'; expectedActive: boolean; lsn?: number; permanent: boolean }
  | { type: 'logical'; database: string; plugin: string; lsn?: number };

/** Patroni's matcher: every attribute the matcher gives must equal the slot's. */
export function slotIgnored(slot: ExistingSlot, matchers: readonly IgnoreSlotMatcher[]): boolean {
  return matchers.some(
    (m) =>
      (m.name === undefined || m.name === slot.name) &&
      (m.type === undefined || m.type === slot.type) &&
      (m.database === undefined || m.database === (slot.database ?? undefined)) &&
      (m.plugin === undefined || m.plugin === (slot.plugin ?? undefined)),
  );
}

/** Whether an existing slot is what the configuration wants under its name. */
function matches(e: ExistingSlot, w: Want): boolean {
  if (e.type !== w.type) return false;
  return w.type === 'physical' || (e.database === w.database && e.plugin === w.plugin);
}

function isPermanentPhysical(w: Want | undefined): boolean {
  return w?.type === 'physical' && w.permanent;
}

/** The slots this node wants, by name (see the file comment). */
function wantedSlots(
  i: SlotPlanInput,
  retained: ReadonlyMap<string, number>,
): { wanted: Map<string, Want>; problems: string[] } {
  const wanted = new Map<string, Want>();
  const problems: string[] = [];
  if (!i.useSlots) return { wanted, problems };
  const ttlMode = i.memberSlotsTtlMs > 0;
  // A departed member's slot gives way to a permanent logical slot of the same name.
  const logicalNames = new Set(
    i.nofailover ? [] : i.permanent.filter((p) => p.type === 'logical').map((p) => p.name),
  );
  const seen = new Map<string, string>();
  for (const m of i.members) {
    const other = seen.get(m.slot);
    if (other !== undefined)
      problems.push(`members ${other} and ${m.name} share the replication slot name ${m.slot}`);
    seen.set(m.slot, m.name);
  }
  const leads = i.role !== 'replica';
  // The members that stream from this node use their slots (a replica's: cascading, replicatefrom).
  for (const m of i.members)
    if (m.streamsFromMe) wanted.set(m.slot, { type: 'physical', expectedActive: true, permanent: false });
  if (leads) {
    for (const slot of retained.keys())
      if (slot !== i.mySlot && !wanted.has(slot) && !logicalNames.has(slot))
        wanted.set(slot, { type: 'physical', expectedActive: false, permanent: false });
  } else if (ttlMode && !i.nofailover) {
    // The leader's position for a member's slot; a leader that publishes none (Patroni 3) leaves
    // the member's own position, which is all it still needs.
    for (const m of i.members) {
      if (wanted.has(m.slot)) continue;
      const lsn = i.published[m.slot] ?? m.lsn;
      wanted.set(m.slot, {
        type: 'physical',
        expectedActive: false,
        permanent: false,
        ...(lsn !== undefined ? { lsn } : {}),
      });
    }
    for (const slot of i.publishedRetain)
      if (slot !== i.mySlot && !wanted.has(slot) && !logicalNames.has(slot))
        wanted.set(slot, { type: 'physical', expectedActive: false, permanent: false });
  }
  // A standby leader keeps permanent physical slots whatever its tags: the standby cluster's
  // members stream from it alone.
  if (i.nofailover && i.role !== 'standby_leader') return { wanted, problems };
  for (const p of i.permanent) {
    const lsn = i.published[p.name];
    if (p.type === 'physical') {
      // `cluster_type` keeps a slot in a primary cluster only, or on a standby leader only.
      if (p.cluster_type === (i.role === 'standby_leader' ? 'primary' : 'standby')) continue;
      if (p.name === i.mySlot) continue;
      const member = wanted.get(p.name);
      if (member?.type === 'physical') wanted.set(p.name, { ...member, permanent: true });
      else
        wanted.set(p.name, {
          type: 'physical',
          expectedActive: leads,
          permanent: true,
          ...(lsn !== undefined ? { lsn } : {}),
        });
    } else if (i.role === 'standby_leader') {
      // A server in recovery can hold no logical slot of its own (PostgreSQL 15 and older).
      continue;
    } else if (
      isPermanentPhysical(wanted.get(p.name)) ||
      p.name === i.mySlot ||
      i.members.some((m) => m.slot === p.name)
    ) {
      problems.push(`permanent logical slot ${p.name} has the name of a physical slot; not kept`);
    } else {
      wanted.set(p.name, {
        type: 'logical',
        database: p.database,
        plugin: p.plugin,
        ...(lsn !== undefined ? { lsn } : {}),
      });
    }
  }
  return { wanted, problems };
}

/** The leader's retention memory: members in the store now, and those gone for less than the ttl. */
function nextRetained(i: SlotPlanInput): Map<string, number> {
  const retained = new Map<string, number>();
  if (i.role === 'replica' || !i.useSlots || i.memberSlotsTtlMs <= 0) return retained;
  for (const [slot, at] of i.retained) if (i.nowMono - at < i.memberSlotsTtlMs) retained.set(slot, at);
  if (i.newLeader) {
    // What it inherited (slots it kept as a replica, the former leader's list) starts over now.
    for (const slot of i.publishedRetain) retained.set(slot, i.nowMono);
    for (const s of i.existing)
      if (s.type === 'physical' && !retained.has(s.name)) retained.set(s.name, i.nowMono);
  }
  for (const m of i.members) if (m.streamsFromMe) retained.set(m.slot, i.nowMono);
  // Slots of members that stream from another member now are that member's to keep.
  for (const m of i.members) if (!m.streamsFromMe) retained.delete(m.slot);
  retained.set(i.mySlot, i.nowMono);
  // Permanent slots are kept by the configuration, not by retention.
  if (!i.nofailover) for (const p of i.permanent) retained.delete(p.name);
  return retained;
}

export function planSlots(i: SlotPlanInput): SlotPlan {
  const retained = nextRetained(i);
  const { wanted, problems } = wantedSlots(i, retained);
  const plan: SlotPlan = {
    drop: [],
    createPhysical: [],
    createLogical: [],
    advance: [],
    copy: [],
    retained,
    publish: null,
    problems,
  };
  const missing = new Set(wanted.keys());
  const drop = (e: ExistingSlot, why: string, recreate: boolean): void => {
    plan.drop.push({ name: e.name, why });
    if (recreate) missing.add(e.name);
  };

  for (const e of i.existing) {
    missing.delete(e.name);
    // PostgreSQL 17 synchronises failover slots itself (as Patroni 4, pgha leaves them alone).
    if (e.type === 'logical' && e.failover) continue;
    const w = wanted.get(e.name);
    // Nothing is dropped in maintenance mode, and a slot in use cannot be.
    const mayDrop = !i.paused && !e.active;
    if (!w) {
      if (!mayDrop || slotIgnored(e, i.ignore)) continue;
      // The primary's logical slots are its consumers' own; only the configuration removes one.
      if (e.type === 'logical' && i.role === 'primary') continue;
      drop(
        e,
        e.type === 'logical'
          ? 'a logical slot on a replica that is not a permanent slot'
          : 'no member or permanent slot of that name',
        false,
      );
      continue;
    }
    if (!matches(e, w)) {
      // ignore_slots keeps a slot, unless a permanent slot of that name says what it must be.
      const permanent = w.type === 'logical' || w.permanent;
      if (!permanent && slotIgnored(e, i.ignore)) continue;
      // A consumer's logical slot on the primary that has a member's name: the member goes without.
      if (e.type === 'logical' && i.role === 'primary' && !permanent) {
        problems.push(
          `a logical slot holds the name ${e.name} of a member's physical slot; the member streams without a slot`,
        );
        continue;
      }
      if (mayDrop)
        drop(e, `the configuration changed it from ${describeSlot(e)} to ${describeWant(w)}`, true);
      continue;
    }
    if (e.walStatus === 'lost') {
      if (e.type === 'logical' && i.role === 'primary')
        problems.push(
          `logical slot ${e.name} lost WAL its consumer still needs (wal_status lost); kept so that the consumer sees the error`,
        );
      else if (mayDrop) drop(e, 'the WAL it needs is gone (wal_status lost)', true);
      continue;
    }
    if (w.type === 'physical') {
      if (w.expectedActive || e.active) continue;
      // A slot nobody streams from must not hold an xmin (it would stop vacuum for good) and must
      // reserve WAL; recreated next cycle (as Patroni 4).
      if (e.xmin != null && i.leaderKnown) {
        if (mayDrop) drop(e, `no member streams from it but it holds xmin ${e.xmin}`, false);
        continue;
      }
      if (e.restartLsn == null) {
        if (mayDrop) drop(e, 'it reserves no WAL (made without reserving it)', false);
        continue;
      }
      if (w.lsn !== undefined && w.lsn > e.restartLsn)
        plan.advance.push({ name: e.name, database: null, lsn: w.lsn });
      continue;
    }
    if (i.role === 'replica' && w.lsn !== undefined && i.replayLsn !== null && e.confirmedFlushLsn != null) {
      const target = Math.min(w.lsn, i.replayLsn);
      if (target > e.confirmedFlushLsn)
        plan.advance.push({ name: e.name, database: w.database, lsn: target });
    }
  }

  for (const name of [...missing].sort()) {
    const w = wanted.get(name);
    if (!w) continue;
    if (w.type === 'physical') plan.createPhysical.push(name);
    else if (i.role === 'primary') plan.createLogical.push({ name, database: w.database, plugin: w.plugin });
    // Copied only once the leader published a position (its slot exists), and never in
    // maintenance mode: the copy restarts PostgreSQL.
    else if (w.lsn !== undefined && !i.paused) plan.copy.push(name);
  }
  plan.createPhysical.sort();
  plan.copy.sort();
  if (i.role === 'primary') plan.publish = published(i, wanted, retained);
  return plan;
}

/**
 * What the leader publishes in `status.slots`, as Patroni 4: with member slot retention, every slot
 * it keeps (physical: restart_lsn; logical: confirmed_flush_lsn) and its own slot name at its WAL
 * position, so replicas keep the same slots at the same places; without it, only permanent slots.
 */
function published(
  i: SlotPlanInput,
  wanted: ReadonlyMap<string, Want>,
  retained: ReadonlyMap<string, number>,
): { slots: Record<string, number>; retainSlots: string[] } {
  const ttlMode = i.memberSlotsTtlMs > 0;
  const slots: Record<string, number> = {};
  const permanent = new Set(i.permanent.map((p) => p.name));
  for (const e of i.existing) {
    const w = wanted.get(e.name);
    if (!w || !matches(e, w) || (!ttlMode && !permanent.has(e.name))) continue;
    const lsn = e.type === 'logical' ? e.confirmedFlushLsn : e.restartLsn;
    if (lsn != null && lsn > 0) slots[e.name] = lsn;
  }
  const mine = ttlMode || i.permanent.some((p) => p.type === 'physical' && p.name === i.mySlot);
  if (mine && i.useSlots && i.myLsn !== null) slots[i.mySlot] = i.myLsn;
  return { slots, retainSlots: ttlMode ? [...retained.keys()].sort() : [] };
}

/**
 * The positions a leader that lost the store sends with `POST /failsafe` (Patroni's `slots()`): the
 * slots it last published, at where they are now (physical: restart_lsn; logical:
 * confirmed_flush_lsn), and its own slot name at its WAL position, so replicas keep advancing their
 * copies while the store is down.
 */
export function currentPositions(
  last: Readonly<Record<string, number>>,
  existing: readonly ExistingSlot[],
  mySlot: string,
  myLsn: number | null,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, lsn] of Object.entries(last)) {
    const e = existing.find((x) => x.name === name);
    const now = e ? (e.type === 'logical' ? e.confirmedFlushLsn : e.restartLsn) : null;
    out[name] = name === mySlot && myLsn !== null ? myLsn : now != null && now > lsn ? now : lsn;
  }
  return out;
}

/**
 * A replica's copies of permanent logical slots that could not be used after a failover: decoding
 * would start (restart_lsn) before the oldest WAL this replica has. Empty when that is unknown.
 */
export function copiesWithoutWal(
  existing: readonly ExistingSlot[],
  permanent: ReadonlySet<string>,
  oldestWal: number | null,
): string[] {
  if (oldestWal === null) return [];
  return existing
    .filter(
      (e) =>
        e.type === 'logical' && permanent.has(e.name) && e.restartLsn != null && e.restartLsn < oldestWal,
    )
    .map((e) => e.name)
    .sort();
}

function describeSlot(e: ExistingSlot): string {
  return e.type === 'physical' ? 'physical' : `logical (${e.database ?? '?'}, ${e.plugin ?? '?'})`;
}

function describeWant(w: Want): string {
  return w.type === 'physical' ? 'physical' : `logical (${w.database}, ${w.plugin})`;
}

/** Whether replicas need hot_standby_feedback: they keep copies of permanent logical slots (as Patroni). */
export function needsHotStandbyFeedback(opts: {
  useSlots: boolean;
  nofailover: boolean;
  permanent: readonly PermanentSlot[];
}): boolean {
  return opts.useSlots && !opts.nofailover && opts.permanent.some((p) => p.type === 'logical');
}

/**
 * When a copied logical slot becomes safe to use after a failover (Patroni's readiness check): once
 * this replica's physical slot on the primary has a catalog_xmin (hot_standby_feedback reaches the
 * primary), remember the primary's catalog_xmin of the logical slot; the copy is safe when the
 * physical slot's catalog_xmin has caught up with that value and is not ahead of the copy's own.
 */
export function logicalSlotReadiness(opts: {
  /** Copied slots not yet known safe: the primary's catalog_xmin for each, once remembered. */
  pending: ReadonlyMap<string, number | null>;
  /** catalog_xmin of this replica's physical slot on the primary (null: none yet). */
  physicalCatalogXmin: number | null;
  /** The primary's catalog_xmin of the pending logical slots. */
  primary: Readonly<Record<string, number | null>>;
  /** The copies' catalog_xmin here (absent: the copy is gone). */
  local: Readonly<Record<string, number | null>>;
}): { pending: Map<string, number | null>; ready: string[] } {
  const pending = new Map(opts.pending);
  const ready: string[] = [];
  const physical = opts.physicalCatalogXmin;
  if (physical === null) return { pending, ready };
  for (const [name, xmin] of pending)
    if (xmin === null && opts.primary[name] != null) pending.set(name, opts.primary[name]);
  for (const [name, primaryXmin] of pending) {
    if (!(name in opts.local)) {
      pending.delete(name);
      continue;
    }
    const mine = opts.local[name];
    if (primaryXmin != null && mine != null && primaryXmin <= physical && physical <= mine) {
      pending.delete(name);
      ready.push(name);
    }
  }
  return { pending, ready };
}

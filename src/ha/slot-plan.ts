/**
 * Which physical replication slots a node keeps for the other members.
 * - The leader keeps one per member (other than itself), and for a member whose key vanished it
 *   keeps the slot `retainMs` longer (an agent restart, a short outage), so the member can resume
 *   streaming; after that the slot goes, so WAL does not pile up for a member gone for good.
 * - A replica serves nobody (no cascading), so it keeps no member slots: a former primary drops
 *   the ones it had, whose frozen restart_lsn would otherwise pin WAL until the disk fills.
 * Slots in use (active) are never dropped; the next cycle tries again.
 */
export interface ExistingSlot {
  name: string;
  active: boolean;
}

export interface SlotPlan {
  create: string[];
  drop: string[];
  /** The leader's retention memory after this cycle: slot → when its member was last seen. */
  seen: Map<string, number>;
}

export function planSlots(opts: {
  role: 'primary' | 'replica';
  useSlots: boolean;
  /** Slot names of the members in the store, other than this node. */
  memberSlots: string[];
  mySlot: string;
  existing: ExistingSlot[];
  seen: ReadonlyMap<string, number>;
  nowMono: number;
  retainMs: number;
  /** This node just became leader: slots it already has count as seen now. */
  newLeader: boolean;
  /** A replica: slots of the members that cascade from it (`replicatefrom`). */
  serve?: string[];
}): SlotPlan {
  const seen = new Map<string, number>();
  let wanted: Set<string>;
  if (opts.role === 'primary' && opts.useSlots) {
    for (const [slot, at] of opts.seen) if (opts.nowMono - at <= opts.retainMs) seen.set(slot, at);
    // Slots that exist when this node becomes leader count as seen now.
    if (opts.newLeader) for (const s of opts.existing) if (!seen.has(s.name)) seen.set(s.name, opts.nowMono);
    for (const m of opts.memberSlots) seen.set(m, opts.nowMono);
    seen.delete(opts.mySlot);
    wanted = new Set(seen.keys());
  } else {
    wanted = new Set(opts.role === 'replica' && opts.useSlots ? (opts.serve ?? []) : []);
  }
  const have = new Set(opts.existing.map((s) => s.name));
  return {
    create: [...wanted].filter((n) => !have.has(n)).sort(),
    drop: opts.existing
      .filter((s) => !wanted.has(s.name) && !s.active)
      .map((s) => s.name)
      .sort(),
    seen,
  };
}

/** How long the leader keeps the slot of a member whose key vanished: ten ttls, at least 5 min. */
export function slotRetentionMs(ttlS: number): number {
  return Math.max(300, ttlS * 10) * 1000;
}

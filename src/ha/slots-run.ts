/**
 * Carries out the slot plan (slot-plan.ts) each cycle, on the leader and on replicas, and keeps what
 * slot handling remembers across cycles:
 * - the leader's retention of member slots and what it publishes in `status` (`slots`,
 *   `retain_slots`);
 * - on a replica, a background worker that advances slots with pg_replication_slot_advance (a
 *   logical slot's advance decodes WAL and may take long; the HA loop never waits for it), the copy
 *   of permanent logical slots from the leader's slot files (PostgreSQL reads slot files only when
 *   it starts, so the copy restarts it, as Patroni's does on every version), and which copies are
 *   not yet known safe to use after a failover (Patroni's readiness check).
 */
import type { ClusterState } from '../dcs/types.js';
import type { PostgresNode, ServerStatus, SlotCopy } from '../postgres/types.js';
import { formatLsn } from '../postgres/lsn.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { connTarget } from './actions.js';
import type { RunnerContext } from './context.js';
import { findMember, isNoFailover } from './rules.js';
import { copiesWithoutWal, logicalSlotReadiness, planSlots, type SlotPlan } from './slot-plan.js';
import { slotMembers } from './standby.js';

type Advance = SlotPlan['advance'][number];

/**
 * Advances slots one after another in the background, as Patroni's SlotsAdvanceThread: a cycle
 * schedules targets and collects what went wrong since the last one (slots whose WAL is gone need
 * a fresh copy). clear() gives up the run under way: the next targets start a new one at once,
 * whether or not the call it gave up ever settles.
 */
export class SlotAdvancer {
  private readonly scheduled = new Map<string, Advance>();
  private failed = false;
  private copy: string[] = [];
  /** Cancels the current run's call; a run goes on only while its own signal is not aborted. */
  private abort = new AbortController();
  /** The signal of the run under way (null: none). */
  private running: AbortSignal | null = null;

  constructor(
    private readonly pg: PostgresNode,
    private readonly log: Logger,
  ) {}

  /** Schedules `items` (a newer target replaces an older one); returns the feedback since last time. */
  schedule(items: readonly Advance[]): { failed: boolean; copy: string[] } {
    for (const it of items) if (!this.copy.includes(it.name)) this.scheduled.set(it.name, it);
    const feedback = { failed: this.failed, copy: this.copy };
    this.failed = false;
    this.copy = [];
    const signal = this.abort.signal;
    if (this.running !== signal && this.scheduled.size > 0) {
      this.running = signal;
      void this.run(signal).finally(() => {
        if (this.running === signal) this.running = null;
      });
    }
    return feedback;
  }

  /** Forgets everything scheduled and gives up the run under way (a promotion, a slot copy). */
  clear(): void {
    this.scheduled.clear();
    this.failed = false;
    this.copy = [];
    this.abort.abort();
    this.abort = new AbortController();
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted && this.scheduled.size > 0) {
      for (const item of [...this.scheduled.values()]) {
        const res = await this.pg
          .advanceSlot(item.name, item.database, item.lsn, signal)
          .catch((err: unknown) => ({ ok: false as const, error: errorMessage(err), walGone: false }));
        if (signal.aborted) return;
        if (!res.ok) {
          this.log.error(
            { slot: item.name },
            `could not advance replication slot ${item.name}: ${res.error}`,
          );
          this.failed = true;
          if (res.walGone && !this.copy.includes(item.name)) this.copy.push(item.name);
        }
        // Done with it unless a cycle scheduled a newer target meanwhile.
        const now = this.scheduled.get(item.name);
        if (res.ok === false || now?.lsn === item.lsn) this.scheduled.delete(item.name);
      }
    }
  }
}

/** Slot handling's memory across cycles and its effects; one per agent. */
export class SlotKeeper {
  /** Leader: member slots and when (monotonic) their member was last in the store. */
  private retained = new Map<string, number>();
  /** Leader: what `status` publishes besides the optime. */
  published: { slots: Record<string, number>; retainSlots: string[] } | null = null;
  /** Replica: copies not yet known safe after a failover, with the leader's catalog_xmin once known. */
  private pending = new Map<string, number | null>();
  private advancer: SlotAdvancer | null = null;
  /** Where this replica's oldest WAL segment starts, as last read. */
  private oldestWal: number | null = null;
  private readonly waitingCopies = new Set<string>();
  private lastProblems = '';
  private readonly lastCreateError = new Map<string, string>();
  private warnedFeedback = false;

  /** One cycle of slot upkeep: what the plan says, for a leader (running as primary) or a replica. */
  async maintain(
    c: RunnerContext,
    cluster: ClusterState,
    role: 'primary' | 'standby_leader' | 'replica',
    status: ServerStatus | null,
    mayCopy = true,
  ): Promise<void> {
    const dyn = c.dynamic();
    const pg = c.d.pg;
    const existing = await pg.replicationSlots();
    const fromMe = new Set(slotMembers(cluster, c.me, role !== 'replica'));
    const plan = planSlots({
      role,
      mySlot: c.d.slotName(c.me),
      members: cluster.members
        .filter((m) => m.name !== c.me)
        .map((m) => ({
          name: m.name,
          slot: c.d.slotName(m.name),
          streamsFromMe: fromMe.has(m.name),
          ...(typeof m.data.xlog_location === 'number' ? { lsn: m.data.xlog_location } : {}),
        })),
      useSlots: dyn.postgresql.use_slots,
      paused: dyn.pause,
      nofailover: isNoFailover(c.d.config.tags),
      leaderKnown: cluster.leader !== null,
      permanent: dyn.slots,
      ignore: dyn.ignore_slots,
      memberSlotsTtlMs: dyn.member_slots_ttl * 1000,
      existing,
      published: role === 'replica' ? (cluster.status?.slots ?? {}) : {},
      publishedRetain: cluster.status?.retain_slots ?? [],
      replayLsn: status?.replayLsn ?? null,
      myLsn: role === 'primary' && status && !status.inRecovery ? status.walPosition : null,
      retained: this.retained,
      nowMono: c.clock.mono(),
      newLeader: role !== 'replica' && !c.st.ledBefore,
    });
    this.retained = plan.retained;
    this.published = role === 'primary' ? plan.publish : null;
    const problems = plan.problems.join('; ');
    if (problems !== this.lastProblems && problems !== '') c.log.warn(`replication slots: ${problems}`);
    this.lastProblems = problems;

    for (const d of plan.drop) {
      const dropped = await pg.dropSlot(d.name).catch((err: unknown) => {
        c.log.warn({ slot: d.name }, `could not drop replication slot ${d.name}: ${errorMessage(err)}`);
        return false;
      });
      if (dropped) {
        c.log.info({ slot: d.name }, `dropped replication slot ${d.name}: ${d.why}`);
        this.pending.delete(d.name);
      }
    }
    for (const name of plan.createPhysical)
      await pg
        .createPhysicalSlot(name)
        .catch((err: unknown) =>
          c.log.warn(
            { slot: name },
            `could not create physical replication slot ${name}: ${errorMessage(err)}`,
          ),
        );
    for (const s of plan.createLogical) {
      try {
        await pg.createLogicalSlot(s.name, s.database, s.plugin, dyn.retry_timeout * 1000);
        this.lastCreateError.delete(s.name);
      } catch (err) {
        // Retried every cycle (wal_level may need a restart first): said once per reason.
        const msg = errorMessage(err);
        if (this.lastCreateError.get(s.name) !== msg)
          c.log.error(
            { slot: s.name },
            `could not create logical replication slot ${s.name} (database ${s.database}, plugin ${s.plugin}): ${msg}`,
          );
        this.lastCreateError.set(s.name, msg);
      }
    }
    if (role !== 'replica') {
      this.pending.clear();
      return;
    }
    this.advancer ??= new SlotAdvancer(pg, c.log);
    const feedback = this.advancer.schedule(plan.advance);
    // A copy whose decoding would start before this replica's oldest WAL is unusable after a
    // failover ("requested WAL segment ... has already been removed"): copy it again.
    this.oldestWal = await pg.oldestWalLsn().catch(() => null);
    const stale = copiesWithoutWal(existing, new Set(dyn.slots.map((p) => p.name)), this.oldestWal);
    const copy = [...new Set([...plan.copy, ...feedback.copy, ...stale])].sort();
    if (copy.length > 0 && !dyn.pause && mayCopy) await this.copyFromLeader(c, cluster, copy);
    await this.checkReadiness(c, cluster);
  }

  /** A promotion: nothing more to advance; copies not yet known safe are worth a warning. */
  onPromote(c: RunnerContext): void {
    this.advancer?.clear();
    if (this.pending.size > 0)
      c.log.warn(
        `logical replication slots that might be unsafe to use after the promotion: ${[...this.pending.keys()].sort().join(', ')}`,
      );
    this.pending.clear();
  }

  /**
   * Copies the leader's logical slots: reads their state files over SQL, stops PostgreSQL, installs
   * them and starts it again. Only slots whose database and plugin match the configuration.
   */
  private async copyFromLeader(c: RunnerContext, cluster: ClusterState, names: string[]): Promise<void> {
    const leader = cluster.leader ? findMember(cluster, cluster.leader.name) : undefined;
    const target = leader && leader.name !== c.me ? connTarget(leader) : null;
    if (!target) return;
    let copies: SlotCopy[];
    try {
      copies = await c.d.pg.leaderSlotCopies(target, names);
    } catch (err) {
      c.log.error(
        `could not read logical slots ${names.join(', ')} from the leader ${target.member}: ${errorMessage(err)}`,
      );
      return;
    }
    const wanted = new Map(c.dynamic().slots.map((p) => [p.name, p]));
    copies = copies.filter((s) => {
      const p = wanted.get(s.name);
      const ok = p?.type === 'logical' && p.database === s.database && p.plugin === s.plugin;
      if (!ok)
        c.log.warn(
          { slot: s.name },
          `not copying logical slot ${s.name}: on the leader it is (${s.database}, ${s.plugin}), which is not what the configuration says`,
        );
      return ok;
    });
    // A copy that would start decoding before this replica's oldest WAL is no use yet: wait until
    // the leader's consumer moves the slot on (said once per slot and position).
    copies = copies.filter((s) => {
      if (this.oldestWal === null || s.restartLsn >= this.oldestWal) return true;
      const why = `${s.name}@${s.restartLsn}`;
      if (!this.waitingCopies.has(why))
        c.log.warn(
          { slot: s.name },
          `not copying logical slot ${s.name} yet: the leader's copy needs WAL this replica no longer has (from ${formatLsn(s.restartLsn)})`,
        );
      this.waitingCopies.add(why);
      return false;
    });
    if (copies.length === 0) return;
    const list = copies.map((s) => s.name).join(', ');
    c.log.info(
      `copying logical replication slots ${list} from the leader ${target.member}: restarting PostgreSQL`,
    );
    this.advancer?.clear();
    await c.during('restarting', async () => {
      await c.stopFastOrImmediate();
      try {
        await c.d.pg.installSlotCopies(copies);
      } finally {
        await c.d.pg.start(c.dynamic().primary_start_timeout * 1000);
      }
    });
    for (const s of copies) this.pending.set(s.name, null);
    c.log.info(`copied logical replication slots ${list} from the leader ${target.member}`);
  }

  /**
   * Patroni's readiness check: a copy is safe to use after a failover once this replica's physical
   * slot on the leader holds a catalog_xmin (hot_standby_feedback) that has caught up with the
   * leader's logical slot and is not ahead of the copy's.
   */
  private async checkReadiness(c: RunnerContext, cluster: ClusterState): Promise<void> {
    if (this.pending.size === 0) return;
    const leader = cluster.leader ? findMember(cluster, cluster.leader.name) : undefined;
    const target = leader && leader.name !== c.me ? connTarget(leader) : null;
    if (!target) return;
    const mySlot = c.d.slotName(c.me);
    const unknown = [...this.pending].filter(([, v]) => v === null).map(([n]) => n);
    let primary: Record<string, number | null>;
    let local: Record<string, number | null>;
    try {
      primary = await c.d.pg.leaderCatalogXmins(target, [...unknown, mySlot]);
      local = Object.fromEntries(
        (await c.d.pg.replicationSlots())
          .filter((s) => s.type === 'logical')
          .map((s) => [s.name, s.catalogXmin]),
      );
    } catch (err) {
      return c.log.warn(`could not check the copied logical slots against the leader: ${errorMessage(err)}`);
    }
    if (!(mySlot in primary)) return c.log.warn(`physical slot ${mySlot} does not exist on the leader`);
    const physical = primary[mySlot] ?? null;
    if (physical === null && !this.warnedFeedback) {
      this.warnedFeedback = true;
      if ((await c.d.pg.setting('hot_standby_feedback')) !== 'on')
        c.log.error(
          'logical slot failover needs hot_standby_feedback on this replica; check postgresql.auto.conf',
        );
    }
    const r = logicalSlotReadiness({ pending: this.pending, physicalCatalogXmin: physical, primary, local });
    this.pending = r.pending;
    for (const name of r.ready)
      c.log.info({ slot: name }, `logical slot ${name} is safe to use after a failover`);
  }
}

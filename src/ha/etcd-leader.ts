/**
 * `move_etcd_leader` (pgha extension, default on): keep etcd's raft leader off the primary's host.
 *
 * When a host vanishes (power loss, a cut cable) and it carried both the primary and etcd's raft
 * leader, the surviving etcd members first have to elect a new raft leader (1–2 s) before they
 * serve reads or writes. The leader's last renewal, committed just before the loss, reaches the
 * replicas only then, so their clocks for it (silence.ts) start late and the failover comes that
 * much after ttl. With the raft leader elsewhere, losing the primary's host costs etcd no
 * election: the survivors keep their quorum and their leader.
 *
 * So the agent holding the leader key looks, every max(loop_wait, 2 s), at which member leads
 * etcd; when it is the member on its own host, it hands the leadership to another healthy voting
 * member (`MoveLeader`, the request `etcdctl move-leader` makes). Nothing here touches data: etcd
 * stays linearizable through a transfer; requests in flight during it may fail once and are
 * retried as after any etcd leader change. etcd 3.4 (Debian 12's) lets any authenticated user
 * call `MoveLeader` and `Status`; with authentication on, etcd 3.6 and 3.5 from 3.5.28 allow
 * `MoveLeader` to the root role only (some of those releases `Status` too). An agent refused the
 * hand-over says so once and carries on; one refused `Status` sees no raft leader and moves
 * nothing.
 *
 * The member on this host is the one named like this agent (`ETCD_NAME` = `name`), else the only
 * configured etcd endpoint whose address is one of this host's (the seed's layout: each catalog
 * node lists every node's address). When neither tells, nothing is moved.
 */
import type { EtcdEndpointStatus, EtcdMemberInfo } from '../dcs/etcd.js';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';

export interface RaftPlacementFacts {
  /** This agent's name. */
  me: string;
  /** etcd's members (`MemberList`). */
  members: EtcdMemberInfo[];
  /** Each configured endpoint's own status, in configured order. */
  endpoints: EtcdEndpointStatus[];
}

export type RaftPlacementPlan =
  | { kind: 'stay'; why: string }
  | {
      kind: 'move';
      /** The endpoint of the member that leads now (the only one that can hand over). */
      leaderEndpoint: string;
      from: string;
      target: { id: string; name: string };
      why: string;
    };

/** The etcd member id on this host, or a reason why it cannot be told. */
export function localMemberId(f: RaftPlacementFacts): { id: string } | { why: string } {
  const named = f.members.filter((m) => m.name === f.me);
  if (named.length === 1) return { id: named[0]!.id };
  const local = new Set(f.endpoints.filter((e) => e.local && e.status).map((e) => e.status!.id));
  const localConfigured = f.endpoints.filter((e) => e.local).length;
  if (local.size === 1 && localConfigured === 1) return { id: [...local][0]! };
  if (localConfigured === 0) return { why: 'no configured etcd member runs on this host' };
  if (localConfigured > 1)
    return { why: `${localConfigured} configured etcd members look local and none is named ${f.me}` };
  return { why: 'the etcd member on this host does not answer' };
}

/** Whether (and where) to hand etcd's raft leadership away from this host. */
export function planRaftPlacement(f: RaftPlacementFacts): RaftPlacementPlan {
  const answered = f.endpoints.filter((e) => e.status !== null);
  const leaders = new Set(answered.map((e) => e.status!.leader));
  const leaderId = leaders.size === 1 ? [...leaders][0]! : null;
  if (leaderId === null || leaderId === '0')
    return { kind: 'stay', why: 'the etcd members do not agree on a raft leader now' };
  const local = localMemberId(f);
  if ('why' in local) return { kind: 'stay', why: local.why };
  if (local.id !== leaderId) return { kind: 'stay', why: "etcd's raft leader is on another host" };
  const name = (id: string) => f.members.find((m) => m.id === id)?.name ?? id;
  const leaderEndpoint = answered.find((e) => e.status!.id === leaderId)?.endpoint;
  if (!leaderEndpoint)
    return { kind: 'stay', why: 'the leading etcd member is not among the configured hosts' };
  const target = answered.find((e) => {
    const id = e.status!.id;
    const member = f.members.find((m) => m.id === id);
    return id !== leaderId && member !== undefined && !member.isLearner;
  });
  if (!target)
    return { kind: 'stay', why: 'no other voting etcd member answers; the raft leader stays on this host' };
  const targetId = target.status!.id;
  return {
    kind: 'move',
    leaderEndpoint,
    from: name(leaderId),
    target: { id: targetId, name: name(targetId) },
    why: `etcd's raft leader ${name(leaderId)} runs on this host, the primary's: losing the host would stall etcd for an election`,
  };
}

/** What the keeper needs of the etcd client (EtcdDcs provides it). */
export interface RaftPlacementPort {
  memberList(signal?: AbortSignal): Promise<EtcdMemberInfo[]>;
  endpointStatuses(timeoutMs: number): Promise<EtcdEndpointStatus[]>;
  moveLeader(leaderEndpoint: string, targetId: string, signal?: AbortSignal): Promise<void>;
}

export interface EtcdLeaderKeeperOptions {
  port: RaftPlacementPort;
  me: string;
  logger: Logger;
  /** This agent holds the leader key, the cluster is not paused and `move_etcd_leader` is on. */
  active: () => boolean;
  /** Pause between two looks (ms). */
  intervalMs: () => number;
  /** Deadline of each etcd request (ms). */
  timeoutMs: () => number;
}

/**
 * A hand-over that fails this many times in a row is reported, and the next attempt waits
 * FAILED_MOVE_PAUSE_MS. One failure alone is usually a race with etcd's own leader change
 * ("not leader"): the next look, at the usual interval, sees the new leader.
 */
const FAILURES_REPORTED = 2;
const FAILED_MOVE_PAUSE_MS = 60_000;

/** Runs `planRaftPlacement` while this agent leads and carries out its moves. */
export class EtcdLeaderKeeper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private lastReported = '';
  private failures = 0;

  constructor(private readonly o: EtcdLeaderKeeperOptions) {}

  start(): void {
    this.schedule(this.o.intervalMs());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One look (and move, when the plan says so); returns the plan, or null when not active. */
  async round(): Promise<RaftPlacementPlan | null> {
    if (!this.o.active()) return null;
    const timeoutMs = this.o.timeoutMs();
    let members: EtcdMemberInfo[];
    let endpoints: EtcdEndpointStatus[];
    try {
      [members, endpoints] = await Promise.all([
        this.o.port.memberList(AbortSignal.timeout(timeoutMs)),
        this.o.port.endpointStatuses(timeoutMs),
      ]);
    } catch (err) {
      // etcd unreachable for now: the HA loop reports that; look again next time.
      return { kind: 'stay', why: `cannot list the etcd members: ${errorMessage(err)}` };
    }
    const plan = planRaftPlacement({ me: this.o.me, members, endpoints });
    if (plan.kind === 'stay' || !this.o.active()) {
      this.failures = 0;
      return plan;
    }
    await this.o.port.moveLeader(plan.leaderEndpoint, plan.target.id, AbortSignal.timeout(timeoutMs));
    this.failures = 0;
    this.lastReported = '';
    this.o.logger.info(
      { event: 'etcd_leader_moved', from: plan.from, to: plan.target.name },
      `${plan.why}; handed etcd's raft leadership to ${plan.target.name}`,
    );
    return plan;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const run = this.round().then(
        () => this.o.intervalMs(),
        (err: unknown) => {
          const msg = errorMessage(err);
          this.failures += 1;
          if (this.failures < FAILURES_REPORTED) {
            this.o.logger.debug(`handing etcd's raft leadership on failed: ${msg}; looking again`);
            return this.o.intervalMs();
          }
          if (msg !== this.lastReported)
            this.o.logger.warn(
              `could not keep etcd's raft leader off this host: ${msg}. With authentication on, etcd 3.6 and 3.5 from 3.5.28 allow MoveLeader to the root role only; or set move_etcd_leader: false (pgha ctl edit-config)`,
            );
          this.lastReported = msg;
          return FAILED_MOVE_PAUSE_MS;
        },
      );
      this.running = run.then((next) => this.schedule(next));
    }, ms);
    this.timer.unref();
  }
}

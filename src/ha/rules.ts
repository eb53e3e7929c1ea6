/**
 * Small pure rules the decision uses: who may become leader, whether a former primary must be
 * rewound, and what a member's published data says.
 */
import type { DynamicConfig, TagsConfig } from '../config/types.js';
import type { ClusterState, HistoryEntry, Member } from '../dcs/types.js';
import type { ControlData, ServerStatus } from '../postgres/types.js';
import { failsafeRaceBlock } from './failsafe.js';
import type { PeerStatus } from './types.js';

/** Primary roles as published in member keys (`master` is Patroni's old name, still accepted). */
export function isPrimaryRole(role: string | undefined): boolean {
  return role === 'primary' || role === 'master' || role === 'standby_leader';
}

export function findMember(cluster: ClusterState, name: string | undefined | null): Member | undefined {
  if (!name) return undefined;
  return cluster.members.find((m) => m.name === name);
}

/** The switch LSN at which `timeline` ended, from the leader's `history`; undefined when unknown. */
export function forkPoint(history: HistoryEntry[], timeline: number): number | undefined {
  const entry = history.find((h) => h[0] === timeline);
  return entry === undefined ? undefined : entry[1];
}

/**
 * Whether this node's data has diverged from the leader's timeline, so it cannot stream from it
 * without pg_rewind. A cleanly stopped node whose last WAL record lies before the leader's fork
 * point can follow as it is (this is what makes a graceful switchover rewind-free).
 */
export function needsRewind(opts: {
  control: ControlData | null;
  /** Last WAL position of a running replica, when known. */
  position?: number;
  timeline?: number;
  leaderTimeline: number | undefined;
  history: HistoryEntry[];
}): boolean {
  const { control, leaderTimeline, history } = opts;
  if (control === null || leaderTimeline === undefined) return false;
  const myTimeline = opts.timeline ?? control.timeline;
  if (myTimeline === leaderTimeline) return false;
  if (myTimeline > leaderTimeline) return true;
  const fork = forkPoint(history, myTimeline);
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

export interface RaceInput {
  me: string;
  cluster: ClusterState;
  config: DynamicConfig;
  tags: TagsConfig;
  status: ServerStatus;
  peers: PeerStatus[];
}

export type RaceVerdict = { ok: true; why: string; risk?: string } | { ok: false; why: string };

/**
 * The risk of promoting `candidate` by hand in synchronous mode when the `sync` key does not list
 * it: commits acknowledged by the synchronous standbys alone would be lost. Null when there is none.
 */
export function manualPromotionRisk(
  cluster: ClusterState,
  synchronousMode: DynamicConfig['synchronous_mode'],
  candidate: string,
): string | null {
  if (!synchronousMode || !cluster.sync) return null;
  const syncMembers = nameList(cluster.sync.sync_standby);
  if (cluster.sync.leader === candidate || syncMembers.includes(candidate)) return null;
  return (
    `${candidate} is not a synchronous standby (synchronous: ${syncMembers.join(', ') || 'none'}); ` +
    'transactions acknowledged to clients but not yet received by it will be lost if it is promoted'
  );
}

function nameList(value: string | null | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * Whether this node may take the leader key when none exists. Mirrors Patroni's
 * `is_healthiest_node`: every refusal names the rule, the member and the numbers involved.
 */
export function evaluateRace(input: RaceInput): RaceVerdict {
  const { me, cluster, config, tags, status, peers } = input;
  const failover = cluster.failover;
  const manualTarget = failover?.member;
  if (manualTarget === me) {
    const why = `a manual failover/switchover names this member (${me}) as the candidate`;
    const risk = manualPromotionRisk(cluster, config.synchronous_mode, me);
    return risk ? { ok: true, why, risk } : { ok: true, why };
  }
  if (tags.nofailover) return { ok: false, why: `this member is tagged nofailover` };
  const notInFailsafe = failsafeRaceBlock(cluster, me, config.failsafe_mode);
  if (notInFailsafe) return { ok: false, why: notInFailsafe };
  let ignoredTarget = '';
  if (manualTarget && findMember(cluster, manualTarget)) {
    // Wait for a named candidate only while it can act on it (Patroni falls back to a normal race).
    const t = peers.find((p) => p.name === manualTarget);
    if (!t || (t.reachable && t.state === 'running')) {
      return { ok: false, why: `a manual failover/switchover to ${manualTarget} is in progress` };
    }
    ignoredTarget = ` (the requested candidate ${manualTarget} is ${t.reachable ? `not running: ${t.state ?? 'unknown state'}` : 'unreachable'})`;
  }
  // The member a switchover moves away from stands back while another healthy member can take over.
  if (failover?.leader === me && !manualTarget) {
    const other = peers.find(
      (p) => p.reachable && p.state === 'running' && !isPrimaryRole(p.role) && p.tags?.nofailover !== true,
    );
    if (other)
      return {
        ok: false,
        why: `a switchover away from this member is in progress (${other.name} can take over)`,
      };
  }
  if (!status.inRecovery) {
    return {
      ok: true,
      why: 'this member is still running as primary and no other member holds the leader key',
    };
  }
  const myWal = status.walPosition;
  const optime = cluster.status?.optime;
  if (optime !== undefined && optime - myWal > config.maximum_lag_on_failover) {
    return {
      ok: false,
      why:
        `my WAL position ${myWal} is ${optime - myWal} bytes behind the last known leader position ${optime}` +
        ` (maximum_lag_on_failover is ${config.maximum_lag_on_failover})`,
    };
  }
  if (config.synchronous_mode && cluster.sync) {
    const syncMembers = nameList(cluster.sync.sync_standby);
    if (cluster.sync.leader !== me && !syncMembers.includes(me)) {
      return {
        ok: false,
        why: `synchronous_mode is on and this member is not in the sync key (synchronous: ${syncMembers.join(', ') || 'none'}), so it may miss acknowledged commits`,
      };
    }
    const quorum = cluster.sync.quorum;
    if (typeof quorum === 'number' && quorum > 0) {
      // Each commit is on `quorum` of the listed standbys: seeing all but quorum - 1 of them
      // (this member included) guarantees one of those seen holds it.
      const seen = 1 + peers.filter((p) => p.reachable && syncMembers.includes(p.name)).length;
      const needed = syncMembers.length - quorum + 1;
      if (seen < needed) {
        return {
          ok: false,
          why: `quorum synchronous mode: only ${seen} of ${syncMembers.length} synchronous members answer, ${needed} are needed to be sure no acknowledged commit is missed`,
        };
      }
    }
  }
  const myPriority = typeof tags.failover_priority === 'number' ? tags.failover_priority : 1;
  // In synchronous mode only the members of the sync key may be promoted: only they compete.
  const syncOnly =
    config.synchronous_mode && cluster.sync
      ? [...nameList(cluster.sync.sync_standby), cluster.sync.leader ?? '']
      : null;
  for (const peer of peers) {
    if (peer.name === me || !peer.reachable) continue;
    if (isPrimaryRole(peer.role) && peer.state === 'running') {
      return { ok: false, why: `member ${peer.name} is still running as primary` };
    }
    if (peer.tags?.nofailover === true) continue;
    if (syncOnly && !syncOnly.includes(peer.name)) continue;
    const theirs = peer.walPosition ?? -1;
    if ((peer.timeline ?? 0) > status.timeline) {
      return {
        ok: false,
        why: `member ${peer.name} is on a newer timeline (${peer.timeline} > ${status.timeline})`,
      };
    }
    if (theirs > myWal) {
      return { ok: false, why: `member ${peer.name} is ahead (WAL ${theirs} > mine ${myWal})` };
    }
    const theirPriority = typeof peer.tags?.failover_priority === 'number' ? peer.tags.failover_priority : 1;
    if (theirs === myWal && theirPriority > myPriority) {
      return {
        ok: false,
        why: `member ${peer.name} is as advanced and has a higher failover_priority (${theirPriority} > ${myPriority})`,
      };
    }
  }
  return { ok: true, why: `no healthy member is ahead of my WAL position ${myWal}${ignoredTarget}` };
}

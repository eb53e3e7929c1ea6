/**
 * The leader race, as Patroni's `is_healthiest_node`: whether this node may take the leader key
 * when none exists, and whether any other member could take over from a leader that wants to
 * step down (`is_failover_possible`). Every refusal names the rule, the member and the numbers.
 */
import type { DynamicConfig, TagsConfig } from '../config/types.js';
import type { ClusterState } from '../dcs/types.js';
import type { ServerStatus } from '../postgres/types.js';
import { failsafeRaceBlock } from './failsafe.js';
import {
  failoverPriority,
  findMember,
  includesName,
  isNoFailover,
  isPrimaryRole,
  manualPromotionRisk,
  nameList,
  quorumModeActive,
  syncMembers,
  syncModeActive,
} from './rules.js';
import { clusterTimeline } from './timeline.js';
import type { PeerStatus } from './types.js';

export interface RaceInput {
  me: string;
  cluster: ClusterState;
  config: DynamicConfig;
  tags: TagsConfig;
  status: ServerStatus;
  /** Every other member's answer (members of the store and those remembered from before). */
  peers: PeerStatus[];
  /** The leader before the key vanished, when known (its failover_priority does not count). */
  formerLeader?: string | null;
}

export type RaceVerdict =
  | { ok: true; why: string; risk?: string }
  | {
      ok: false;
      why: string;
      /** The requested switchover cannot be completed safely: drop it. */ dropRequest?: boolean;
    };

/** A peer that answers as a running primary. */
function isRunningPrimary(p: PeerStatus): boolean {
  if (p.inRecovery !== undefined) return !p.inRecovery && p.state === 'running';
  return isPrimaryRole(p.role) && p.role !== 'standby_leader' && p.state === 'running';
}

/** Why a peer cannot be promoted (Patroni's `failover_limitation`), or null. */
export function failoverLimitation(p: PeerStatus): string | null {
  if (!p.reachable) return 'not reachable';
  if (isNoFailover(p.tags)) return 'not allowed to promote';
  if (p.watchdogFailed) return 'not watchdog capable';
  return null;
}

function behindClusterTimeline(cluster: ClusterState, timeline: number | undefined): string | null {
  const ct = clusterTimeline(cluster.history);
  if (ct === 0 || (timeline !== undefined && timeline >= ct)) return null;
  return timeline === undefined
    ? 'cannot figure out my timeline'
    : `my timeline ${timeline} is behind last known cluster timeline ${ct}`;
}

/** The standbys the sync key names, for a message. */
function syncNames(cluster: ClusterState): string {
  return nameList(cluster.sync?.sync_standby).join(', ') || 'none';
}

/**
 * A switchover (it names the old leader) in synchronous mode: only members of the sync key may
 * race, even the named candidate (as Patroni); a failover by hand may name anyone, with the risk.
 */
function outOfSwitchover(cluster: ClusterState, config: DynamicConfig, name: string): boolean {
  return (
    !!cluster.failover?.leader && syncModeActive(cluster, config) && !includesName(syncMembers(cluster), name)
  );
}

/** Whether this node may take the leader key when none exists. */
export function evaluateRace(input: RaceInput): RaceVerdict {
  const { me, cluster, config, tags, status } = input;
  const failover = cluster.failover;
  const manualTarget = failover?.member;
  if (status.inRecovery && outOfSwitchover(cluster, config, me))
    return {
      ok: false,
      why: `a switchover in synchronous mode: this member is not in the sync key (synchronous: ${syncNames(cluster)})`,
    };
  if (manualTarget === me && !failover?.leader) {
    // A failover by hand names its candidate: the operator's call, with the risk said out loud.
    const why = `a manual failover names this member (${me}) as the candidate`;
    const risk = manualPromotionRisk(cluster, config.synchronous_mode, me);
    return risk ? { ok: true, why, risk } : { ok: true, why };
  }
  if (manualTarget === me) {
    // A switchover promises that nothing acknowledged is lost. Its leader is gone without handing
    // over (pgha does not follow Patroni here, which promotes the candidate outright): the
    // candidate must pass the race like anyone, and drops the request when it cannot.
    const v = evaluateRace({ ...input, cluster: { ...cluster, failover: null } });
    if (v.ok) return { ...v, why: `the switchover names this member (${me}) and ${v.why}` };
    return {
      ok: false,
      why: `the switchover to this member cannot be completed safely: ${v.why}`,
      dropRequest: true,
    };
  }

  // A node still running as primary: it wins unless its timeline was overtaken (as Patroni: a
  // stressed leader whose key expired must not discard a promotion that happened meanwhile).
  if (!status.inRecovery) {
    const behind = behindClusterTimeline(cluster, status.timeline);
    if (behind) return { ok: false, why: behind };
    // Two running primaries (one started by hand, or both outlived a lost store): both must reach
    // the same verdict, so the newer timeline, then the longer WAL, then the smaller name wins.
    for (const p of input.peers) {
      if (!p.reachable || p.name === me || !isRunningPrimary(p)) continue;
      const [tl, wal] = [p.timeline ?? 0, p.walPosition ?? 0];
      if (
        tl > status.timeline ||
        (tl === status.timeline && (wal > status.walPosition || (wal === status.walPosition && p.name < me)))
      )
        return {
          ok: false,
          why: `member ${p.name} runs as primary too and is ahead (timeline ${tl}, WAL ${wal}; mine ${status.timeline}, ${status.walPosition})`,
        };
    }
    return {
      ok: true,
      why: 'this member is still running as primary and no other member holds the leader key',
    };
  }

  if (isNoFailover(tags))
    return {
      ok: false,
      why:
        tags.nofailover === true
          ? 'this member is tagged nofailover'
          : `this member has failover_priority ${String(tags.failover_priority)} (0 or less: never promoted)`,
    };
  const notInFailsafe = failsafeRaceBlock(cluster, me, config.failsafe_mode);
  if (notInFailsafe) return { ok: false, why: notInFailsafe };

  let ignoredTarget = '';
  if (manualTarget && findMember(cluster, manualTarget)) {
    // Wait for a named candidate only while it can act on it (Patroni falls back to a normal race).
    // A switchover candidate the sync key no longer names never can: waiting for it would leave
    // the cluster without a leader for good (Patroni's members wait; pgha's race on).
    const t = input.peers.find((p) => p.name === manualTarget);
    const barred = outOfSwitchover(cluster, config, manualTarget);
    if (!barred && (!t || (t.reachable && t.state === 'running' && failoverLimitation(t) === null))) {
      return { ok: false, why: `a manual failover/switchover to ${manualTarget} is in progress` };
    }
    ignoredTarget = ` (the requested candidate ${manualTarget} ${
      barred
        ? `is not in the sync key (synchronous: ${syncNames(cluster)})`
        : `is ${t?.reachable ? (failoverLimitation(t) ?? `not running: ${t.state ?? 'unknown state'}`) : 'unreachable'}`
    })`;
  }
  // The member a switchover moves away from stands back while another healthy member can take over.
  if (failover?.leader === me && !manualTarget) {
    const other = input.peers.find(
      (p) => p.reachable && p.state === 'running' && p.inRecovery !== false && failoverLimitation(p) === null,
    );
    if (other)
      return {
        ok: false,
        why: `a switchover away from this member is in progress (${other.name} can take over)`,
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
  if (config.check_timeline) {
    const behind = behindClusterTimeline(cluster, status.timeline);
    if (behind) return { ok: false, why: `${behind} (check_timeline)` };
  }

  const syncActive = syncModeActive(cluster, config);
  const quorumActive = quorumModeActive(cluster, config);
  const members = syncMembers(cluster);
  if (syncActive && !quorumActive && !includesName(members, me)) {
    return {
      ok: false,
      why: `synchronous_mode is on and this member is not in the sync key (synchronous: ${syncNames(cluster)}), so it may miss acknowledged commits`,
    };
  }

  // Compare with the others. In synchronous mode only those the sync key lets be promoted compete;
  // in quorum mode its voters count even when tagged nofailover, since their WAL position is a vote.
  const quorum = quorumActive ? (cluster.sync?.quorum ?? 0) : 0;
  const voters = quorumActive ? members : [];
  let votes = includesName(voters, me) ? 0 : -1;
  let ahead = 0;
  const leaderName = syncActive ? cluster.sync?.leader : input.formerLeader;
  const myPriority = failoverPriority(tags);
  for (const peer of input.peers) {
    if (peer.name === me || !peer.reachable) continue;
    const voter = includesName(voters, peer.name);
    if (isNoFailover(peer.tags) && !voter) continue;
    if (syncActive && !quorumActive && !includesName(members, peer.name)) continue;
    if (peer.watchdogFailed) continue;
    if (isRunningPrimary(peer)) return { ok: false, why: `member ${peer.name} is still running as primary` };
    const theirs = peer.walPosition ?? 0;
    if (theirs > myWal) {
      ahead++;
      // In synchronous mode the former leader may still answer and be ahead: it does not count.
      if (!syncActive || !includesName([cluster.sync?.leader ?? ''], peer.name))
        return { ok: false, why: `member ${peer.name} is ahead (WAL ${theirs} > mine ${myWal})` };
      continue;
    }
    if (theirs <= 0) continue; // PostgreSQL down there: neither a rival nor a vote
    const theirPriority = failoverPriority(peer.tags);
    const lowPriority =
      theirs === myWal && myPriority < theirPriority && !(leaderName && leaderName === peer.name);
    if (lowPriority && (!quorumActive || voter)) {
      return {
        ok: false,
        why: `member ${peer.name} is as advanced and has a higher failover_priority (${theirPriority} > ${myPriority})`,
      };
    }
    if (voter) votes++;
  }
  if (quorumActive && votes < quorum && !(ahead === 0 && cluster.sync?.leader === me)) {
    return {
      ok: false,
      why:
        `quorum synchronous mode: ${Math.max(votes, 0)} of the members ${members.join(', ')} confirm no one is ahead, ` +
        `${quorum} are needed to be sure no acknowledged commit is missed`,
    };
  }
  return { ok: true, why: `no healthy member is ahead of my WAL position ${myWal}${ignoredTarget}` };
}

export interface FailoverPossibleInput {
  me: string;
  cluster: ClusterState;
  config: DynamicConfig;
  peers: PeerStatus[];
  /** The WAL position candidates must have reached (a shutdown checkpoint); 0: use the lag rule. */
  clusterLsn?: number;
  /** Leave the requested failover candidate out (it was found unhealthy). */
  excludeCandidate?: boolean;
}

/**
 * Whether another member could take over (Patroni's `is_failover_possible`): healthy, allowed to
 * promote, not lagging, on the cluster timeline under check_timeline; in quorum mode enough of them.
 */
export function failoverPossible(input: FailoverPossibleInput): { possible: boolean; why: string } {
  const { me, cluster, config } = input;
  const fo = cluster.failover;
  const syncActive = syncModeActive(cluster, config);
  const quorumActive = quorumModeActive(cluster, config);
  const members = syncMembers(cluster);
  const candidates = input.peers.filter((p) => {
    if (p.name === me) return false;
    if (fo?.member && !input.excludeCandidate && p.name !== fo.member) return false;
    if (input.excludeCandidate && fo?.member === p.name) return false;
    if (syncActive && !quorumActive && !includesName(members, p.name)) return false;
    return true;
  });
  let votes = -1;
  const notes: string[] = [];
  const ct = clusterTimeline(cluster.history);
  const optime = cluster.status?.optime ?? 0;
  for (const p of candidates) {
    const limit = failoverLimitation(p);
    const wal = p.walPosition ?? 0;
    if (limit) notes.push(`${p.name} is ${limit}`);
    else if (p.inRecovery === false) notes.push(`${p.name} runs as primary`);
    else if (wal <= 0) notes.push(`${p.name} has no running PostgreSQL`);
    else if (input.clusterLsn ? wal < input.clusterLsn : optime - wal > config.maximum_lag_on_failover)
      notes.push(`${p.name} exceeds maximum replication lag`);
    else if (config.check_timeline && (!p.timeline || p.timeline < ct))
      notes.push(`timeline ${p.timeline ?? '?'} of ${p.name} is behind the cluster timeline ${ct}`);
    else votes++;
  }
  if (candidates.length === 0) notes.push('no candidates');
  const checkQuorum = quorumActive && !(fo?.member && !input.excludeCandidate);
  const quorum = cluster.sync?.quorum ?? 0;
  if (checkQuorum && votes < quorum)
    return {
      possible: false,
      why: `quorum requirement ${quorum} cannot be reached (${notes.join('; ') || 'no healthy voters'})`,
    };
  if (votes >= 0) return { possible: true, why: `${votes + 1} healthy candidate(s)` };
  return { possible: false, why: notes.join('; ') || 'no healthy candidate' };
}

/**
 * With `watchdog.mode: required`, why this node may not lead (its watchdog could not be armed:
 * `problem`); null when it may. Other modes never refuse (as Patroni).
 */
export function watchdogRule(
  mode: 'off' | 'automatic' | 'required' | undefined,
  problem: string | null,
): string | null {
  if (mode !== 'required' || problem === null) return null;
  return `watchdog.mode is required and the watchdog is unusable: ${problem}`;
}

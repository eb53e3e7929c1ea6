/**
 * The switchover plan, step by step, as pure functions the runner follows:
 * 1. pick the candidate (the named one if it is healthy; else the most advanced healthy replica,
 *    in synchronous mode one the `sync` key lets be promoted);
 * 2. wait (without holding the loop) until it streams from this primary: the walsender hands the
 *    shutdown checkpoint only to receivers connected when it stops;
 * 3. checkpoint, fast stop, and wait until the candidate received the shutdown checkpoint, at most
 *    until the fence deadline of the last renewal;
 * 4. release the key and follow the candidate — or, when it never received our last WAL, restart
 *    as primary only if the key is provably still ours.
 */
import type { ClusterState } from '../dcs/types.js';
import { failoverLimitation } from './race.js';
import { includesName, syncMembers } from './rules.js';
import type { PeerStatus } from './types.js';

/** How long a switchover waits for its candidate to stream from us (a walreceiver retries every 5 s). */
export const SWITCHOVER_CONNECT_WAIT_MS = 12_000;

export type CandidateChoice = { ok: true; candidate: PeerStatus } | { ok: false; why: string };

function describePeer(p: PeerStatus | undefined): string {
  if (!p) return 'not a member';
  if (!p.reachable) return 'its REST API did not answer';
  const limit = failoverLimitation(p);
  return `role ${p.role ?? '?'}, state ${p.state ?? '?'}${limit && limit !== 'not reachable' ? `, ${limit}` : ''}`;
}

/** Step 1: the member to hand over to. */
export function chooseCandidate(opts: {
  cluster: ClusterState;
  peers: PeerStatus[];
  requested: string | null;
  synchronous: boolean;
}): CandidateChoice {
  const healthy = opts.peers.filter(
    (p) => p.reachable && p.inRecovery !== false && p.state === 'running' && failoverLimitation(p) === null,
  );
  if (opts.requested) {
    const c = healthy.find((p) => p.name === opts.requested);
    if (c) return { ok: true, candidate: c };
    return {
      ok: false,
      why: `candidate ${opts.requested} is not a healthy running replica (${describePeer(opts.peers.find((p) => p.name === opts.requested))})`,
    };
  }
  const members = syncMembers(opts.cluster);
  const allowed =
    opts.synchronous && members.length > 0 ? healthy.filter((p) => includesName(members, p.name)) : healthy;
  const best = [...allowed].sort((a, b) => (b.walPosition ?? 0) - (a.walPosition ?? 0))[0];
  if (best) return { ok: true, candidate: best };
  return {
    ok: false,
    why: opts.synchronous
      ? 'no healthy running synchronous standby to switch over to'
      : 'no healthy running replica without nofailover to switch over to',
  };
}

export type ConnectStep = 'proceed' | 'wait' | 'cancel';

/** Step 2: go on once the candidate streams from us; give up after SWITCHOVER_CONNECT_WAIT_MS. */
export function connectStep(streaming: boolean, waitedMs: number): ConnectStep {
  if (streaming) return 'proceed';
  return waitedMs < SWITCHOVER_CONNECT_WAIT_MS ? 'wait' : 'cancel';
}

/** How long step 3 may wait for the candidate after the stop (ms): up to the fence deadline. */
export function shutdownWaitMs(fenceDeadlineMono: number, nowMono: number): number {
  return Math.max(1000, Math.min(10_000, fenceDeadlineMono - nowMono));
}

export type AfterStop = 'release_and_follow' | 'restart_as_primary' | 'stay_stopped';

/**
 * Step 4. Releasing the key is safe only once the candidate holds our last WAL (else commits
 * acknowledged before the stop would be lost by its promotion). Restarting as primary is safe only
 * while the key is provably ours (a compare-and-set renewal succeeded).
 */
export function afterStop(opts: { candidateCaughtUp: boolean; keyStillOurs: boolean }): AfterStop {
  if (opts.candidateCaughtUp) return 'release_and_follow';
  return opts.keyStillOurs ? 'restart_as_primary' : 'stay_stopped';
}

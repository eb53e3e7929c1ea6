/**
 * The VIP's decisions, as pure functions of what was observed, so they are unit-tested with plain
 * objects; `manager.ts` observes (etcd, the local router, the interface) and carries them out.
 *
 * The rule that keeps the address on one node at most: the address is on the interface only while
 * this node holds the VIP key in etcd on a lease that cannot have expired yet (send time of the last
 * renewal that confirmed the key + ttl − margin), and the key is released only once the address is
 * gone. A node that cannot renew drops the address before its lease can expire, so whoever takes
 * the key next finds the address free.
 */

import { failsafeView, type PrimaryAnswer } from '../ha/failsafe-view.js';
import { fenceDeadline, safetyMarginMs } from '../ha/timing.js';

export type VipMode = 'leader' | 'router';

/**
 * Until when (monotonic ms) a key confirmed on a lease renewed at `leaseSentAt` may be relied on:
 * the agent's fence deadline, with the same margin (ha/timing.ts).
 */
export function heldUntil(leaseSentAt: number, ttl: number): number {
  return fenceDeadline(leaseSentAt, ttl, safetyMarginMs(ttl));
}

export interface Eligibility {
  eligible: boolean;
  /** Why, in the user's terms (logged when it changes). */
  why: string;
}

export interface EligibilityInput {
  mode: VipMode;
  me: string;
  /** Leader mode: the `leader` key's holder at the last good etcd read (null: none; undefined: no read yet). */
  leader?: string | null;
  /** Router mode: the local router's tracked health, and why. */
  router?: HealthState;
  /** The process is shutting down. */
  stopping?: boolean;
}

/** Whether this node may hold the VIP now. */
export function eligibility(i: EligibilityInput): Eligibility {
  if (i.stopping) return { eligible: false, why: 'pgha vip is stopping' };
  if (i.mode === 'leader') {
    if (i.leader === undefined) return { eligible: false, why: 'the leader key has not been read yet' };
    if (i.leader === null) return { eligible: false, why: 'no node holds the leader key' };
    if (i.leader !== i.me) return { eligible: false, why: `${i.leader} holds the leader key` };
    return { eligible: true, why: 'this node holds the leader key' };
  }
  if (!i.router) return { eligible: false, why: 'the local router has not been checked yet' };
  if (!i.router.healthy) return { eligible: false, why: `the local router is down: ${i.router.why}` };
  return { eligible: true, why: 'the local router is healthy' };
}

export type KeyStep = 'claim' | 'release' | 'none';

/**
 * What to do with the VIP key: an eligible node claims it (which also confirms a key it already
 * holds); one that is not releases a key it holds, but only once the address is off the interface.
 */
export function keyStep(i: {
  eligible: boolean;
  keyOurs: boolean;
  present: boolean;
  /** False while `takeoverBlock` holds: a key not ours is not claimed (default true). */
  takeover?: boolean;
}): KeyStep {
  if (i.eligible && (i.keyOurs || i.takeover !== false)) return 'claim';
  if (i.keyOurs && !i.present) return 'release';
  return 'none';
}

export interface AddressInput {
  now: number;
  eligible: boolean;
  /** Until when (ms) the key is known to be ours; null when it is not (or no longer known to be). */
  heldUntil: number | null;
  /** The key is held under our name by another lease (another `pgha vip` with our name, or our previous run). */
  sameNameElsewhere: boolean;
  /** The address is on the interface now. */
  present: boolean;
  /** When the kernel lifetime we last gave the address ends (null: not set by this process). */
  lifetimeEndsAt: number | null;
  /** Renew the lifetime only once less than this is left (saves an `ip` run on most checks). */
  renewWithinMs: number;
  /** Why the node is (not) eligible, and who holds the key, for the message. */
  why: string;
  holder: string | null;
}

export type AddressStep =
  | { step: 'add' | 'renew'; lifetimeS: number; why: string }
  | { step: 'remove'; why: string }
  | { step: 'none'; why: string };

/**
 * What to do with the address on the interface. It is added (or its kernel lifetime renewed) only
 * while the key is ours and eligible; the lifetime ends no later than the deadline, so even a
 * killed `pgha vip` cannot leave the address behind past the moment another node may take it.
 * Skipping a renewal is always safe: the lifetime only ends earlier than it could.
 */
export function addressStep(i: AddressInput): AddressStep {
  const held = i.heldUntil !== null && i.now < i.heldUntil;
  if (i.eligible && held) {
    const lifetimeS = Math.floor((i.heldUntil! - i.now) / 1000);
    // The kernel counts whole seconds (and may round up by one): below one, let it go now.
    if (lifetimeS < 1) {
      return i.present
        ? { step: 'remove', why: 'the key could not be renewed before the lease deadline' }
        : { step: 'none', why: 'the key could not be renewed before the lease deadline' };
    }
    if (i.present && i.lifetimeEndsAt !== null && i.lifetimeEndsAt - i.now > i.renewWithinMs)
      return { step: 'none', why: i.why };
    return { step: i.present ? 'renew' : 'add', lifetimeS, why: i.why };
  }
  if (!i.present) return { step: 'none', why: i.why };
  // Our name on another lease: a previous run of this node (its address expires with the kernel
  // lifetime it set) or a second `pgha vip` under the same name; removing would fight it.
  if (!held && i.sameNameElsewhere)
    return { step: 'none', why: 'the key is held under this node name by another pgha vip process' };
  if (!i.eligible) return { step: 'remove', why: i.why };
  if (i.heldUntil !== null)
    return { step: 'remove', why: 'the key could not be renewed before the lease deadline' };
  return {
    step: 'remove',
    why: i.holder ? `${i.holder} holds the VIP key` : 'this node does not hold the VIP key',
  };
}

// ---- the local router's health (router mode) ----------------------------------------------------

export interface ProbeResult {
  ok: boolean;
  /** The connection was refused: nothing listens, the router is not running. */
  refused: boolean;
  detail: string;
}

export interface HealthState {
  healthy: boolean;
  /** Consecutive results that disagree with `healthy`. */
  streak: number;
  why: string;
}

export const INITIAL_HEALTH: HealthState = { healthy: false, streak: 0, why: 'not checked yet' };

/**
 * Keepalived's `fall`/`rise`: a healthy router goes down after `fall` failed checks in a row, at
 * once when the connection is refused (the process is gone, no point waiting); a down router comes
 * back after `rise` good checks in a row.
 */
export function nextHealth(
  prev: HealthState,
  r: ProbeResult,
  opts: { fall: number; rise: number },
): HealthState {
  if (r.ok) {
    if (prev.healthy) return { healthy: true, streak: 0, why: r.detail };
    const streak = prev.streak + 1;
    return streak >= opts.rise
      ? { healthy: true, streak: 0, why: r.detail }
      : { healthy: false, streak, why: `${r.detail} (${streak} of ${opts.rise} good checks)` };
  }
  if (!prev.healthy) return { healthy: false, streak: 0, why: r.detail };
  const streak = prev.streak + 1;
  return r.refused || streak >= opts.fall
    ? { healthy: false, streak: 0, why: r.detail }
    : { healthy: true, streak, why: `${r.detail} (${streak} of ${opts.fall} failed checks)` };
}

// ---- failsafe_mode ------------------------------------------------------------------------------

/**
 * With `failsafe_mode`, the VIP stays where it is while a primary cut off from etcd runs on in
 * failsafe mode: a node that does not hold the VIP key takes it only while its last etcd read
 * shows a leader key. A failsafe primary holds no leader key (it expired), and no member takes it
 * while that primary calls it, so no node takes the address from its holder meanwhile (in leader
 * mode this already follows from `eligibility`; in router mode a node whose etcd still answers
 * would otherwise claim the key as soon as the holder's lease ran out). Null: a takeover is allowed.
 */
export function takeoverBlock(i: {
  failsafeMode: boolean;
  leader: string | null | undefined;
}): string | null {
  if (!i.failsafeMode || i.leader) return null;
  return 'failsafe_mode is on and no node holds the leader key: the VIP stays where it is';
}

export interface FailsafeHoldInput {
  failsafeMode: boolean;
  /** Monotonic ms. */
  now: number;
  /** The VIP key's own deadline (`heldUntil`); null: the key is not ours. */
  keyHeldUntil: number | null;
  /** The leader at the last good etcd read. */
  leader: string | null;
  /** Each member's latest answer to `GET /primary` since etcd stopped answering. */
  answers: readonly PrimaryAnswer[];
  /** The VIP key's ttl and the cluster's dynamic ttl, in seconds. */
  vipTtl: number;
  clusterTtl: number;
}

/**
 * How long the holder may keep the address past its key's deadline under `failsafe_mode`: while
 * the last known leader's agent says it is the primary in failsafe mode, each confirmation
 * counting as a renewal sent when it was asked (the same `heldUntil` rule, with the shorter of the
 * two ttls). The invariant is `failsafeView`'s (ha/failsafe-view.ts). Null: it may not.
 */
export function failsafeHoldUntil(i: FailsafeHoldInput): { until: number | null; why: string } {
  if (i.keyHeldUntil === null) return { until: null, why: 'the VIP key is not ours' };
  const ttl = Math.min(i.vipTtl, i.clusterTtl);
  // Rule (b) alone: a confirmation keeps the address on its own terms, also while the key still
  // does, so the hold does not start only once the key's deadline has passed (the address step lets
  // an address go in the last second before its deadline).
  const v = failsafeView({
    enabled: i.failsafeMode,
    now: i.now,
    viewDeadline: null,
    primary: i.leader,
    answers: i.answers,
    ttlS: ttl,
    marginMs: safetyMarginMs(ttl),
  });
  return v.act && v.failsafe ? { until: v.until, why: v.why } : { until: null, why: v.why };
}

/**
 * `failsafe_mode` as the router and the VIP see it: whether they may go on acting on the last
 * known primary once their view from etcd is too old to trust. A pure function of what they
 * observed, tested with plain objects; `failsafe-probe.ts` asks the members, the router and the
 * VIP carry the answer out.
 *
 * The invariant (`D(s)` = `fenceDeadline(s, ttl, margin)` of ha/timing.ts: for the router margin 0,
 * which is its `staleViewDeadline`; for the VIP its own key rule `heldUntil`): at monotonic time
 * `now` the last known primary P is acted on only if
 *   (a) the last good etcd read still holds: `now < viewDeadline` (the rule without failsafe), or
 *   (b) `failsafe_mode` is on in the last config read, P's latest answer to `GET /primary`, sent at
 *       `s`, was 200 with `failsafe_mode_is_active: true`, `now < D(s)`, and no other member's
 *       latest answer says it is the primary.
 * So nothing is routed to a node that does not itself say primary + failsafe active, a
 * non-confirming answer (503, not active) stops it at once, as do two missed answers in a row (a
 * timeout, a refused connection: `withAnswer`), and with no answer at all it stops at `D(s)`: the rule for an etcd read sent at `s`, counted from the last
 * confirmation instead. That is no later than the agent itself may write: it answers
 * "active" only after a failsafe round that started at `t0 ≤ s` was confirmed by every member, its
 * fence is armed from `t0` (it stops at `t0 + ttl − margin`), and a member it called does not race
 * for the leader key before `t0 + ttl`.
 */
import { fenceDeadline } from './timing.js';

/** One member's answer to `GET /primary`, as the router or the VIP saw it. */
export interface PrimaryAnswer {
  member: string;
  /** Monotonic ms at which the request was sent. */
  sentAt: number;
  /** The HTTP status; null when there was no answer (refused, timed out). */
  status: number | null;
  /** The body's `failsafe_mode_is_active`. */
  failsafeActive: boolean;
  /** What went wrong, for logs (no answer, unreadable body). */
  detail?: string;
  /** Answers missed since this one (see `withAnswer`). */
  missed?: number;
}

export interface FailsafeViewInput {
  /** `failsafe_mode` in the cluster's dynamic config, as last read from etcd. */
  enabled: boolean;
  /** Monotonic ms. */
  now: number;
  /** Until when the last good etcd read may be acted on (monotonic ms); null: never read. */
  viewDeadline: number | null;
  /** The primary of the last good read; null: there was none. */
  primary: string | null;
  /** The latest answer of each member, sent after the last good read (`latestAnswers`). */
  answers: readonly PrimaryAnswer[];
  /** A confirmation sent at `s` may be acted on until `fenceDeadline(s, ttlS, marginMs)`. */
  ttlS: number;
  marginMs: number;
}

export type FailsafeView =
  /** Act on `primary` until `until`; `failsafe`: only because it confirmed failsafe mode. */
  { act: true; until: number; failsafe: boolean; why: string } | { act: false; why: string };

/** Whether an answer says: I am the primary and failsafe mode keeps me so. */
export function confirmsFailsafe(a: PrimaryAnswer): boolean {
  return a.status === 200 && a.failsafeActive;
}

function describe(a: PrimaryAnswer): string {
  if (a.status === null) return `no answer (${a.detail ?? 'no detail'})`;
  if (a.status !== 200) return `answers ${a.status} on /primary`;
  return 'answers 200 on /primary without failsafe_mode_is_active';
}

/** Whether the last known primary may still be acted on at `now` (see the invariant above). */
export function failsafeView(i: FailsafeViewInput): FailsafeView {
  if (i.primary === null) return { act: false, why: 'no primary was known' };
  if (i.viewDeadline !== null && i.now < i.viewDeadline)
    return { act: true, until: i.viewDeadline, failsafe: false, why: `leader ${i.primary} per etcd` };
  if (!i.enabled) return { act: false, why: 'failsafe_mode is off' };
  const mine = i.answers.find((a) => a.member === i.primary);
  if (!mine) return { act: false, why: `${i.primary} has not confirmed failsafe mode` };
  if (!confirmsFailsafe(mine)) return { act: false, why: `${i.primary} ${describe(mine)}` };
  const other = i.answers.find((a) => a.member !== i.primary && a.status === 200);
  if (other) return { act: false, why: `${other.member} also says it is the primary` };
  const until = fenceDeadline(mine.sentAt, i.ttlS, i.marginMs);
  if (i.now >= until)
    return { act: false, why: `${i.primary} confirmed failsafe mode last ${i.now - mine.sentAt} ms ago` };
  return {
    act: true,
    until,
    failsafe: true,
    why: `${i.primary} confirms it is the primary in failsafe mode`,
  };
}

/**
 * Missed answers in a row (a timeout, a refused connection) after which a member's last real
 * answer no longer stands; HAProxy's `fall` does the same for its checks. One miss on a loaded
 * machine must not move every session away and back; the window of the last confirmation still
 * bounds how long it is acted on.
 */
export const MISSES_BEFORE_SILENT = 2;

/**
 * `answers` with `a` in place of its member's older answer (answers can arrive out of order). A
 * missed answer replaces a real one only after {@link MISSES_BEFORE_SILENT} in a row; until then the
 * real one stands, counting the misses (its own window keeps running from when it was asked).
 */
export function withAnswer(answers: readonly PrimaryAnswer[], a: PrimaryAnswer): PrimaryAnswer[] {
  const old = answers.find((x) => x.member === a.member);
  if (old && old.sentAt > a.sentAt) return [...answers];
  const others = answers.filter((x) => x.member !== a.member);
  if (a.status === null && old && old.status !== null) {
    const missed = (old.missed ?? 0) + 1;
    if (missed < MISSES_BEFORE_SILENT) return [...others, { ...old, missed }];
  }
  return [...others, a];
}

/**
 * Synchronous replication, as Patroni's `synchronous_mode`: the leader owns
 * `synchronous_standby_names` and the `sync` key, and changes them in an order that keeps one
 * promise at every moment: any member the `sync` key allows to be promoted holds every
 * acknowledged commit (for quorum mode: enough of them can be asked to find one that does).
 */
import type { Member, SyncKey } from '../dcs/types.js';
import type { ServerStatus, WalSender } from '../postgres/types.js';
import { quorumTransitions } from './quorum.js';
import { isNoFailover } from './rules.js';

export interface SyncPlanInput {
  me: string;
  mode: boolean | 'quorum';
  strict: boolean;
  /** synchronous_node_count */
  count: number;
  members: Member[];
  replication: ServerStatus['replication'];
  /** The `sync` key as read (ignored unless written by this leader). */
  syncKey: SyncKey | null;
  /** synchronous_standby_names in force now. */
  currentSsn: string;
  /** The primary's WAL position when `currentSsn` took effect. */
  ssnSince: number;
  /**
   * `maximum_lag_on_syncnode` (bytes): a standby further behind than this is not picked, and one
   * in the key is replaced. 0 or less: never (Patroni's default, -1).
   */
  maxLag?: number;
  /** synchronous_commit in force on the primary: which position of a standby counts (see syncLsn). */
  synchronousCommit?: string;
  /** The primary's current WAL position (the reference for the lag when one standby streams). */
  primaryLsn?: number;
  /**
   * Standbys that stream but have answered nothing while WAL sent to them waited (silentStandbys,
   * trackSilence): left out, as if they did not stream.
   */
  silent?: readonly string[];
}

export interface SyncPlan {
  /** Value for synchronous_standby_names. */
  ssn: string;
  /** New `sync` key value, or null to leave the key as it is. */
  syncKey: { leader: string | null; sync_standby: string | null; quorum: number | null } | null;
  why: string;
  /** A step on the way: the next one can follow as soon as this one has taken effect. */
  pending: boolean;
}

/** Splits a comma-separated member list. */
export function syncNames(value: string | null | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function quote(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/** Renders synchronous_standby_names for a set of members. */
export function renderSsn(mode: boolean | 'quorum', names: string[], count: number, strict: boolean): string {
  if (names.length === 0) return strict ? '*' : '';
  if (mode === 'quorum') return `ANY ${Math.min(count, names.length)} (${names.map(quote).join(',')})`;
  // Every name listed is required, so their order means nothing: sorted, the text changes (and
  // PostgreSQL is reloaded) only when the set does.
  return `FIRST ${names.length} (${[...names].sort().map(quote).join(',')})`;
}

/**
 * One step towards the desired synchronous set. Called each leader cycle; a transition takes a
 * few cycles because each step waits until PostgreSQL confirms the previous one.
 */
export function planSync(input: SyncPlanInput): SyncPlan {
  const { me, mode, strict, count } = input;
  if (!mode) {
    const clear = input.syncKey && (input.syncKey.leader !== null || input.syncKey.sync_standby !== null);
    return {
      ssn: '',
      syncKey: clear ? { leader: null, sync_standby: null, quorum: null } : null,
      why: 'synchronous_mode is off',
      pending: false,
    };
  }
  if (mode === 'quorum') throw new Error('quorum mode is planned by planQuorum');
  const rows = new Map(input.replication.map((r) => [r.application_name, r]));
  const lsnOf = (n: string) => syncLsn(rows.get(n), input.synchronousCommit);
  const key = input.syncKey && input.syncKey.leader === me ? syncNames(input.syncKey.sync_standby) : [];
  const eligible = syncCandidates(input, key);
  const confirmed = new Set(
    input.replication
      .filter((r) => r.sync_state === 'sync' || r.sync_state === 'quorum')
      .map((r) => r.application_name),
  );

  // FIRST n: every listed standby acknowledges every commit, so each one listed in the key may
  // be promoted. The first `count` candidates (standbys already in the key come first) are wanted.
  const desired = eligible.slice(0, count);
  const target = renderSsn(true, desired, count, strict);
  const dropped = key.filter((n) => !desired.includes(n));
  if (dropped.length > 0) {
    // Shrink the key first: members left in it still acknowledged every commit.
    const remaining = key.filter((n) => desired.includes(n));
    return {
      ssn: input.currentSsn,
      syncKey: { leader: me, sync_standby: keyValue(remaining), quorum: null },
      why: `${dropped.join(', ')} no longer synchronous (not streaming, silent, nosync, lagging more than maximum_lag_on_syncnode, or above synchronous_node_count)`,
      pending: true,
    };
  }
  const added = desired.filter((n) => !key.includes(n));
  if (added.length > 0) {
    // Require the new standbys too, then list them in the key once PostgreSQL confirms them.
    const both = renderSsn(true, [...key, ...added], count, strict);
    if (input.currentSsn !== both)
      return {
        ssn: both,
        syncKey: null,
        why: `asking ${added.join(', ')} to acknowledge commits`,
        pending: true,
      };
    // Commits from before the change are only on the old set: a new standby must also have
    // flushed everything up to the moment it was first required.
    const caughtUp = (n: string) => confirmed.has(n) && lsnOf(n) >= input.ssnSince;
    if (added.every(caughtUp)) {
      return {
        ssn: both,
        syncKey: { leader: me, sync_standby: keyValue(desired), quorum: null },
        why: `${added.join(', ')} now synchronous`,
        pending: false,
      };
    }
    return {
      ssn: both,
      syncKey: null,
      why: `waiting for ${added.filter((n) => !caughtUp(n)).join(', ')} to report sync`,
      pending: true,
    };
  }
  if (input.syncKey?.leader === me && input.syncKey.sync_standby !== keyValue(desired)) {
    // The same members written in another order (an older agent): rewrite it as Patroni does.
    return {
      ssn: target,
      syncKey: { leader: me, sync_standby: keyValue(desired), quorum: null },
      why: 'sync key sorted',
      pending: false,
    };
  }
  if (input.syncKey?.leader !== me && desired.length === 0) {
    return {
      ssn: target,
      syncKey: { leader: me, sync_standby: null, quorum: null },
      why: 'no synchronous standby available',
      pending: false,
    };
  }
  return {
    ssn: target,
    syncKey: null,
    why: `synchronous: ${desired.join(', ') || (strict ? 'none (strict: writes wait)' : 'none')}`,
    pending: false,
  };
}

/** The key's `sync_standby` as Patroni writes it: the names sorted, comma-separated; null for none. */
export function keyValue(names: string[]): string | null {
  return names.length === 0 ? null : [...names].sort().join(',');
}

/**
 * The position of a standby that synchronous_commit waits for, as Patroni picks it: replay with
 * `remote_apply`, write with `remote_write`, flush otherwise. 0 when the standby reports none.
 */
export function syncLsn(
  row: ServerStatus['replication'][number] | undefined,
  synchronousCommit?: string,
): number {
  if (!row) return 0;
  const lsn =
    synchronousCommit === 'remote_apply'
      ? row.replay_lsn
      : synchronousCommit === 'remote_write'
        ? row.write_lsn
        : row.flush_lsn;
  return lsn ?? 0;
}

/**
 * The members that may acknowledge commits at all, in the order of `input.members`: streaming from
 * this leader, not silent, and not tagged `nosync`.
 */
function streamingCandidates(input: SyncPlanInput): Member[] {
  const rows = new Map(input.replication.map((r) => [r.application_name, r]));
  return input.members.filter(
    (m) =>
      m.name !== input.me &&
      m.data.tags?.nosync !== true &&
      rows.get(m.name)?.state === 'streaming' &&
      !input.silent?.includes(m.name),
  );
}

/**
 * The members that may be synchronous standbys, best first, as Patroni's `current_state`: streaming
 * from this leader and not tagged `nosync`; those already in the key first (so a healthy one is
 * never swapped for one that merely got ahead), then by position (syncLsn), members that may be
 * promoted before those tagged nofailover. With `maximum_lag_on_syncnode` above 0, a member further
 * behind than that from the most advanced standby (from the primary when only one streams) is left
 * out — a stuck standby in the key is thus replaced by one that keeps up.
 */
export function syncCandidates(input: SyncPlanInput, key: string[]): string[] {
  const rows = new Map(input.replication.map((r) => [r.application_name, r]));
  const lsnOf = (n: string) => syncLsn(rows.get(n), input.synchronousCommit);
  const ordered = streamingCandidates(input)
    .map((m) => ({ name: m.name, inKey: key.includes(m.name), noFailover: isNoFailover(m.data.tags) }))
    .sort(
      (a, b) =>
        Number(a.noFailover) - Number(b.noFailover) ||
        Number(b.inKey) - Number(a.inKey) ||
        lsnOf(b.name) - lsnOf(a.name) ||
        a.name.localeCompare(b.name),
    );
  const maxLag = input.maxLag ?? -1;
  if (maxLag <= 0) return ordered.map((c) => c.name);
  const reference =
    ordered.length > 1 ? Math.max(...ordered.map((c) => lsnOf(c.name))) : (input.primaryLsn ?? 0);
  return ordered.filter((c) => reference - lsnOf(c.name) <= maxLag).map((c) => c.name);
}

/** synchronous_standby_names as the leader wrote it: `ANY n (a,b)`, `FIRST n (a,b)`, `a`, `*`, ''. */
export function parseSsn(ssn: string): { any: boolean; numsync: number; names: string[] } {
  const t = ssn.trim();
  if (t === '') return { any: false, numsync: 0, names: [] };
  const m = /^(FIRST|ANY)\s+(\d+)\s*\((.*)\)$/i.exec(t);
  const list = (text: string) =>
    text
      .split(',')
      .map((x) =>
        x
          .trim()
          .replace(/^"(.*)"$/, '$1')
          .replace(/""/g, '"'),
      )
      .filter((x) => x !== '');
  if (m) return { any: m[1]?.toUpperCase() === 'ANY', numsync: Number(m[2]), names: list(m[3] ?? '') };
  const names = list(t);
  return { any: false, numsync: names.length > 0 ? 1 : 0, names };
}

/** One change the leader makes for quorum commit, in order: the `sync` key or the list. */
export type QuorumChange =
  | { kind: 'key'; value: { leader: string; sync_standby: string | null; quorum: number } }
  | { kind: 'ssn'; ssn: string };

/**
 * Quorum commit (`synchronous_mode: quorum`, Patroni 4): the changes of this cycle, from the key
 * and the list in force towards every streaming member listed (quorum.ts orders them safely).
 * A member counts as confirmed once it reports `quorum` and has flushed everything committed
 * since the list last changed (`ssnSince`).
 */
export function planQuorum(input: SyncPlanInput): { changes: QuorumChange[]; why: string; pending: boolean } {
  const { me, strict, count } = input;
  const rows = new Map(input.replication.map((r) => [r.application_name, r]));
  const active = streamingCandidates(input).map((m) => m.name);
  const current = parseSsn(input.currentSsn);
  const sync = current.names.filter((n) => n !== '*');
  const confirmed = sync.filter((n) => {
    const r = rows.get(n);
    return (
      !!r && (r.sync_state === 'quorum' || r.sync_state === 'sync') && (r.flush_lsn ?? 0) >= input.ssnSince
    );
  }).length;
  const key = input.syncKey && input.syncKey.leader ? input.syncKey : null;
  if (strict && active.length === 0) {
    // Strict: with nobody to acknowledge, writes wait for any standby, as Patroni's '*'.
    const changes: QuorumChange[] = [];
    if (input.currentSsn !== '*') changes.push({ kind: 'ssn', ssn: '*' });
    if (!key || key.leader !== me || key.sync_standby !== null || (key.quorum ?? 0) !== 0)
      changes.push({ kind: 'key', value: { leader: me, sync_standby: null, quorum: 0 } });
    return { changes, why: 'strict quorum mode and no standby streams: writes wait for one', pending: false };
  }
  const steps = quorumTransitions({
    leader: key?.leader ?? me,
    quorum: key?.quorum ?? 0,
    voters: syncNames(key?.sync_standby),
    numsync: sync.length > 0 ? current.numsync : 0,
    sync,
    numsyncConfirmed: confirmed,
    active,
    wanted: count,
    leaderWanted: me,
  });
  const changes: QuorumChange[] = [];
  // A `restart` step: what follows it waits until the changes before it have taken effect; and
  // changes made now may let the next plan go further.
  const pending = steps.length > 0;
  for (const t of steps) {
    if (t.kind === 'restart') break;
    if (t.kind === 'key')
      changes.push({
        kind: 'key',
        value: {
          leader: t.leader,
          sync_standby: t.voters.length ? t.voters.join(',') : null,
          quorum: t.quorum,
        },
      });
    else
      changes.push({
        kind: 'ssn',
        ssn: t.numsync > 0 ? renderSsn('quorum', t.sync, t.numsync, strict) : strict ? '*' : '',
      });
  }
  const why =
    changes.length === 0
      ? `quorum ${key?.quorum ?? 0} of ${key?.sync_standby ?? 'none'} (${input.currentSsn || 'no list'})`
      : changes
          .map((c) =>
            c.kind === 'key'
              ? `sync key: quorum ${c.value.quorum} of ${c.value.sync_standby ?? 'none'}`
              : `synchronous_standby_names = '${c.ssn}'`,
          )
          .join(', then ');
  return { changes, why, pending };
}

/**
 * How long a streaming standby may leave WAL sent to it unanswered before the leader stops counting
 * it as streaming (ms). A standby answers the WAL it receives within milliseconds (once its socket
 * is drained, and at each 16 MB segment when WAL keeps coming); one that answers nothing for this
 * long while WAL waits is a host that vanished without closing the connection (power, cable, a
 * frozen machine) or one whose disk has stalled, which PostgreSQL itself notices only at
 * `wal_sender_timeout` (60 s by default) — and every commit waits for it until then.
 */
export const SILENT_STANDBY_MS = 5000;

/**
 * The same, for a standby that a spare can replace (ms): a standby not listed in
 * synchronous_standby_names, that may be synchronous and promoted, and is seen answering (nothing
 * outstanding, or an answer seen within half this time). The silent one is then replaced by a
 * standby shown to keep up, so leaving it out gives up no copy of a commit, and the commits
 * waiting for it go on sooner. Standbys that fell silent together (the primary's own network
 * stalled, say) are no spares for each other, and each gets SILENT_STANDBY_MS.
 */
export const SILENT_WITH_SPARE_MS = 2000;

/**
 * The members that may replace a silent synchronous standby (SILENT_WITH_SPARE_MS): with
 * `synchronous_mode: on`, those `ssn` does not list yet, not tagged `nosync` or `nofailover`. None
 * in quorum mode, where a silent standby holds commits back only when too few others answer, and
 * leaving it out sooner would only shrink the voters; none when `ssn` is `*`.
 */
export function syncSpares(
  mode: boolean | 'quorum',
  ssn: string,
  me: string,
  members: readonly Member[],
): Set<string> {
  const listed = parseSsn(ssn).names;
  if (mode !== true || listed.includes('*')) return new Set();
  return new Set(
    members
      .filter((m) => m.name !== me && !listed.includes(m.name))
      .filter((m) => m.data.tags?.nosync !== true && !isNoFailover(m.data.tags))
      .map((m) => m.name),
  );
}

/** What the standby watch remembers of a walsender with WAL outstanding (its clock). */
export interface Silence {
  replyTime: string | null;
  /** Since when no new answer came. */
  since: number;
  /** `since` is an answer seen to arrive, not the first sight of the walsender. */
  answered: boolean;
  /** Found silent: it stays so until it answers. */
  silent: boolean;
}

/**
 * The standbys that are silent: a walsender streaming to them has WAL sent and not yet flushed by
 * their last answer, and no new answer came (its reply time) since that was first seen — for
 * SILENT_WITH_SPARE_MS when at least as many `spares` answer as there are listed standbys quiet
 * that long, for SILENT_STANDBY_MS otherwise. Once silent, a standby stays silent until it answers
 * (its reply time changes), whatever the others do; an answer starts the count over, and so does
 * nothing outstanding: an idle standby whose last status report is old is not silent when a commit
 * reaches it. (The sent position is no sign of life: the primary's own background WAL still fits
 * in a vanished host's socket buffer.) Walsenders are told apart by pid (a dead one may linger
 * beside the standby's new connection); a name waits as long as its most recent answer says.
 * `spares`: the names that may take a listed one's place (none: the 5 s rule alone). `answering`:
 * the streaming names that are not silent; `quietMs`: how long each silent one has been.
 */
export function trackSilence(
  before: ReadonlyMap<number, Silence>,
  senders: readonly WalSender[],
  nowMs: number,
  spares: ReadonlySet<string> = new Set(),
): { sightings: Map<number, Silence>; silent: string[]; answering: string[]; quietMs: Map<string, number> } {
  const sightings = new Map<number, Silence>();
  /** Per streaming name: the shortest wait among its walsenders (0: nothing outstanding). */
  const names = new Map<string, { waited: number; stuck: boolean; answers: boolean }>();
  for (const s of senders) {
    if (!s.streaming) continue;
    let seen = { waited: 0, stuck: false, answers: s.flushed !== undefined };
    if (s.sent !== undefined && s.flushed !== undefined && s.sent > s.flushed) {
      const prev = before.get(s.pid);
      const same = prev !== undefined && prev.replyTime === s.replyTime;
      const since = same ? prev.since : nowMs;
      const answered = same ? prev.answered : prev !== undefined;
      sightings.set(s.pid, { replyTime: s.replyTime, since, answered, silent: same && prev.silent });
      seen = {
        waited: nowMs - since,
        stuck: same && prev.silent,
        answers: answered && nowMs - since < SILENT_WITH_SPARE_MS / 2,
      };
    }
    const had = names.get(s.name);
    names.set(
      s.name,
      had
        ? {
            waited: Math.min(had.waited, seen.waited),
            stuck: had.stuck && seen.stuck,
            answers: had.answers || seen.answers,
          }
        : seen,
    );
  }
  // Quiet for the shorter limit and no spare themselves: the listed standbys (and those that may not
  // be synchronous), each needing a spare to take its place.
  const needSpare = [...names].filter(([n, v]) => v.waited >= SILENT_WITH_SPARE_MS && !spares.has(n)).length;
  const answeringSpares = [...names].filter(([n, v]) => spares.has(n) && v.answers).length;
  const limit = needSpare > 0 && answeringSpares >= needSpare ? SILENT_WITH_SPARE_MS : SILENT_STANDBY_MS;
  const quietMs = new Map<string, number>();
  for (const [name, v] of names) if (v.stuck || v.waited >= limit) quietMs.set(name, v.waited);
  for (const s of senders)
    if (quietMs.has(s.name)) {
      const seen = sightings.get(s.pid);
      if (seen) seen.silent = true;
    }
  return {
    sightings,
    silent: [...quietMs.keys()].sort(),
    answering: [...names.keys()].filter((n) => !quietMs.has(n)).sort(),
    quietMs,
  };
}

/**
 * What the leader's standby watch makes of one look at pg_stat_replication: the standbys named in
 * synchronous_standby_names (every standby for `*`) that streamed at the previous look (`before`)
 * and no longer do. A commit may then wait for one of them until the loop names another, so the
 * loop should look at once. Only a change counts: a standby still gone at the next look is not
 * news, and one that comes back and goes again is.
 */
export function lostSyncStandbys(
  ssn: string,
  before: ReadonlySet<string>,
  streaming: readonly string[],
): { streaming: Set<string>; lost: string[] } {
  const names = parseSsn(ssn).names;
  const named = names.includes('*') ? () => true : (n: string) => names.includes(n);
  const now = new Set(streaming.filter(named));
  // Only standbys the list still names: one the leader replaced on purpose is not news.
  return { streaming: now, lost: [...before].filter((n) => named(n) && !now.has(n)).sort() };
}

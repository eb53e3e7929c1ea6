/**
 * Synchronous replication, as Patroni's `synchronous_mode`: the leader owns
 * `synchronous_standby_names` and the `sync` key, and changes them in an order that keeps one
 * promise at every moment: any member the `sync` key allows to be promoted holds every
 * acknowledged commit (for quorum mode: enough of them can be asked to find one that does).
 */
import type { Member, SyncKey } from '../dcs/types.js';
import type { ServerStatus } from '../postgres/types.js';

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
}

export interface SyncPlan {
  /** Value for synchronous_standby_names. */
  ssn: string;
  /** New `sync` key value, or null to leave the key as it is. */
  syncKey: { leader: string | null; sync_standby: string | null; quorum: number | null } | null;
  why: string;
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
  const list = names.map(quote).join(',');
  if (mode === 'quorum') return `ANY ${Math.min(count, names.length)} (${list})`;
  return `FIRST ${names.length} (${list})`;
}

const same = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));

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
    };
  }
  const rows = new Map(input.replication.map((r) => [r.application_name, r]));
  const eligible = input.members
    .filter((m) => m.name !== me && m.data.tags?.nosync !== true && rows.get(m.name)?.state === 'streaming')
    .sort(
      (a, b) =>
        (rows.get(b.name)?.flush_lsn ?? 0) - (rows.get(a.name)?.flush_lsn ?? 0) ||
        a.name.localeCompare(b.name),
    )
    .map((m) => m.name);
  const key = input.syncKey && input.syncKey.leader === me ? syncNames(input.syncKey.sync_standby) : [];
  const confirmed = new Set(
    input.replication
      .filter((r) => r.sync_state === 'sync' || r.sync_state === 'quorum')
      .map((r) => r.application_name),
  );

  if (mode === 'quorum') {
    // Quorum: commits need `count` acknowledgements among all listed standbys. Growing the list
    // weakens what one standby holds, so the key (which tells promoters how many to ask) grows
    // first; shrinking the list goes the other way round.
    const desired = eligible;
    const q = Math.min(count, Math.max(desired.length, 1));
    const keyValue = {
      leader: me,
      sync_standby: desired.join(',') || null,
      quorum: desired.length ? q : null,
    };
    const ssn = renderSsn('quorum', desired, count, strict);
    if (same(key, desired) && input.syncKey?.quorum === keyValue.quorum) {
      return { ssn, syncKey: null, why: `quorum ${q} of ${desired.join(', ') || 'none'}` };
    }
    const adding = desired.some((n) => !key.includes(n));
    if (adding)
      return {
        ssn: input.currentSsn,
        syncKey: keyValue,
        why: `adding ${desired.filter((n) => !key.includes(n)).join(', ')} to the sync key before the quorum`,
      };
    if (input.currentSsn !== ssn)
      return { ssn, syncKey: null, why: 'shrinking the quorum before the sync key' };
    return { ssn, syncKey: keyValue, why: `sync key now ${desired.join(', ') || 'empty'}` };
  }

  // FIRST n: every listed standby acknowledges every commit, so each one listed in the key may
  // be promoted. Keep standbys already in the key while they stream; fill up by WAL position.
  const kept = key.filter((n) => eligible.includes(n)).slice(0, count);
  const desired = [...kept, ...eligible.filter((n) => !kept.includes(n))].slice(0, count);
  const target = renderSsn(true, desired, count, strict);
  const dropped = key.filter((n) => !desired.includes(n));
  if (dropped.length > 0) {
    // Shrink the key first: members left in it still acknowledged every commit.
    const remaining = key.filter((n) => desired.includes(n));
    return {
      ssn: input.currentSsn,
      syncKey: { leader: me, sync_standby: remaining.join(',') || null, quorum: null },
      why: `${dropped.join(', ')} no longer synchronous (not streaming, nosync, or above synchronous_node_count)`,
    };
  }
  const added = desired.filter((n) => !key.includes(n));
  if (added.length > 0) {
    // Require the new standbys too, then list them in the key once PostgreSQL confirms them.
    const both = renderSsn(true, [...key, ...added], count, strict);
    if (input.currentSsn !== both)
      return { ssn: both, syncKey: null, why: `asking ${added.join(', ')} to acknowledge commits` };
    // Commits from before the change are only on the old set: a new standby must also have
    // flushed everything up to the moment it was first required.
    const caughtUp = (n: string) => confirmed.has(n) && (rows.get(n)?.flush_lsn ?? 0) >= input.ssnSince;
    if (added.every(caughtUp)) {
      return {
        ssn: both,
        syncKey: { leader: me, sync_standby: desired.join(','), quorum: null },
        why: `${added.join(', ')} now synchronous`,
      };
    }
    return {
      ssn: both,
      syncKey: null,
      why: `waiting for ${added.filter((n) => !caughtUp(n)).join(', ')} to report sync`,
    };
  }
  if (input.syncKey?.leader !== me && desired.length === 0) {
    return {
      ssn: target,
      syncKey: { leader: me, sync_standby: null, quorum: null },
      why: 'no synchronous standby available',
    };
  }
  return {
    ssn: target,
    syncKey: null,
    why: `synchronous: ${desired.join(', ') || (strict ? 'none (strict: writes wait)' : 'none')}`,
  };
}

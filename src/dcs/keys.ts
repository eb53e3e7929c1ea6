/**
 * Patroni's key layout under `/<namespace>/<scope>/` and the parsing of its values into
 * `ClusterState`. Pure functions, so they are tested without etcd.
 */
import type {
  ClusterState,
  DrainKey,
  FailoverKey,
  HistoryEntry,
  Member,
  RouterKey,
  StatusKey,
  SyncKey,
} from './types.js';

/** Key names relative to the cluster prefix, exactly as Patroni names them. */
export const KEYS = {
  leader: 'leader',
  members: 'members/',
  initialize: 'initialize',
  config: 'config',
  status: 'status',
  history: 'history',
  failover: 'failover',
  sync: 'sync',
  failsafe: 'failsafe',
  optimeLeader: 'optime/leader',
  /** pgha extensions: routers and the switchover drain handshake. */
  routers: 'routers/',
  drain: 'drain',
} as const;

/**
 * `/<namespace>/<scope>/` with runs of slashes collapsed, as Patroni builds its base path
 * (`re.sub('/+', '/', '/'.join(['', namespace, scope]))`), plus the trailing slash.
 */
export function clusterPrefix(namespace: string, scope: string): string {
  if (scope === '' || scope.includes('/'))
    throw new Error(`invalid scope "${scope}": must be non-empty without "/"`);
  return `/${namespace}/${scope}/`.replace(/\/+/g, '/');
}

/** The smallest key greater than every key starting with `prefix` (etcd's range_end for a prefix). */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** Patroni writes JSON without spaces (`separators=(',', ':')`); `JSON.stringify` does the same. */
export function compactJson(value: unknown): string {
  return JSON.stringify(value);
}

/** One stored key as read from etcd, already relative to the cluster prefix. */
export interface RawKey {
  key: string;
  value: string;
  modRevision: string;
  lease: string;
}

export type ParseWarning = (message: string, details: Record<string, unknown>) => void;

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * Parses `failover`. Patroni clears it by writing `{}`, so an empty object (or empty value) means
 * "no request". Like Patroni, a legacy non-JSON value `leader:member` is accepted too.
 */
export function parseFailover(value: string, modRevision: string): FailoverKey | null {
  const text = value.trim();
  if (text === '') return null;
  const parsed = parseJson(text);
  let leader: string | undefined;
  let member: string | undefined;
  let scheduledAt: string | undefined;
  if (isObject(parsed)) {
    leader = optString(parsed.leader);
    member = optString(parsed.member);
    scheduledAt = optString(parsed.scheduled_at);
  } else if (parsed === undefined && !text.startsWith('{')) {
    const [l, m] = text.split(':').map((s) => s.trim());
    leader = optString(l);
    member = optString(m);
  } else {
    return null;
  }
  if (leader === undefined && member === undefined) return null;
  const key: FailoverKey = { modRevision };
  if (leader !== undefined) key.leader = leader;
  if (member !== undefined) key.member = member;
  if (scheduledAt !== undefined) key.scheduled_at = scheduledAt;
  return key;
}

function parseSync(value: string, modRevision: string): SyncKey | null {
  const parsed = parseJson(value);
  if (!isObject(parsed)) return null;
  const sync: SyncKey = {
    leader: optString(parsed.leader) ?? null,
    sync_standby: optString(parsed.sync_standby) ?? null,
    modRevision,
  };
  if (typeof parsed.quorum === 'number' || parsed.quorum === null) sync.quorum = parsed.quorum;
  return sync;
}

function parseHistory(value: string): HistoryEntry[] | undefined {
  const parsed = parseJson(value);
  if (!Array.isArray(parsed)) return undefined;
  const out: HistoryEntry[] = [];
  for (const e of parsed) {
    if (!Array.isArray(e) || e.length < 3) continue;
    const [tl, lsn, reason, time, leader] = e as unknown[];
    if (typeof tl !== 'number' || typeof lsn !== 'number') continue;
    const entry: HistoryEntry = [tl, lsn, typeof reason === 'string' ? reason : String(reason)];
    if (typeof time === 'string') entry[3] = time;
    if (typeof leader === 'string') entry[4] = leader;
    out.push(entry);
  }
  return out;
}

function parseStatus(value: string): StatusKey | null {
  const parsed = parseJson(value);
  if (!isObject(parsed)) return null;
  const optime = Number(parsed.optime);
  const status: StatusKey = { optime: Number.isFinite(optime) ? optime : 0 };
  if (isObject(parsed.slots)) {
    const slots: Record<string, number> = {};
    for (const [k, v] of Object.entries(parsed.slots)) if (typeof v === 'number') slots[k] = v;
    status.slots = slots;
  }
  if (Array.isArray(parsed.retain_slots)) {
    status.retain_slots = parsed.retain_slots.filter((s): s is string => typeof s === 'string');
  }
  return status;
}

/** `routers/<id>` value: `{"drain_timeout_ms": n, ...}`. */
function parseRouter(id: string, value: string): RouterKey {
  const parsed = parseJson(value);
  const ms = isObject(parsed) ? Number(parsed.drain_timeout_ms) : NaN;
  return { id, drainTimeoutMs: Number.isFinite(ms) && ms >= 0 ? ms : 5000, drained: null };
}

/** `drain` value: `{"id": ..., "from": ..., "to": ...}`; null when unreadable. */
export function parseDrain(value: string): DrainKey | null {
  const parsed = parseJson(value);
  if (!isObject(parsed)) return null;
  const id = optString(parsed.id);
  const from = optString(parsed.from);
  const to = optString(parsed.to);
  return id && from && to ? { id, from, to } : null;
}

function parseFailsafe(value: string): Record<string, string> | null {
  const parsed = parseJson(value);
  if (!isObject(parsed)) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** A cluster with no keys at all (as read from an empty prefix at `revision`). */
export function emptyCluster(revision: string): ClusterState {
  return {
    initialize: null,
    config: null,
    leader: null,
    members: [],
    failover: null,
    sync: null,
    history: [],
    status: null,
    failsafe: null,
    revision,
  };
}

/**
 * Builds a `ClusterState` from the keys of one range read. Garbage in a value never throws: a
 * member with invalid JSON is skipped and reported through `warn`; other keys fall back to
 * "absent" (config to `{}`, as Patroni does, so the CAS revision survives for a repair).
 */
export function parseCluster(
  keys: RawKey[],
  revision: string,
  warn: ParseWarning = () => undefined,
): ClusterState {
  const state = emptyCluster(revision);
  let legacyOptime: number | null = null;
  const members: Member[] = [];
  const routers = new Map<string, RouterKey>();
  const drained = new Map<string, string>();
  for (const k of keys) {
    if (k.key.startsWith(KEYS.routers)) {
      const rest = k.key.slice(KEYS.routers.length);
      const slash = rest.indexOf('/');
      if (slash < 0 && rest !== '') routers.set(rest, parseRouter(rest, k.value));
      else if (slash > 0 && rest.slice(slash) === '/drained') drained.set(rest.slice(0, slash), k.value);
      continue;
    }
    if (k.key.startsWith(KEYS.members)) {
      const name = k.key.slice(KEYS.members.length);
      if (name === '' || name.includes('/')) continue;
      const data = parseJson(k.value);
      if (!isObject(data)) {
        warn('ignoring member key with invalid JSON', { member: name, value: k.value.slice(0, 200) });
        continue;
      }
      members.push({ name, data, modRevision: k.modRevision, lease: k.lease });
      continue;
    }
    switch (k.key) {
      case KEYS.initialize:
        state.initialize = k.value;
        break;
      case KEYS.leader:
        if (k.value !== '') state.leader = { name: k.value, modRevision: k.modRevision, lease: k.lease };
        break;
      case KEYS.config: {
        const cfg = parseJson(k.value);
        if (!isObject(cfg))
          warn('config key holds invalid JSON; treating it as {}', { value: k.value.slice(0, 200) });
        state.config = { value: isObject(cfg) ? cfg : {}, modRevision: k.modRevision };
        break;
      }
      case KEYS.failover:
        state.failover = parseFailover(k.value, k.modRevision);
        break;
      case KEYS.sync:
        state.sync = parseSync(k.value, k.modRevision);
        break;
      case KEYS.history: {
        const h = parseHistory(k.value);
        if (h === undefined)
          warn('history key holds invalid JSON; ignoring it', { value: k.value.slice(0, 200) });
        state.history = h ?? [];
        break;
      }
      case KEYS.status:
        state.status = parseStatus(k.value);
        break;
      case KEYS.optimeLeader: {
        const n = Number(k.value);
        if (k.value.trim() !== '' && Number.isFinite(n)) legacyOptime = n;
        break;
      }
      case KEYS.failsafe:
        state.failsafe = parseFailsafe(k.value);
        break;
      case KEYS.drain:
        state.drain = parseDrain(k.value);
        break;
      default:
        break;
    }
  }
  // Patroni < 2.1 only wrote `optime/leader`; use it when there is no `status`.
  if (state.status === null && legacyOptime !== null) state.status = { optime: legacyOptime };
  if (routers.size > 0) {
    for (const [id, value] of drained) {
      const r = routers.get(id);
      if (r) r.drained = value;
    }
    state.routers = [...routers.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
  state.members = members.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return state;
}

/**
 * The slot settings of the dynamic configuration, read as Patroni reads them: `slots` (or the older
 * `permanent_replication_slots`, then `permanent_slots`, whichever is set first), `ignore_slots` and
 * `member_slots_ttl`. An entry Patroni would skip with an error is left out and named in `errors`;
 * the others still count, so one bad slot never disables the rest.
 */
import type { IgnoreSlotMatcher, PermanentSlot } from './types.js';

/** PostgreSQL's rule for replication slot names, as Patroni checks it. */
const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function shown(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

/** Patroni reads the first of these that is set (non-empty). */
const SLOT_KEYS = ['permanent_replication_slots', 'permanent_slots', 'slots'] as const;

/**
 * Permanent slots: `name: null` or `{type: physical}` is physical; `{database, plugin}` (with or
 * without `type: logical`) is logical. The type defaults as Patroni's does: logical when both
 * `database` and `plugin` are given, physical otherwise.
 */
export function permanentSlotsFrom(raw: Record<string, unknown>): {
  slots: PermanentSlot[];
  errors: string[];
} {
  const key = SLOT_KEYS.find((k) => isRecord(raw[k]) && Object.keys(raw[k]).length > 0);
  const errors: string[] = [];
  for (const k of SLOT_KEYS)
    if (raw[k] !== undefined && raw[k] !== null && !isRecord(raw[k]))
      errors.push(`${k}: expected a mapping of slot names to slot settings, got ${shown(raw[k])}`);
  if (!key) return { slots: [], errors };
  const slots: PermanentSlot[] = [];
  for (const [name, value] of Object.entries(raw[key] as Record<string, unknown>)) {
    const where = `${key}.${name}`;
    if (!SLOT_NAME.test(name)) {
      errors.push(`${where}: not a valid slot name (1 to 63 of a-z, 0-9 and _)`);
      continue;
    }
    if (
      value === null ||
      value === undefined ||
      value === '' ||
      (isRecord(value) && !Object.keys(value).length)
    ) {
      slots.push({ name, type: 'physical' });
      continue;
    }
    if (!isRecord(value)) {
      errors.push(`${where}: expected type, database and plugin, got ${shown(value)}`);
      continue;
    }
    const text = (k: string) => (typeof value[k] === 'string' && value[k] !== '' ? value[k] : undefined);
    const database = text('database');
    const plugin = text('plugin');
    const type = text('type') ?? (database && plugin ? 'logical' : 'physical');
    if (type === 'physical') {
      const ct = value.cluster_type;
      if (ct !== undefined && ct !== null && ct !== 'primary' && ct !== 'standby') {
        errors.push(`${where}.cluster_type: expected primary or standby, got ${shown(ct)}`);
        continue;
      }
      slots.push(ct ? { name, type, cluster_type: ct } : { name, type });
    } else if (type === 'logical' && database && plugin) {
      slots.push({ name, type, database, plugin });
    } else if (type === 'logical') {
      errors.push(`${where}: a logical slot needs both database and plugin`);
    } else {
      errors.push(`${where}.type: expected physical or logical, got ${shown(value.type)}`);
    }
  }
  return { slots, errors };
}

/** `ignore_slots`: a list of matchers; a matcher's attributes are compared only when given. */
export function ignoreSlotsFrom(raw: Record<string, unknown>): {
  matchers: IgnoreSlotMatcher[];
  errors: string[];
} {
  const value = raw.ignore_slots;
  if (value === undefined || value === null) return { matchers: [], errors: [] };
  if (!Array.isArray(value))
    return { matchers: [], errors: [`ignore_slots: expected a list of slot matchers, got ${shown(value)}`] };
  const matchers: IgnoreSlotMatcher[] = [];
  const errors: string[] = [];
  value.forEach((entry: unknown, i) => {
    if (!isRecord(entry)) {
      errors.push(
        `ignore_slots.${i}: expected a mapping of name, type, database and plugin, got ${shown(entry)}`,
      );
      return;
    }
    const m: IgnoreSlotMatcher = {};
    for (const k of ['name', 'type', 'database', 'plugin'] as const) {
      const v = entry[k];
      if (v === undefined || v === null || v === '') continue;
      if (typeof v !== 'string') {
        errors.push(`ignore_slots.${i}.${k}: expected text, got ${shown(v)}`);
        return;
      }
      m[k] = v;
    }
    matchers.push(m);
  });
  return { matchers, errors };
}

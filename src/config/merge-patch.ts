/** Patroni's `patch_config`, used by `PATCH /config` and to read a directory of YAML files. */

/**
 * Keys a patch never sets: JSON and YAML parsers keep `__proto__` as an ordinary key, and merging
 * it would reach every object's prototype.
 */
export function isUnsafeKey(key: string): boolean {
  return key === '__proto__' || key === 'constructor' || key === 'prototype';
}

/**
 * Applies a JSON merge patch as Patroni's `patch_config` does: `null` deletes, objects merge
 * recursively, anything else replaces. Returns whether `target` changed.
 */
export function mergePatch(target: Record<string, unknown>, patch: Record<string, unknown>): boolean {
  let changed = false;
  for (const [k, v] of Object.entries(patch)) {
    if (isUnsafeKey(k)) continue;
    const has = Object.hasOwn(target, k);
    if (v === null) {
      if (has) {
        delete target[k];
        changed = true;
      }
    } else if (isRecord(v) && has && isRecord(target[k])) {
      if (mergePatch(target[k], v)) changed = true;
    } else if (isRecord(v)) {
      target[k] = withoutNulls(v);
      changed = true;
    } else if (!has || JSON.stringify(target[k]) !== JSON.stringify(v)) {
      target[k] = v;
      changed = true;
    }
  }
  return changed;
}

function withoutNulls(v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === null || isUnsafeKey(k)) continue;
    out[k] = isRecord(x) ? withoutNulls(x) : x;
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

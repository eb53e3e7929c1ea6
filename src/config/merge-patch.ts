/** Patroni's `patch_config`, used by `PATCH /config` and to read a directory of YAML files. */

/**
 * Applies a JSON merge patch as Patroni's `patch_config` does: `null` deletes, objects merge
 * recursively, anything else replaces. Returns whether `target` changed.
 */
export function mergePatch(target: Record<string, unknown>, patch: Record<string, unknown>): boolean {
  let changed = false;
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) {
      if (k in target) {
        delete target[k];
        changed = true;
      }
    } else if (isRecord(v) && isRecord(target[k])) {
      if (mergePatch(target[k], v)) changed = true;
    } else if (isRecord(v)) {
      target[k] = withoutNulls(v);
      changed = true;
    } else if (!(k in target) || JSON.stringify(target[k]) !== JSON.stringify(v)) {
      target[k] = v;
      changed = true;
    }
  }
  return changed;
}

function withoutNulls(v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === null) continue;
    out[k] = isRecord(x) ? withoutNulls(x) : x;
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

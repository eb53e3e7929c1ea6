/**
 * The pure half of `edit-config`: `-s key=value` / `-p param=value` and YAML patches applied to
 * the dynamic configuration exactly as patronictl's `apply_config_changes` and `patch_config` do.
 */
import { isDeepStrictEqual } from 'node:util';
import { isUnsafeKey } from '../config/merge-patch.js';
import { PghaError } from '../util/errors.js';
import { parseYaml11, pyStr, type Cell } from './table.js';

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Sets `path` to `value` (`null` deletes), creating maps on the way and pruning emptied ones. */
function setPathValue(config: Obj, path: string[], value: unknown, prefix: string[] = []): void {
  // PostgreSQL GUCs are not nested but may contain dots: under postgresql.parameters the rest is one key.
  if (prefix.length === 2 && prefix[0] === 'postgresql' && prefix[1] === 'parameters')
    path = [path.join('.')];
  const [key, ...rest] = path as [string, ...string[]];
  if (rest.length === 0) {
    if (value === null || value === undefined) delete config[key];
    else config[key] = value;
    return;
  }
  if (!isObj(config[key])) config[key] = {};
  const child = config[key] as Obj;
  setPathValue(child, rest, value, [...prefix, key]);
  if (Object.keys(child).length === 0) delete config[key];
}

/**
 * Applies `key.path=value` pairs (values are YAML, so `ttl=20` is a number and `x=` or `x=null`
 * deletes) and returns the changed copy. `-p name=value` is passed as `postgresql.parameters.name=value`.
 */
export function applyConfigChanges(data: Obj, pairs: string[]): Obj {
  const changed = structuredClone(data);
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (!pair || eq < 0)
      throw new PghaError(
        'PGHA_BAD_SETTING',
        `Invalid parameter setting ${pair} (expected key.path=value, e.g. -s loop_wait=5)`,
      );
    const keyPath = pair.slice(0, eq).trim();
    let value: unknown;
    try {
      value = parseYaml11(pair.slice(eq + 1));
    } catch (err) {
      throw new PghaError('PGHA_BAD_SETTING', `Invalid value in ${pair}: not valid YAML`, { cause: err });
    }
    setPathValue(changed, keyPath.split('.'), value);
  }
  return changed;
}

/** The `-p name=value` shortcut (`-s postgresql.parameters.name=value`). */
export function pgPairs(pairs: string[]): string[] {
  return pairs.map((p) => 'postgresql.parameters.' + p.trimStart());
}

/**
 * Patroni's `patch_config`: merges `patch` into `config` in place; `null` deletes, maps merge,
 * anything else replaces when its text differs. Returns whether something changed.
 */
export function patchConfig(config: Obj, patch: Obj): boolean {
  let changed = false;
  for (const [name, value] of Object.entries(patch)) {
    if (isUnsafeKey(name)) continue;
    if (value === null || value === undefined) {
      if (name in config && config[name] !== null && config[name] !== undefined) changed = true;
      delete config[name];
    } else if (name in config) {
      if (isObj(value)) {
        const current = config[name];
        if (isObj(current)) {
          if (patchConfig(current, value)) changed = true;
        } else {
          config[name] = value;
          changed = true;
        }
      } else if (pyStr(config[name] as Cell) !== pyStr(value as Cell)) {
        config[name] = value;
        changed = true;
      }
    } else {
      config[name] = value;
      changed = true;
    }
  }
  return changed;
}

/** Parses a YAML document meant as a configuration (a mapping, or empty). */
export function parseConfigYaml(text: string, source: string): Obj {
  let value: unknown;
  try {
    value = parseYaml11(text);
  } catch (err) {
    throw new PghaError(
      'PGHA_BAD_YAML',
      `${source} is not valid YAML: ${(err as Error).message.split('\n')[0]}`,
      {
        cause: err,
      },
    );
  }
  if (value === null || value === undefined) return {};
  if (!isObj(value))
    throw new PghaError(
      'PGHA_BAD_YAML',
      `${source} must hold a YAML mapping (key: value), not a ${typeof value}`,
    );
  return value;
}

/** `--apply`: the configuration with `yamlText` merged into it (a copy). */
export function applyYaml(data: Obj, yamlText: string, source: string): Obj {
  const changed = structuredClone(data);
  patchConfig(changed, parseConfigYaml(yamlText, source));
  return changed;
}

export function sameConfig(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(a, b);
}

/**
 * Where pgha's own files are: the directory of its package.json, found by walking up from this
 * module. The answer is the same when the code runs from src/ (the tests), from the bundled dist/
 * (`npm run build`) or from an installed package, so package.json and the native addons under
 * build/Release are found from all of them.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from './errors.js';

let root: string | undefined;

/** The directory that holds pgha's package.json. */
export function packageRoot(): string {
  if (root === undefined) {
    const here = fileURLToPath(import.meta.url);
    let dir = dirname(here);
    while (!existsSync(join(dir, 'package.json'))) {
      const up = dirname(dir);
      if (up === dir) throw new Error(`pgha's package.json is not in any directory above ${here}`);
      dir = up;
    }
    root = dir;
  }
  return root;
}

/** The file of a native addon built by native/build.sh (`binding.gyp` names the targets). */
export function addonPath(name: string): string {
  return join(packageRoot(), 'build', 'Release', `${name}.node`);
}

/** Loads a native addon; throws when it was not built or does not load. */
export function loadAddon<T>(name: string): T {
  return createRequire(import.meta.url)(addonPath(name)) as T;
}

/** `loadAddon`, or an Error saying why the addon cannot be used (not built, or does not load). */
export function loadAddonOrWhy<T>(name: string): T | Error {
  try {
    return loadAddon<T>(name);
  } catch (err) {
    return new Error(`the native addon is not available (${errorMessage(err).split('\n')[0]})`);
  }
}

/**
 * Writes test/durations.json, the seconds each test file took in the last full run on this machine
 * (vitest's own cache of results), for test/support/sequencer.ts to start the longest files first
 * in a fresh clone, which has no cache. Run it after a full `npm test`, ideally on a machine like
 * CI's (2 cores):
 *
 *   npm run test:durations [results.json]
 *
 * Without an argument it reads the results file under node_modules/.vite/vitest/.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DURATIONS_FILE } from '../test/support/sequencer.js';

const root = join(import.meta.dirname, '..');

function resultsFile(): string {
  if (process.argv[2]) return process.argv[2];
  const dir = join(root, 'node_modules', '.vite', 'vitest');
  const found = existsSync(dir)
    ? readdirSync(dir)
        .map((d) => join(dir, d, 'results.json'))
        .filter((f) => existsSync(f))
    : [];
  if (found.length !== 1)
    throw new Error(`expected one vitest results file under ${dir}, found ${found.length}: pass its path`);
  return found[0]!;
}

const file = resultsFile();
const { results } = JSON.parse(readFileSync(file, 'utf8')) as {
  results: Array<[string, { duration?: number; failed?: boolean }]>;
};
const out: Record<string, number> = {};
for (const [key, r] of results.sort((a, b) => a[0].localeCompare(b[0]))) {
  const path = key.slice(key.indexOf(':') + 1);
  if (typeof r.duration === 'number' && existsSync(join(root, path)))
    out[path] = Math.max(0.1, Math.round(r.duration / 100) / 10);
}
writeFileSync(DURATIONS_FILE, JSON.stringify(out, null, 2) + '\n');
console.log(`${DURATIONS_FILE}: ${Object.keys(out).length} files from ${file}`);

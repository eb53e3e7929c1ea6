/**
 * The order test files start in: longest first. Two files run at a time (vitest.config.ts), and a
 * long file that starts last runs alone on one core while the other idles: in a fresh clone vitest
 * has no timings of its own and starts the largest files first, so a short file with a long test
 * (a Bacula job that waits out Bacula's retries) used to start near the end and add a minute to
 * the run.
 *
 * A file's weight is its duration in vitest's cache of the last run on this machine when there is
 * one, else its figure in `test/durations.json` (seconds, from `npm run test:durations`), else it
 * is new and starts first, so a new file's failure shows early. Ties keep vitest's own order.
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

export const DURATIONS_FILE = join(import.meta.dirname, '..', 'durations.json');

/** `test/durations.json`: file (relative to the repository) → seconds; empty when missing or unreadable. */
export function recordedDurations(file = DURATIONS_FILE): Map<string, number> {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    return new Map(Object.entries(parsed).filter((e): e is [string, number] => typeof e[1] === 'number'));
  } catch {
    return new Map();
  }
}

/**
 * Orders `files` longest first by `weight` (seconds); a file without a weight comes before every
 * file with one. Stable: equal weights keep their order.
 */
export function longestFirst<T>(files: readonly T[], weight: (f: T) => number | undefined): T[] {
  const w = (f: T) => weight(f) ?? Number.POSITIVE_INFINITY;
  return files
    .map((f, i) => ({ f, i, w: w(f) }))
    .sort((a, b) => b.w - a.w || a.i - b.i)
    .map((x) => x.f);
}

export default class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const ordered = await super.sort(files);
    const recorded = recordedDurations();
    const root = this.ctx.config.root;
    return longestFirst(ordered, (spec) => {
      const file = relative(root, spec.moduleId);
      const cached = this.ctx.cache.getFileTestResults(`${spec.project.name}:${file}`);
      return cached ? cached.duration / 1000 : recorded.get(file);
    });
  }
}

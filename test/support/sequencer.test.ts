import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DURATIONS_FILE, longestFirst, recordedDurations } from './sequencer.js';

describe('longestFirst', () => {
  const weights: Record<string, number> = { a: 1, b: 200, c: 30, d: 30 };
  it.each([
    { files: ['a', 'b', 'c'], want: ['b', 'c', 'a'] },
    { files: ['a', 'new', 'b'], want: ['new', 'b', 'a'] },
    { files: ['d', 'c', 'a'], want: ['d', 'c', 'a'] },
    { files: ['c', 'd', 'x', 'y'], want: ['x', 'y', 'c', 'd'] },
    { files: [], want: [] },
  ])('$files → $want', ({ files, want }) => {
    expect(longestFirst(files, (f) => weights[f])).toEqual(want);
  });
});

describe('recordedDurations', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgha-durations-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads numbers and skips anything else', () => {
    const file = join(dir, 'ok.json');
    writeFileSync(file, JSON.stringify({ 'test/a.test.ts': 12.5, 'test/b.test.ts': 'slow' }));
    expect([...recordedDurations(file)]).toEqual([['test/a.test.ts', 12.5]]);
  });

  it('is empty when the file is missing or not JSON', () => {
    expect(recordedDurations(join(dir, 'missing.json')).size).toBe(0);
    writeFileSync(join(dir, 'bad.json'), '{');
    expect(recordedDurations(join(dir, 'bad.json')).size).toBe(0);
  });

  it('the file in the repository weighs the long files', () => {
    const recorded = recordedDurations(DURATIONS_FILE);
    expect(recorded.size).toBeGreaterThan(100);
    expect(recorded.get('test/bacula/running-job-no-spool.test.ts')).toBeGreaterThan(60);
  });
});

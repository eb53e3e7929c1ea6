import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from './log.js';
import {
  parseResident,
  releaseStartupMemory,
  releaseWhenSettled,
  type MemoryAddon,
  type Released,
} from './startup-memory.js';

describe('parseResident', () => {
  it('reads VmRSS, RssAnon and RssFile in kB', () => {
    const status =
      'Name:\tnode\nVmRSS:\t   70456 kB\nRssAnon:\t   26316 kB\nRssFile:\t   44140 kB\nRssShmem:\t 0 kB\n';
    expect(parseResident(status)).toEqual({ rss: 70456, anon: 26316, file: 44140 });
  });
  it('says null when a field is missing', () => {
    expect(parseResident('VmRSS:\t 1 kB\nRssAnon:\t 1 kB\n')).toBeNull();
  });
});

describe('releaseWhenSettled', () => {
  const logger = createLogger({ level: 'silent' });
  const done: Released = { mappings: 3, fileKb: 30_000, mallocTrimmed: true };
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  // Each row: the answers of settled() at the checks (one per second) and the check at which the
  // release happens (null: never), with holdMs 2000. After the last answer settled() says false.
  const rows: Array<{ name: string; answers: boolean[]; at: number | null }> = [
    { name: 'never settled', answers: [false, false, false, false, false], at: null },
    { name: 'settled for less than the hold', answers: [true, true, false, true, true], at: null },
    { name: 'settled for the whole hold', answers: [true, true, true, true, true], at: 3 },
    { name: 'unsettled in between starts the hold again', answers: [true, false, true, true, true], at: 5 },
  ];
  for (const row of rows) {
    it(`${row.name}: ${row.at === null ? 'no release' : `release at check ${row.at}`}, at most once`, () => {
      let check = 0;
      const release = vi.fn(() => done);
      releaseWhenSettled(() => row.answers[check++] ?? false, logger, {
        holdMs: 2000,
        release,
      });
      const seen: number[] = [];
      for (let i = 1; i <= row.answers.length; i++) {
        vi.advanceTimersByTime(1000);
        if (release.mock.calls.length > seen.length) seen.push(i);
      }
      vi.advanceTimersByTime(10_000);
      expect(seen).toEqual(row.at === null ? [] : [row.at]);
      expect(release.mock.calls.length).toBe(row.at === null ? 0 : 1);
    });
  }

  it('cancelled before the hold ends: no release', () => {
    const release = vi.fn(() => done);
    const cancel = releaseWhenSettled(() => true, logger, { holdMs: 2000, release });
    vi.advanceTimersByTime(1000);
    cancel();
    vi.advanceTimersByTime(10_000);
    expect(release).not.toHaveBeenCalled();
  });

  it('without the addon (an Error) the agent goes on', () => {
    const release = vi.fn(() => new Error('the native addon is not available'));
    releaseWhenSettled(() => true, logger, { holdMs: 0, release });
    vi.advanceTimersByTime(5000);
    expect(release).toHaveBeenCalledTimes(1);
  });
});

describe('releaseStartupMemory', () => {
  const plan = () => [];
  it('turns an answer of the addon that is an error, or a throw, into an Error, never a throw', () => {
    const answers: MemoryAddon[] = [
      { release: () => ({ error: 'cannot read /proc/self/smaps' }), plan },
      {
        release: () => {
          throw new Error('boom');
        },
        plan,
      },
    ];
    expect(answers.map((a) => (releaseStartupMemory(a) as Error).message)).toEqual([
      'cannot read /proc/self/smaps',
      'boom',
    ]);
    expect((releaseStartupMemory(new Error('not built')) as Error).message).toBe('not built');
  });
  it('passes a release through', () => {
    const done: Released = { mappings: 1, fileKb: 4, mallocTrimmed: false };
    expect(releaseStartupMemory({ release: () => done, plan })).toEqual(done);
  });
});

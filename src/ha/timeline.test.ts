import { describe, expect, it } from 'vitest';
import type { HistoryEntry } from '../dcs/types.js';
import { mergeTimelineHistory, historyMatches } from './history.js';
import { control } from './testing/fixtures.js';
import { clusterTimeline, divergenceEvidence, firstDifference, needsRewind } from './timeline.js';

const key = (...entries: Array<[number, number]>): HistoryEntry[] => entries.map(([t, l]) => [t, l, 'x']);

describe('firstDifference', () => {
  it.each([
    [
      'same history',
      { timeline: 2, switches: [{ timeline: 1, lsn: 100 }] },
      { timeline: 2, switches: [{ timeline: 1, lsn: 100 }] },
      null,
    ],
    [
      'one continues the other',
      { timeline: 1, switches: [] },
      { timeline: 2, switches: [{ timeline: 1, lsn: 100 }] },
      100,
    ],
    [
      'two timeline 2s with other switch points',
      { timeline: 2, switches: [{ timeline: 1, lsn: 100 }] },
      { timeline: 2, switches: [{ timeline: 1, lsn: 150 }] },
      100,
    ],
    [
      'a longer shared history',
      {
        timeline: 3,
        switches: [
          { timeline: 1, lsn: 10 },
          { timeline: 2, lsn: 20 },
        ],
      },
      {
        timeline: 3,
        switches: [
          { timeline: 1, lsn: 10 },
          { timeline: 2, lsn: 20 },
        ],
      },
      null,
    ],
  ])('%s', (_name, a, b, want) => {
    expect(firstDifference(a, b)).toBe(want);
    expect(firstDifference(b, a)).toBe(want);
  });
});

describe('clusterTimeline (Patroni: one past the history key, 0 when unknown)', () => {
  it.each([
    [null, 0],
    [[], 1],
    [key([1, 100]), 2],
    [key([1, 100], [2, 200]), 3],
  ] as Array<[HistoryEntry[] | null, number]>)('%j → %i', (h, want) => expect(clusterTimeline(h)).toBe(want));
});

describe('needsRewind', () => {
  const history = key([1, 0x3000100]);
  it.each([
    ['same timeline', { control: control(), leaderTimeline: 1, leaderHistory: [] }, false],
    [
      'clean stop past the fork',
      {
        control: control({ clusterState: 'shut down', checkpointLsn: 0x3000200 }),
        leaderTimeline: 2,
        leaderHistory: history,
      },
      true,
    ],
    [
      'clean replica stop before the fork',
      {
        control: control({ clusterState: 'shut down in recovery', checkpointLsn: 0x3000000 }),
        leaderTimeline: 2,
        leaderHistory: history,
      },
      false,
    ],
    [
      'running replica exactly at the fork',
      { control: control(), position: 0x3000100, timeline: 1, leaderTimeline: 2, leaderHistory: history },
      false,
    ],
    [
      'running replica past the fork',
      { control: control(), position: 0x3000101, timeline: 1, leaderTimeline: 2, leaderHistory: history },
      true,
    ],
    [
      'standby stopped uncleanly: start it and let the running rule judge',
      { control: control({ checkpointLsn: 0x3000200 }), leaderTimeline: 2, leaderHistory: history },
      false,
    ],
    [
      'crashed primary on another timeline',
      { control: control({ clusterState: 'in production' }), leaderTimeline: 2, leaderHistory: [] },
      true,
    ],
    [
      'ahead of the leader’s timeline',
      { control: control({ timeline: 3 }), leaderTimeline: 2, leaderHistory: history },
      true,
    ],
    [
      'own history file says another timeline 2 than the leader’s',
      {
        control: control({ clusterState: 'shut down in recovery', timeline: 2, checkpointLsn: 0x5000000 }),
        history: [{ timeline: 1, lsn: 0x3000000 }],
        leaderTimeline: 2,
        leaderHistory: key([1, 0x4000000]),
      },
      true,
    ],
    [
      'own history file agrees with the leader’s',
      {
        control: control({ clusterState: 'shut down in recovery', timeline: 2, checkpointLsn: 0x5000000 }),
        history: [{ timeline: 1, lsn: 0x4000000 }],
        leaderTimeline: 2,
        leaderHistory: key([1, 0x4000000]),
      },
      false,
    ],
  ] as Array<[string, Parameters<typeof needsRewind>[0], boolean]>)('%s', (_name, opts, want) => {
    expect(needsRewind(opts)).toBe(want);
  });
});

describe('divergenceEvidence', () => {
  const base = {
    receiveLsn: 0x4000000,
    replayLsn: 0x3000060,
    timeline: 1,
    streaming: true,
    replayStuckSince: 0,
    aheadSince: null,
    notStreamingForMs: 0,
    errors: [
      { lsn: 0x3000060, message: 'record with incorrect prev-link 0/3000028 at 0/3000060', atMono: 5000 },
      { lsn: 0x3000060, message: 'record with incorrect prev-link 0/3000028 at 0/3000060', atMono: 10_000 },
    ],
    leaderTimeline: 1,
    leaderPosition: 0x4000000,
    nowMono: 20_000,
    graceMs: 15_000,
  };
  it('names a replay stuck on a record the log calls unreadable while WAL keeps arriving', () => {
    expect(divergenceEvidence(base)).toMatch(/^replay stuck at 0\/3000060: record with incorrect prev-link/);
  });
  it('needs the stall to last, WAL to be ahead of replay, and the error twice at that position', () => {
    expect(divergenceEvidence({ ...base, nowMono: 10_000 })).toBeNull();
    expect(divergenceEvidence({ ...base, receiveLsn: 0x3000060 })).toBeNull();
    expect(divergenceEvidence({ ...base, errors: base.errors.slice(1) })).toBeNull();
    expect(
      divergenceEvidence({ ...base, errors: base.errors.map((e) => ({ ...e, lsn: 0x2000000 })) }),
    ).toBeNull();
  });
  it('names WAL replayed past all the leader sends, once that lasts', () => {
    const ahead = {
      ...base,
      errors: [],
      receiveLsn: 0x4000000,
      replayLsn: 0x5000000,
      leaderPosition: 0x4000000,
      aheadSince: 1000,
    };
    expect(divergenceEvidence(ahead)).toMatch(
      /my WAL ends at 0\/5000000, past all the leader sends \(0\/4000000\) on the same timeline 1/,
    );
    expect(divergenceEvidence({ ...ahead, aheadSince: 10_000 })).toBeNull();
    expect(divergenceEvidence({ ...ahead, aheadSince: null })).toBeNull();
  });
  it('sees no fork in a restarted stream that has nothing new to carry: the leader has the WAL', () => {
    // After a replica's restart the receiver reports the segment it started streaming at until
    // the leader writes past what the replica already replayed.
    const restarted = {
      ...base,
      errors: [],
      receiveLsn: 0x5000000,
      replayLsn: 0x5026138,
      leaderPosition: 0x5026138,
      aheadSince: 1000,
    };
    expect(divergenceEvidence(restarted)).toBeNull();
    expect(divergenceEvidence({ ...restarted, leaderPosition: 0x5026100 })).toMatch(
      /past all the leader sends/,
    );
  });
});

describe('mergeTimelineHistory', () => {
  it('adds new switches, keeps known ones, and replaces entries of another history', () => {
    const known: HistoryEntry[] = [
      [1, 0x3000100, 'no recovery target specified', '2026-01-01T00:00:00.000Z', 'n2'],
    ];
    const switches = [
      { timeline: 1, lsn: 0x3000100, reason: 'no recovery target specified' },
      { timeline: 2, lsn: 0x5000000, reason: 'no recovery target specified' },
    ];
    const merged = mergeTimelineHistory(known, switches, new Date('2026-02-01T00:00:00Z'), 'n3');
    expect(merged).toEqual([
      known[0],
      [2, 0x5000000, 'no recovery target specified', '2026-02-01T00:00:00.000+00:00', 'n3'],
    ]);
    expect(historyMatches(merged, switches)).toBe(true);
    const other = mergeTimelineHistory(known, [{ timeline: 1, lsn: 0x3000200 }], new Date(0), 'n4');
    expect(other).toEqual([[1, 0x3000200, '', '1970-01-01T00:00:00.000+00:00', 'n4']]);
  });
});

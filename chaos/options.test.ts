import { describe, expect, it } from 'vitest';
import { FaultPlan, FAULT_KINDS } from './faults.js';
import { parseCli, parseDuration, replayCommand } from './options.js';
import { createRng } from './rng.js';

describe('parseDuration', () => {
  it('reads ms, s, m, h and bare seconds', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('60')).toBe(60_000);
    expect(() => parseDuration('ten minutes')).toThrow(/invalid duration/);
  });
});

describe('parseCli', () => {
  it('defaults to synchronous mode, every fault kind, ten minutes, and a random seed', () => {
    const o = parseCli([]);
    expect(o).toMatchObject({ mode: 'on', durationMs: 600_000, order: 'shuffle', ttl: 10, loopWait: 1 });
    expect(o.faults).toEqual([...FAULT_KINDS]);
    expect(o.seed).toBeGreaterThan(0);
  });

  it('takes the options of a replay and prints them back the same', () => {
    const argv = [
      '--seed',
      '42',
      '--duration',
      '60s',
      '--mode',
      'quorum',
      '--faults',
      'kill-both,partition-primary',
      '--order',
      'listed',
      '--max-faults',
      '2',
      '--gap',
      '1s-3s',
    ];
    const o = parseCli(argv);
    expect(o).toMatchObject({
      seed: 42,
      durationMs: 60_000,
      mode: 'quorum',
      maxFaults: 2,
      gapMs: [1000, 3000],
    });
    const again = parseCli(replayCommand(o).replace('npm run chaos -- ', '').split(' '));
    expect(again).toEqual(o);
  });

  it('refuses unknown modes, fault kinds and unsafe timings with one clear line', () => {
    expect(() => parseCli(['--mode', 'sync'])).toThrow(/--mode: expected async, on or quorum/);
    expect(() => parseCli(['--faults', 'kill-all'])).toThrow(/unknown kind kill-all/);
    expect(() => parseCli(['--ttl', '5', '--retry-timeout', '3'])).toThrow(/at least loop_wait/);
    expect(() => parseCli(['--gap', '5s-1s'])).toThrow(/min is above max/);
  });
});

describe('seeded plan', () => {
  it('replays the same kinds, pauses and per-fault seeds from the same seed', () => {
    const a = new FaultPlan(7, FAULT_KINDS, 'shuffle', [1000, 5000]);
    const b = new FaultPlan(7, FAULT_KINDS, 'shuffle', [1000, 5000]);
    const seqA = Array.from({ length: 25 }, () => a.next());
    expect(Array.from({ length: 25 }, () => b.next())).toEqual(seqA);
    // Shuffled rounds: each kind once per round.
    expect(new Set(seqA.slice(0, FAULT_KINDS.length).map((p) => p.kind)).size).toBe(FAULT_KINDS.length);
    expect(seqA.every((p) => p.gapMs >= 1000 && p.gapMs <= 5000)).toBe(true);
  });

  it('keeps the listed order', () => {
    const p = new FaultPlan(1, ['switchover', 'kill-both'], 'listed', [0, 0]);
    expect([p.next(), p.next(), p.next()].map((x) => x.kind)).toEqual([
      'switchover',
      'kill-both',
      'switchover',
    ]);
  });

  it('draws integers within bounds', () => {
    const r = createRng(123);
    const xs = Array.from({ length: 1000 }, () => r.int(3, 5));
    expect(new Set(xs)).toEqual(new Set([3, 4, 5]));
  });
});

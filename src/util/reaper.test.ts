import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { capturedLogger } from '../testing/captured-log.js';
import { nodeChildren, orphansToCollect, startReaper, trackChild, type ReapAddon } from './reaper.js';

describe('orphansToCollect: only zombies that Node did not start', () => {
  const node = new Set([20, 21]);
  it.each([
    ['nothing to collect', [], []],
    ['a zombie handed over (a killed postmaster)', [{ pid: 7, state: 'Z' }], [7]],
    ['a running postmaster stays', [{ pid: 7, state: 'S' }], []],
    ['a postmaster still exiting stays until it is a zombie', [{ pid: 7, state: 'R' }], []],
    ['a zombie Node started is left to Node', [{ pid: 20, state: 'Z' }], []],
    [
      'a mix',
      [
        { pid: 7, state: 'Z' },
        { pid: 8, state: 'Z' },
        { pid: 21, state: 'Z' },
        { pid: 9, state: 'S' },
      ],
      [7, 8],
    ],
  ])('%s', (_name, children, want) => {
    expect(orphansToCollect(children, node)).toEqual(want);
  });
});

describe('trackChild', () => {
  it('counts a child as Node’s from its start until Node has collected it', async () => {
    const child = trackChild(spawn('sleep', ['0.2']));
    expect(nodeChildren().has(child.pid!)).toBe(true);
    await once(child, 'exit');
    expect(nodeChildren().has(child.pid!)).toBe(false);
  });
});

describe('startReaper', () => {
  const addon: ReapAddon = { collect: () => null };

  it('does nothing when the process is not process 1: the system’s init collects', async () => {
    const { logger, lines } = capturedLogger('debug');
    startReaper(logger, { pid: 4242, addon })();
    await new Promise((r) => setImmediate(r));
    expect(lines).toEqual([]);
  });

  it('as process 1 without the addon, says what that costs and what to do', async () => {
    const { logger, lines } = capturedLogger('debug');
    startReaper(logger, { pid: 1, addon: new Error('the native addon is not available (not built)') })();
    await new Promise((r) => setImmediate(r));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /process 1 .*not available .*cannot start again.*docker run --init.*build:native/,
    );
  });
});

import { describe, expect, it } from 'vitest';
import { parseProcStat } from './proc-stat.js';

describe('parseProcStat: a process the kernel is still taking down is not another program', () => {
  const stat = (comm: string, state: string, flags: number) =>
    `31088 (${comm}) ${state} 1 31088 31088 0 -1 ${flags} 120 0 0 0 0 0 0 0 20 0 1 0 500 0 0`;
  it.each([
    [
      'a running postmaster',
      stat('postgres', 'S', 0x400100),
      { state: 'S', ppid: 1, dying: false, dead: false },
    ],
    // SIGKILLed: its memory is being unmapped, /proc/<pid>/cmdline already reads empty (PF_EXITING).
    [
      'a postmaster whose exit is under way',
      stat('postgres', 'R', 0x40044c),
      { state: 'R', ppid: 1, dying: true, dead: false },
    ],
    [
      'a zombie waiting for its parent',
      stat('postgres', 'Z', 0x400104),
      { state: 'Z', ppid: 1, dying: true, dead: true },
    ],
    [
      'a command with spaces and parentheses',
      stat('a (b) c', 'S', 0),
      { state: 'S', ppid: 1, dying: false, dead: false },
    ],
    [
      'a kernel thread (empty cmdline, not exiting)',
      stat('kworker/0:1', 'I', 0x4208060),
      { state: 'I', ppid: 1, dying: false, dead: false },
    ],
    ['unreadable text', 'garbage', null],
  ])('%s', (_name, text, want) => {
    expect(parseProcStat(text)).toEqual(want);
  });
});

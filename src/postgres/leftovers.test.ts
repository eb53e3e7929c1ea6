import { describe, expect, it } from 'vitest';
import { attachedProcesses, parseProcStat, sharedMemoryId } from './leftovers.js';

const PID_FILE = [
  '31088',
  '/var/lib/postgresql/15/main',
  '1796546961',
  '5432',
  '/var/run/postgresql',
  '127.0.0.1',
  '  2147482    360448',
  'ready   ',
  '',
].join('\n');

const SHM = [
  '       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap',
  '   2147482     360448   600                    56 31088 31225      2   101   104   101   104 1796546971 1796546972 1796546961                  4096                     0',
  '   2154993     851969   600                    56 31179 31232      0   101   104   101   104 1796549453 1796549453 1796549447                  4096                     0',
  '',
].join('\n');

describe('sharedMemoryId', () => {
  it.each([
    ['a running server', PID_FILE, 360448],
    ['no line 7 yet (written while starting)', PID_FILE.split('\n').slice(0, 5).join('\n'), null],
    ['a line 7 that is not two numbers', PID_FILE.replace('  2147482    360448', 'x y'), null],
    ['an empty file', '', null],
  ])('%s', (_name, text, want) => {
    expect(sharedMemoryId(text)).toBe(want);
  });
});

describe('attachedProcesses', () => {
  it.each([
    ['two processes attached', 360448, 2],
    ['none attached', 851969, 0],
    ['no such segment (removed with its last process)', 12345, null],
  ])('%s', (_name, id, want) => {
    expect(attachedProcesses(SHM, id)).toBe(want);
  });

  it('reads the columns by their names, not their places', () => {
    const moved = 'shmid nattch key\n360448 3 2147482\n';
    expect(attachedProcesses(moved, 360448)).toBe(3);
    expect(attachedProcesses('no header here\n', 360448)).toBeNull();
  });
});

describe('parseProcStat: a process the kernel is still taking down is not another program', () => {
  // Fields after the command: state, ppid, pgrp, session, tty_nr, tpgid, flags, ... (proc(5)).
  const stat = (comm: string, state: string, flags: number) =>
    `31088 (${comm}) ${state} 1 31088 31088 0 -1 ${flags} 120 0 0 0 0 0 0 0 20 0 1 0 500 0 0`;
  it.each([
    ['a running postmaster', stat('postgres', 'S', 0x400100), { state: 'S', dying: false }],
    // SIGKILLed: its memory is being unmapped, /proc/<pid>/cmdline already reads empty (PF_EXITING).
    ['a postmaster whose exit is under way', stat('postgres', 'R', 0x40044c), { state: 'R', dying: true }],
    ['a zombie waiting for its parent', stat('postgres', 'Z', 0x400104), { state: 'Z', dying: true }],
    ['a command with spaces and parentheses', stat('a (b) c', 'S', 0), { state: 'S', dying: false }],
    [
      'a kernel thread (empty cmdline, not exiting)',
      stat('kworker/0:1', 'I', 0x4208060),
      { state: 'I', dying: false },
    ],
    ['unreadable text', 'garbage', null],
  ])('%s', (_name, text, want) => {
    expect(parseProcStat(text)).toEqual(want);
  });
});

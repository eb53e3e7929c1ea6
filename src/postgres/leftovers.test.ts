import { describe, expect, it } from 'vitest';
import { attachedProcesses, lockFilePid, sharedMemoryId, socketLockFiles } from './leftovers.js';

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

describe('socketLockFiles', () => {
  it.each([
    ["the server's first socket directory", undefined, ['/var/run/postgresql/.s.PGSQL.5432.lock']],
    [
      'and every configured one, once each',
      '/var/run/postgresql/, /tmp',
      ['/var/run/postgresql/.s.PGSQL.5432.lock', '/tmp/.s.PGSQL.5432.lock'],
    ],
    ['not an abstract socket or an empty entry', '@pgha,,', ['/var/run/postgresql/.s.PGSQL.5432.lock']],
  ])('%s', (_name, dirs, want) => {
    expect(socketLockFiles(PID_FILE, dirs)).toEqual(want);
  });

  it('none without a port (a file written before the server listened)', () => {
    expect(socketLockFiles(PID_FILE.split('\n').slice(0, 3).join('\n'), '/tmp')).toEqual([]);
  });
});

describe('lockFilePid', () => {
  it.each([
    ['a postmaster', PID_FILE, 31088],
    ['a single-user backend (written negative)', '-4242\n/data\n', 4242],
    ['an empty file', '', null],
    ['not a number', 'x\n', null],
  ])('%s', (_name, text, want) => {
    expect(lockFilePid(text)).toBe(want);
  });
});

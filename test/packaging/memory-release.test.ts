/**
 * native/memory.c, in a process of its own: releasing the start-up memory takes the pages of
 * read-only file mappings out of the process and loses nothing. The invariant: every mapping it
 * released reads, byte for byte, what it read before, and a mapping that holds pages of its own
 * (written before it became read-only) keeps them. The process goes on running JavaScript.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { addonPath, loadAddon } from '../../src/util/package-root.js';
import type { MemoryAddon } from '../../src/util/startup-memory.js';

const run = promisify(execFile);

/** Runs in the child (CommonJS, `node -e`): argv[1] is the addon's path. */
const CHILD = String.raw`
const fs = require('node:fs');
const crypto = require('node:crypto');
const addon = require(process.argv[1]);
// Start-up work that reads more of the executable: modules, crypto, compression, Intl.
require('node:http'); require('node:zlib').gzipSync(Buffer.alloc(1 << 16));
crypto.createHash('sha256').update('x').digest('hex'); new Intl.DateTimeFormat('de').format(0);
const kb = (s, name) => Number(new RegExp('^' + name + ':\\s+(\\d+) kB$', 'm').exec(s)[1]);
const status = () => { const s = fs.readFileSync('/proc/self/status', 'utf8'); return { file: kb(s, 'RssFile'), anon: kb(s, 'RssAnon') }; };
function mappings() {
  const out = []; let cur = null;
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const h = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (h) { cur = { start: parseInt(h[1], 16), end: parseInt(h[2], 16), perms: h[3], path: h[4] }; out.push(cur); continue; }
    const f = /^(Rss|Anonymous|Private_Dirty):\s+(\d+) kB/.exec(line);
    if (f && cur) cur[f[1]] = Number(f[2]);
  }
  return out.filter((m) => m.path.startsWith('/') && m.perms[1] !== 'w' && m.perms[3] === 'p');
}
const mem = fs.openSync('/proc/self/mem', 'r');
function digest(m) {
  const h = crypto.createHash('sha256'); const buf = Buffer.alloc(1 << 20);
  for (let at = m.start; at < m.end; at += buf.length) {
    const n = fs.readSync(mem, buf, 0, Math.min(buf.length, m.end - at), at); h.update(buf.subarray(0, n));
  }
  return h.digest('hex');
}
const sums = new Map(mappings().map((m) => [m.start, digest(m)]));
// Read after the digests, which brought every page in.
const before = mappings();
const own = before.filter((m) => m.Anonymous > 0);
const clean = before.filter((m) => m.Anonymous === 0 && m.Private_Dirty === 0 && m.Rss > 0);
const fileBefore = status().file;
const released = addon.release();
const fileAfter = status().file;
const changed = before.filter((m) => digest(m) !== sums.get(m.start)).map((m) => m.path + ' ' + m.perms);
const ownAfter = new Map(mappings().map((m) => [m.start, m.Anonymous]));
const ownLost = own.filter((m) => (ownAfter.get(m.start) ?? 0) < m.Anonymous).map((m) => m.path + ' ' + m.perms);
// JavaScript, crypto and compression still work after the release.
const work = crypto.createHash('sha256').update(require('node:zlib').gunzipSync(require('node:zlib').gzipSync('pgha')).toString()).digest('hex');
process.stdout.write(JSON.stringify({ released, fileBefore, fileAfter, clean: clean.length, own: own.length, changed, ownLost, work }));
`;

/** One block of /proc/<pid>/smaps, fields in the kernel's order. */
function block(o: {
  range: string;
  perms: string;
  path?: string;
  rss?: number;
  anon?: number;
  dirty?: number;
  swap?: number | null;
  flags?: string;
}): string {
  const kb = (name: string, v: number) => `${(name + ':').padEnd(16)}${String(v).padStart(8)} kB\n`;
  return (
    `${o.range} ${o.perms} 00000000 08:01 4294967301${o.path === undefined ? '' : `                    ${o.path}`}\n` +
    kb('Size', 64) +
    kb('Rss', o.rss ?? 32) +
    kb('Pss', o.rss ?? 32) +
    kb('Private_Clean', o.rss ?? 32) +
    kb('Private_Dirty', o.dirty ?? 0) +
    kb('Anonymous', o.anon ?? 0) +
    (o.swap === null ? '' : kb('Swap', o.swap ?? 0)) +
    kb('Locked', 0) +
    `VmFlags: ${o.flags ?? 'rd ex mr mw me'} \n`
  );
}

describe('native/memory.c: which mappings release() considers', () => {
  const prefix = `00900000-00901000 r--p 00000000 08:01 4294967301${' '.repeat(20)}`; // as block() writes it
  // A path long enough that a line reader of 8 KB would see its end as a line of its own.
  const longPath = '/' + 'a'.repeat(8191 - prefix.length - 1) + '7f0000-7f1000 r-xp 0 0:0 0 /x';
  const rows: Array<{ name: string; text: string; released: boolean }> = [
    {
      name: 'clean text of a file',
      text: block({ range: '00400000-00500000', perms: 'r-xp', path: '/usr/bin/node' }),
      released: true,
    },
    {
      name: 'read-only data with a private page',
      text: block({ range: '00500000-00510000', perms: 'r--p', path: '/usr/bin/node', anon: 4 }),
      released: false,
    },
    {
      name: 'a dirty private page',
      text: block({ range: '00510000-00520000', perms: 'r--p', path: '/usr/bin/node', dirty: 4 }),
      released: false,
    },
    {
      name: 'a private page swapped out',
      text: block({ range: '00520000-00530000', perms: 'r--p', path: '/usr/lib/libc.so.6', swap: 8 }),
      released: false,
    },
    {
      name: 'no Swap line',
      text: block({ range: '00530000-00540000', perms: 'r--p', path: '/usr/lib/libc.so.6', swap: null }),
      released: false,
    },
    {
      name: 'writable',
      text: block({ range: '00540000-00550000', perms: 'rw-p', path: '/usr/bin/node' }),
      released: false,
    },
    {
      name: 'shared',
      text: block({ range: '00550000-00560000', perms: 'r--s', path: '/dev/shm/x' }),
      released: false,
    },
    {
      name: 'a deleted file',
      text: block({ range: '00560000-00570000', perms: 'r-xp', path: '/usr/bin/node (deleted)' }),
      released: false,
    },
    { name: 'anonymous memory', text: block({ range: '00570000-00580000', perms: 'r--p' }), released: false },
    {
      name: 'the heap',
      text: block({ range: '00580000-00590000', perms: 'r--p', path: '[heap]' }),
      released: false,
    },
    {
      name: 'locked',
      text: block({
        range: '00590000-005a0000',
        perms: 'r-xp',
        path: '/usr/bin/node',
        flags: 'rd ex mr mw me lo',
      }),
      released: false,
    },
    {
      name: 'nothing resident',
      text: block({ range: '005a0000-005b0000', perms: 'r-xp', path: '/usr/bin/node', rss: 0 }),
      released: false,
    },
    {
      name: 'no access',
      text: block({ range: '005b0000-005c0000', perms: '---p', path: '/usr/bin/node' }),
      released: false,
    },
    {
      name: 'a line too long to read whole',
      text: block({ range: '00900000-00901000', perms: 'r--p', path: longPath }),
      released: false,
    },
    {
      name: 'the block after it',
      text: block({ range: '00a00000-00a10000', perms: 'r-xp', path: '/usr/lib/libm.so.6' }),
      released: true,
    },
  ];
  it.skipIf(!existsSync(addonPath('pgha_memory')))(
    'only private, read-only mappings of a file with nothing but clean pages resident',
    () => {
      const addon = loadAddon<MemoryAddon>('pgha_memory');
      const got = addon.plan(rows.map((r) => r.text).join(''));
      const hex = (n: number) => n.toString(16).padStart(8, '0');
      const ranges = (got as Array<[number, number]>).map(([a, b]) => `${hex(a)}-${hex(b)}`);
      const expected = rows.filter((r) => r.released).map((r) => r.text.slice(0, 17));
      expect(ranges).toEqual(expected);
      expect(expected).toEqual(['00400000-00500000', '00a00000-00a10000']);
    },
  );
});

describe('native/memory.c: release()', () => {
  it.skipIf(!existsSync(addonPath('pgha_memory')))(
    'takes the file pages out of the process, and every released mapping reads the same bytes',
    async () => {
      const { stdout } = await run(process.execPath, ['-e', CHILD, addonPath('pgha_memory')], {
        timeout: 60_000,
        maxBuffer: 1 << 20,
      });
      const r = JSON.parse(stdout) as {
        released: { mappings: number; fileKb: number; mallocTrimmed: boolean };
        fileBefore: number;
        fileAfter: number;
        clean: number;
        own: number;
        changed: string[];
        ownLost: string[];
        work: string;
      };
      console.log(
        `released ${r.released.mappings} mappings, ${r.released.fileKb} kB; RssFile ${r.fileBefore} -> ${r.fileAfter} kB`,
      );
      // Reclaim may empty a mapping, and a page may change under it, between the two readings.
      expect(r.released.mappings).toBeGreaterThan(0);
      expect(r.released.mappings).toBeLessThanOrEqual(r.clean);
      expect(r.released.fileKb).toBeGreaterThan(10 * 1024);
      expect(r.fileAfter).toBeLessThan(r.fileBefore - 10 * 1024);
      expect(r.changed).toEqual([]);
      expect(r.own).toBeGreaterThan(0); // the executable's RELRO at least
      expect(r.ownLost).toEqual([]);
      expect(r.work).toMatch(/^[0-9a-f]{64}$/);
    },
  );
});

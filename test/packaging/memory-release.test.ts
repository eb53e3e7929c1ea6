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
import { addonPath } from '../../src/util/package-root.js';

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
      expect(r.released.mappings).toBe(r.clean);
      expect(r.released.fileKb).toBeGreaterThan(10 * 1024);
      expect(r.fileAfter).toBeLessThan(r.fileBefore - 10 * 1024);
      expect(r.changed).toEqual([]);
      expect(r.own).toBeGreaterThan(0); // the executable's RELRO at least
      expect(r.ownLost).toEqual([]);
      expect(r.work).toMatch(/^[0-9a-f]{64}$/);
    },
  );
});

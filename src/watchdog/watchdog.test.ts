import { spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../util/log.js';
import { desiredTimeout, Watchdog } from './watchdog.js';

const logger = createLogger({ level: 'silent' });

/** The directories the tests made, removed at the end. */
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'pgha-wd-'));
  dirs.push(d);
  return d;
}

function device(): string {
  const path = join(tempDir(), 'watchdog');
  writeFileSync(path, '');
  return path;
}

describe('watchdog', () => {
  it('asks for ttl - safety_margin, or ttl / 2 with a margin of -1, as Patroni', () => {
    expect(desiredTimeout(30, 5)).toBe(25);
    expect(desiredTimeout(30, -1)).toBe(15);
  });

  it('pings on every keepalive and disarms with the magic V', () => {
    const dev = device();
    const w = new Watchdog({ mode: 'automatic', device: dev, safetyMargin: 5, logger });
    w.keepalive(30, 10);
    w.keepalive(30, 10);
    expect(w.active).toBe(true);
    w.disable();
    w.disable();
    expect(w.active).toBe(false);
    expect(readFileSync(dev, 'utf8')).toBe('11V');
  });

  it('says why it cannot be used', () => {
    const w = new Watchdog({ mode: 'required', device: '/nonexistent/watchdog', safetyMargin: 5, logger });
    expect(w.activate(30, 10)).toMatch(/\/nonexistent\/watchdog does not exist \(load a driver/);
    const short = new Watchdog({ mode: 'required', device: device(), safetyMargin: 5, logger });
    expect(short.activate(10, 5)).toBe(
      'the timeout ttl - safety_margin = 5 s is not longer than loop_wait (5 s)',
    );
    const off = new Watchdog({ mode: 'off', device: device(), safetyMargin: 5, logger });
    expect(off.activate(30, 10)).toBe('watchdog.mode is off');
    off.keepalive(30, 10);
    expect(off.active).toBe(false);
  });

  it('refuses a driver Patroni does not know, as Patroni runs without a watchdog then', () => {
    const w = new Watchdog({ mode: 'required', device: device(), driver: 'acme', safetyMargin: 5, logger });
    expect(w.activate(30, 10)).toBe('watchdog.driver "acme" is not one of default, testing');
    expect(w.active).toBe(false);
  });
});

describe("watchdog with the testing driver (a named pipe, as Patroni's acceptance tests use)", () => {
  /** A named pipe and its reader, as the test harness has it: what the agent wrote, and whether it closed. */
  function pipe(): { path: string; read(): string; writerGone(): boolean; close(): void } {
    const path = join(tempDir(), 'watchdog.fifo');
    expect(spawnSync('mkfifo', [path]).status).toBe(0);
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    let eof = false;
    const read = () => {
      const buf = Buffer.alloc(4096);
      let out = '';
      for (;;) {
        let n: number;
        try {
          n = readSync(fd, buf);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return out; // writer open, nothing new
          throw err;
        }
        if (n === 0) {
          eof = true; // no writer left
          return out;
        }
        eof = false;
        out += buf.toString('utf8', 0, n);
      }
    };
    return {
      path,
      read,
      writerGone: () => {
        read();
        return eof;
      },
      close: () => closeSync(fd),
    };
  }

  it('sets ttl - safety_margin through the device, pings, changes it in place when the ttl changes, and closes with V', () => {
    const p = pipe();
    try {
      const w = new Watchdog({
        mode: 'required',
        device: p.path,
        driver: 'testing',
        safetyMargin: 5,
        logger,
      });
      expect(w.activate(20, 10)).toBeNull();
      expect(p.read()).toBe('Ctimeout=15\n');
      w.keepalive(20, 10);
      w.keepalive(20, 10);
      expect(p.read()).toBe('11');
      // ttl 30: the ping, then the new timeout on the same open device (no close in between).
      w.keepalive(30, 10);
      expect(p.read()).toBe('1Ctimeout=25\n');
      expect(p.writerGone()).toBe(false);
      w.disable();
      expect(p.read()).toBe('V');
      expect(p.writerGone()).toBe(true);
      expect(w.active).toBe(false);
      // Armed again later (after a pause): opened again with the timeout.
      w.keepalive(30, 10);
      expect(p.read()).toBe('Ctimeout=25\n1');
      w.disable();
    } finally {
      p.close();
    }
  });

  it('says so when nothing reads the pipe', () => {
    const p = pipe();
    p.close();
    const w = new Watchdog({ mode: 'required', device: p.path, driver: 'testing', safetyMargin: 5, logger });
    expect(w.activate(20, 10)).toMatch(/nothing reads the named pipe .*watchdog\.fifo/);
  });
});

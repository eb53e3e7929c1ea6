import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../util/log.js';
import { desiredTimeout, Watchdog } from './watchdog.js';

const logger = createLogger({ level: 'silent' });

function device(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'pgha-wd-')), 'watchdog');
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
});

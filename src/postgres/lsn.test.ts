import { describe, expect, it } from 'vitest';
import { formatLsn, parseLsn, parseLsnOrUndefined, timelineFromWalFileName } from './lsn.js';

describe('LSNs', () => {
  it('parses PostgreSQL notation into bytes', () => {
    expect(parseLsn('0/3000028')).toBe(0x3000028);
    expect(parseLsn('16/B374D848')).toBe(0x16 * 2 ** 32 + 0xb374d848);
    expect(parseLsn('FFFF/FFFFFFFF')).toBe(0xffff * 2 ** 32 + 0xffffffff);
    expect(parseLsn(' 0/0 ')).toBe(0);
  });

  it('rejects what is not an LSN', () => {
    for (const bad of ['', '0', '0/', '/1', 'x/1', '0/123456789', '1/2/3'])
      expect(() => parseLsn(bad)).toThrow(RangeError);
  });

  it('maps SQL NULL to undefined', () => {
    expect(parseLsnOrUndefined(null)).toBeUndefined();
    expect(parseLsnOrUndefined(undefined)).toBeUndefined();
    expect(parseLsnOrUndefined('0/10')).toBe(16);
  });

  it('formats like PostgreSQL and round-trips', () => {
    expect(formatLsn(0x3000028)).toBe('0/3000028');
    expect(formatLsn(0)).toBe('0/0');
    for (const s of ['16/B374D848', '0/1', 'ABC/DEF']) expect(formatLsn(parseLsn(s))).toBe(s);
    expect(() => formatLsn(-1)).toThrow(RangeError);
    expect(() => formatLsn(1.5)).toThrow(RangeError);
  });

  it('reads the timeline from a WAL file name', () => {
    expect(timelineFromWalFileName('000000020000000000000003')).toBe(2);
    expect(timelineFromWalFileName('0000000A0000000100000003')).toBe(10);
    expect(() => timelineFromWalFileName('00000002')).toThrow(RangeError);
  });
});

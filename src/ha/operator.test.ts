import { describe, expect, it } from 'vitest';
import { parseSchedule, postgresVersionToInt } from './operator.js';

describe('postgresVersionToInt (Patroni rules)', () => {
  it('converts X.Y (10+) and X.Y.Z', () => {
    expect(postgresVersionToInt('15.4')).toBe(150004);
    expect(postgresVersionToInt('10.1')).toBe(100001);
    expect(postgresVersionToInt('9.6.3')).toBe(90603);
  });
  it('rejects what Patroni rejects, with its messages', () => {
    expect(() => postgresVersionToInt('10')).toThrow(
      'Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 10',
    );
    expect(() => postgresVersionToInt('9.6')).toThrow('X.Y or X.Y.Z is accepted: 9.6');
    expect(() => postgresVersionToInt('a.b.c')).toThrow('Invalid PostgreSQL version: a.b.c');
  });
});

describe('parseSchedule', () => {
  const now = Date.parse('2030-01-01T00:00:00Z');
  it('needs a timezone, a parsable time and the future', () => {
    expect(parseSchedule('2030-01-01T00:30:00+01:00', 'switchover', now)).toEqual({
      ok: false,
      status: 422,
      message: 'Cannot schedule switchover in the past',
    });
    expect(parseSchedule('2030-01-01T02:00:00', 'restart', now)).toMatchObject({ status: 400 });
    expect(parseSchedule('next tuesday', 'restart', now)).toMatchObject({ status: 422 });
    expect(parseSchedule('2030-01-01T03:00:00+02:00', 'restart', now)).toEqual({
      ok: true,
      at: '2030-01-01T01:00:00.000+00:00',
      ms: now + 3600_000,
    });
    expect(parseSchedule('2030-01-01 00:30Z', 'restart', now)).toMatchObject({ ok: true });
  });
});

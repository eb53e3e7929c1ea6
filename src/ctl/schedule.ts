/** Timestamps for `--scheduled`, parsed and written as patronictl does. */
import { PghaError } from '../util/errors.js';

/** `datetime.isoformat()` of a local-time datetime with its UTC offset: `2024-05-01T10:00:00+02:00`. */
export function isoLocal(d: Date): string {
  const p = (n: number, w = 2) => String(Math.abs(n)).padStart(w, '0');
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const frac = d.getMilliseconds() ? `.${p(d.getMilliseconds() * 1000, 6)}` : '';
  return (
    `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}${frac}` +
    `${sign}${p(Math.trunc(Math.abs(off) / 60))}:${p(Math.abs(off) % 60)}`
  );
}

/**
 * patronictl's `parse_scheduled`: `now` or nothing means immediately (undefined); otherwise an
 * unambiguous timestamp, taken as local time when it has no offset. As dateutil, a time alone
 * (`22:00`) is today's and a date without a year is this year's. Returns the ISO string.
 */
export function parseScheduled(value: string | undefined, now = new Date()): string | undefined {
  if ((value || 'now') === 'now') return undefined;
  const v = value!.trim();
  const time = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(v);
  if (time) {
    const [, h, mi, s] = time;
    const d = new Date(
      now.getFullYear(),
      now.getMonth(),
      now.getDate(),
      Number(h),
      Number(mi),
      Number(s ?? 0),
    );
    if (d.getHours() === Number(h) && d.getMinutes() === Number(mi)) return isoLocal(d);
  }
  // A date alone would be read as UTC midnight by Date; Python reads it as local midnight.
  const m =
    /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i.exec(
      v,
    );
  let d: Date;
  if (m) {
    const [, y, mo, da, h, mi, s, f, tz] = m;
    const ms = f ? Math.round(Number(`0.${f}`) * 1000) : 0;
    if (tz) {
      const iso = `${y}-${mo}-${da}T${(h ?? '0').padStart(2, '0')}:${mi ?? '00'}:${s ?? '00'}.${String(ms).padStart(3, '0')}${tz.toUpperCase() === 'Z' ? 'Z' : tz.length === 5 ? `${tz.slice(0, 3)}:${tz.slice(3)}` : tz}`;
      d = new Date(iso);
    } else {
      d = new Date(
        Number(y),
        Number(mo) - 1,
        Number(da),
        Number(h ?? 0),
        Number(mi ?? 0),
        Number(s ?? 0),
        ms,
      );
    }
  } else if (/\d{4}/.test(v)) {
    d = new Date(v);
  } else {
    // Without a year, Date takes 2001 and reads almost anything as a date: only a month name, a
    // day and an optional local time are taken, in this year, as dateutil reads them.
    d = monthDay(v, now) ?? new Date(NaN);
  }
  if (Number.isNaN(d.getTime()))
    throw new PghaError(
      'PGHA_BAD_SCHEDULE',
      `Unable to parse scheduled timestamp (${v}). It should be in an unambiguous format (e.g. ISO 8601)`,
    );
  return isoLocal(d);
}

const MONTHS = [
  'january',
  'february',
  'march',
  'april',
  'may',
  'june',
  'july',
  'august',
  'september',
  'october',
  'november',
  'december',
];

/** `June 1`, `Jun 1 22:00`, `june 1, 22:00:30`: that day of this year, local time; null otherwise. */
function monthDay(v: string, now: Date): Date | null {
  const m = /^([a-z]{3,9})\.?\s+(\d{1,2})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$/i.exec(v);
  if (!m) return null;
  const [, name, day, h, mi, s] = m;
  // The full name or its first three letters or more, as dateutil takes them.
  const month = MONTHS.findIndex((full) => full.startsWith(name!.toLowerCase()));
  if (month < 0) return null;
  const d = new Date(now.getFullYear(), month, Number(day), Number(h ?? 0), Number(mi ?? 0), Number(s ?? 0));
  // No rolling over: February 30 is no date, and neither is a time that does not exist that day.
  if (d.getMonth() !== month || d.getDate() !== Number(day) || d.getHours() !== Number(h ?? 0)) return null;
  return d;
}

/** The example patronictl shows in its "When should ... take place" question: now + 1 hour. */
export function nextHour(now = new Date()): string {
  return isoLocal(new Date(now.getTime() + 3600_000)).slice(0, 16);
}

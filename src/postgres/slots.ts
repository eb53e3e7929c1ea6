/**
 * Replication slot names derived from member names, exactly as Patroni's
 * `slot_name_from_member_name` does, so pgha and Patroni members agree on slot names.
 */

/**
 * Lower-cases, maps `-` and `.` to `_`, every other character outside `[a-z0-9_]` to `u` plus its
 * code point as (at least) 4 decimal digits, and cuts to 63 characters. Patroni formats the code
 * point with `{:04d}` (decimal, not hex) and so do we, on purpose.
 */
export function slotNameForMember(name: string): string {
  let out = '';
  for (const c of name.toLowerCase()) {
    if (/^[a-z0-9_]$/.test(c)) out += c;
    else if (c === '-' || c === '.') out += '_';
    else out += 'u' + String(c.codePointAt(0) ?? 0).padStart(4, '0');
  }
  return out.slice(0, 63);
}

/** True when `name` is a valid physical slot name (what PostgreSQL accepts). */
export function isValidSlotName(name: string): boolean {
  return /^[a-z0-9_]{1,63}$/.test(name);
}

import { describe, expect, it } from 'vitest';
import { isValidSlotName, slotNameForMember } from './slots.js';

describe('slotNameForMember (as Patroni)', () => {
  it('lower-cases and maps hostname punctuation to underscores', () => {
    expect(slotNameForMember('Node-1.example.COM')).toBe('node_1_example_com');
    expect(slotNameForMember('catalog01')).toBe('catalog01');
  });

  it('encodes other characters as u + decimal code point', () => {
    // Patroni: "u{:04d}".format(ord(c))
    expect(slotNameForMember('a b')).toBe('au0032b');
    expect(slotNameForMember('a@b')).toBe('au0064b');
    expect(slotNameForMember('é')).toBe('u0233');
    expect(slotNameForMember('x😀')).toBe('xu128512');
  });

  it('cuts to 63 characters', () => {
    const s = slotNameForMember('n'.repeat(100));
    expect(s).toHaveLength(63);
    expect(isValidSlotName(s)).toBe(true);
  });

  it('validates slot names', () => {
    expect(isValidSlotName('n1_a')).toBe(true);
    expect(isValidSlotName('N1')).toBe(false);
    expect(isValidSlotName('')).toBe(false);
    expect(isValidSlotName('a-b')).toBe(false);
  });
});

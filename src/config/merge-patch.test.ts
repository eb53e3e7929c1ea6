import { describe, expect, it } from 'vitest';
import { mergePatch } from './merge-patch.js';

describe('mergePatch (Patroni patch_config)', () => {
  it('merges objects, replaces values, deletes on null, reports changes', () => {
    const cfg: Record<string, unknown> = {
      ttl: 30,
      postgresql: { parameters: { a: 1, b: 2 }, use_slots: true },
    };
    expect(mergePatch(cfg, { postgresql: { parameters: { a: null, c: 3 } }, loop_wait: 5 })).toBe(true);
    expect(cfg).toEqual({
      ttl: 30,
      loop_wait: 5,
      postgresql: { parameters: { b: 2, c: 3 }, use_slots: true },
    });
    expect(mergePatch(cfg, { ttl: 30, nothing: null })).toBe(false);
    expect(mergePatch(cfg, { tags: { x: null, y: 1 } })).toBe(true);
    expect(cfg.tags).toEqual({ y: 1 });
    expect(mergePatch(cfg, { postgresql: 'flat' })).toBe(true);
    expect(cfg.postgresql).toBe('flat');
  });
});

describe('mergePatch never reaches a prototype', () => {
  it('skips __proto__, constructor and prototype, from JSON and from YAML alike', () => {
    const target: Record<string, unknown> = { a: 1 };
    const patch = JSON.parse(
      '{"__proto__": {"polluted": 1}, "constructor": {"prototype": {"x": 1}}, "b": 2}',
    ) as Record<string, unknown>;
    expect(mergePatch(target, patch)).toBe(true);
    expect(target).toEqual({ a: 1, b: 2 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    const nested = JSON.parse('{"c": {"__proto__": {"polluted": 1}, "d": 1}}') as Record<string, unknown>;
    mergePatch(target, nested);
    expect(target.c).toEqual({ d: 1 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

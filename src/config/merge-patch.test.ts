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

/**
 * docs/configuration.md is generated from the zod schema (`npm run docs:config`): this fails when the
 * committed file no longer matches the schema, and checks that every key the schema knows is
 * documented with a description. The list of keys pgha does not act on in
 * docs/migration-from-patroni.md is generated from src/config/keys.ts by the same command.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_DOCS,
  HA_DOCS,
  MIGRATION_DOCS,
  renderConfigDocs,
  renderHaDocs,
  renderMigrationDocs,
} from '../../scripts/gen-config-docs.js';

describe('docs/configuration.md', () => {
  it('matches the schema (run `npm run docs:config` after changing src/config/schema.ts)', async () => {
    expect(readFileSync(CONFIG_DOCS, 'utf8')).toBe(await renderConfigDocs());
  });

  it('docs/migration-from-patroni.md lists the keys of src/config/keys.ts (run `npm run docs:config`)', async () => {
    const text = readFileSync(MIGRATION_DOCS, 'utf8');
    expect(text).toBe(await renderMigrationDocs());
    expect(text).toContain('- `citus` (file): pgha does not support Citus');
    expect(text).toContain('- `slots` (dynamic): pgha creates no permanent slots');
  });

  it('docs/ha-loop.md lists the rules of src/ha/decide.ts in their order (run `npm run docs:config`)', async () => {
    const text = readFileSync(HA_DOCS, 'utf8');
    expect(text).toBe(await renderHaDocs());
    expect(text).toMatch(/\| 1 +\| `operator-hold` +\|/);
  });

  it('describes every key', async () => {
    const rows = (await renderConfigDocs())
      .split('\n')
      .filter((l) => /^\| `[a-z_0-9.]+` +\|/.test(l))
      .map((l) => l.split(/(?<!\\)\|/).map((c) => c.trim()));
    expect(rows.length).toBeGreaterThan(100);
    // Variable rows have two cells; key rows four: key, type, default, description.
    const undescribed = rows.filter((r) => r.length === 6 && r[4] === '').map((r) => r[1]);
    expect(undescribed).toEqual([]);
    for (const key of ['`scope`', '`postgresql.data_dir`', '`ttl`', '`router.listen`', '`vip.address`'])
      expect(rows.map((r) => r[1])).toContain(key);
  });
});

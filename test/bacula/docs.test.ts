/**
 * docs/bacula.md shows the files the tests run: each code block marked `<!-- file: path -->` is
 * that fixture exactly, every fixture under test/fixtures/bacula/ is shown, and the block marked
 * `<!-- output: catalog-resource path -->` is what the command prints for that file.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { catalogResourceText } from '../../src/bacula/command.js';
import { FIXTURES } from './debian.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DOC = readFileSync(join(ROOT, 'docs', 'bacula.md'), 'utf8');

/** The code block right after each `<!-- kind: arg -->` marker. */
function markedBlocks(kind: string): Array<{ arg: string; body: string }> {
  const re = new RegExp(`<!-- ${kind}: (.+?) -->\\s*\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\\n\`\`\`\\n`, 'g');
  return [...DOC.matchAll(re)].map((m) => ({ arg: m[1]!, body: `${m[2]!}\n` }));
}

describe('docs/bacula.md', () => {
  const files = markedBlocks('file');

  it('shows each fixture as it is', () => {
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(f.body, f.arg).toBe(readFileSync(join(ROOT, f.arg), 'utf8'));
  });

  it('shows every fixture of the Bacula tests', () => {
    const shown = new Set(files.map((f) => f.arg));
    for (const name of readdirSync(FIXTURES))
      expect(shown, name).toContain(relative(ROOT, join(FIXTURES, name)));
  });

  it("shows catalog-resource's output for the Director's catalog.yml", () => {
    const [block] = markedBlocks('output');
    expect(block?.arg).toBe('catalog-resource test/fixtures/bacula/catalog.yml');
    const saved = process.env.BACULA_DB_PASSWORD;
    process.env.BACULA_DB_PASSWORD = 'Bacula@Catalog25';
    try {
      const text = catalogResourceText(join(ROOT, 'test/fixtures/bacula/catalog.yml'), {
        name: 'MyCatalog',
        dbname: 'bacula',
        user: 'bacula',
        passwordEnv: 'BACULA_DB_PASSWORD',
      });
      expect(block!.body).toBe(text);
    } finally {
      if (saved === undefined) delete process.env.BACULA_DB_PASSWORD;
      else process.env.BACULA_DB_PASSWORD = saved;
    }
  });
});

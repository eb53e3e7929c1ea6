/**
 * Every command and subcommand of `pgha` has help a user can act on: walking the tree from
 * `pgha --help` through each command's own `--help`, every command listed has a description, every
 * option is explained, and `--help` exits 0 with the command's usage line.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
const run = promisify(execFile);

interface Entry {
  term: string;
  description: string;
}

/** The entries of one section (`Options:`, `Commands:`) of commander's help. */
function section(help: string, title: string): Entry[] {
  const lines = help.split('\n');
  const start = lines.indexOf(`${title}:`);
  if (start < 0) return [];
  const out: Entry[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '') break;
    const m = /^ {2}(\S(?:.*?\S)?)(?: {2,}(\S.*))?$/.exec(line);
    if (m) out.push({ term: m[1]!, description: m[2] ?? '' });
    else if (/^ {3,}\S/.test(line) && out.length > 0) out.at(-1)!.description += ' ' + line.trim();
  }
  return out;
}

interface HelpPage {
  path: string[];
  text: string;
}

/** `pgha <path> --help` for the root and every command below it, depth first. */
async function walk(path: string[] = []): Promise<HelpPage[]> {
  const { stdout } = await run(process.execPath, [CLI, ...path, '--help'], { timeout: 30_000 });
  const pages: HelpPage[] = [{ path, text: stdout }];
  for (const cmd of section(stdout, 'Commands')) {
    const name = cmd.term.split(/\s/)[0]!;
    if (name === 'help') continue;
    pages.push(...(await walk([...path, name])));
  }
  return pages;
}

describe('pgha --help, for every command', () => {
  it('describes every command and option, and every --help exits 0 with its usage', async () => {
    const pages = await walk();
    const names = pages.map((p) => p.path.join(' '));
    // The tree the README documents, at least.
    for (const cmd of [
      'agent',
      'demo',
      'ctl',
      'router',
      'vip',
      'ctl list',
      'ctl switchover',
      'ctl edit-config',
    ])
      expect(names).toContain(cmd);
    const problems: string[] = [];
    for (const page of pages) {
      const where = ['pgha', ...page.path].join(' ');
      if (!page.text.startsWith(`Usage: ${where} `) && page.text.trim() !== `Usage: ${where}`)
        problems.push(`${where}: no usage line`);
      // The text between the usage line and the first section is the command's description.
      const intro = page.text
        .split('\n')
        .slice(1)
        .join('\n')
        .split(/\n(?:Arguments|Options|Commands):\n/)[0]!;
      if (intro.trim().length < 10) problems.push(`${where}: no description`);
      for (const c of section(page.text, 'Commands'))
        if (c.description.trim().length < 5)
          problems.push(`${where}: command "${c.term}" has no description`);
      for (const o of section(page.text, 'Options'))
        if (o.description.trim().length < 5) problems.push(`${where}: option "${o.term}" has no description`);
      for (const a of section(page.text, 'Arguments'))
        if (a.description.trim().length < 5)
          problems.push(`${where}: argument "${a.term}" has no description`);
    }
    expect(problems).toEqual([]);
    expect(pages.length).toBeGreaterThan(20);
  }, 300_000);
});

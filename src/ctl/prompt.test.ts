import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createPrompter } from './prompt.js';

function setup(answers: string) {
  const input = new PassThrough();
  const output = new PassThrough();
  let shown = '';
  output.on('data', (c: Buffer) => (shown += c.toString()));
  input.end(answers);
  return { p: createPrompter(input, output), shown: () => shown };
}

describe('questions on piped input', () => {
  it('reads one answer per line, with defaults and yes/no as click does', async () => {
    const { p, shown } = setup('demo\n\nmaybe\ny\n');
    expect(await p.prompt('Cluster name')).toBe('demo');
    expect(await p.prompt('When', { default: 'now' })).toBe('now');
    expect(await p.confirm('Sure?')).toBe(true); // "maybe" is asked again
    p.close();
    expect(shown()).toBe('Cluster name: When [now]: Sure? [y/N]: Error: invalid input\nSure? [y/N]: ');
  });

  it('stops with the unanswered question when input ends', async () => {
    const { p } = setup('');
    await expect(p.prompt('Please confirm the cluster name to remove')).rejects.toThrow(
      /no answer to "Please confirm the cluster name to remove"/,
    );
    p.close();
  });
});

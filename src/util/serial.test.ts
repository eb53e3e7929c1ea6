import { describe, expect, it } from 'vitest';
import { Serial } from './serial.js';

describe('Serial', () => {
  it('runs one operation at a time, in order, naming the one running', async () => {
    const s = new Serial();
    const seen: string[] = [];
    let release!: () => void;
    const first = s.run('first', async () => {
      seen.push(`start first (${s.current})`);
      await new Promise<void>((r) => (release = r));
      seen.push('end first');
    });
    const second = s.run('second', () => {
      seen.push(`start second (${s.current})`);
      return Promise.resolve(2);
    });
    await Promise.resolve();
    release();
    expect(await second).toBe(2);
    await first;
    expect(seen).toEqual(['start first (first)', 'end first', 'start second (second)']);
    expect(s.current).toBeNull();
  });

  it('goes on after an operation that failed', async () => {
    const s = new Serial();
    await expect(s.run('bad', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await s.run('good', () => Promise.resolve('ok'))).toBe('ok');
  });
});

import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { fullGc } from '../testing/gc.js';
import { deadline } from './abort.js';

const after = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('deadline', () => {
  it('fires at its time with a TimeoutError, also after a garbage collection', async () => {
    const other = new AbortController();
    const d = deadline(150, other.signal);
    let fired: unknown = null;
    d.signal.addEventListener('abort', () => {
      fired = d.signal.reason as unknown;
    });
    await after(30);
    fullGc();
    await after(400);
    expect(fired).toMatchObject({ name: 'TimeoutError' });
    // It stopped listening on the other signal.
    expect(getEventListeners(other.signal, 'abort')).toHaveLength(0);
  });

  it('follows another signal, with its reason, and stops its timer', () => {
    const other = new AbortController();
    const d = deadline(100, other.signal, undefined);
    other.abort(new Error('stopping'));
    expect(d.signal.aborted).toBe(true);
    expect((d.signal.reason as Error).message).toBe('stopping');
    expect(getEventListeners(other.signal, 'abort')).toHaveLength(0);
  });

  it('starts aborted when a signal already is', () => {
    const other = new AbortController();
    other.abort('gone');
    const d = deadline(10_000, other.signal);
    expect(d.signal.aborted).toBe(true);
    expect(d.signal.reason).toBe('gone');
  });

  it('never fires once cleared, and leaves no listener behind', async () => {
    const other = new AbortController();
    const d = deadline(50, other.signal);
    d.clear();
    await after(150);
    other.abort();
    expect(d.signal.aborted).toBe(false);
    expect(getEventListeners(other.signal, 'abort')).toHaveLength(0);
  });
});

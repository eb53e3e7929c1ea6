/**
 * The replica's background slot advancer (slots-run.ts SlotAdvancer), with a fake server: what it
 * advances, in which order, and that forgetting its work (a slot copy restarting PostgreSQL, a
 * promotion) never leaves it waiting on the call it gave up.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { AdvanceResult, PostgresNode } from '../postgres/types.js';
import { SlotAdvancer } from './slots-run.js';

type Call = { name: string; lsn: number; settle: (r: AdvanceResult) => void; signal?: AbortSignal };

/** A server whose advances settle when the test says so (or never). */
function fakeServer(): { pg: PostgresNode; calls: Call[] } {
  const calls: Call[] = [];
  const pg = {
    advanceSlot: (name: string, _db: string | null, lsn: number, signal?: AbortSignal) =>
      new Promise<AdvanceResult>((settle) =>
        calls.push({ name, lsn, settle, ...(signal ? { signal } : {}) }),
      ),
  } as unknown as PostgresNode;
  return { pg, calls };
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const log = pino({ level: 'silent' });
const adv = (name: string, lsn: number) => ({ name, database: name === 'cdc' ? 'postgres' : null, lsn });

describe('SlotAdvancer', () => {
  it('advances the scheduled slots one after another, to the newest target', async () => {
    const { pg, calls } = fakeServer();
    const a = new SlotAdvancer(pg, log);
    a.schedule([adv('cdc', 100), adv('n2', 200)]);
    await tick();
    expect(calls.map((c) => [c.name, c.lsn])).toEqual([['cdc', 100]]);
    a.schedule([adv('cdc', 150)]);
    calls[0]!.settle({ ok: true });
    await tick();
    expect(calls.map((c) => [c.name, c.lsn])).toEqual([
      ['cdc', 100],
      ['n2', 200],
    ]);
    calls[1]!.settle({ ok: true });
    await tick();
    expect(calls.map((c) => [c.name, c.lsn])).toEqual([
      ['cdc', 100],
      ['n2', 200],
      ['cdc', 150],
    ]);
    calls[2]!.settle({ ok: true });
    await tick();
    expect(calls).toHaveLength(3);
  });

  it('reports a slot whose WAL is gone for a copy, and does not advance it until copied', async () => {
    const { pg, calls } = fakeServer();
    const a = new SlotAdvancer(pg, log);
    a.schedule([adv('cdc', 100)]);
    await tick();
    calls[0]!.settle({ ok: false, error: 'requested WAL segment has already been removed', walGone: true });
    await tick();
    expect(a.schedule([adv('cdc', 120)])).toEqual({ failed: true, copy: ['cdc'] });
    await tick();
    expect(calls.map((c) => [c.name, c.lsn])).toEqual([['cdc', 100]]);
  });

  // A copy restarts PostgreSQL and clears the advancer while an advance is under way; the call it
  // gave up may never settle (a connection cancelled while it was being made). Later targets are
  // advanced all the same: the replica's copies and member slots do not stay where they were.
  it.each([
    { case: 'the given-up call never settles', settles: false },
    { case: 'the given-up call settles later', settles: true },
  ])('after clear(), new targets are advanced: $case', async ({ settles }) => {
    const { pg, calls } = fakeServer();
    const a = new SlotAdvancer(pg, log);
    a.schedule([adv('n3', 300), adv('cdc', 100)]);
    await tick();
    expect(calls.map((c) => c.name)).toEqual(['n3']);
    a.clear();
    expect(calls[0]!.signal?.aborted).toBe(true);
    a.schedule([adv('cdc', 400), adv('n3', 500)]);
    await tick();
    expect(calls.map((c) => [c.name, c.lsn])).toEqual([
      ['n3', 300],
      ['cdc', 400],
    ]);
    if (settles) calls[0]!.settle({ ok: false, error: 'cancelled', walGone: false });
    calls[1]!.settle({ ok: true });
    await tick();
    calls[2]?.settle({ ok: true });
    await tick();
    // The given-up call neither runs the old list on nor repeats what the new run does.
    expect(calls.map((c) => [c.name, c.lsn])).toEqual([
      ['n3', 300],
      ['cdc', 400],
      ['n3', 500],
    ]);
  });
});

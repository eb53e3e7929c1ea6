/**
 * Logical slot copies on replicas: what a leader that lost the store sends, what a replica keeps by,
 * and copies a replica could not use because they predate its own WAL.
 */
import { describe, expect, it } from 'vitest';
import { emptyCluster } from '../dcs/keys.js';
import { failsafeSlotView } from './failsafe.js';
import { walSegmentStart } from '../postgres/postgres.js';
import { copiesWithoutWal, currentPositions, type ExistingSlot } from './slot-plan.js';
import { member } from './testing/fixtures.js';

const logical = (name: string, confirmed: number): ExistingSlot => ({
  name,
  type: 'logical',
  active: false,
  database: 'postgres',
  plugin: 'test_decoding',
  confirmedFlushLsn: confirmed,
});
const physical = (name: string, restart: number): ExistingSlot => ({
  name,
  type: 'physical',
  active: true,
  restartLsn: restart,
});

describe('currentPositions (the leader, sending POST /failsafe)', () => {
  it.each([
    ['a logical slot its consumer moved on', { cdc: 100 }, [logical('cdc', 180)], { cdc: 180 }],
    ['a physical slot at its restart_lsn', { pg2: 100 }, [physical('pg2', 150)], { pg2: 150 }],
    ['its own slot name at its WAL position', { pg1: 100 }, [], { pg1: 900 }],
    ['a slot that went away keeps its last position', { gone: 70 }, [], { gone: 70 }],
    ['never backwards', { cdc: 200 }, [logical('cdc', 150)], { cdc: 200 }],
    ['only the slots it published', { cdc: 100 }, [logical('cdc', 120), logical('other', 500)], { cdc: 120 }],
  ])('%s', (_, last, existing, want) => {
    expect(currentPositions(last, existing, 'pg1', 900)).toEqual(want);
  });
});

describe('failsafeSlotView (a replica, store down)', () => {
  const cluster = {
    ...emptyCluster('1'),
    leader: { name: 'pg9', modRevision: '5', lease: '1' },
    members: [member('pg1'), member('pg2')],
    status: { optime: 50, slots: { cdc: 10 }, retain_slots: ['pg2'] },
  };

  it('takes the calling leader and the positions it sent', () => {
    const v = failsafeSlotView(cluster, { name: 'pg1', slots: { cdc: 180 } })!;
    expect(v.leader?.name).toBe('pg1');
    expect(v.status).toEqual({ optime: 50, slots: { cdc: 180 }, retain_slots: ['pg2'] });
    expect(v.members.map((m) => m.name)).toEqual(['pg1', 'pg2']);
  });

  it('nothing to keep by when the leader sent no positions', () => {
    expect(failsafeSlotView(cluster, { name: 'pg1' })).toBeNull();
  });
});

describe('copiesWithoutWal (a replica whose copy predates its own WAL)', () => {
  const seg3 = 3 * 16 * 1024 * 1024;
  it.each([
    ['a copy starting before the oldest segment', [{ ...logical('cdc', 1), restartLsn: seg3 - 10 }], ['cdc']],
    ['a copy starting inside the oldest segment', [{ ...logical('cdc', 1), restartLsn: seg3 + 10 }], []],
    ['a logical slot nobody configured', [{ ...logical('other', 1), restartLsn: 5 }], []],
    ['a physical slot', [physical('cdc', 5)], []],
  ])('%s', (_, existing, want) => {
    expect(copiesWithoutWal(existing, new Set(['cdc']), seg3)).toEqual(want);
  });

  it('nothing when the oldest WAL is unknown', () => {
    expect(copiesWithoutWal([{ ...logical('cdc', 1), restartLsn: 5 }], new Set(['cdc']), null)).toEqual([]);
  });
});

describe('walSegmentStart', () => {
  it.each([
    ['000000010000000000000003', 16 * 1024 * 1024, 3 * 16 * 1024 * 1024],
    ['0000000200000001000000FF', 16 * 1024 * 1024, 0x1ff000000],
    ['000000010000000000000002', 64 * 1024 * 1024, 2 * 64 * 1024 * 1024],
  ])('%s (%i-byte segments) starts at %i', (name, seg, lsn) => {
    expect(walSegmentStart(name, seg)).toBe(lsn);
  });
});

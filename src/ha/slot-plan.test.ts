/** Table tests of the slot planner, and its two invariants over many generated inputs. */
import { describe, expect, it } from 'vitest';
import type { PermanentSlot } from '../config/types.js';
import {
  logicalSlotReadiness,
  needsHotStandbyFeedback,
  planSlots,
  slotIgnored,
  type ExistingSlot,
  type SlotPlanInput,
} from './slot-plan.js';

const MIN = 60_000;

const phys = (name: string, over: Partial<ExistingSlot> = {}): ExistingSlot => ({
  name,
  type: 'physical',
  active: false,
  restartLsn: 1000,
  xmin: null,
  ...over,
});
const logical = (name: string, over: Partial<ExistingSlot> = {}): ExistingSlot => ({
  name,
  type: 'logical',
  active: false,
  database: 'postgres',
  plugin: 'test_decoding',
  restartLsn: 900,
  confirmedFlushLsn: 1000,
  ...over,
});
const cdc: PermanentSlot = { name: 'cdc', type: 'logical', database: 'postgres', plugin: 'test_decoding' };

function input(over: Partial<SlotPlanInput>): SlotPlanInput {
  return {
    role: 'primary',
    mySlot: 'n1',
    members: [
      { name: 'n2', slot: 'n2', lsn: 5000, streamsFromMe: true },
      { name: 'n3', slot: 'n3', lsn: 4000, streamsFromMe: true },
    ],
    useSlots: true,
    paused: false,
    nofailover: false,
    leaderKnown: true,
    permanent: [],
    ignore: [],
    memberSlotsTtlMs: 30 * MIN,
    existing: [],
    published: {},
    publishedRetain: [],
    replayLsn: 6000,
    myLsn: 6000,
    retained: new Map(),
    nowMono: 100 * MIN,
    newLeader: false,
    ...over,
  };
}

const names = (xs: Array<{ name: string }>) => xs.map((x) => x.name);

describe('planSlots on the leader', () => {
  it('creates a physical slot per member and the permanent slots, physical and logical', () => {
    const p = planSlots(
      input({
        permanent: [{ name: 'archiver', type: 'physical' }, cdc],
        existing: [phys('n2', { active: true })],
      }),
    );
    expect(p.createPhysical).toEqual(['archiver', 'n3']);
    expect(p.createLogical).toEqual([{ name: 'cdc', database: 'postgres', plugin: 'test_decoding' }]);
    expect(p.drop).toEqual([]);
    expect(p.copy).toEqual([]);
  });

  it('keeps a departed member’s slot for member_slots_ttl, then drops it', () => {
    const first = planSlots(input({ existing: [phys('n2'), phys('n3'), phys('old')] }));
    // `old` was never a member this leader saw: no retention for it.
    expect(first.drop).toEqual([{ name: 'old', why: 'no member or permanent slot of that name' }]);
    const gone = input({
      members: [{ name: 'n2', slot: 'n2', streamsFromMe: true }],
      existing: [phys('n2'), phys('n3')],
    });
    const kept = planSlots({ ...gone, retained: first.retained, nowMono: 100 * MIN + 29 * MIN });
    expect(kept.drop).toEqual([]);
    expect(kept.publish?.retainSlots).toEqual(['n1', 'n2', 'n3']);
    const expired = planSlots({ ...gone, retained: kept.retained, nowMono: 100 * MIN + 30 * MIN });
    expect(names(expired.drop)).toEqual(['n3']);
    expect(expired.publish?.retainSlots).toEqual(['n1', 'n2']);
  });

  it('with member_slots_ttl 0 drops a departed member’s slot at once and retains nothing (Patroni 3)', () => {
    const p = planSlots(
      input({
        memberSlotsTtlMs: 0,
        members: [{ name: 'n2', slot: 'n2', streamsFromMe: true }],
        existing: [phys('n2'), phys('n3')],
      }),
    );
    expect(names(p.drop)).toEqual(['n3']);
    expect(p.publish).toEqual({ slots: {}, retainSlots: [] });
  });

  it('a new leader restarts retention for what it inherited and for the former leader’s list', () => {
    const p = planSlots(
      input({
        newLeader: true,
        members: [],
        existing: [phys('n2'), phys('x')],
        publishedRetain: ['n1', 'n3'],
      }),
    );
    expect(p.drop).toEqual([]);
    expect(p.createPhysical).toEqual(['n3']);
    expect([...p.retained.keys()].sort()).toEqual(['n1', 'n2', 'n3', 'x']);
  });

  it('never drops the primary’s own logical slots unless the configuration changed a permanent one', () => {
    const p = planSlots(
      input({
        permanent: [{ name: 'cdc', type: 'logical', database: 'app', plugin: 'pgoutput' }],
        existing: [phys('n2'), phys('n3'), logical('debezium'), logical('cdc')],
      }),
    );
    expect(p.drop).toEqual([
      {
        name: 'cdc',
        why: 'the configuration changed it from logical (postgres, test_decoding) to logical (app, pgoutput)',
      },
    ]);
    expect(p.createLogical).toEqual([{ name: 'cdc', database: 'app', plugin: 'pgoutput' }]);
  });

  it('publishes every slot it keeps and its own position with member slot retention; permanent ones only without', () => {
    const existing = [
      phys('n2', { active: true, restartLsn: 5000 }),
      phys('n3', { active: true, restartLsn: 4000 }),
      phys('archiver', { restartLsn: 3000 }),
      logical('cdc', { confirmedFlushLsn: 2500 }),
      logical('other', { confirmedFlushLsn: 2000 }),
    ];
    const permanent: PermanentSlot[] = [{ name: 'archiver', type: 'physical' }, cdc];
    expect(planSlots(input({ existing, permanent })).publish?.slots).toEqual({
      n1: 6000,
      n2: 5000,
      n3: 4000,
      archiver: 3000,
      cdc: 2500,
    });
    expect(planSlots(input({ existing, permanent, memberSlotsTtlMs: 0 })).publish?.slots).toEqual({
      archiver: 3000,
      cdc: 2500,
    });
  });

  it('drops a physical slot whose WAL is gone (it is recreated), keeps a lost logical one and says so', () => {
    const p = planSlots(
      input({
        permanent: [cdc],
        existing: [phys('n2', { walStatus: 'lost' }), phys('n3'), logical('cdc', { walStatus: 'lost' })],
      }),
    );
    expect(names(p.drop)).toEqual(['n2']);
    expect(p.createPhysical).toEqual(['n2']);
    expect(p.problems.join()).toMatch(/cdc lost WAL/);
  });

  it('names a permanent logical slot that collides with a member’s slot, and keeps the member’s', () => {
    const p = planSlots(
      input({ permanent: [{ name: 'n2', type: 'logical', database: 'postgres', plugin: 'x' }] }),
    );
    expect(p.createPhysical).toEqual(['n2', 'n3']);
    expect(p.createLogical).toEqual([]);
    expect(p.problems.join()).toMatch(/n2 has the name of a physical slot/);
  });

  it('keeps no slot for a member that streams from another member (replicatefrom) or from nobody', () => {
    const p = planSlots(
      input({
        members: [
          { name: 'n2', slot: 'n2', streamsFromMe: true },
          { name: 'n3', slot: 'n3', streamsFromMe: false },
        ],
        existing: [phys('n2', { active: true }), phys('n3')],
        retained: new Map([['n3', 100 * MIN - 1000]]),
      }),
    );
    expect(p.createPhysical).toEqual([]);
    expect(names(p.drop)).toEqual(['n3']);
  });

  it('keeps no slot with its own name, and none for a standby cluster', () => {
    const p = planSlots(
      input({
        permanent: [
          { name: 'n1', type: 'physical' },
          { name: 'dr', type: 'physical', cluster_type: 'standby' },
          { name: 'pr', type: 'physical', cluster_type: 'primary' },
        ],
      }),
    );
    expect(p.createPhysical).toEqual(['n2', 'n3', 'pr']);
  });
});

describe('planSlots on a standby leader', () => {
  const standby = (over: Partial<SlotPlanInput>) => input({ role: 'standby_leader', myLsn: null, ...over });
  it('keeps member slots and permanent physical slots, no logical ones and none of a primary cluster', () => {
    const p = planSlots(
      standby({
        permanent: [
          { name: 'pm_1', type: 'physical' },
          { name: 'dr', type: 'physical', cluster_type: 'standby' },
          { name: 'pr', type: 'physical', cluster_type: 'primary' },
          cdc,
        ],
        existing: [phys('n2', { active: true }), logical('test_logical')],
      }),
    );
    expect(p.createPhysical).toEqual(['dr', 'n3', 'pm_1']);
    expect(p.createLogical).toEqual([]);
    expect(p.copy).toEqual([]);
    expect(names(p.drop)).toEqual(['test_logical']);
    expect(p.publish).toBeNull();
  });

  it('keeps a departed member’s slot for member_slots_ttl, as a leader does', () => {
    const first = planSlots(standby({ existing: [phys('n2'), phys('n3')] }));
    const gone = standby({
      members: [{ name: 'n2', slot: 'n2', streamsFromMe: true }],
      existing: [phys('n2'), phys('n3')],
    });
    expect(planSlots({ ...gone, retained: first.retained, nowMono: 110 * MIN }).drop).toEqual([]);
    expect(names(planSlots({ ...gone, retained: first.retained, nowMono: 131 * MIN }).drop)).toEqual(['n3']);
  });
});

describe('planSlots on a replica', () => {
  const replica = (over: Partial<SlotPlanInput>) =>
    input({
      role: 'replica',
      mySlot: 'n2',
      members: [
        { name: 'n1', slot: 'n1', lsn: 6000, streamsFromMe: false },
        { name: 'n3', slot: 'n3', lsn: 4000, streamsFromMe: false },
      ],
      myLsn: null,
      ...over,
    });

  it('keeps the members’ slots at the positions the leader publishes (Patroni 4)', () => {
    const p = planSlots(
      replica({
        published: { n1: 6000, n3: 3500 },
        existing: [phys('n1', { restartLsn: 5000 }), phys('n3', { restartLsn: 3500 })],
      }),
    );
    expect(p.advance).toEqual([{ name: 'n1', database: null, lsn: 6000 }]);
    expect(p.drop).toEqual([]);
    expect(p.publish).toBeNull();
  });

  it('falls back to the member’s own position when the leader publishes none (a Patroni 3 leader)', () => {
    const p = planSlots(
      replica({ existing: [phys('n1', { restartLsn: 5000 }), phys('n3', { restartLsn: 3000 })] }),
    );
    expect(p.advance).toEqual([
      { name: 'n1', database: null, lsn: 6000 },
      { name: 'n3', database: null, lsn: 4000 },
    ]);
  });

  it('with member_slots_ttl 0 keeps no member slots: a former primary drops them (Patroni 3)', () => {
    const p = planSlots(
      replica({ memberSlotsTtlMs: 0, existing: [phys('n1'), phys('n3', { active: true })] }),
    );
    expect(p.drop).toEqual([{ name: 'n1', why: 'no member or permanent slot of that name' }]);
    expect(p.createPhysical).toEqual([]);
  });

  it('recreates an inactive member slot that holds an xmin, and one that reserves no WAL', () => {
    const p = planSlots(replica({ existing: [phys('n1', { xmin: 731 }), phys('n3', { restartLsn: null })] }));
    expect(names(p.drop)).toEqual(['n1', 'n3']);
    expect(p.createPhysical).toEqual([]);
  });

  it('copies a permanent logical slot once the leader published it, then advances the copy', () => {
    expect(planSlots(replica({ permanent: [cdc], existing: [phys('n1'), phys('n3')] })).copy).toEqual([]);
    const p = planSlots(
      replica({ permanent: [cdc], published: { cdc: 2000 }, existing: [phys('n1'), phys('n3')] }),
    );
    expect(p.copy).toEqual(['cdc']);
    const q = planSlots(
      replica({
        permanent: [cdc],
        published: { cdc: 2000 },
        existing: [phys('n1'), phys('n3'), logical('cdc', { confirmedFlushLsn: 1500 })],
      }),
    );
    expect(q.copy).toEqual([]);
    expect(q.advance).toContainEqual({ name: 'cdc', database: 'postgres', lsn: 2000 });
  });

  it('advances a logical copy no further than it replayed, and never backwards', () => {
    const base = {
      permanent: [cdc],
      existing: [phys('n1'), phys('n3'), logical('cdc', { confirmedFlushLsn: 1500 })],
    };
    expect(planSlots(replica({ ...base, published: { cdc: 9000 }, replayLsn: 7000 })).advance).toContainEqual(
      {
        name: 'cdc',
        database: 'postgres',
        lsn: 7000,
      },
    );
    expect(names(planSlots(replica({ ...base, published: { cdc: 1200 } })).advance)).not.toContain('cdc');
  });

  it('drops logical slots that are neither permanent nor ignored (the ignored_slots scenario)', () => {
    const p = planSlots(
      replica({
        ignore: [
          { name: 'unmanaged_slot_0', database: 'postgres', plugin: 'test_decoding', type: 'logical' },
          { name: 'unmanaged_slot_1', database: 'postgres', plugin: 'test_decoding' },
          { name: 'unmanaged_slot_2', database: 'postgres' },
          { name: 'unmanaged_slot_3' },
        ],
        existing: [
          phys('n1'),
          phys('n3'),
          ...[0, 1, 2, 3].map((n) => logical(`unmanaged_slot_${n}`)),
          logical('dummy_slot'),
        ],
      }),
    );
    expect(p.drop).toEqual([
      { name: 'dummy_slot', why: 'a logical slot on a replica that is not a permanent slot' },
    ]);
  });

  it('in maintenance mode drops nothing and copies nothing', () => {
    const p = planSlots(
      replica({
        paused: true,
        permanent: [cdc],
        published: { cdc: 2000 },
        existing: [logical('x'), phys('y')],
      }),
    );
    expect(p.drop).toEqual([]);
    expect(p.copy).toEqual([]);
    expect(p.createPhysical).toEqual(['n1', 'n3']);
  });

  it('keeps the slot of a member that cascades from it, in use, whatever member_slots_ttl says', () => {
    const p = planSlots(
      replica({
        memberSlotsTtlMs: 0,
        members: [
          { name: 'n1', slot: 'n1', lsn: 6000, streamsFromMe: false },
          { name: 'n3', slot: 'n3', lsn: 4000, streamsFromMe: true },
        ],
        existing: [phys('n1'), phys('n3', { active: true, xmin: 12 })],
      }),
    );
    expect(names(p.drop)).toEqual(['n1']);
    expect(p.createPhysical).toEqual([]);
    expect(p.advance).toEqual([]);
  });

  it('a nofailover member keeps no permanent or member slots', () => {
    const p = planSlots(replica({ nofailover: true, permanent: [cdc], published: { cdc: 2000 } }));
    expect(p).toMatchObject({ createPhysical: [], copy: [], createLogical: [] });
  });

  it('leaves PostgreSQL 17 failover slots alone', () => {
    const p = planSlots(replica({ existing: [phys('n1'), phys('n3'), logical('pg17', { failover: true })] }));
    expect(p.drop).toEqual([]);
  });

  it('without use_slots keeps no slots, but still never drops an ignored one', () => {
    const p = planSlots(
      replica({
        useSlots: false,
        ignore: [{ type: 'physical', name: 'keep' }],
        existing: [phys('n1'), phys('keep')],
      }),
    );
    expect(names(p.drop)).toEqual(['n1']);
  });
});

describe('slotIgnored', () => {
  it.each([
    [{ name: 'a' }, true],
    [{ name: 'b' }, false],
    [{ type: 'logical' }, true],
    [{ type: 'physical' }, false],
    [{ database: 'postgres', plugin: 'test_decoding' }, true],
    [{ database: 'postgres', plugin: 'pgoutput' }, false],
    [{}, true],
  ])('%j on logical slot a → %s', (m, want) => expect(slotIgnored(logical('a'), [m])).toBe(want));
  it('a physical slot has no database or plugin to match', () =>
    expect(slotIgnored(phys('a'), [{ database: 'postgres' }])).toBe(false));
});

describe('needsHotStandbyFeedback', () => {
  it('is on when a permanent logical slot is configured for a member that may lead', () => {
    expect(needsHotStandbyFeedback({ useSlots: true, nofailover: false, permanent: [cdc] })).toBe(true);
    expect(needsHotStandbyFeedback({ useSlots: true, nofailover: true, permanent: [cdc] })).toBe(false);
    expect(
      needsHotStandbyFeedback({
        useSlots: true,
        nofailover: false,
        permanent: [{ name: 'p', type: 'physical' }],
      }),
    ).toBe(false);
  });
});

describe('logicalSlotReadiness', () => {
  it('waits for the physical slot’s catalog_xmin, then for it to pass the leader’s logical one', () => {
    const pending = new Map<string, number | null>([['cdc', null]]);
    const none = logicalSlotReadiness({
      pending,
      physicalCatalogXmin: null,
      primary: { cdc: 700 },
      local: { cdc: 700 },
    });
    expect(none).toEqual({ pending, ready: [] });
    const early = logicalSlotReadiness({
      pending,
      physicalCatalogXmin: 650,
      primary: { cdc: 700 },
      local: { cdc: 700 },
    });
    expect(early.ready).toEqual([]);
    expect(early.pending.get('cdc')).toBe(700);
    const later = logicalSlotReadiness({
      pending: early.pending,
      physicalCatalogXmin: 720,
      primary: {},
      local: { cdc: 725 },
    });
    expect(later).toEqual({ pending: new Map(), ready: ['cdc'] });
  });
  it('forgets a copy that is gone', () =>
    expect(
      logicalSlotReadiness({ pending: new Map([['cdc', 5]]), physicalCatalogXmin: 9, primary: {}, local: {} })
        .pending.size,
    ).toBe(0));
});

// ---- invariants over generated inputs ------------------------------------------------------------

/** A small deterministic generator (mulberry32), so a failure reproduces. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generated(seed: number): SlotPlanInput {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const lsn = () => Math.floor(r() * 10_000);
  const pool = ['n1', 'n2', 'n3', 'n4', 'cdc', 'cdc2', 'arch', 'x', 'y'];
  const permanent: PermanentSlot[] = [];
  for (const name of pool)
    if (r() < 0.2)
      permanent.push(
        r() < 0.5
          ? { name, type: 'physical' }
          : {
              name,
              type: 'logical',
              database: pick(['postgres', 'app']),
              plugin: pick(['test_decoding', 'pgoutput']),
            },
      );
  const existing: ExistingSlot[] = [];
  for (const name of pool)
    if (r() < 0.6)
      existing.push(
        r() < 0.5
          ? phys(name, {
              active: r() < 0.3,
              restartLsn: r() < 0.1 ? null : lsn(),
              xmin: r() < 0.2 ? 5 : null,
            })
          : logical(name, {
              active: r() < 0.3,
              database: pick(['postgres', 'app']),
              plugin: pick(['test_decoding', 'pgoutput']),
              confirmedFlushLsn: lsn(),
              walStatus: r() < 0.1 ? 'lost' : 'reserved',
              failover: r() < 0.1,
            }),
      );
  const published: Record<string, number> = {};
  for (const name of pool) if (r() < 0.5) published[name] = lsn();
  const role = pick(['primary', 'replica'] as const);
  return input({
    role,
    mySlot: pick(['n1', 'n2']),
    members: ['n1', 'n2', 'n3', 'n4']
      .filter(() => r() < 0.6)
      .map((n) => ({ name: n, slot: n, lsn: lsn(), streamsFromMe: role === 'primary' })),
    useSlots: r() < 0.9,
    paused: r() < 0.15,
    nofailover: r() < 0.1,
    leaderKnown: r() < 0.9,
    permanent,
    ignore:
      r() < 0.3
        ? [pick([{ name: 'x' }, { type: 'logical' }, { database: 'app' }, { plugin: 'pgoutput' }])]
        : [],
    memberSlotsTtlMs: pick([0, 30 * MIN]),
    existing,
    published,
    publishedRetain: pool.filter(() => r() < 0.2),
    replayLsn: r() < 0.1 ? null : lsn(),
    retained: new Map(pool.filter(() => r() < 0.3).map((n) => [n, 100 * MIN - Math.floor(r() * 40 * MIN)])),
    newLeader: r() < 0.2,
  });
}

describe('invariants', () => {
  const seeds = Array.from({ length: 3000 }, (_, i) => i + 1);

  it('a slot a consumer needs is never dropped unless the configuration says so', () => {
    for (const seed of seeds) {
      const i = generated(seed);
      const p = planSlots(i);
      for (const d of p.drop) {
        const e = i.existing.find((x) => x.name === d.name);
        const ctx = `seed ${seed}: dropped ${d.name} (${d.why})`;
        expect(e, ctx).toBeDefined();
        if (!e) continue;
        expect(e.active, ctx).toBe(false);
        expect(i.paused, ctx).toBe(false);
        // The permanent slot of that name this member keeps: none of its own name (as Patroni), no
        // logical one with a member's slot name (a conflict the plan reports).
        const perm = i.permanent.find(
          (x) =>
            x.name === e.name &&
            i.useSlots &&
            !i.nofailover &&
            e.name !== i.mySlot &&
            !(x.type === 'logical' && i.members.some((m) => m.slot === x.name)),
        );
        // ignore_slots keeps a slot, unless a permanent slot of its name says what it must be.
        if (!perm) expect(slotIgnored(e, i.ignore), ctx).toBe(false);
        expect(e.type === 'logical' && e.failover, ctx).toBe(false);
        if (e.type === 'logical' && i.role === 'primary') {
          // Only a permanent slot whose settings changed.
          expect(perm, ctx).toBeDefined();
          expect(
            perm?.type === 'logical' && perm.database === e.database && perm.plugin === e.plugin,
            ctx,
          ).toBe(false);
        }
        // A permanent slot that matches its configuration stays, unless its WAL is gone (or a
        // physical one pins an xmin or reserves nothing: it is recreated at once).
        if (
          perm &&
          perm.type === e.type &&
          (perm.type === 'physical' || (perm.database === e.database && perm.plugin === e.plugin))
        )
          expect(
            e.walStatus === 'lost' || (e.type === 'physical' && (e.xmin != null || e.restartLsn == null)),
            ctx,
          ).toBe(true);
        // A member's slot within its retention stays on the leader.
        if (
          i.role === 'primary' &&
          i.useSlots &&
          i.memberSlotsTtlMs > 0 &&
          p.retained.has(e.name) &&
          e.name !== i.mySlot
        )
          expect(e.walStatus === 'lost' || e.xmin != null || e.restartLsn == null || !!perm, ctx).toBe(true);
      }
    }
  });

  it('a replica never holds a logical slot ahead of what the primary confirmed, nor past its replay', () => {
    for (const seed of seeds) {
      const i = generated(seed);
      const p = planSlots(i);
      for (const a of p.advance) {
        const e = i.existing.find((x) => x.name === a.name);
        const ctx = `seed ${seed}: advance ${a.name} to ${a.lsn}`;
        expect(e, ctx).toBeDefined();
        if (e?.type !== 'logical') continue;
        expect(i.role, ctx).toBe('replica');
        expect(a.lsn, ctx).toBeLessThanOrEqual(i.published[a.name] ?? -1);
        expect(a.lsn, ctx).toBeLessThanOrEqual(i.replayLsn ?? -1);
        expect(a.lsn, ctx).toBeGreaterThan(e.confirmedFlushLsn ?? Infinity);
      }
      // A replica never creates a logical slot of its own: it only copies the primary's.
      if (i.role === 'replica') expect(p.createLogical, `seed ${seed}`).toEqual([]);
      for (const name of p.copy) expect(i.published[name], `seed ${seed}: copy ${name}`).toBeDefined();
    }
  });
});

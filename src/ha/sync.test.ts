import { describe, expect, it } from 'vitest';
import type { Member, SyncKey } from '../dcs/types.js';
import type { ServerStatus, WalSender } from '../postgres/types.js';
import {
  keyValue,
  lostSyncStandbys,
  trackSilence,
  parseSsn,
  planQuorum,
  planSync,
  renderSsn,
  syncCandidates,
  syncLsn,
  syncSpares,
  type SyncPlanInput,
} from './sync.js';

const member = (name: string, tags?: Record<string, unknown>): Member => ({
  name,
  data: { state: 'streaming', role: 'replica', ...(tags ? { tags } : {}) },
  modRevision: '1',
  lease: '1',
});
type Row = ServerStatus['replication'][number];
const row = (name: string, flush: number, sync_state = 'async', state = 'streaming'): Row => ({
  usename: 'replicator',
  application_name: name,
  client_addr: '127.0.0.1',
  state,
  sync_state,
  sync_priority: 0,
  flush_lsn: flush,
});
const key = (standbys: string | null, quorum: number | null = null): SyncKey => ({
  leader: 'n1',
  sync_standby: standbys,
  quorum,
  modRevision: '7',
});

function input(over: Partial<SyncPlanInput>): SyncPlanInput {
  return {
    me: 'n1',
    mode: true,
    strict: false,
    count: 1,
    members: [member('n1'), member('n2'), member('n3')],
    replication: [row('n2', 200), row('n3', 100)],
    syncKey: null,
    currentSsn: '',
    ssnSince: 0,
    ...over,
  };
}

describe('renderSsn', () => {
  it('renders FIRST and ANY lists, quoting odd names, and * for strict with nobody', () => {
    expect(renderSsn(true, ['n2'], 1, false)).toBe('FIRST 1 (n2)');
    expect(renderSsn(true, ['n3', 'n2'], 2, false)).toBe('FIRST 2 (n2,n3)');
    expect(renderSsn('quorum', ['n2', 'db-3'], 1, false)).toBe('ANY 1 (n2,"db-3")');
    expect(renderSsn(true, [], 1, true)).toBe('*');
    expect(renderSsn(true, [], 1, false)).toBe('');
  });
});

describe('planSync (synchronous_mode: on)', () => {
  it('first asks the most advanced standby to acknowledge, then lists it once it is sync and caught up', () => {
    const step1 = planSync(input({}));
    expect(step1).toMatchObject({ ssn: 'FIRST 1 (n2)', syncKey: null, pending: true });
    const waiting = planSync(input({ currentSsn: 'FIRST 1 (n2)', ssnSince: 150 }));
    expect(waiting.syncKey).toBeNull();
    expect(waiting.why).toMatch(/waiting for n2/);
    expect(waiting.pending).toBe(true);
    const confirmed = planSync(
      input({
        currentSsn: 'FIRST 1 (n2)',
        ssnSince: 150,
        replication: [row('n2', 200, 'sync'), row('n3', 100)],
      }),
    );
    expect(confirmed.syncKey).toEqual({ leader: 'n1', sync_standby: 'n2', quorum: null });
    expect(confirmed.pending).toBe(false);
  });

  it('does not list a standby that has not flushed what was committed before it was required', () => {
    const p = planSync(
      input({
        currentSsn: 'FIRST 1 (n2)',
        ssnSince: 500,
        replication: [row('n2', 200, 'sync'), row('n3', 100)],
      }),
    );
    expect(p.syncKey).toBeNull();
  });

  it('removes a standby that stopped streaming from the key before releasing it in PostgreSQL', () => {
    const p = planSync(
      input({ syncKey: key('n2'), currentSsn: 'FIRST 1 (n2)', replication: [row('n3', 100)] }),
    );
    expect(p.syncKey).toEqual({ leader: 'n1', sync_standby: null, quorum: null });
    expect(p.ssn).toBe('FIRST 1 (n2)');
    expect(p.pending).toBe(true);
    const next = planSync(
      input({ syncKey: key(null), currentSsn: 'FIRST 1 (n2)', replication: [row('n3', 100)] }),
    );
    expect(next.ssn).toBe('FIRST 1 (n3)');
    expect(next.pending).toBe(true);
  });

  it('keeps the current synchronous standby while it streams, and honours nosync', () => {
    const stable = planSync(
      input({
        syncKey: key('n3'),
        currentSsn: 'FIRST 1 (n3)',
        replication: [row('n2', 900), row('n3', 100, 'sync')],
      }),
    );
    expect(stable).toMatchObject({ ssn: 'FIRST 1 (n3)', syncKey: null, pending: false });
    const nosync = planSync(input({ members: [member('n1'), member('n2', { nosync: true }), member('n3')] }));
    expect(nosync.ssn).toBe('FIRST 1 (n3)');
  });

  it('blocks writes in strict mode when no standby is available', () => {
    const p = planSync(input({ strict: true, replication: [] }));
    expect(p.ssn).toBe('*');
  });

  it('clears the key when synchronous mode is turned off', () => {
    expect(planSync(input({ mode: false, syncKey: key('n2') }))).toEqual({
      ssn: '',
      syncKey: { leader: null, sync_standby: null, quorum: null },
      why: 'synchronous_mode is off',
      pending: false,
    });
  });
});

describe('which standbys are synchronous, as Patroni 3 picks them', () => {
  // A standby whose replay is paused: it receives and flushes, but applies nothing.
  const stuck = (name: string, flush: number, replay: number, sync_state = 'async'): Row => ({
    ...row(name, flush, sync_state),
    write_lsn: flush,
    replay_lsn: replay,
  });

  it('compares the position synchronous_commit waits for: replay, write or flush', () => {
    const r = { ...row('n2', 300), write_lsn: 400, replay_lsn: 100 };
    expect(syncLsn(r, 'remote_apply')).toBe(100);
    expect(syncLsn(r, 'remote_write')).toBe(400);
    expect(syncLsn(r, 'on')).toBe(300);
    expect(syncLsn(r, undefined)).toBe(300);
    expect(syncLsn(undefined, 'on')).toBe(0);
  });

  it('writes the key with its members sorted and comma-separated', () => {
    expect(keyValue(['n3', 'n2'])).toBe('n2,n3');
    expect(keyValue([])).toBeNull();
    const p = planSync(
      input({
        count: 2,
        syncKey: key('n3'),
        currentSsn: 'FIRST 2 (n2,n3)',
        ssnSince: 100,
        replication: [row('n2', 200, 'sync'), row('n3', 100, 'sync')],
      }),
    );
    expect(p.syncKey).toEqual({ leader: 'n1', sync_standby: 'n2,n3', quorum: null });
  });

  it('rewrites a key holding the right members in another order', () => {
    const p = planSync(
      input({
        count: 2,
        syncKey: key('n3,n2'),
        currentSsn: 'FIRST 2 (n3,n2)',
        replication: [row('n2', 200, 'sync'), row('n3', 100, 'sync')],
      }),
    );
    expect(p).toMatchObject({
      ssn: 'FIRST 2 (n2,n3)',
      syncKey: { leader: 'n1', sync_standby: 'n2,n3', quorum: null },
    });
  });

  it.each([
    {
      what: 'a standby in the key lagging past maximum_lag_on_syncnode is left out',
      over: { maxLag: 1000, synchronousCommit: 'remote_apply' },
      replication: [stuck('n2', 9000, 9000), stuck('n3', 9000, 5000, 'sync')],
      want: ['n2'],
    },
    {
      what: 'with maximum_lag_on_syncnode -1 (the default) the standby in the key stays first',
      over: { maxLag: -1, synchronousCommit: 'remote_apply' },
      replication: [stuck('n2', 9000, 9000), stuck('n3', 9000, 5000, 'sync')],
      want: ['n3', 'n2'],
    },
    {
      what: 'with synchronous_commit on, a paused replay does not count as lag',
      over: { maxLag: 1000, synchronousCommit: 'on' },
      replication: [stuck('n2', 9000, 9000), stuck('n3', 9000, 5000, 'sync')],
      want: ['n3', 'n2'],
    },
    {
      what: 'when every standby is behind the primary alike, none is left out',
      over: { maxLag: 1000, primaryLsn: 50_000 },
      replication: [row('n2', 9000), row('n3', 9000, 'sync')],
      want: ['n3', 'n2'],
    },
    {
      what: 'a lone standby is measured against the primary',
      over: { maxLag: 1000, primaryLsn: 50_000 },
      replication: [row('n3', 9000, 'sync')],
      want: [],
    },
    {
      what: 'members tagged nofailover come last, whatever their position',
      over: { members: [member('n1'), member('n2', { nofailover: true }), member('n3')] },
      replication: [row('n2', 9000, 'sync'), row('n3', 100)],
      want: ['n3', 'n2'],
    },
  ])('$what', ({ over, replication, want }) => {
    expect(syncCandidates(input({ syncKey: key('n3'), replication, ...over }), ['n3'])).toEqual(want);
  });

  it('replaces a stuck synchronous standby: out of the key first, then the other one required, then listed', () => {
    const base = { maxLag: 1000, synchronousCommit: 'remote_apply' };
    const drop = planSync(
      input({
        ...base,
        syncKey: key('n3'),
        currentSsn: 'FIRST 1 (n3)',
        replication: [stuck('n2', 9000, 9000), stuck('n3', 9000, 5000, 'sync')],
      }),
    );
    expect(drop).toMatchObject({ ssn: 'FIRST 1 (n3)', syncKey: { leader: 'n1', sync_standby: null } });
    const ask = planSync(
      input({
        ...base,
        syncKey: key(null),
        currentSsn: 'FIRST 1 (n3)',
        replication: [stuck('n2', 9000, 9000), stuck('n3', 9000, 5000, 'sync')],
      }),
    );
    expect(ask).toMatchObject({ ssn: 'FIRST 1 (n2)', syncKey: null });
    // Listed once it reports sync and has applied what was committed when it was first required.
    const notYet = planSync(
      input({
        ...base,
        syncKey: key(null),
        currentSsn: 'FIRST 1 (n2)',
        ssnSince: 9500,
        replication: [stuck('n2', 9600, 9400, 'sync'), stuck('n3', 9600, 5000)],
      }),
    );
    expect(notYet.syncKey).toBeNull();
    const listed = planSync(
      input({
        ...base,
        syncKey: key(null),
        currentSsn: 'FIRST 1 (n2)',
        ssnSince: 9500,
        replication: [stuck('n2', 9600, 9600, 'sync'), stuck('n3', 9600, 5000)],
      }),
    );
    expect(listed.syncKey).toEqual({ leader: 'n1', sync_standby: 'n2', quorum: null });
  });
});

describe('planQuorum (synchronous_mode: quorum, as Patroni 4)', () => {
  const q = (over: Partial<SyncPlanInput>) => planQuorum(input({ mode: 'quorum', ...over }));

  it('from nothing: lists every streaming member, and the key once one of them confirmed', () => {
    expect(q({}).changes).toEqual([{ kind: 'ssn', ssn: 'ANY 1 (n2,n3)' }]);
    const confirmed = q({
      currentSsn: 'ANY 1 (n2,n3)',
      ssnSince: 150,
      replication: [row('n2', 200, 'quorum'), row('n3', 100, 'quorum')],
    });
    // The key stores quorum = voters − synchronous nodes (Patroni's format).
    expect(confirmed.changes).toEqual([
      { kind: 'key', value: { leader: 'n1', sync_standby: 'n2,n3', quorum: 1 } },
    ]);
  });

  it('a member that stops streaming: the list shrinks first, then the key (each step keeps the overlap)', () => {
    const p = q({
      syncKey: key('n2,n3', 1),
      currentSsn: 'ANY 1 (n2,n3)',
      replication: [row('n2', 200, 'quorum')],
    });
    expect(p.changes).toEqual([
      { kind: 'ssn', ssn: 'ANY 1 (n2)' },
      { kind: 'key', value: { leader: 'n1', sync_standby: 'n2', quorum: 0 } },
    ]);
  });

  it('in strict mode with nobody streaming, writes wait for any standby', () => {
    expect(q({ strict: true, replication: [] }).changes).toEqual([
      { kind: 'ssn', ssn: '*' },
      { kind: 'key', value: { leader: 'n1', sync_standby: null, quorum: 0 } },
    ]);
  });

  it('reads the list in force back', () => {
    expect(parseSsn('ANY 2 (n2,"db-3")')).toEqual({ any: true, numsync: 2, names: ['n2', 'db-3'] });
    expect(parseSsn('FIRST 1 (n2)')).toEqual({ any: false, numsync: 1, names: ['n2'] });
    expect(parseSsn('')).toEqual({ any: false, numsync: 0, names: [] });
  });
});

describe('lostSyncStandbys: when the standby watch wakes the loop', () => {
  it.each([
    {
      why: 'the synchronous standby stopped streaming',
      ssn: 'FIRST 1 (pg2)',
      before: ['pg2'],
      now: ['pg3'],
      lost: ['pg2'],
      streaming: [],
    },
    {
      why: 'still gone at the next look: not news',
      ssn: 'FIRST 1 (pg2)',
      before: [],
      now: ['pg3'],
      lost: [],
      streaming: [],
    },
    {
      why: 'back again: streaming, nothing lost',
      ssn: 'FIRST 1 (pg2)',
      before: [],
      now: ['pg2', 'pg3'],
      lost: [],
      streaming: ['pg2'],
    },
    {
      why: 'a standby that is not synchronous left',
      ssn: 'FIRST 1 (pg2)',
      before: ['pg2'],
      now: ['pg2'],
      lost: [],
      streaming: ['pg2'],
    },
    {
      why: 'one of a quorum left',
      ssn: 'ANY 1 (pg2,pg3)',
      before: ['pg2', 'pg3'],
      now: ['pg2'],
      lost: ['pg3'],
      streaming: ['pg2'],
    },
    {
      why: 'quoted names',
      ssn: 'FIRST 2 ("Node-2",pg3)',
      before: ['Node-2', 'pg3'],
      now: ['pg3'],
      lost: ['Node-2'],
      streaming: ['pg3'],
    },
    {
      why: 'strict mode without a standby (*): any standby counts',
      ssn: '*',
      before: ['pg2', 'pg3'],
      now: [],
      lost: ['pg2', 'pg3'],
      streaming: [],
    },
    { why: 'no list: nothing to watch', ssn: '', before: [], now: ['pg2'], lost: [], streaming: [] },
    {
      why: 'a standby the list no longer names (replaced on purpose) is not news',
      ssn: 'FIRST 1 (pg3)',
      before: ['pg2'],
      now: ['pg3'],
      lost: [],
      streaming: ['pg3'],
    },
  ])('$why', ({ ssn, before, now, lost, streaming }) => {
    const r = lostSyncStandbys(ssn, new Set(before), now);
    expect(r.lost).toEqual(lost);
    expect([...r.streaming].sort()).toEqual(streaming);
  });
});

describe('trackSilence: a standby that answers nothing while WAL waits', () => {
  const sender = (
    name: string,
    sent: number,
    flushed: number,
    replyTime: string | null,
    streaming = true,
    pid = name === 'pg2' ? 102 : 103,
  ) => ({ pid, name, streaming, sent, flushed, replyTime });
  // Each case: looks at t = 0, 1000, ... ms, and the silent set after the last one (5 s, 2 s while a
  // spare answers).
  const answers = (name: string, i: number) => sender(name, 200 + i, 200 + i, `u${i}`);
  const busy = (name: string, i: number) => sender(name, 300 + i * 10, 200 + i * 10, `b${i}`);
  it.each<{ why: string; looks: WalSender[][]; silent: string[]; spares?: string[] }>([
    {
      why: 'WAL waits and no answer comes for the limit: silent',
      looks: Array.from({ length: 6 }, () => [sender('pg2', 200, 100, 't1')]),
      silent: ['pg2'],
    },
    {
      why: 'one look short of the limit: not yet',
      looks: Array.from({ length: 5 }, () => [sender('pg2', 200, 100, 't1')]),
      silent: [],
    },
    {
      why: 'an old answer when WAL first waits does not count (an idle standby reports every 10 s)',
      looks: [
        [sender('pg2', 100, 100, 't0')],
        [sender('pg2', 200, 100, 't0')],
        [sender('pg2', 200, 100, 't0')],
      ],
      silent: [],
    },
    {
      why: 'a busy standby always behind but answering is never silent',
      looks: Array.from({ length: 8 }, (_, i) => [sender('pg2', 200 + i * 10, 100 + i * 10, `t${i}`)]),
      silent: [],
    },
    {
      why: 'nothing outstanding: not silent, however old its last answer',
      looks: Array.from({ length: 8 }, () => [sender('pg2', 100, 100, 't0')]),
      silent: [],
    },
    {
      why: 'an answer resets the wait',
      looks: [
        ...Array.from({ length: 4 }, () => [sender('pg2', 200, 100, 't1')]),
        [sender('pg2', 300, 200, 't2')],
        ...Array.from({ length: 4 }, () => [sender('pg2', 300, 200, 't2')]),
      ],
      silent: [],
    },
    {
      why: 'only the silent one of two',
      looks: Array.from({ length: 6 }, (_, i) => [sender('pg2', 200, 100, 't1'), answers('pg3', i)]),
      silent: ['pg2'],
    },
    {
      why: 'a spare answers meanwhile: silent after 2 s',
      looks: Array.from({ length: 3 }, (_, i) => [sender('pg2', 200, 100, 't1'), answers('pg3', i)]),
      spares: ['pg3'],
      silent: ['pg2'],
    },
    {
      why: 'a spare answers meanwhile: not yet after 1 s',
      looks: Array.from({ length: 2 }, (_, i) => [sender('pg2', 200, 100, 't1'), answers('pg3', i)]),
      spares: ['pg3'],
      silent: [],
    },
    {
      why: 'the one answering is no spare (listed already, nosync, nofailover, quorum mode): 5 s',
      looks: Array.from({ length: 5 }, (_, i) => [sender('pg2', 200, 100, 't1'), answers('pg3', i)]),
      silent: [],
    },
    {
      why: 'a busy spare, always behind but answering, counts',
      looks: Array.from({ length: 3 }, (_, i) => [sender('pg2', 200, 100, 't1'), busy('pg3', i)]),
      spares: ['pg3'],
      silent: ['pg2'],
    },
    {
      why: 'a spare first seen with WAL outstanding is no proof yet',
      looks: [
        [sender('pg2', 200, 100, 't1')],
        [sender('pg2', 200, 100, 't1')],
        [sender('pg2', 200, 100, 't1'), sender('pg3', 300, 200, 'u1')],
      ],
      spares: ['pg3'],
      silent: [],
    },
    {
      why: 'a spare that never answered (no flush position) is no proof',
      looks: Array.from({ length: 3 }, () => [
        sender('pg2', 200, 100, 't1'),
        { pid: 103, name: 'pg3', streaming: true, sent: 200, replyTime: null },
      ]),
      spares: ['pg3'],
      silent: [],
    },
    {
      why: 'both silent at once (the primary cut off, say): neither is proof for the other before 5 s',
      looks: Array.from({ length: 5 }, () => [sender('pg2', 200, 100, 't1'), sender('pg3', 200, 100, 'u1')]),
      spares: ['pg3'],
      silent: [],
    },
    {
      why: 'both silent at once: both after 5 s',
      looks: Array.from({ length: 6 }, () => [sender('pg2', 200, 100, 't1'), sender('pg3', 200, 100, 'u1')]),
      spares: ['pg3'],
      silent: ['pg2', 'pg3'],
    },
    {
      why: 'a spare quiet for 1 s is no proof (both may have been cut off together)',
      looks: [
        [sender('pg2', 200, 100, 't1'), answers('pg3', 0)],
        [sender('pg2', 200, 100, 't1'), sender('pg3', 200, 100, 'u1')],
        [sender('pg2', 200, 100, 't1'), sender('pg3', 200, 100, 'u1')],
      ],
      spares: ['pg3'],
      silent: [],
    },
    {
      why: 'two listed standbys quiet and one spare: 5 s (one spare replaces one of them)',
      looks: Array.from({ length: 3 }, (_, i) => [
        sender('pg2', 200, 100, 't1'),
        sender('pg4', 200, 100, 'w1', true, 104),
        answers('pg3', i),
      ]),
      spares: ['pg3'],
      silent: [],
    },
    {
      why: 'once silent it stays silent while it answers nothing, though the spare went quiet since',
      looks: [
        ...Array.from({ length: 3 }, (_, i) => [sender('pg2', 200, 100, 't1'), answers('pg3', i)]),
        [sender('pg2', 200, 100, 't1'), sender('pg3', 300, 200, 'u9')],
        [sender('pg2', 200, 100, 't1'), sender('pg3', 300, 200, 'u9')],
      ],
      spares: ['pg3'],
      silent: ['pg2'],
    },
    {
      why: 'an answer ends the silence',
      looks: [
        ...Array.from({ length: 3 }, (_, i) => [sender('pg2', 200, 100, 't1'), answers('pg3', i)]),
        [sender('pg2', 300, 150, 't2'), sender('pg3', 300, 200, 'u9')],
      ],
      spares: ['pg3'],
      silent: [],
    },
    {
      why: 'WAL keeps being sent but no answer comes: silent all the same',
      looks: Array.from({ length: 6 }, (_, i) => [sender('pg2', 200 + i * 10, 100, 't1')]),
      silent: ['pg2'],
    },
    {
      why: 'a dead walsender beside the new connection of the same standby does not make it silent',
      looks: Array.from({ length: 6 }, (_, i) => [
        sender('pg2', 200, 100, 't1', true, 90),
        sender('pg2', 300 + i, 300 + i, `v${i}`, true, 95),
      ]),
      silent: [],
    },
    {
      why: 'a walsender not streaming (catching up) is not judged',
      looks: Array.from({ length: 6 }, () => [sender('pg2', 200, 100, 't1', false)]),
      silent: [],
    },
    {
      why: 'unknown positions are not judged',
      looks: Array.from({ length: 6 }, () => [{ pid: 102, name: 'pg2', streaming: true, replyTime: null }]),
      silent: [],
    },
  ])('$why', ({ looks, silent, spares }) => {
    let sightings = new Map();
    let last: string[] = [];
    looks.forEach((senders, i) => {
      const r = trackSilence(sightings, senders, i * 1000, new Set(spares));
      sightings = r.sightings;
      last = r.silent;
    });
    expect(last).toEqual(silent);
  });
});

describe('syncSpares: who may replace a silent synchronous standby', () => {
  const members = [
    member('n1'),
    member('n2'),
    member('n3'),
    member('n4', { nosync: true }),
    member('n5', { nofailover: true }),
  ];
  it.each<{ why: string; mode: boolean | 'quorum'; ssn: string; spares: string[] }>([
    {
      why: 'the members not listed, may be synchronous and promoted',
      mode: true,
      ssn: 'FIRST 1 (n2)',
      spares: ['n3'],
    },
    { why: 'none when every candidate is listed', mode: true, ssn: 'FIRST 2 (n2,n3)', spares: [] },
    { why: 'none in quorum mode', mode: 'quorum', ssn: 'ANY 1 (n2,n3)', spares: [] },
    { why: 'none for *', mode: true, ssn: '*', spares: [] },
    { why: 'none with synchronous mode off', mode: false, ssn: '', spares: [] },
  ])('$why', ({ mode, ssn, spares }) => {
    expect([...syncSpares(mode, ssn, 'n1', members)].sort()).toEqual(spares);
  });
});

describe('silent standbys in the plans', () => {
  it('FIRST: a silent standby in the key is dropped from it, and another one is asked', () => {
    const base = {
      syncKey: key('n2'),
      currentSsn: 'FIRST 1 (n2)',
      replication: [row('n2', 100, 'sync'), row('n3', 100)],
    };
    expect(planSync(input(base)).syncKey).toBeNull();
    const drop = planSync(input({ ...base, silent: ['n2'] }));
    expect(drop.syncKey).toEqual({ leader: 'n1', sync_standby: null, quorum: null });
    expect(drop.ssn).toBe('FIRST 1 (n2)');
    const next = planSync(input({ ...base, syncKey: key(null), silent: ['n2'] }));
    expect(next.ssn).toBe('FIRST 1 (n3)');
  });

  it('quorum: a silent standby counts as one that stopped streaming', () => {
    const base: Partial<SyncPlanInput> = {
      mode: 'quorum',
      syncKey: key('n2,n3', 1),
      currentSsn: 'ANY 1 (n2,n3)',
      replication: [row('n2', 200, 'quorum'), row('n3', 200, 'quorum')],
    };
    expect(planQuorum(input(base)).changes).toEqual([]);
    expect(planQuorum(input({ ...base, silent: ['n3'] })).changes).toEqual([
      { kind: 'ssn', ssn: 'ANY 1 (n2)' },
      { kind: 'key', value: { leader: 'n1', sync_standby: 'n2', quorum: 0 } },
    ]);
  });
});

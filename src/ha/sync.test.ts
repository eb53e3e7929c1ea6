import { describe, expect, it } from 'vitest';
import type { Member, SyncKey } from '../dcs/types.js';
import type { ServerStatus } from '../postgres/types.js';
import { parseSsn, planQuorum, planSync, renderSsn, type SyncPlanInput } from './sync.js';

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
    expect(renderSsn('quorum', ['n2', 'db-3'], 1, false)).toBe('ANY 1 (n2,"db-3")');
    expect(renderSsn(true, [], 1, true)).toBe('*');
    expect(renderSsn(true, [], 1, false)).toBe('');
  });
});

describe('planSync (synchronous_mode: on)', () => {
  it('first asks the most advanced standby to acknowledge, then lists it once it is sync and caught up', () => {
    const step1 = planSync(input({}));
    expect(step1).toMatchObject({ ssn: 'FIRST 1 (n2)', syncKey: null });
    const waiting = planSync(input({ currentSsn: 'FIRST 1 (n2)', ssnSince: 150 }));
    expect(waiting.syncKey).toBeNull();
    expect(waiting.why).toMatch(/waiting for n2/);
    const confirmed = planSync(
      input({
        currentSsn: 'FIRST 1 (n2)',
        ssnSince: 150,
        replication: [row('n2', 200, 'sync'), row('n3', 100)],
      }),
    );
    expect(confirmed.syncKey).toEqual({ leader: 'n1', sync_standby: 'n2', quorum: null });
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
    const next = planSync(
      input({ syncKey: key(null), currentSsn: 'FIRST 1 (n2)', replication: [row('n3', 100)] }),
    );
    expect(next.ssn).toBe('FIRST 1 (n3)');
  });

  it('keeps the current synchronous standby while it streams, and honours nosync', () => {
    const stable = planSync(
      input({
        syncKey: key('n3'),
        currentSsn: 'FIRST 1 (n3)',
        replication: [row('n2', 900), row('n3', 100, 'sync')],
      }),
    );
    expect(stable).toMatchObject({ ssn: 'FIRST 1 (n3)', syncKey: null });
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
    });
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

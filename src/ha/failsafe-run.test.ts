import { describe, expect, it } from 'vitest';
import type { RunnerContext } from './context.js';
import type { FailsafeAnswer } from './failsafe.js';
import { FailsafeGuard } from './failsafe-run.js';

/**
 * The leader's failsafe round, store unreachable. Invariant: `failsafe_mode_is_active` turns true
 * only with a round every member confirmed (which re-arms the fence from the round's start), and a
 * round the lease guard runs before the fence (`demote: false`) never demotes nor drops the flag
 * the last confirmation set: that confirmation's fence still stands and stops PostgreSQL when due.
 */
type Answers = 'all accept' | 'one refuses' | 'one times out';

interface Row {
  name: string;
  demote: boolean;
  before: boolean;
  answers: Answers;
  active: boolean;
  armed: boolean;
  demoted: boolean;
}

/** The invariant, as the outcome every combination must have. */
function expected(demote: boolean, before: boolean, answers: Answers): Omit<Row, 'name'> {
  const base = { demote, before, answers };
  if (answers === 'all accept') return { ...base, active: true, armed: true, demoted: false };
  if (demote) return { ...base, active: false, armed: false, demoted: true };
  return { ...base, active: before, armed: false, demoted: false };
}

// Every round kind × flag before × answers: 12 rows.
const rows: Row[] = [true, false].flatMap((demote) =>
  [false, true].flatMap((before) =>
    (['all accept', 'one refuses', 'one times out'] as const).map((answers) => ({
      name: `${demote ? 'fence round' : 'pre-fence round'}, ${answers}, ${before ? 'was' : 'was not'} active`,
      ...expected(demote, before, answers),
    })),
  ),
);

function leaderContext(row: Row) {
  const seen = {
    armedAt: null as number | null,
    disarmed: false,
    states: [] as string[],
    started: [] as string[],
    store: [] as string[],
  };
  const snapshot = {
    running: true,
    status: { inRecovery: false, walPosition: 100 },
    isLeader: true,
    failsafeActive: row.before,
    role: 'primary',
    cluster: { failsafe: { a: 'http://a/patroni', b: 'http://b/patroni', c: 'http://c/patroni' } },
  };
  const answer = (name: string): Promise<FailsafeAnswer> => {
    if (name === 'c' && row.answers === 'one refuses')
      return Promise.resolve({ name, accepted: false, detail: 'Running as a leader' });
    if (name === 'c' && row.answers === 'one times out') return Promise.reject(new Error('timed out'));
    return Promise.resolve({ name, accepted: true, detail: 'Accepted' });
  };
  const quiet = (): void => undefined;
  const c = {
    me: 'a',
    snapshot,
    st: { failsafeWritten: null, ledBefore: true },
    slots: { published: null },
    log: { info: quiet, warn: quiet, error: quiet, debug: quiet },
    clock: { mono: () => 5000, now: () => 5000, timeout: () => new AbortController().signal },
    dynamic: () => ({ failsafe_mode: true, pause: false, ttl: 10 }),
    lease: {
      arm: (at: number) => (seen.armedAt = at),
      disarm: () => (seen.disarmed = true),
    },
    d: {
      config: { postgresql: { connect_address: 'a:5432' }, restapi: { connect_address: 'a:8008' } },
      postFailsafe: (m: { name: string }) => answer(m.name),
      pg: {
        configure: (rc: { role: string }) => Promise.resolve(void seen.started.push(`configure ${rc.role}`)),
        start: () => Promise.resolve(void seen.started.push('start')),
      },
      dcs: { refreshLease: () => Promise.resolve(void seen.store.push('refresh the lease')) },
      runCallback: quiet,
    },
    during: (state: string, fn: () => Promise<unknown>) => {
      seen.states.push(state);
      return fn();
    },
    stopFastOrImmediate: () => Promise.resolve(),
    markServerConfigApplied: quiet,
    roleConfig: (role: string) => ({ role, upstream: null }),
    publish: () => Promise.resolve(void seen.store.push('publish')),
  };
  return { c: c as unknown as RunnerContext, snapshot, seen };
}

describe('FailsafeGuard.round on a primary whose store is unreachable', () => {
  it.each(rows)('$name', async (row) => {
    const { c, snapshot, seen } = leaderContext(row);
    await new FailsafeGuard(c).round(false, { demote: row.demote });
    expect(snapshot.failsafeActive).toBe(row.active);
    expect(seen.armedAt).toBe(row.armed ? 5000 : null);
    expect(seen.disarmed).toBe(row.demoted);
    expect(seen.states.includes('stopping')).toBe(row.demoted);
    expect(snapshot.isLeader).toBe(!row.demoted);
    // Demoted, it starts again as a standby at once: the store is the one thing it cannot reach,
    // so it does not wait retry_timeout for it (twice) while no client can read from it.
    expect(seen.started).toEqual(row.demoted ? ['configure replica', 'start'] : []);
    expect(seen.store).toEqual([]);
  });
});

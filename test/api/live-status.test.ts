/** The status the REST API answers with, merged from the HA loop's picture and a per-request check. */
import { describe, expect, it } from 'vitest';
import { withLiveCheck } from '../../src/api/status.js';
import { snapshot, status } from './fixtures.js';

describe('withLiveCheck', () => {
  it.each([
    ['replica', false, 'primary'],
    ['replica', true, 'replica'],
    ['primary', true, 'replica'],
    ['standby_leader', true, 'standby_leader'],
    ['standby_leader', false, 'primary'],
  ] as const)('a %s whose server answers in recovery = %s shows as %s', (was, inRecovery, shown) => {
    const s = { ...snapshot('replica'), role: was };
    const merged = withLiveCheck(s, { alive: true, status: status({ inRecovery }), busyState: null });
    expect(merged.role).toBe(shown);
    expect(merged.running).toBe(true);
  });

  it('a server that does not answer shows state unknown and keeps the last role', () => {
    const s = { ...snapshot('replica'), role: 'standby_leader' as const };
    const merged = withLiveCheck(s, { alive: false, status: null, busyState: null });
    expect(merged).toMatchObject({ running: false, state: 'unknown', role: 'standby_leader' });
  });

  // The HA cycle can look at a postmaster that is dying (its process still there, no answer) and
  // record `starting`; once the postmaster is gone, no action runs and nothing is starting.
  it.each([
    ['running', false, null, 'unknown'],
    ['streaming', false, null, 'unknown'],
    ['starting', false, null, 'unknown'],
    ['starting', true, null, 'starting'],
    ['stopped', false, null, 'stopped'],
    ['crashed', false, null, 'crashed'],
    ['running', false, 'restarting', 'restarting'],
  ] as const)('last seen %s, postmaster alive %s, action %s: shows %s', (last, alive, busyState, shown) => {
    const s = { ...snapshot('replica'), state: last };
    expect(withLiveCheck(s, { alive, status: null, busyState }).state).toBe(shown);
  });
});

import { describe, expect, it } from 'vitest';
import { parseDynamicConfig } from '../config/schema.js';
import type { PghaConfig } from '../config/types.js';
import { connTarget } from './actions.js';
import { REMOTE_UPSTREAM } from './standby.js';
import { remoteTarget, roleConfigFor, serverParameters } from './server-config.js';
import { cluster, member } from './testing/fixtures.js';

const local = (over: Partial<PghaConfig['postgresql']> = {}) =>
  ({
    postgresql: { parameters: { work_mem: '8MB' }, ...over },
    bootstrap: {},
    tags: {},
  }) as unknown as Pick<PghaConfig, 'postgresql' | 'bootstrap' | 'tags'>;
const dyn = (raw: Record<string, unknown> = {}) => parseDynamicConfig(raw).config;

describe('serverParameters', () => {
  it.each([
    ['leader', true, 'ANY 1 (pg2)', 'ANY 1 (pg2)'],
    ['replica', false, 'ANY 1 (pg2)', ''],
  ])('synchronous_standby_names on a %s', (_, isLeader, ssn, want) => {
    const p = serverParameters({ dyn: dyn(), config: local(), isLeader, ssn });
    expect(p.synchronous_standby_names).toBe(want);
    expect(p.work_mem).toBe('8MB');
  });

  it('local parameters win over the dynamic ones', () => {
    const d = dyn({ postgresql: { parameters: { work_mem: '4MB', max_connections: 50 } } });
    const p = serverParameters({ dyn: d, config: local(), isLeader: false, ssn: '' });
    expect(p).toMatchObject({ work_mem: '8MB', max_connections: 50 });
  });

  it('hot_standby_feedback when permanent logical slots are copied to replicas', () => {
    const d = dyn({ slots: { cdc: { type: 'logical', database: 'postgres', plugin: 'pgoutput' } } });
    expect(serverParameters({ dyn: d, config: local(), isLeader: false, ssn: '' }).hot_standby_feedback).toBe(
      'on',
    );
  });
});

describe('roleConfigFor', () => {
  const c = cluster({ members: [member('pg1', { conn_url: 'postgres://10.0.0.1:5433/postgres' })] });
  const base = { cluster: c, config: local(), parameters: {}, slotName: 'pg2', connTarget };

  it('a replica of a member streams from it through its own slot', () => {
    const rc = roleConfigFor({ ...base, role: 'replica', upstream: 'pg1', dyn: dyn() });
    expect(rc.upstream).toMatchObject({ host: '10.0.0.1', port: 5433 });
    expect(rc.slotName).toBe('pg2');
  });

  it('no slot when use_slots is off, no upstream for an unknown member', () => {
    const off = dyn({ postgresql: { use_slots: false } });
    expect(roleConfigFor({ ...base, role: 'replica', upstream: 'pg1', dyn: off }).slotName).toBeNull();
    expect(roleConfigFor({ ...base, role: 'replica', upstream: 'pg9', dyn: dyn() }).upstream).toBeNull();
  });

  it("the standby leader streams from standby_cluster's source with its slot and settings", () => {
    const d = dyn({
      standby_cluster: { host: 'src', port: 6432, primary_slot_name: 'dr', restore_command: 'cp %f %p' },
    });
    const rc = roleConfigFor({ ...base, role: 'replica', upstream: REMOTE_UPSTREAM, dyn: d });
    expect(rc.upstream).toEqual(remoteTarget(d));
    expect(rc.upstream).toMatchObject({ host: 'src', port: 6432 });
    expect(rc.slotName).toBe('dr');
    expect(rc.recovery).toMatchObject({ restore_command: 'cp %f %p' });
  });

  it('a primary gets parameters and pg_hba only', () => {
    const rc = roleConfigFor({ ...base, role: 'primary', upstream: null, dyn: dyn() });
    expect(rc.upstream).toBeUndefined();
    expect(rc.recovery).toBeUndefined();
  });
});

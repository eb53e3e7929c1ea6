import { describe, expect, it } from 'vitest';
import type { ClusterState, Member, MemberData } from '../dcs/types.js';
import { emptyCluster } from '../dcs/keys.js';
import { chooseDumpSources, formatBytes, parseBytes } from './source.js';

const MB = 1024 * 1024;

function member(name: string, port: number, data: MemberData = {}): Member {
  return {
    name,
    modRevision: '1',
    lease: '0',
    data: {
      conn_url: `postgres://10.0.0.${port - 5430}:${port}/postgres`,
      state: 'streaming',
      role: 'replica',
      ...data,
    },
  };
}

function cluster(members: Member[], leader: string | null = 'pg1', optime = 100 * MB): ClusterState {
  return {
    ...emptyCluster('1'),
    initialize: '1',
    leader: leader ? { name: leader, modRevision: '1', lease: '1' } : null,
    members,
    status: { optime },
  };
}

const leader = member('pg1', 5431, { state: 'running', role: 'primary', xlog_location: 100 * MB });
const names = (c: ClusterState, o: Parameters<typeof chooseDumpSources>[1]) =>
  chooseDumpSources(c, o).sources.map((s) => `${s.name}:${s.role}`);

describe('chooseDumpSources', () => {
  it('puts streaming replicas first, least replayed lag first, then the leader', () => {
    const c = cluster([
      leader,
      member('pg2', 5432, { replay_lsn: 99 * MB, xlog_location: 100 * MB }),
      member('pg3', 5433, { xlog_location: 100 * MB - 10 }),
    ]);
    const choice = chooseDumpSources(c, { maxLagBytes: 16 * MB });
    expect(choice.sources).toEqual([
      { name: 'pg3', host: '10.0.0.3', port: 5433, role: 'replica', lagBytes: 10 },
      { name: 'pg2', host: '10.0.0.2', port: 5432, role: 'replica', lagBytes: MB },
      { name: 'pg1', host: '10.0.0.1', port: 5431, role: 'leader', lagBytes: 0 },
    ]);
    expect(choice.skipped).toEqual([]);
  });

  it('skips replicas that do not stream, lag too much, or are tagged noloadbalance, and says why', () => {
    const c = cluster([
      leader,
      member('pg2', 5432, { state: 'starting' }),
      member('pg3', 5433, { xlog_location: 10 * MB }),
      member('pg4', 5434, { xlog_location: 100 * MB, tags: { noloadbalance: true } }),
      member('pg5', 5435, { xlog_location: 100 * MB, tags: { nofailover: true } }),
      { name: 'pg6', modRevision: '1', lease: '0', data: { state: 'streaming' } },
    ]);
    const choice = chooseDumpSources(c, { maxLagBytes: 16 * MB });
    expect(choice.sources.map((s) => s.name)).toEqual(['pg5', 'pg1']);
    expect(choice.skipped).toEqual([
      { name: 'pg2', reason: 'state starting, not streaming' },
      { name: 'pg3', reason: `${90 * MB} bytes behind the leader (max ${16 * MB})` },
      { name: 'pg4', reason: 'tagged noloadbalance' },
      { name: 'pg6', reason: 'no connection address in etcd' },
    ]);
  });

  it('orders replicas with unknown lag after known ones', () => {
    const c = cluster([leader, member('pg2', 5432), member('pg3', 5433, { xlog_location: 50 * MB })]);
    expect(names(c, { maxLagBytes: 64 * MB })).toEqual(['pg3:replica', 'pg2:replica', 'pg1:leader']);
  });

  it('honours --replica-only, --leader and --member', () => {
    const c = cluster([leader, member('pg2', 5432, { xlog_location: 100 * MB })]);
    expect(names(c, { maxLagBytes: 0, replicaOnly: true })).toEqual(['pg2:replica']);
    expect(names(c, { maxLagBytes: 0, leaderOnly: true })).toEqual(['pg1:leader']);
    expect(names(c, { maxLagBytes: 0, member: 'pg2' })).toEqual(['pg2:replica']);
    expect(names(c, { maxLagBytes: 0, member: 'pg1' })).toEqual(['pg1:leader']);
    expect(names(c, { maxLagBytes: 0, member: 'pg9' })).toEqual([]);
    // A named member is used even when tagged noloadbalance: the operator asked for it.
    const tagged = cluster([
      leader,
      member('pg2', 5432, { xlog_location: 100 * MB, tags: { noloadbalance: 'true' } }),
    ]);
    expect(names(tagged, { maxLagBytes: 0, member: 'pg2' })).toEqual(['pg2:replica']);
  });

  it('leaves out a leader that is not running, and has nothing without a leader or replicas', () => {
    const stopped = cluster([{ ...leader, data: { ...leader.data, state: 'stopped' } }]);
    expect(chooseDumpSources(stopped, { maxLagBytes: 0 })).toEqual({
      sources: [],
      skipped: [{ name: 'pg1', reason: 'leader in state stopped' }],
    });
    expect(names(cluster([member('pg2', 5432)], null), { maxLagBytes: 0 })).toEqual(['pg2:replica']);
  });
});

describe('sizes', () => {
  it('parses the router max_lag forms', () => {
    expect(parseBytes('16MB')).toBe(16 * MB);
    expect(parseBytes('512kB')).toBe(512 * 1024);
    expect(parseBytes(' 1048576 ')).toBe(MB);
    expect(parseBytes('1.5MB')).toBeUndefined();
    expect(parseBytes('lots')).toBeUndefined();
  });

  it('formats progress sizes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(57.5 * 1024)).toBe('57.5 KiB');
    expect(formatBytes(3 * 1024 * MB)).toBe('3.0 GiB');
  });
});

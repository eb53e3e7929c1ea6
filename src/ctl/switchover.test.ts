import { describe, expect, it } from 'vitest';
import type { ClusterState, Member } from '../dcs/types.js';
import { emptyCluster } from '../dcs/keys.js';
import { candidateProblem } from './switchover.js';
import { postgresVersionToInt } from './restart.js';

const MB = 1024 * 1024;

function member(name: string, data: Record<string, unknown>): Member {
  return { name, modRevision: '1', lease: '0', data: { state: 'streaming', ...data } };
}

function cluster(config: Record<string, unknown> = {}): ClusterState {
  return {
    ...emptyCluster('1'),
    initialize: '1',
    config: { value: config, modRevision: '1' },
    leader: { name: 'pg1', modRevision: '1', lease: '1' },
    status: { optime: 100 * MB },
  };
}

describe('switchover candidate checks', () => {
  it('names the member and the numbers when the lag is too high', () => {
    expect(candidateProblem(cluster(), member('pg2', { xlog_location: 80 * MB }))).toBe(
      'pg2 has lag 20 MB > maximum_lag_on_failover 1 MB',
    );
    expect(
      candidateProblem(
        cluster({ maximum_lag_on_failover: 32 * MB }),
        member('pg2', { xlog_location: 80 * MB }),
      ),
    ).toBeUndefined();
  });

  it('refuses stopped, untagged-for-failover and silent members', () => {
    expect(candidateProblem(cluster(), member('pg2', { state: 'stopped', xlog_location: 100 * MB }))).toBe(
      'pg2 is stopped',
    );
    expect(candidateProblem(cluster(), member('pg3', { tags: { nofailover: true } }))).toBe(
      'pg3 has the nofailover tag',
    );
    expect(candidateProblem(cluster(), member('pg3', {}))).toBe(
      'pg3 publishes no WAL position (lag unknown)',
    );
    expect(candidateProblem(cluster(), member('pg3', { xlog_location: 100 * MB }))).toBeUndefined();
  });
});

describe('restart --pg-version', () => {
  it('accepts X.Y (10+) and X.Y.Z, as Patroni', () => {
    expect(postgresVersionToInt('9.5.3')).toBe(90503);
    expect(postgresVersionToInt('10.1')).toBe(100001);
    expect(() => postgresVersionToInt('9.6')).toThrow(
      'Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6',
    );
    expect(() => postgresVersionToInt('a.b.c')).toThrow('Invalid PostgreSQL version: a.b.c');
  });
});

import { describe, expect, it } from 'vitest';
import type { ClusterState, Member, MemberData } from '../dcs/types.js';
import { emptyCluster } from '../dcs/keys.js';
import { parseRouterSection } from './command.js';
import { urlHostPort as parseConnUrl } from '../util/net.js';
import { ReplicaPicker, computeTopology } from './topology.js';

function member(name: string, port: number, data: MemberData): Member {
  return {
    name,
    modRevision: '1',
    lease: '1',
    data: {
      conn_url: `postgres://127.0.0.1:${port}/postgres`,
      api_url: `http://127.0.0.1:${port + 1000}/patroni`,
      ...data,
    },
  };
}

function cluster(leader: string | null, members: Member[], extra: Partial<ClusterState> = {}): ClusterState {
  return {
    ...emptyCluster('3'),
    initialize: '1',
    config: { value: { ttl: 20 }, modRevision: '1' },
    leader: leader === null ? null : { name: leader, modRevision: '2', lease: '1' },
    members,
    ...extra,
  };
}

const primary = member('pg1', 5001, { role: 'primary', state: 'running', xlog_location: 1000 });
const r2 = member('pg2', 5002, { role: 'replica', state: 'streaming', receive_lsn: 900 });
const r3 = member('pg3', 5003, { role: 'replica', state: 'streaming', receive_lsn: 1000 });

describe('computeTopology', () => {
  it('routes writes to the leader running as primary and reads to streaming replicas', () => {
    const t = computeTopology(cluster('pg1', [primary, r3, r2]), { maxLagBytes: null });
    expect(t.primary).toEqual({
      name: 'pg1',
      host: '127.0.0.1',
      port: 5001,
      apiUrl: 'http://127.0.0.1:6001',
    });
    expect(t.replicas.map((r) => [r.name, r.lagBytes])).toEqual([
      ['pg2', 100],
      ['pg3', 0],
    ]);
    expect(t.ttl).toBe(20);
    expect(t.all.map((b) => b.name)).toEqual(['pg1', 'pg3', 'pg2']);
  });

  it('has no primary without a leader key, or while the leader is not yet primary', () => {
    expect(computeTopology(cluster(null, [primary, r2]), { maxLagBytes: null })).toMatchObject({
      primary: null,
      primaryReason: 'no member holds the leader key',
    });
    const t = computeTopology(cluster('pg2', [primary, r2]), { maxLagBytes: null });
    expect(t.primary).toBeNull();
    expect(t.primaryReason).toMatch(/pg2 is not running as primary yet/);
    // The old primary is not a replica either.
    expect(t.replicas).toEqual([]);
    expect(computeTopology(cluster('pg9', [primary]), { maxLagBytes: null }).primaryReason).toMatch(
      /no member key/,
    );
  });

  it('honours noloadbalance, the lag cap and the replica state', () => {
    const tagged = member('pg4', 5004, {
      role: 'replica',
      state: 'streaming',
      tags: { noloadbalance: true },
    });
    const starting = member('pg5', 5005, { role: 'replica', state: 'starting' });
    const t = computeTopology(cluster('pg1', [primary, r2, r3, tagged, starting]), { maxLagBytes: 50 });
    expect(t.replicas.map((r) => r.name)).toEqual(['pg3']);
    expect(t.excluded).toEqual([
      { name: 'pg2', reason: 'lag 100 bytes > maximum 50' },
      { name: 'pg4', reason: 'tagged noloadbalance' },
      { name: 'pg5', reason: 'not streaming (state starting)' },
    ]);
  });

  it("reads Patroni's older member format (master, running + replication_state)", () => {
    const m = member('a', 5001, { role: 'master', state: 'running' });
    const r = member('b', 5002, { role: 'replica', state: 'running', replication_state: 'streaming' });
    const t = computeTopology(cluster('a', [m, r]), { maxLagBytes: null });
    expect(t.primary?.name).toBe('a');
    expect(t.replicas.map((x) => x.name)).toEqual(['b']);
  });
});

describe('ReplicaPicker', () => {
  const list = [
    { name: 'a', host: 'h', port: 1 },
    { name: 'b', host: 'h', port: 2 },
    { name: 'c', host: 'h', port: 3 },
  ];
  it('round-robins', () => {
    const p = new ReplicaPicker('round-robin');
    expect([1, 2, 3, 4].map(() => p.pick(list, () => 0)?.name)).toEqual(['a', 'b', 'c', 'a']);
    expect(p.pick([], () => 0)).toBeNull();
  });
  it('picks the least loaded', () => {
    const p = new ReplicaPicker('least-connections');
    const load: Record<string, number> = { a: 3, b: 1, c: 2 };
    expect(p.pick(list, (n) => load[n]!)?.name).toBe('b');
  });
});

describe('parsing', () => {
  it('parses conn_url', () => {
    expect(parseConnUrl('postgres://[::1]:5433/postgres')).toEqual({ host: '::1', port: 5433 });
    expect(parseConnUrl('postgres://db/postgres')).toEqual({ host: 'db', port: 5432 });
    expect(parseConnUrl('nonsense')).toBeNull();
    expect(parseConnUrl('https://db/patroni')).toEqual({ host: 'db', port: 443 });
  });

  it('reads the router section with defaults, and flags override it', () => {
    expect(parseRouterSection(undefined)).toEqual({
      listen: { hosts: ['0.0.0.0'], port: 5433 },
      balance: 'round-robin',
      fallback_to_primary: false,
      wait_timeout: 30,
      connect_timeout: 5,
      check_interval: 1,
      verify_primary: true,
      data_path: 'auto',
      relay_threads: 1,
      replica_grace: 10,
      drain_timeout: 5,
    });
    const r = parseRouterSection(
      { listen: '127.0.0.1:6000', replica_listen: '127.0.0.1', max_lag: '1MB', balance: 'least_connections' },
      {
        waitTimeout: '2.5',
        listen: '127.0.0.1:7000',
        verifyPrimary: false,
        dataPath: 'JavaScript',
        relayThreads: '2',
        drainTimeout: '1.5',
      },
    );
    expect(r).toMatchObject({
      listen: { hosts: ['127.0.0.1'], port: 7000 },
      replica_listen: { hosts: ['127.0.0.1'], port: 5434 },
      max_lag: 1048576,
      balance: 'least-connections',
      wait_timeout: 2.5,
      verify_primary: false,
      data_path: 'javascript',
      relay_threads: 2,
      drain_timeout: 1.5,
    });
    expect(parseRouterSection({ tls: { certificate: '/etc/c.pem', key: '/etc/k.pem' } }).tls).toEqual({
      certificate: '/etc/c.pem',
      key: '/etc/k.pem',
    });
    expect(() =>
      parseRouterSection({ balance: 'random', max_lag: 'lots', data_path: 'fast', relay_threads: 0 }),
    ).toThrow(
      /router.balance: expected one of round-robin, least-connections, got "random"[\s\S]*router.max_lag[\s\S]*router.data_path: expected one of auto, native, javascript[\s\S]*router.relay_threads/,
    );
  });
});

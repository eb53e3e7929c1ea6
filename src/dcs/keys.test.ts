import { describe, expect, it } from 'vitest';
import { clusterPrefix, parseCluster, parseFailover, prefixRangeEnd, type RawKey } from './keys.js';

function kv(key: string, value: string, modRevision = '5', lease = '0'): RawKey {
  return { key, value, modRevision, lease };
}

describe('clusterPrefix', () => {
  it('collapses slashes as Patroni does', () => {
    expect(clusterPrefix('/service/', 'pg')).toBe('/service/pg/');
    expect(clusterPrefix('service', 'pg')).toBe('/service/pg/');
    expect(clusterPrefix('/db//', 'pg')).toBe('/db/pg/');
    expect(clusterPrefix('/', 'pg')).toBe('/pg/');
    expect(() => clusterPrefix('/service/', 'a/b')).toThrow(/invalid scope/);
  });
});

describe('prefixRangeEnd', () => {
  it('increments the last byte below 0xff', () => {
    expect(prefixRangeEnd(Buffer.from('/service/pg/')).toString()).toBe('/service/pg0');
    expect(prefixRangeEnd(Buffer.from([0x61, 0xff]))).toEqual(Buffer.from([0x62]));
    expect(prefixRangeEnd(Buffer.from([0xff]))).toEqual(Buffer.from([0]));
  });
});

describe('parseFailover', () => {
  it('treats {} and empty values as no request', () => {
    expect(parseFailover('{}', '3')).toBeNull();
    expect(parseFailover('', '3')).toBeNull();
    expect(parseFailover('{garbage', '3')).toBeNull();
  });
  it('reads the JSON form and the legacy leader:member form', () => {
    expect(
      parseFailover('{"leader":"a","member":"b","scheduled_at":"2030-01-01T00:00:00+00:00"}', '3'),
    ).toEqual({
      leader: 'a',
      member: 'b',
      scheduled_at: '2030-01-01T00:00:00+00:00',
      modRevision: '3',
    });
    expect(parseFailover('a:b', '3')).toEqual({ leader: 'a', member: 'b', modRevision: '3' });
    expect(parseFailover(':b', '3')).toEqual({ member: 'b', modRevision: '3' });
  });
});

describe('parseCluster', () => {
  it('reads every key and skips garbage members with a warning', () => {
    const warnings: string[] = [];
    const state = parseCluster(
      [
        kv('initialize', '7711413016369676563'),
        kv('leader', 'n1', '9', '42'),
        kv('members/n2', '{"role":"replica"}', '8', '43'),
        kv('members/n1', '{"role":"primary","xlog_location":1}', '7', '42'),
        kv('members/bad', 'not json'),
        kv('members/nested/x', '{}'),
        kv('config', '{"ttl":30}', '4'),
        kv('sync', '{"leader":"n1","sync_standby":null}', '6'),
        kv('history', '[[1,100,"no recovery target specified","2024-01-01T00:00:00+00:00","n1"],"junk"]'),
        kv('status', '{"optime":100,"slots":{"n2":90},"retain_slots":["n2"]}'),
        kv('optime/leader', '50'),
        kv('failsafe', '{"n1":"http://h:8008/patroni"}'),
        kv('failover', '{}'),
        kv('unknown', 'whatever'),
      ],
      '12',
      (msg) => warnings.push(msg),
    );
    expect(state).toEqual({
      initialize: '7711413016369676563',
      leader: { name: 'n1', modRevision: '9', lease: '42' },
      members: [
        { name: 'n1', data: { role: 'primary', xlog_location: 1 }, modRevision: '7', lease: '42' },
        { name: 'n2', data: { role: 'replica' }, modRevision: '8', lease: '43' },
      ],
      config: { value: { ttl: 30 }, modRevision: '4' },
      sync: { leader: 'n1', sync_standby: null, modRevision: '6' },
      history: [[1, 100, 'no recovery target specified', '2024-01-01T00:00:00+00:00', 'n1']],
      status: { optime: 100, slots: { n2: 90 }, retain_slots: ['n2'] },
      failsafe: { n1: 'http://h:8008/patroni' },
      failover: null,
      revision: '12',
    });
    expect(warnings).toHaveLength(1);
  });

  it('falls back to optime/leader and to an empty config', () => {
    const state = parseCluster([kv('optime/leader', '77'), kv('config', '][')], '1');
    expect(state.status).toEqual({ optime: 77 });
    expect(state.config).toEqual({ value: {}, modRevision: '5' });
    expect(state.history).toEqual([]);
  });
});

describe('routers and the drain request (pgha extension)', () => {
  it('reads registered routers with their drain answers, and the drain key', () => {
    const c = parseCluster(
      [
        kv('routers/b', '{"drain_timeout_ms":3000}'),
        kv(`routers/a`, '{"drain_timeout_ms":"x"}'),
        kv(`routers/a/drained`, 'req-1'),
        kv(`routers/ghost/drained`, 'req-1'),
        kv(`drain`, '{"id":"req-1","from":"pg1","to":"pg2"}'),
      ],
      '9',
    );
    expect(c.routers).toEqual([
      { id: 'a', drainTimeoutMs: 5000, drained: 'req-1' },
      { id: 'b', drainTimeoutMs: 3000, drained: null },
    ]);
    expect(c.drain).toEqual({ id: 'req-1', from: 'pg1', to: 'pg2' });
    expect(c.members).toEqual([]);
  });
  it('ignores an unreadable drain key and leaves routers out when none is registered', () => {
    const c = parseCluster([kv(`drain`, '{"id":"x"}')], '9');
    expect(c.drain).toBeNull();
    expect(c.routers).toBeUndefined();
  });
});

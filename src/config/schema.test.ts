import { describe, expect, it } from 'vitest';
import { normaliseNamespace, parseBool, parseDynamicConfig, parseHostPort, parseListen } from './schema.js';

describe('parseListen', () => {
  it('parses host:port, several hosts and bracketed IPv6', () => {
    expect(parseListen('0.0.0.0:8008')).toEqual({ hosts: ['0.0.0.0'], port: 8008 });
    expect(parseListen('127.0.0.1,127.0.0.2:5432')).toEqual({
      hosts: ['127.0.0.1', '127.0.0.2'],
      port: 5432,
    });
    expect(parseListen('[::]:8008')).toEqual({ hosts: ['::'], port: 8008 });
    expect(parseListen('*:5432')).toEqual({ hosts: ['*'], port: 5432 });
  });

  it('rejects a missing or bad port unless a default is given', () => {
    expect(parseListen('abc')).toBeNull();
    expect(parseListen('host:99999')).toBeNull();
    expect(parseListen('host:80a')).toBeNull();
    expect(parseListen('localhost', 5432)).toEqual({ hosts: ['localhost'], port: 5432 });
  });
});

describe('parseHostPort', () => {
  it('accepts one host only', () => {
    expect(parseHostPort('[::1]:5432')).toEqual({ host: '::1', port: 5432 });
    expect(parseHostPort('db1:2379')).toEqual({ host: 'db1', port: 2379 });
    expect(parseHostPort('db1', 2379)).toEqual({ host: 'db1', port: 2379 });
    expect(parseHostPort('a,b:1')).toBeNull();
    expect(parseHostPort(':1')).toBeNull();
  });
});

describe('normaliseNamespace', () => {
  it('always has one leading and one trailing slash', () => {
    expect(normaliseNamespace('db')).toBe('/db/');
    expect(normaliseNamespace('/db/')).toBe('/db/');
    expect(normaliseNamespace('//a//b')).toBe('/a/b/');
    expect(normaliseNamespace('/service')).toBe('/service/');
  });
});

describe('parseBool', () => {
  it("follows Patroni's parse_bool words", () => {
    expect(['on', 'YES', 'true', 1, true].map(parseBool)).toEqual([true, true, true, true, true]);
    expect(['off', 'no', 'False', 0, false].map(parseBool)).toEqual([false, false, false, false, false]);
    expect(parseBool('maybe')).toBeUndefined();
  });
});

describe('parseDynamicConfig', () => {
  it("applies Patroni's defaults to an empty config", () => {
    const { config, errors } = parseDynamicConfig({});
    expect(errors).toEqual([]);
    expect(config).toEqual({
      ttl: 30,
      loop_wait: 10,
      retry_timeout: 10,
      maximum_lag_on_failover: 1048576,
      maximum_lag_on_syncnode: -1,
      primary_start_timeout: 300,
      primary_stop_timeout: 0,
      synchronous_mode: false,
      synchronous_mode_strict: false,
      synchronous_node_count: 1,
      failsafe_mode: false,
      fast_failover: true,
      move_etcd_leader: true,
      check_timeline: false,
      pause: false,
      slots: [],
      ignore_slots: [],
      member_slots_ttl: 1800,
      postgresql: { use_pg_rewind: false, use_slots: true, parameters: {} },
      raw: {},
    });
    expect(parseDynamicConfig(undefined).config.ttl).toBe(30);
  });

  it('reads permanent slots, ignore_slots and member_slots_ttl as Patroni does', () => {
    const { config, errors } = parseDynamicConfig({
      slots: {
        phys: null,
        phys2: { type: 'physical', cluster_type: 'primary' },
        cdc: { database: 'app', plugin: 'pgoutput' },
        cdc2: { type: 'logical', database: 'postgres', plugin: 'test_decoding' },
      },
      ignore_slots: [{ name: 'keep' }, { type: 'logical', database: 'app' }, {}],
      member_slots_ttl: '30min',
    });
    expect(errors).toEqual([]);
    expect(config.slots).toEqual([
      { name: 'phys', type: 'physical' },
      { name: 'phys2', type: 'physical', cluster_type: 'primary' },
      { name: 'cdc', type: 'logical', database: 'app', plugin: 'pgoutput' },
      { name: 'cdc2', type: 'logical', database: 'postgres', plugin: 'test_decoding' },
    ]);
    expect(config.ignore_slots).toEqual([{ name: 'keep' }, { type: 'logical', database: 'app' }, {}]);
    expect(config.member_slots_ttl).toBe(1800);
    expect(parseDynamicConfig({ member_slots_ttl: 0 }).config.member_slots_ttl).toBe(0);
    expect(parseDynamicConfig({ member_slots_ttl: '1h' }).config.member_slots_ttl).toBe(3600);
    // Patroni reads permanent_replication_slots, then permanent_slots, then slots.
    expect(
      parseDynamicConfig({ slots: { a: null }, permanent_slots: { b: null } }).config.slots.map(
        (s) => s.name,
      ),
    ).toEqual(['b']);
  });

  it('names each bad slot entry and keeps the good ones', () => {
    const { config, errors } = parseDynamicConfig({
      slots: {
        'Bad-Name': null,
        half: { type: 'logical', database: 'app' },
        odd: { type: 'other' },
        text: 'yes',
        ok: { type: 'physical' },
      },
      ignore_slots: [{ name: 'a' }, 'b', { name: 3 }],
      member_slots_ttl: '-5',
    });
    expect(errors).toEqual([
      'member_slots_ttl: must be at least 0, got -5',
      'slots.Bad-Name: not a valid slot name (1 to 63 of a-z, 0-9 and _)',
      'slots.half: a logical slot needs both database and plugin',
      'slots.odd.type: expected physical or logical, got "other"',
      'slots.text: expected type, database and plugin, got "yes"',
      'ignore_slots.1: expected a mapping of name, type, database and plugin, got "b"',
      'ignore_slots.2.name: expected text, got 3',
    ]);
    expect(config.slots).toEqual([{ name: 'ok', type: 'physical' }]);
    expect(config.ignore_slots).toEqual([{ name: 'a' }]);
    expect(config.member_slots_ttl).toBe(1800);
  });

  it('coerces strings as Patroni does and keeps unknown keys in raw', () => {
    const raw = {
      ttl: '40',
      synchronous_mode: 'on',
      master_start_timeout: 60,
      slots: { s1: { type: 'physical' } },
      postgresql: {
        use_pg_rewind: 'true',
        parameters: { max_connections: 100, hot_standby: 'on', gone: null },
      },
    };
    const { config, errors } = parseDynamicConfig(raw);
    expect(errors).toEqual([]);
    expect(config.ttl).toBe(40);
    expect(config.synchronous_mode).toBe(true);
    expect(config.primary_start_timeout).toBe(60);
    expect(config.postgresql.use_pg_rewind).toBe(true);
    expect(config.postgresql.parameters).toEqual({ max_connections: 100, hot_standby: 'on' });
    expect(config.raw).toEqual(raw);
  });

  it('accepts quorum and prefers primary_* over master_*', () => {
    const { config } = parseDynamicConfig({
      synchronous_mode: 'quorum',
      primary_start_timeout: 5,
      master_start_timeout: 60,
    });
    expect(config.synchronous_mode).toBe('quorum');
    expect(config.primary_start_timeout).toBe(5);
  });

  it('reports a bad field and falls back to its default', () => {
    const { config, errors } = parseDynamicConfig({
      loop_wait: 'abc',
      synchronous_node_count: 0,
      postgresql: { use_slots: 'maybe' },
    });
    expect(errors).toEqual([
      'loop_wait: expected a number, got "abc"',
      'synchronous_node_count: must be at least 1, got 0',
      'postgresql.use_slots: expected a boolean, got "maybe"',
    ]);
    expect(config.loop_wait).toBe(10);
    expect(config.synchronous_node_count).toBe(1);
    expect(config.postgresql.use_slots).toBe(true);
  });

  it('rejects a value that is not a mapping', () => {
    expect(parseDynamicConfig('ttl: 30').errors).toEqual(['expected a mapping, got "ttl: 30"']);
  });

  it.each([
    // ttl, loop_wait, retry_timeout → loop_wait, retry_timeout, warned
    [30, 10, 10, 10, 10, false],
    [6, 2, 2, 2, 2, false],
    [20, 10, 10, 1, 9, true],
    [20, 2, 5, 2, 5, false],
    [20, 12, 5, 10, 5, true],
    [10, 2, 10, 1, 4, true],
    [3, 2, 2, 1, 1, true],
  ])(
    'ttl %i, loop_wait %i, retry_timeout %i: accepted as loop_wait %i, retry_timeout %i',
    (ttl, lw, rt, elw, ert, warned) => {
      const { config, errors, warnings } = parseDynamicConfig({ ttl, loop_wait: lw, retry_timeout: rt });
      expect(errors).toEqual([]);
      expect([config.ttl, config.loop_wait, config.retry_timeout]).toEqual([ttl, elw, ert]);
      expect(warnings.length > 0).toBe(warned);
      // The rule holds afterwards whenever ttl leaves room for it at all.
      if (ttl >= 3) expect(config.loop_wait + 2 * config.retry_timeout).toBeLessThanOrEqual(ttl);
    },
  );
});

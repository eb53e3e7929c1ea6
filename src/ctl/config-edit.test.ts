import { describe, expect, it } from 'vitest';
import { applyConfigChanges, applyYaml, patchConfig, pgPairs } from './config-edit.js';
import { unifiedDiff } from './diff.js';
import { formatConfigForEditing } from './table.js';

const data = {
  ttl: 30,
  loop_wait: 10,
  postgresql: { parameters: { max_connections: 100, wal_level: 'replica' }, use_pg_rewind: true },
  maximum_lag_on_failover: 1048576,
};

describe('edit-config -s / -p', () => {
  it('parses values as YAML 1.1 and merges them as patronictl does', () => {
    // Expected values produced by Debian's patronictl (apply_config_changes) on the same input.
    const changed = applyConfigChanges(data, [
      'ttl=20',
      ...pgPairs(['max_connections=200', 'pg_stat_statements.track=all']),
      'synchronous_mode=on',
      'loop_wait=',
      'postgresql.use_pg_rewind=null',
      'tags.x.y=[1, 2]',
      'name="quoted"',
    ]);
    expect(changed).toEqual({
      ttl: 20,
      postgresql: {
        parameters: { max_connections: 200, wal_level: 'replica', 'pg_stat_statements.track': 'all' },
      },
      maximum_lag_on_failover: 1048576,
      synchronous_mode: true,
      tags: { x: { y: [1, 2] } },
      name: 'quoted',
    });
    expect(data.ttl).toBe(30); // the input is not modified
  });

  it('keeps strings that only look like numbers when quoted, and y/n as strings', () => {
    expect(applyConfigChanges({}, ["a='20'", 'b=y', 'c=off', 'd=1.5', 'e=0x10'])).toEqual({
      a: '20',
      b: 'y',
      c: false,
      d: 1.5,
      e: 16,
    });
  });

  it('prunes maps emptied by a deletion', () => {
    expect(applyConfigChanges({ a: { b: { c: 1 } }, d: 1 }, ['a.b.c=null'])).toEqual({ d: 1 });
  });

  it('refuses a setting without "=" and says what is expected', () => {
    expect(() => applyConfigChanges({}, ['ttl'])).toThrow(
      /Invalid parameter setting ttl \(expected key.path=value/,
    );
  });
});

describe('edit-config --apply (patch_config)', () => {
  it('merges maps, deletes nulls and reports changes', () => {
    const c: Record<string, unknown> = { a: { b: 1, c: 2 }, d: 'x', e: 5 };
    expect(patchConfig(c, { a: { b: 3, c: null }, d: null, f: { g: 1 } })).toBe(true);
    expect(c).toEqual({ a: { b: 3 }, e: 5, f: { g: 1 } });
    expect(patchConfig(c, { e: '5' })).toBe(false); // compared as text, as Python's str()
  });

  it('applies a YAML document; --replace starts from an empty config', () => {
    expect(
      applyYaml(data, 'ttl: 15\npostgresql:\n  parameters:\n    wal_level: logical\n', 'f'),
    ).toMatchObject({
      ttl: 15,
      loop_wait: 10,
      postgresql: { parameters: { max_connections: 100, wal_level: 'logical' } },
    });
    expect(applyYaml({}, 'ttl: 15\n', 'f')).toEqual({ ttl: 15 });
    expect(() => applyYaml({}, '- a\n', 'f.yaml')).toThrow(/f.yaml must hold a YAML mapping/);
  });
});

describe('the diff edit-config shows', () => {
  it('is difflib.unified_diff of the YAML before and after', () => {
    const before = formatConfigForEditing(data);
    const after = formatConfigForEditing(
      applyConfigChanges(data, [
        'ttl=20',
        ...pgPairs(['max_connections=200', 'pg_stat_statements.track=all']),
        'synchronous_mode=on',
        'loop_wait=',
        'postgresql.use_pg_rewind=null',
        'tags.x.y=[1, 2]',
        'name="quoted"',
      ]),
    );
    // Output of Debian's patronictl / difflib for the same change.
    expect(unifiedDiff(before, after).join('\n')).toBe(
      [
        '--- ',
        '+++ ',
        '@@ -1,8 +1,14 @@',
        '-loop_wait: 10',
        ' maximum_lag_on_failover: 1048576',
        '+name: quoted',
        ' postgresql:',
        '   parameters:',
        '-    max_connections: 100',
        '+    max_connections: 200',
        '+    pg_stat_statements.track: all',
        '     wal_level: replica',
        '-  use_pg_rewind: true',
        '-ttl: 30',
        '+synchronous_mode: true',
        '+tags:',
        '+  x:',
        '+    y:',
        '+    - 1',
        '+    - 2',
        '+ttl: 20',
      ].join('\n'),
    );
  });

  it('keeps three lines of context and splits distant hunks', () => {
    const a = Array.from({ length: 20 }, (_, i) => `k${i}: ${i}`).join('\n');
    const b = a.replace('k1: 1', 'k1: 100').replace('k18: 18', 'k18: 180');
    expect(unifiedDiff(a, b)).toEqual([
      '--- ',
      '+++ ',
      '@@ -1,5 +1,5 @@',
      ' k0: 0',
      '-k1: 1',
      '+k1: 100',
      ' k2: 2',
      ' k3: 3',
      ' k4: 4',
      '@@ -16,5 +16,5 @@',
      ' k15: 15',
      ' k16: 16',
      ' k17: 17',
      '-k18: 18',
      '+k18: 180',
      ' k19: 19',
    ]);
    expect(unifiedDiff(a, a)).toEqual([]);
  });
});

describe('patchConfig never reaches a prototype', () => {
  it('skips __proto__ in a patch', () => {
    const config: Record<string, unknown> = { ttl: 30 };
    patchConfig(
      config,
      JSON.parse('{"__proto__": {"polluted": 1}, "loop_wait": 5}') as Record<string, unknown>,
    );
    expect(config).toEqual({ ttl: 30, loop_wait: 5 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import {
  buildCatalog,
  checkValue,
  describeConverted,
  describeDropped,
  parseDescribeConfig,
  parsePgBool,
  parseRefusal,
  reviewParameters,
  rint,
  settingFromRow,
  strtod,
  strtol,
  toBaseUnit,
  type GucCatalog,
  type GucSpec,
  type SettingEntry,
} from './guc.js';
import { PG_SETTINGS } from './pg-settings.generated.js';

/** Lines of PostgreSQL 15's `postgres --describe-config` (descriptions shortened). */
const DESCRIBE_15 = [
  'archive_mode\tpostmaster\tWrite-Ahead Log / Archiving\tENUM\toff\t\t\tAllows archiving.\t',
  'checkpoint_timeout\tsighup\tWrite-Ahead Log / Checkpoints\tINTEGER\t0\t30\t86400\tCheckpoint time.\t',
  'client_min_messages\tuser\tClient Connection Defaults\tENUM\tnotice\t\t\tLevels.\t',
  'enable_seqscan\tuser\tQuery Tuning\tBOOLEAN\tFALSE\t\t\tSeq scans.\t',
  'huge_pages\tpostmaster\tResource Usage / Memory\tENUM\ttry\t\t\tHuge pages.\t',
  'log_destination\tsighup\tReporting and Logging\tSTRING\tstderr\t\t\tWhere.\t',
  'log_rotation_age\tsighup\tReporting and Logging\tINTEGER\t0\t0\t35791394\tRotation.\t',
  'max_connections\tpostmaster\tConnections\tINTEGER\t0\t1\t262143\tConnections.\t',
  'seq_page_cost\tuser\tQuery Tuning\tREAL\t0\t0\t1.79769e+308\tCost.\t',
  'shared_buffers\tpostmaster\tResource Usage / Memory\tINTEGER\t0\t16\t1073741823\tBuffers.\t',
  'synchronous_commit\tuser\tWrite-Ahead Log / Settings\tENUM\ton\t\t\tSync.\t',
  'vacuum_cost_delay\tuser\tResource Usage\tREAL\t0\t0\t100\tDelay.\t',
  'wal_keep_size\tsighup\tReplication / Sending Servers\tINTEGER\t0\t0\t2147483647\tKeep.\t',
  'wal_level\tpostmaster\tWrite-Ahead Log / Settings\tENUM\treplica\t\t\tLevel.\t',
  'work_mem\tuser\tResource Usage / Memory\tINTEGER\t0\t64\t2147483647\tWork memory.\t',
].join('\n');

const settings15 = PG_SETTINGS[15] as Record<string, SettingEntry>;
const catalog15 = buildCatalog(15, parseDescribeConfig(DESCRIBE_15), settings15);
/** The same binary with no pg_settings at hand (a version the table does not have, no server). */
const bare15 = buildCatalog(15, parseDescribeConfig(DESCRIBE_15), null);

const spec = (c: GucCatalog, name: string): GucSpec => {
  const s = c.specs.get(name);
  if (!s) throw new Error(`no ${name} in the catalog`);
  return s;
};

describe('C number scanners', () => {
  it.each([
    ['100', 100, 3, false],
    ['  +42x', 42, 5, false],
    ['-7', -7, 2, false],
    ['0x64', 100, 4, false],
    ['0144', 100, 4, false],
    ['08', 0, 1, false],
    ['0x', 0, 1, false],
    ['lots', 0, 0, false],
    ['', 0, 0, false],
    ['99999999999999999999', 1e20, 20, true],
  ])('strtol(%j) = %d, stops at %d, ERANGE %s', (s, value, end, range) => {
    expect(strtol(s)).toEqual({ value, end, range });
  });

  it.each([
    ['1.5e2', 150, 5, false],
    ['.5', 0.5, 2, false],
    ['1e', 1, 1, false],
    ['  -2.5kB', -2.5, 6, false],
    ['inf', Infinity, 3, false],
    ['-Infinity', -Infinity, 9, false],
    ['0x10', 16, 4, false],
    ['0x1p-2', 0.25, 6, false],
    ['1e400', Infinity, 5, true],
    ['1e-400', 0, 6, true],
    ['0e-400', 0, 6, false],
    ['e5', 0, 0, false],
  ])('strtod(%j) = %d, stops at %d, ERANGE %s', (s, value, end, range) => {
    expect(strtod(s)).toEqual({ value, end, range });
  });

  it('strtod reads nan', () => {
    expect(Number.isNaN(strtod('nan').value)).toBe(true);
  });

  it.each([
    [0.5, 0],
    [1.5, 2],
    [2.5, 2],
    [-2.5, -2],
    [2.4999, 2],
    [100.5, 100],
    [101.5, 102],
  ])('rint(%d) = %d (halves to even)', (x, want) => {
    expect(rint(x)).toBe(want);
  });
});

describe('units, converted as guc.c converts them', () => {
  it.each([
    // value, unit given, base unit, result in base units (parse_int rounds it afterwards)
    [64, 'kB', 'kB', 64],
    [1.5, 'MB', 'kB', 1536],
    [65535, 'B', 'kB', 65535 / 1024],
    [128, 'MB', '8kB', 16384],
    [0.1, 'GB', '8kB', 13056],
    [1, 'kB', '8kB', 0.125],
    [1.5, 'h', 's', 5400],
    [29500, 'ms', 's', 29.5],
    [90, 's', 'min', 1.5],
    [1, 'us', 'ms', 0.001],
    [0.15, 's', 'ms', 150],
  ])('%d %s in %s is %d', (value, unitText, unit, want) => {
    expect(toBaseUnit(value, unitText, unit)).toBeCloseTo(want, 9);
  });

  it.each([
    ['kb', 'kB'],
    ['KB', 'kB'],
    ['min', 'kB'],
    ['MB', 's'],
    ['m', 's'],
  ])('%s is not a unit of a %s parameter', (unitText, unit) => {
    expect(toBaseUnit(1, unitText, unit)).toBeNull();
  });
});

describe('parsePgBool (parse_bool)', () => {
  it.each([
    ['on', true],
    ['OFF', false],
    ['t', true],
    ['tRuE', true],
    ['truex', null],
    ['y', true],
    ['ye', true],
    ['n', false],
    ['o', null],
    ['of', false],
    ['1', true],
    ['0', false],
    ['01', null],
    [' on', null],
    ['on ', null],
    ['', null],
  ])('%j → %s', (value, want) => {
    expect(parsePgBool(value)).toBe(want);
  });
});

/**
 * Values and what PostgreSQL 15 itself says about them (`postgres -C name -c name=value`): null when
 * it takes the value, else a pattern of pgha's reason. A few are kept unchecked when pg_settings is
 * not at hand (see the next table).
 */
const CASES: Array<[string, string, RegExp | null]> = [
  ['enable_seqscan', 'tRuE', null],
  ['enable_seqscan', 'o', /expected a boolean/],
  ['max_connections', '100', null],
  ['max_connections', ' 100 ', null],
  ['max_connections', '+100', null],
  ['max_connections', '0x64', null],
  ['max_connections', '0144', null],
  ['max_connections', '08', /^expected an integer$/],
  ['work_mem', '08', /^expected an integer$/],
  ['max_connections', '1e2', null],
  ['max_connections', '100.5', null],
  ['max_connections', '.5e3', null],
  ['max_connections', ' .5e3', /expected an integer$/],
  ['max_connections', '0', /outside the valid range 1 \.\. 262143$/],
  ['max_connections', '262144', /outside the valid range/],
  ['max_connections', '10MB', /without a unit/],
  ['max_connections', 'lots', /^expected an integer$/],
  ['max_connections', 'inf', /expected an integer/],
  ['max_connections', '1e400', /expected an integer/],
  ['max_connections', '99999999999999999999', /exceeds the integer range/],
  ['max_connections', '1e', /expected an integer/],
  ['max_connections', '100 x', /expected an integer/],
  ['work_mem', '64kB', null],
  ['work_mem', '64 kB', null],
  ['work_mem', '64kb', /unit: B, kB, MB, GB or TB \(case matters\)/],
  ['work_mem', '64KB', /unit/],
  ['work_mem', '1.5MB', null],
  ['work_mem', '0.5kB', /outside the valid range 64 \.\. 2147483647 kB \(it is 0 kB\)/],
  ['work_mem', '65535B', null],
  ['work_mem', '1TB', null],
  ['work_mem', '2TB', /exceeds the integer range/],
  ['work_mem', '64 kB x', /unit/],
  ['work_mem', '64kBx', /unit/],
  ['work_mem', '1min', /unit/],
  ['shared_buffers', '128MB', null],
  ['shared_buffers', '1kB', /it is 0 8kB/],
  ['shared_buffers', '124kB', null],
  ['shared_buffers', '15', /outside/],
  ['checkpoint_timeout', '29500ms', null],
  ['checkpoint_timeout', '29499ms', /outside the valid range 30 \.\. 86400 s/],
  ['checkpoint_timeout', '0.5min', null],
  ['checkpoint_timeout', '1d', null],
  ['checkpoint_timeout', '2d', /outside/],
  ['checkpoint_timeout', '30000000us', null],
  ['checkpoint_timeout', '5m', /unit: us, ms, s, min, h or d/],
  ['checkpoint_timeout', '5 min', null],
  ['log_rotation_age', '90s', null],
  ['vacuum_cost_delay', '0.5ms', null],
  ['vacuum_cost_delay', '100.5', /outside the valid range 0 \.\. 100 ms$/],
  ['vacuum_cost_delay', '0.1s', null],
  ['vacuum_cost_delay', '0.15s', /it is 150 ms/],
  ['vacuum_cost_delay', 'inf', /outside/],
  ['vacuum_cost_delay', 'nan', /expected a number/],
  ['vacuum_cost_delay', '0x10', null],
  ['vacuum_cost_delay', '1e-400', /expected a number/],
  ['seq_page_cost', '1e308', null],
  ['seq_page_cost', 'Infinity', /outside/],
  ['seq_page_cost', '1e309', /expected a number/],
  ['seq_page_cost', '2kB', /without a unit/],
  ['wal_level', 'LOGICAL', null],
  ['wal_level', 'bogus', /expected one of minimal, replica, logical/],
  ['wal_level', 'on', /expected one of/],
  ['synchronous_commit', 'True', null],
  ['synchronous_commit', '1', null],
  ['synchronous_commit', 'tr', /expected one of/],
  ['huge_pages', 'no', null],
  ['huge_pages', '0', null],
  ['archive_mode', 'always', null],
  ['log_destination', 'anything', null],
];

describe('checkValue against PostgreSQL 15', () => {
  it.each(CASES)('%s = %j', (name, value, want) => {
    const reason = checkValue(spec(catalog15, name), value);
    if (want === null) expect(reason).toBeNull();
    else expect(reason).toMatch(want);
  });
});

describe('checkValue without pg_settings for the version', () => {
  it.each([
    // A value with a unit cannot be converted without the base unit: left to the binary's check.
    ['work_mem', '64kB', null],
    ['work_mem', '64kb', null],
    // Plain numbers are still checked against the binary's range (in base units).
    ['work_mem', '10', /outside the valid range 64 \.\. 2147483647$/],
    ['max_connections', 'lots', /expected an integer/],
    // Enum values are not known: left to the binary.
    ['wal_level', 'bogus', null],
    ['enable_seqscan', 'maybe', /boolean/],
  ])('%s = %j', (name, value, want) => {
    const reason = checkValue(spec(bare15, name), value);
    if (want === null) expect(reason).toBeNull();
    else expect(reason).toMatch(want);
  });
});

describe('buildCatalog', () => {
  it('reads describe-config: types, contexts and ranges', () => {
    expect(parseDescribeConfig(DESCRIBE_15).find((s) => s.name === 'seq_page_cost')).toEqual({
      name: 'seq_page_cost',
      context: 'user',
      type: 'real',
      min: 0,
      max: 1.79769e308,
    });
  });

  it('takes units and enum values from pg_settings, and the names only pg_settings has', () => {
    expect(spec(catalog15, 'shared_buffers')).toMatchObject({ unit: '8kB', min: 16, max: 1073741823 });
    expect(spec(catalog15, 'max_connections').unit).toBeNull();
    expect(spec(catalog15, 'wal_level').values).toEqual(['minimal', 'replica', 'logical']);
    expect(spec(catalog15, 'block_size').context).toBe('internal');
    expect(spec(catalog15, 'zero_damaged_pages')).toMatchObject({ type: 'bool', context: 'superuser' });
    expect(spec(bare15, 'shared_buffers').unit).toBeUndefined();
    expect(spec(bare15, 'enable_seqscan').unit).toBeNull();
  });

  it('leaves out the parameters of loaded extensions', () => {
    const c = buildCatalog(15, [], {
      'pg_stat_statements.max': { context: 'postmaster', type: 'integer', min: 100, max: 1073741823 },
    });
    expect(c.specs.size).toBe(0);
  });

  it('turns a pg_settings row into an entry', () => {
    expect(
      settingFromRow({
        context: 'postmaster',
        vartype: 'enum',
        unit: null,
        min_val: null,
        max_val: null,
        enumvals: ['always', 'on', 'off'],
      }),
    ).toEqual({ context: 'postmaster', type: 'enum', values: ['always', 'on', 'off'] });
    expect(
      settingFromRow({
        context: 'sighup',
        vartype: 'real',
        unit: 'ms',
        min_val: '-1',
        max_val: '100',
        enumvals: null,
      }),
    ).toEqual({ context: 'sighup', type: 'real', unit: 'ms', min: -1, max: 100 });
  });
});

describe('reviewParameters', () => {
  it('keeps good values, drops bad ones with why, and keeps extension parameters unchecked', () => {
    const r = reviewParameters(
      {
        max_connections: 'lots',
        work_mem: '8MB',
        hot_standby: true,
        max_wal_senders: 10,
        'pg_stat_statements.max': 'anything',
        max_conections: 100,
        block_size: 8192,
        wal_level: 'logical',
      },
      catalog15,
    );
    expect(r.params).toEqual({
      work_mem: '8MB',
      hot_standby: 'on',
      max_wal_senders: '10',
      'pg_stat_statements.max': 'anything',
      wal_level: 'logical',
    });
    expect(r.dropped.map(describeDropped)).toEqual([
      "max_connections: invalid value 'lots': expected an integer",
      "max_conections: PostgreSQL 15 has no such parameter (an extension's parameters have a dot in their name, e.g. pg_stat_statements.max)",
      'block_size: cannot be set: PostgreSQL fixes it when it is built or when the cluster is initialised',
    ]);
    expect(r.converted).toEqual([]);
  });

  it('matches names without regard to case, as PostgreSQL does', () => {
    expect(reviewParameters({ Work_Mem: '4MB', TimeZone: 'UTC' }, catalog15).dropped).toEqual([]);
  });

  it.each([
    [{ wal_keep_segments: 8 }, {}, { wal_keep_size: '128MB' }],
    [{ wal_keep_segments: '8' }, { walSegmentBytes: 64 * 1024 * 1024 }, { wal_keep_size: '512MB' }],
    [{ wal_keep_segments: 0 }, {}, { wal_keep_size: '0MB' }],
    [{ wal_keep_segments: 8, wal_keep_size: '1GB' }, {}, { wal_keep_size: '1GB' }],
    [{ wal_keep_segments: 'lots' }, {}, {}],
    [{ wal_keep_segments: -1 }, {}, {}],
  ])('converts wal_keep_segments %j (%j) as Patroni does: %j', (input, opts, want) => {
    expect(reviewParameters(input, catalog15, opts).params).toEqual(want);
  });

  it('says what it converted and why', () => {
    const r = reviewParameters({ wal_keep_segments: 8, wal_level: 'hot_standby' }, catalog15);
    expect(r.params).toEqual({ wal_keep_size: '128MB', wal_level: 'replica' });
    expect(r.converted.map(describeConverted)).toEqual([
      "wal_keep_segments = '8' → wal_keep_size = '128MB' (PostgreSQL 15 has wal_keep_size instead: 8 segments of 16 MB)",
      "wal_level = 'hot_standby' → wal_level = 'replica' (PostgreSQL 15 calls this level replica)",
    ]);
    const bad = reviewParameters({ wal_keep_segments: 'lots' }, catalog15);
    expect(bad.dropped.map(describeDropped)).toEqual([
      "wal_keep_segments: invalid value 'lots': expected an integer",
    ]);
  });

  it('keeps wal_keep_segments for a binary that still has it', () => {
    const old = buildCatalog(
      12,
      parseDescribeConfig('wal_keep_segments\tsighup\tg\tINTEGER\t0\t0\t2147483647\td\t'),
      {
        wal_keep_segments: { context: 'sighup', type: 'integer', min: 0, max: 2147483647 },
      },
    );
    expect(reviewParameters({ wal_keep_segments: 8 }, old)).toEqual({
      params: { wal_keep_segments: '8' },
      dropped: [],
      converted: [],
    });
  });
});

describe('parseRefusal', () => {
  const names = ['log_destination', 'TimeZone', 'max_connections', 'foo_bar'];
  it.each([
    [
      '2026-01-01 00:00:00.000 GMT [1] FATAL:  invalid value for parameter "log_destination": "foo"\n' +
        '2026-01-01 00:00:00.000 GMT [1] DETAIL:  Unrecognized key word: "foo".\n',
      'log_destination',
      'invalid value for parameter "log_destination": "foo"; Unrecognized key word: "foo".',
    ],
    [
      'FATAL:  invalid value for parameter "TimeZone": "Mars/Base"\n',
      'TimeZone',
      'invalid value for parameter "TimeZone": "Mars/Base"',
    ],
    [
      'LOG:  skipping missing configuration file\nFATAL:  262144 is outside the valid range for parameter "max_connections" (1 .. 262143)\n',
      'max_connections',
      '262144 is outside the valid range for parameter "max_connections" (1 .. 262143)',
    ],
    [
      'FATAL:  unrecognized configuration parameter "foo_bar"\n',
      'foo_bar',
      'unrecognized configuration parameter "foo_bar"',
    ],
  ])('%#: names %s', (stderr, name, message) => {
    expect(parseRefusal(stderr, names)).toEqual({ name, message });
  });

  it('is null when the failure is about none of the parameters', () => {
    expect(parseRefusal('postgres: could not find the database system\n', names)).toBeNull();
    expect(parseRefusal('FATAL:  invalid value for parameter "work_mem": "x"\n', names)).toBeNull();
  });
});

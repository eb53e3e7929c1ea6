import { describe, expect, it } from 'vitest';
import type { PostgresqlConfig } from '../config/types.js';
import {
  conninfo,
  isManagedConf,
  isValidParamName,
  optionNames,
  paramValue,
  PGHA_CONF_HEADER,
  pgpassField,
  quoteConfValue,
  quoteConninfoValue,
  renderPgpass,
  renderPostgresqlConf,
  serverParameters,
  toolOptions,
} from './conf.js';
import { parseControlData } from './postgres.js';

const cfg = (over: Partial<PostgresqlConfig> = {}): PostgresqlConfig => ({
  listen: { hosts: ['0.0.0.0'], port: 5432 },
  connect_address: '10.0.0.1:5432',
  data_dir: '/var/lib/postgresql/15/main',
  bin_dir: '/usr/lib/postgresql/15/bin',
  config_dir: '/var/lib/postgresql/15/main',
  pgpass: '/tmp/pgpass0',
  authentication: {
    superuser: { username: 'postgres', password: 's' },
    replication: { username: 'repl', password: 'r' },
  },
  parameters: {},
  callbacks: {},
  create_replica_methods: ['basebackup'],
  basebackup: [],
  use_unix_socket: false,
  remove_data_directory_on_rewind_failure: false,
  remove_data_directory_on_diverged_timelines: false,
  os_user: 'postgres',
  ...over,
});

describe('quoting', () => {
  it('quotes postgresql.conf values', () => {
    expect(quoteConfValue('on')).toBe("'on'");
    expect(quoteConfValue("it's")).toBe("'it''s'");
    expect(quoteConfValue('a\\b')).toBe("'a\\\\b'");
    expect(quoteConfValue('two\nlines')).toBe("'two lines'");
    expect(paramValue(true)).toBe('on');
    expect(paramValue(false)).toBe('off');
    expect(paramValue(10)).toBe('10');
  });

  it('quotes conninfo values', () => {
    expect(quoteConninfoValue("a b'c\\")).toBe("'a b\\'c\\\\'");
    expect(conninfo({ host: 'h', port: 5432, passfile: undefined, user: 'u x' })).toBe(
      "host='h' port='5432' user='u x'",
    );
  });

  it('escapes pgpass fields and skips users without a password', () => {
    expect(pgpassField('a:b\\c')).toBe('a\\:b\\\\c');
    expect(
      renderPgpass([
        { username: 'repl', password: 'p:w' },
        { username: 'su' },
        { username: 'repl', password: 'again' },
        { username: 'admin', password: 'x' },
      ]),
    ).toBe('*:*:*:repl:p\\:w\n*:*:*:admin:x\n');
    expect(renderPgpass([{ username: 'su' }])).toBe('');
  });

  it('validates parameter names', () => {
    expect(isValidParamName('shared_buffers')).toBe(true);
    expect(isValidParamName('pg_stat_statements.max')).toBe(true);
    expect(isValidParamName('x = 1\nfoo')).toBe(false);
    expect(isValidParamName('')).toBe(false);
  });
});

describe('toolOptions (Patroni option lists)', () => {
  it('maps flags and key/values', () => {
    const argv = toolOptions(
      'initdb',
      ['data-checksums', { encoding: 'UTF8' }, { locale: 'en_US.UTF-8' }, { E: 'UTF8' }],
      new Set(),
    );
    expect(argv).toEqual(['--data-checksums', '--encoding=UTF8', '--locale=en_US.UTF-8', '-E', 'UTF8']);
    expect([...optionNames(argv)]).toEqual(['data-checksums', 'encoding', 'locale', 'E']);
  });

  it('refuses options pgha sets and malformed names', () => {
    expect(() => toolOptions('initdb', [{ pgdata: '/x' }], new Set(['pgdata']))).toThrow(/not allowed/);
    expect(() => toolOptions('initdb', ['--pgdata=/x'], new Set(['pgdata=/x', 'pgdata']))).toThrow();
    expect(() => toolOptions('initdb', ['a b'], new Set())).toThrow(/not a valid option/);
  });
});

describe('serverParameters', () => {
  it('writes Patroni defaults, listen settings and lets parameters override defaults', () => {
    const { params, ignored } = serverParameters({
      cfg: cfg(),
      name: 'n1',
      clusterName: 'main',
      role: {
        role: 'primary',
        parameters: {
          max_connections: 200,
          wal_log_hints: false,
          port: 1,
          primary_conninfo: 'x',
          'bad name': 1,
        },
      },
      include: 'postgresql.base.conf',
      hbaFile: '/etc/pg/pg_hba.conf',
      identFile: null,
      passfile: '/tmp/pgpass0',
    });
    expect(params.get('listen_addresses')).toBe('0.0.0.0');
    expect(params.get('port')).toBe('5432');
    expect(params.get('max_connections')).toBe('200');
    expect(params.get('wal_log_hints')).toBe('off');
    expect(params.get('wal_level')).toBe('replica');
    expect(params.get('cluster_name')).toBe('main');
    expect(params.get('hba_file')).toBe('/etc/pg/pg_hba.conf');
    expect(params.has('ident_file')).toBe(false);
    expect(params.has('data_directory')).toBe(false);
    expect(params.has('primary_conninfo')).toBe(false);
    expect(ignored.sort()).toEqual(['bad name', 'port', 'primary_conninfo']);
  });

  it('keeps a cluster_name the user set, and names the data dir in a split layout', () => {
    const { params } = serverParameters({
      cfg: cfg({ config_dir: '/etc/postgresql/15/main' }),
      name: 'n1',
      clusterName: 'main',
      role: { role: 'primary', parameters: { cluster_name: '15/main' } },
      include: null,
      hbaFile: null,
      identFile: null,
      passfile: null,
    });
    expect(params.get('cluster_name')).toBe('15/main');
    expect(params.get('data_directory')).toBe('/var/lib/postgresql/15/main');
  });

  it('sets recovery settings for a replica', () => {
    const { params } = serverParameters({
      cfg: cfg(),
      name: 'n2',
      clusterName: 'main',
      role: {
        role: 'replica',
        upstream: { host: '10.0.0.1', port: 5433, member: 'n1' },
        slotName: 'n2',
        parameters: {},
      },
      include: null,
      hbaFile: null,
      identFile: null,
      passfile: '/tmp/pgpass0',
    });
    expect(params.get('primary_conninfo')).toBe(
      "host='10.0.0.1' port='5433' user='repl' passfile='/tmp/pgpass0' dbname='postgres' application_name='n2' sslmode='prefer' gssencmode='prefer' channel_binding='prefer'",
    );
    expect(params.get('primary_slot_name')).toBe('n2');
    expect(params.get('recovery_target_timeline')).toBe('latest');
  });

  it('a replica without upstream has no primary_conninfo', () => {
    const { params } = serverParameters({
      cfg: cfg(),
      name: 'n2',
      clusterName: 'main',
      role: { role: 'replica', upstream: null, slotName: 'n2', parameters: {} },
      include: null,
      hbaFile: null,
      identFile: null,
      passfile: null,
    });
    expect(params.has('primary_conninfo')).toBe(false);
    expect(params.has('primary_slot_name')).toBe(false);
  });
});

describe('postgresql.conf text', () => {
  it('renders a header, the include and quoted parameters', () => {
    const text = renderPostgresqlConf(new Map([['primary_conninfo', "host='h'"]]), 'postgresql.base.conf');
    expect(text.startsWith(PGHA_CONF_HEADER)).toBe(true);
    expect(text).toContain("include 'postgresql.base.conf'\n");
    expect(text).toContain("primary_conninfo = 'host=''h'''\n");
    expect(isManagedConf(text)).toBe(true);
  });

  it('recognises files written by Patroni but not by initdb', () => {
    expect(
      isManagedConf('# Do not edit this file manually!\n# It will be overwritten by Patroni!\ninclude x'),
    ).toBe(true);
    expect(isManagedConf('# -----------------------------\n# PostgreSQL configuration file\n')).toBe(false);
  });
});

describe('parseControlData', () => {
  const sample = `pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7311392839243423465
Database cluster state:               shut down in recovery
pg_control last modified:             Tue 24 Nov 2026 05:30:00 AM UTC
Latest checkpoint location:           0/3000060
Latest checkpoint's REDO location:    0/3000028
Latest checkpoint's TimeLineID:       2
Minimum recovery ending location:     0/4000000
wal_log_hints setting:                on
Data page checksum version:           1
`;
  it('reads the fields the agent uses', () => {
    const cd = parseControlData(sample);
    expect(cd).toMatchObject({
      systemIdentifier: '7311392839243423465',
      clusterState: 'shut down in recovery',
      timeline: 2,
      checkpointLsn: 0x3000060,
      minRecoveryLsn: 0x4000000,
      dataChecksums: true,
      walLogHints: true,
    });
    expect(cd.raw["Latest checkpoint's REDO location"]).toBe('0/3000028');
  });

  it('fails clearly on truncated output', () => {
    expect(() => parseControlData('Database cluster state: in production\n')).toThrow(
      /Database system identifier/,
    );
  });
});

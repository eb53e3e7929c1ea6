import { describe, expect, it } from 'vitest';
import { validationFindings, type HostFacts } from './validate.js';
import type { PghaConfig } from './types.js';

const config = {
  restapi: { listen: { hosts: ['0.0.0.0'], port: 8008 }, connect_address: '10.0.0.1:8008' },
  postgresql: {
    listen: { hosts: ['0.0.0.0'], port: 5432 },
    connect_address: '10.0.0.1:5432',
    bin_dir: '/usr/lib/postgresql/15/bin',
    data_dir: '/var/lib/postgresql/15/main',
  },
} as unknown as PghaConfig;

const healthy: HostFacts = {
  binDirExists: true,
  missingPrograms: [],
  dataDir: { kind: 'cluster', version: '15', walDir: true },
  binaryVersion: '15',
  portsInUse: [],
  etcdUnreachable: [],
};

describe('validationFindings', () => {
  const rows: Array<[string, Partial<HostFacts>, RegExp[]]> = [
    ['a node ready to start', {}, []],
    ['a new node: no data directory yet', { dataDir: { kind: 'missing' } }, []],
    ['an empty data directory', { dataDir: { kind: 'empty' } }, []],
    ['no bin_dir', { binDirExists: false }, [/bin_dir: \S+ is not a directory/]],
    [
      'programs missing, named in one line',
      { missingPrograms: ['pg_ctl', 'pg_isready'] },
      [/bin_dir: \S+ has no executable pg_ctl, pg_isready/],
    ],
    [
      'a file where the data directory should be',
      { dataDir: { kind: 'not-a-directory' } },
      [/is not a directory/],
    ],
    ['files but no cluster', { dataDir: { kind: 'no-cluster' } }, [/holds no PostgreSQL cluster/]],
    [
      'a data directory this user cannot read',
      { dataDir: { kind: 'unreadable', why: 'EACCES: permission denied' } },
      [/data_dir: cannot read \S+: EACCES/],
    ],
    [
      'data of another version',
      { dataDir: { kind: 'cluster', version: '13', walDir: true } },
      [/holds PostgreSQL 13 data, but \S+ is PostgreSQL 15/],
    ],
    [
      'a cluster without pg_wal',
      { dataDir: { kind: 'cluster', version: '15', walDir: false } },
      [/without its pg_wal/],
    ],
    [
      'a 9.6 cluster without pg_xlog, next to 9.6 programs',
      { dataDir: { kind: 'cluster', version: '9.6', walDir: false }, binaryVersion: '9.6' },
      [/without its pg_xlog/],
    ],
    [
      'the version of postgres cannot be read',
      { binaryVersion: new Error('cannot read the version of /x/postgres') },
      [/bin_dir: cannot read the version/],
    ],
    [
      'a listen port taken',
      { portsInUse: [{ key: 'postgresql.listen', address: '127.0.0.1:5432' }] },
      [/postgresql\.listen: 127\.0\.0\.1:5432 is already in use/],
    ],
    [
      'an etcd member that does not answer',
      { etcdUnreachable: ['10.0.0.9:2379'] },
      [/etcd3\.hosts: 10\.0\.0\.9:2379 is not reachable/],
    ],
  ];
  it.each(rows)('%s', (_name, facts, want) => {
    const { errors, warnings } = validationFindings(config, { ...healthy, ...facts });
    expect(errors).toHaveLength(want.length);
    want.forEach((re, i) => expect(errors[i]).toMatch(re));
    expect(warnings).toEqual([]);
  });

  it('--ignore-listen-port: ports in use are not problems', () => {
    const facts = { ...healthy, portsInUse: [{ key: 'restapi.listen', address: '127.0.0.1:8008' }] };
    expect(validationFindings(config, facts, { ignoreListenPort: true }).errors).toEqual([]);
  });

  it('connect addresses other hosts cannot reach are warned about', () => {
    const local = {
      ...config,
      restapi: { ...config.restapi, connect_address: '127.0.0.1:8008' },
      postgresql: { ...config.postgresql, connect_address: 'localhost:5432' },
    };
    const { errors, warnings } = validationFindings(local, healthy);
    expect(errors).toEqual([]);
    expect(warnings).toEqual([
      'restapi.connect_address: 127.0.0.1:8008 cannot be reached from other hosts; use this host\u2019s own address there'.replace(
        '\u2019',
        "'",
      ),
      "postgresql.connect_address: localhost:5432 cannot be reached from other hosts; use this host's own address there",
    ]);
  });
});

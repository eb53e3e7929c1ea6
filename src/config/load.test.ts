import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../util/errors.js';
import { peerTls } from '../util/http.js';
import { detectBinDir, loadConfig, loadConfigOrThrow, loadCtlConfig } from './load.js';

const SEED = resolve(import.meta.dirname, '../../test/fixtures/config/seed-catalog01.yml');
const dir = mkdtempSync(join(tmpdir(), 'pgha-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(yaml: string): string {
  const p = join(dir, `c${n++}.yml`);
  writeFileSync(p, yaml);
  return p;
}

/** A minimal valid file; bin_dir is given so the result does not depend on this machine. */
const MINIMAL = `
scope: demo
name: n1
restapi:
  listen: 0.0.0.0:8008
etcd3:
  hosts: 127.0.0.1:2379
postgresql:
  listen: 0.0.0.0:5432
  data_dir: /data/n1
  bin_dir: /opt/pg/bin
  authentication:
    superuser: {username: postgres, password: secret}
    replication: {username: replicator}
`;

describe('loadConfig: the seed catalog01 patroni.yml', () => {
  const result = loadConfig(SEED, {});

  it('loads with no errors and no warnings', () => {
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([]);
  });

  it('keeps every value from the file', () => {
    const c = result.config!;
    expect(c.source).toBe(SEED);
    expect(c.scope).toBe('bacula_cluster');
    expect(c.namespace).toBe('/db/');
    expect(c.name).toBe('catalog01');
    expect(c.restapi).toEqual({
      listen: { hosts: ['0.0.0.0'], port: 8008 },
      connect_address: '192.168.1.151:8008',
    });
    expect(c.etcd).toEqual({ hosts: ['192.168.1.151:2379', '192.168.1.152:2379'], protocol: 'http' });
    // A given bin_dir is kept even though it does not exist here: the agent checks it at start.
    expect(c.postgresql.bin_dir).toBe('/usr/lib/postgresql/16/bin/');
    expect(c.postgresql.config_dir).toBe('/etc/postgresql/16/main/');
    expect(c.postgresql.data_dir).toBe('/var/lib/postgresql/16/main');
    expect(c.postgresql.listen).toEqual({ hosts: ['0.0.0.0'], port: 5432 });
    expect(c.postgresql.connect_address).toBe('192.168.1.151:5432');
    expect(c.postgresql.authentication).toEqual({
      superuser: { username: 'pat_admin', password: 'Admin@Bacula25' },
      replication: { username: 'pat_replica', password: 'Admin@Bacula25' },
    });
    expect(c.postgresql.create_replica_methods).toEqual(['basebackup']);
    expect(c.postgresql.pgpass).toBe('/tmp/pgpass-catalog01');
    expect(c.postgresql.os_user).toBe('postgres');
    expect(c.tags).toEqual({ nofailover: false, noloadbalance: false, clonefrom: false, nosync: false });
    expect(c.log).toEqual({ type: 'plain', level: 'DEBUG', dir: '/var/log/patroni' });
    expect(c.watchdog).toEqual({
      mode: 'automatic',
      device: '/dev/watchdog',
      driver: 'default',
      safety_margin: 5,
    });
  });

  it('keeps bootstrap.dcs as written', () => {
    const dcs = result.config!.bootstrap.dcs;
    expect(dcs).toMatchObject({
      ttl: 30,
      loop_wait: 10,
      retry_timeout: 10,
      maximum_lag_on_failover: 1048576,
    });
    expect(dcs.postgresql).toEqual({
      use_pg_rewind: true,
      parameters: {
        wal_level: 'replica',
        hot_standby: 'on',
        max_wal_senders: 10,
        max_replication_slots: 10,
        wal_keep_size: '256MB',
      },
    });
  });
});

describe('loadConfig: defaults', () => {
  it('derives connect addresses, config_dir and pgpass', () => {
    const c = loadConfig(file(MINIMAL), {}).config!;
    expect(c.namespace).toBe('/service/');
    expect(c.restapi.connect_address).toBe('127.0.0.1:8008');
    expect(c.postgresql.connect_address).toBe('127.0.0.1:5432');
    expect(c.postgresql.config_dir).toBe('/data/n1');
    expect(c.postgresql.callbacks).toEqual({});
    expect(c.bootstrap).toEqual({ dcs: {}, initdb: [] });
  });

  it('reads YAML 1.1 as PyYAML does: unquoted on is a boolean', () => {
    const c = loadConfig(
      file(MINIMAL + '  parameters:\n    hot_standby: on\n    port: "5432"\n'),
      {},
    ).config!;
    expect(c.postgresql.parameters).toEqual({ hot_standby: true, port: '5432' });
  });

  it('normalises initdb/basebackup mappings and etcd urls', () => {
    const yaml = MINIMAL.replace('  hosts: 127.0.0.1:2379', '  urls: https://u:p@e1:2380,https://e2')
      .concat('  basebackup: {max-rate: 100M, checkpoint: fast}\n')
      .concat('bootstrap:\n  initdb: [data-checksums, {encoding: UTF8}]\n');
    const { config, errors } = loadConfig(file(yaml), {});
    expect(errors).toEqual([]);
    expect(config!.etcd).toEqual({
      hosts: ['e1:2380', 'e2:2379'],
      protocol: 'https',
      username: 'u',
      password: 'p',
    });
    expect(config!.postgresql.basebackup).toEqual([{ 'max-rate': '100M' }, { checkpoint: 'fast' }]);
    expect(config!.bootstrap.initdb).toEqual(['data-checksums', { encoding: 'UTF8' }]);
  });

  it('accepts watchdog modes as Patroni spells them', () => {
    const c = loadConfig(file(MINIMAL + 'watchdog:\n  mode: false\n  safety_margin: "-1"\n'), {}).config!;
    expect(c.watchdog).toEqual({
      mode: 'off',
      device: '/dev/watchdog',
      driver: 'default',
      safety_margin: -1,
    });
    expect(loadConfig(file(MINIMAL + 'watchdog: {mode: require}\n'), {}).config!.watchdog.mode).toBe(
      'required',
    );
  });
});

describe('loadConfig: environment overrides', () => {
  it('takes PATRONI_* over the file', () => {
    const env = {
      PATRONI_NAME: 'catalog09',
      PATRONI_SCOPE: 'other',
      PATRONI_NAMESPACE: 'ns',
      PATRONI_ETCD3_HOSTS: "'10.0.0.1:2379','10.0.0.2:2379'",
      PATRONI_ETCD3_PROTOCOL: 'https',
      PATRONI_RESTAPI_LISTEN: '127.0.0.1:9008',
      PATRONI_RESTAPI_USERNAME: 'admin',
      PATRONI_RESTAPI_PASSWORD: 'pw',
      PATRONI_POSTGRESQL_DATA_DIR: '/data/x',
      PATRONI_POSTGRESQL_BIN_DIR: '/opt/pg16/bin',
      PATRONI_SUPERUSER_PASSWORD: 'from-env',
      PATRONI_REWIND_USERNAME: 'rewinder',
      PATRONI_LOG_LEVEL: 'warning',
      PATRONI_LOG_TYPE: 'json',
    };
    const { config, errors } = loadConfig(SEED, env);
    expect(errors).toEqual([]);
    const c = config!;
    expect([c.name, c.scope, c.namespace]).toEqual(['catalog09', 'other', '/ns/']);
    expect(c.etcd).toEqual({ hosts: ['10.0.0.1:2379', '10.0.0.2:2379'], protocol: 'https' });
    expect(c.restapi.listen).toEqual({ hosts: ['127.0.0.1'], port: 9008 });
    expect(c.restapi.connect_address).toBe('192.168.1.151:8008');
    expect(c.restapi.authentication).toEqual({ username: 'admin', password: 'pw' });
    expect(c.postgresql.data_dir).toBe('/data/x');
    expect(c.postgresql.bin_dir).toBe('/opt/pg16/bin');
    expect(c.postgresql.authentication.superuser).toEqual({ username: 'pat_admin', password: 'from-env' });
    expect(c.postgresql.authentication.rewind).toEqual({ username: 'rewinder' });
    expect(c.log).toMatchObject({ level: 'WARNING', type: 'json' });
  });

  it("reads PATRONI_CTL_* and hands the agent Patroni's TLS settings for requests to other members", () => {
    const env = {
      PATRONI_RESTAPI_CERTFILE: '/tls/rest.crt',
      PATRONI_RESTAPI_KEYFILE: '/tls/rest.key',
      PATRONI_RESTAPI_CAFILE: '/tls/ca.crt',
      PATRONI_CTL_INSECURE: 'on',
    };
    const c = loadConfig(file(MINIMAL), env).config!;
    expect(c.ctl).toEqual({ insecure: true });
    expect(peerTls(c)).toEqual({
      cafile: '/tls/ca.crt',
      certfile: '/tls/rest.crt',
      keyfile: '/tls/rest.key',
      insecure: true,
    });
    const ctl = loadConfig(file(MINIMAL), {
      ...env,
      PATRONI_CTL_CACERT: '/tls/ctl-ca.crt',
      PATRONI_CTL_CERTFILE: '/tls/ctl.crt',
      PATRONI_CTL_KEYFILE: '/tls/ctl.key',
      PATRONI_CTL_KEYFILE_PASSWORD: 'secret',
      PATRONI_CTL_INSECURE: 'off',
    }).config!;
    expect(peerTls(ctl)).toEqual({
      cafile: '/tls/ctl-ca.crt',
      certfile: '/tls/ctl.crt',
      keyfile: '/tls/ctl.key',
      keyfile_password: 'secret',
    });
    expect(peerTls(loadConfig(file(MINIMAL), {}).config!)).toEqual({});
  });

  it('lets an etcd endpoint variable replace every endpoint key of the file', () => {
    const c = loadConfig(SEED, { PATRONI_ETCD3_URL: 'http://etcd.local:2379' }).config!;
    expect(c.etcd.hosts).toEqual(['etcd.local:2379']);
  });

  it('builds a whole config from the environment alone', () => {
    const env = {
      PATRONI_NAME: 'e1',
      PATRONI_SCOPE: 'envonly',
      PATRONI_ETCD3_HOST: '127.0.0.1:2379',
      PATRONI_RESTAPI_LISTEN: '127.0.0.1:8008',
      PATRONI_POSTGRESQL_LISTEN: '127.0.0.1:5432',
      PATRONI_POSTGRESQL_DATA_DIR: '/d',
      PATRONI_POSTGRESQL_BIN_DIR: '/b',
      PATRONI_SUPERUSER_USERNAME: 'postgres',
      PATRONI_REPLICATION_USERNAME: 'repl',
    };
    const { config, errors } = loadConfig(undefined, env);
    expect(errors).toEqual([]);
    expect(config!.etcd.hosts).toEqual(['127.0.0.1:2379']);
    expect(config!.source).toBeUndefined();
  });

  it('reads PATRONI_CONFIGURATION instead of other variables when no file is given or the file does not exist', () => {
    for (const path of [undefined, join(dir, 'absent.yml')]) {
      const { config } = loadConfig(path, { PATRONI_CONFIGURATION: MINIMAL, PATRONI_NAME: 'ignored' });
      expect(config!.name).toBe('n1');
      expect(config!.source).toBe('PATRONI_CONFIGURATION');
    }
  });

  it('reads a file that exists before PATRONI_CONFIGURATION, as Patroni does', () => {
    const { config } = loadConfig(SEED, { PATRONI_CONFIGURATION: MINIMAL });
    expect(config!.name).toBe('catalog01');
    expect(config!.source).toBe(SEED);
  });
});

describe('loadConfig: a directory of YAML files, as Patroni reads one', () => {
  it('merges its *.yml and *.yaml files in name order; a later file patches, null removes a key', () => {
    const conf = join(dir, 'conf.d');
    mkdirSync(join(conf, 'sub.yml'), { recursive: true }); // a directory named like a file: skipped
    writeFileSync(join(conf, '10-base.yml'), MINIMAL + 'tags: {nofailover: true, clonefrom: true}\n');
    writeFileSync(
      join(conf, '20-node.yaml'),
      'name: n2\npostgresql: {data_dir: /data/n2}\ntags: {nofailover: null}\n',
    );
    writeFileSync(join(conf, '30-empty.yml'), '');
    writeFileSync(join(conf, 'README'), 'not: [yaml');
    const r = loadConfig(conf, {});
    expect(r.errors).toEqual([]);
    expect(r.config?.name).toBe('n2');
    expect(r.config?.postgresql.data_dir).toBe('/data/n2');
    expect(r.config?.postgresql.bin_dir).toBe('/opt/pg/bin');
    expect(r.config?.tags.clonefrom).toBe(true);
    expect(r.config?.tags.nofailover).toBeUndefined();
  });

  it('skips a dangling link, and says so when nothing is left to read', () => {
    const conf = join(dir, 'conf-empty.d');
    mkdirSync(conf, { recursive: true });
    symlinkSync(join(dir, 'nowhere.yml'), join(conf, '10-gone.yml'));
    writeFileSync(join(conf, 'notes.txt'), 'x');
    expect(loadConfig(conf, {}).errors).toEqual([
      `${conf}: a configuration directory, but it holds no *.yml or *.yaml file`,
    ]);
    writeFileSync(join(conf, '20-base.yml'), MINIMAL);
    expect(loadConfig(conf, {}).errors).toEqual([]);
  });

  it('names the file that does not parse', () => {
    const conf = join(dir, 'conf-bad.d');
    mkdirSync(conf, { recursive: true });
    writeFileSync(join(conf, '10-base.yml'), MINIMAL);
    writeFileSync(join(conf, '20-list.yml'), '- a\n- b\n');
    const r = loadConfig(conf, {});
    expect(r.errors).toEqual([`${join(conf, '20-list.yml')}: expected a YAML mapping at the top level`]);
  });
});

describe('loadConfig: problems', () => {
  it('reports every problem at once, in the user’s terms', () => {
    const yaml = `
name: n1
restapi:
  listen: abc
bootstrap:
  dcs: {ttl: 20, loop_wait: 10, retry_timeout: 10}
postgresql:
  listen: 0.0.0.0:5432
  bin_dir: /opt/pg/bin
  use_unix_socket: sometimes
  authentication:
    superuser: {username: postgres}
    replication: {}
`;
    const { config, errors } = loadConfig(file(yaml), {});
    expect(config).toBeUndefined();
    expect(errors).toEqual(
      expect.arrayContaining([
        'scope: required (the cluster name; or set PATRONI_SCOPE)',
        'restapi.listen: expected host:port, got "abc"',
        'postgresql.data_dir: required (or set PATRONI_POSTGRESQL_DATA_DIR)',
        'postgresql.use_unix_socket: expected a boolean, got "sometimes"',
        'postgresql.authentication.replication.username: required (or set PATRONI_REPLICATION_USERNAME)',
        expect.stringMatching(/^etcd3: required: add an etcd3 section/),
      ]),
    );
    expect(errors).toHaveLength(6);
  });

  it('names a bad etcd host and a bad port', () => {
    const yaml = MINIMAL.replace('hosts: 127.0.0.1:2379', 'hosts: [good:2379, "bad host:1"]').replace(
      'listen: 0.0.0.0:5432',
      'listen: 0.0.0.0:5432\n  connect_address: db:70000',
    );
    expect(loadConfig(file(yaml), {}).errors).toEqual([
      'postgresql.connect_address: expected host:port, got "db:70000"',
      'etcd3.hosts[1]: expected host:port, got "bad host:1"',
    ]);
    const onlyEtcd = MINIMAL.replace('hosts: 127.0.0.1:2379', 'hosts: [good:2379, "bad host:1"]');
    expect(loadConfig(file(onlyEtcd), {}).errors).toEqual([
      'etcd3.hosts[1]: expected host:port, got "bad host:1"',
    ]);
    expect(loadConfig(file(MINIMAL.replace('hosts: 127.0.0.1:2379', 'protocol: http')), {}).errors).toEqual([
      'etcd3.hosts: required (a list of host:port, or host, url)',
    ]);
  });

  it('warns about unknown keys and keys pgha does not act on, without failing', () => {
    const yaml =
      MINIMAL +
      '  foo: 1\n  pgbackrest: {command: restore}\n  create_replica_methods: [pgbackrest, basebackup]\nctl: {insecure: true}\nlog: {format: "%(message)s", colour: true}\n';
    const { config, errors, warnings, refusals } = loadConfig(file(yaml), {});
    expect(errors).toEqual([]);
    expect(refusals).toEqual([]);
    expect(config).toBeDefined();
    // ctl is read by pgha ctl: no warning.
    expect(warnings).toEqual([
      'postgresql.foo: unknown key, ignored',
      'log.colour: unknown key, ignored',
      expect.stringMatching(/^log\.format: not acted on by pgha; /),
    ]);
    // A custom replica method's section is kept for the agent.
    expect(config?.postgresql.replica_methods?.pgbackrest?.command).toBe('restore');
  });

  it('keeps the custom bootstrap method, and says what is missing from one', () => {
    const ok = loadConfig(
      file(
        MINIMAL +
          'bootstrap:\n  method: restore\n  restore: {command: "r.sh --x", recovery_conf: {restore_command: "cp %f %p"}}\n',
      ),
      {},
    );
    expect(ok.errors).toEqual([]);
    expect(ok.config?.bootstrap.methods?.restore).toEqual({
      command: 'r.sh --x',
      no_params: false,
      keep_existing_recovery_conf: false,
      recovery_conf: { restore_command: 'cp %f %p' },
    });
    const bad = loadConfig(file(MINIMAL + 'bootstrap:\n  method: restore\n'), {});
    expect(bad.errors).toEqual([
      expect.stringMatching(/^bootstrap\.restore: bootstrap\.method is "restore" but/),
    ]);
  });

  it('names the keys pgha cannot safely ignore as refusals, not errors', () => {
    const yaml =
      MINIMAL.replace('postgresql:', 'postgresql:\n  pre_promote: /usr/local/bin/fence') +
      'bootstrap:\n  dcs:\n    standby_cluster: {host: 10.0.0.1, port: 5432}\n    max_timelines_history: 5\n';
    const { config, errors, warnings, refusals } = loadConfig(file(yaml), {});
    expect(errors).toEqual([]);
    expect(config).toBeDefined();
    expect(refusals).toEqual([
      expect.stringMatching(
        /^postgresql\.pre_promote is set: pgha does not run the pre_promote fencing script/,
      ),
    ]);
    expect(warnings).toEqual([
      expect.stringMatching(/^bootstrap\.dcs\.max_timelines_history: not acted on by pgha; /),
    ]);
    const seen: string[] = [];
    loadConfigOrThrow(file(yaml), {}, undefined, (r) => seen.push(r));
    expect(seen).toEqual(refusals);
  });

  it('lists unknown keys with the errors, as a misspelt key is often what is missing', () => {
    // `ip` for `address` (vip-manager's name): the required key is missing because of the typo.
    const { config, errors, warnings } = loadConfig(
      file(MINIMAL + 'vip: {ip: 10.0.0.9, interface: eth0}\nlog: {colour: true}\n'),
      {},
    );
    expect(config).toBeUndefined();
    expect(errors).toEqual([
      expect.stringMatching(/^vip\.address: required/),
      'log.colour: unknown key (misspelt?)',
      'vip.ip: unknown key (misspelt?)',
    ]);
    expect(warnings).toEqual([]);
  });

  it('reports an unknown key of bootstrap.dcs', () => {
    const { warnings } = loadConfig(file(MINIMAL + 'bootstrap:\n  dcs: {ttl: 30, colour: red}\n'), {});
    expect(warnings).toEqual(['bootstrap.dcs.colour: unknown key, ignored']);
  });

  it('reads a legacy etcd section with a warning', () => {
    const { config, warnings } = loadConfig(file(MINIMAL.replace('etcd3:', 'etcd:')), {});
    expect(config!.etcd.hosts).toEqual(['127.0.0.1:2379']);
    expect(warnings).toEqual([expect.stringMatching(/^etcd: read as etcd3/)]);
  });

  it('explains a missing file and a YAML syntax error with its line', () => {
    expect(loadConfig(join(dir, 'nope.yml'), {}).errors).toEqual([
      `${join(dir, 'nope.yml')}: cannot read configuration: file not found`,
    ]);
    const bad = file('scope: x\nrestapi:\n  listen: [1\n name: y\n');
    const errors = loadConfig(bad, {}).errors;
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toMatch(/invalid YAML: .* at line 4, column \d+/);
    expect(loadConfig(file('- a\n- b\n'), {}).errors).toEqual([
      expect.stringMatching(/expected a YAML mapping/),
    ]);
  });

  it('loadConfigOrThrow throws a ConfigError listing every problem', () => {
    let caught: unknown;
    try {
      loadConfigOrThrow(file('scope: x\n'), {});
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const e = caught as ConfigError;
    expect(e.code).toBe('PGHA_CONFIG_INVALID');
    expect(e.problems).toContain("name: required (this node's unique name; or set PATRONI_NAME)");
    expect(e.problems.length).toBeGreaterThan(3);
    expect(loadConfigOrThrow(file(MINIMAL), {}).name).toBe('n1');
  });
});

describe('detectBinDir', () => {
  const root = join(dir, 'pg');
  for (const v of ['13', '15', '16']) {
    mkdirSync(join(root, v, 'bin'), { recursive: true });
    if (v !== '16') {
      writeFileSync(join(root, v, 'bin', 'pg_ctl'), '#!/bin/sh\n');
      chmodSync(join(root, v, 'bin', 'pg_ctl'), 0o755);
    }
  }

  it('picks the newest version that has pg_ctl, then PATH', () => {
    expect(detectBinDir(root, '')).toBe(join(root, '15', 'bin'));
    expect(detectBinDir(join(dir, 'none'), `/nonexistent:${join(root, '13', 'bin')}`)).toBe(
      join(root, '13', 'bin'),
    );
    expect(detectBinDir(join(dir, 'none'), '')).toBeUndefined();
  });

  it('is used when bin_dir is absent', () => {
    const { config } = loadConfig(file(MINIMAL.replace('  bin_dir: /opt/pg/bin\n', '')), {
      PATH: join(root, '13', 'bin'),
    });
    expect(config?.postgresql.bin_dir).toBe(detectBinDir(undefined, join(root, '13', 'bin')));
  });
});

describe('loadCtlConfig', () => {
  it('needs only the etcd endpoints, from --dcs-url', () => {
    const c = loadCtlConfig(undefined, 'etcd3://127.0.0.1:2379,127.0.0.2:2379', {});
    expect(c.etcd.hosts).toEqual(['127.0.0.1:2379', '127.0.0.2:2379']);
    expect(c.scope).toBe('');
    expect(c.postgresql.data_dir).toBe('');
  });

  it('reads the file and lets --dcs-url replace its endpoints', () => {
    const c = loadCtlConfig(SEED, 'http://10.1.1.1:2379', {});
    expect(c.scope).toBe('bacula_cluster');
    expect(c.etcd.hosts).toEqual(['10.1.1.1:2379']);
    expect(() => loadCtlConfig(undefined, undefined, {})).toThrow(ConfigError);
  });
});

describe('loadConfig: TLS settings of the PostgreSQL roles', () => {
  it('reads sslmode, certificates and keys per role, from the file and from PATRONI_<ROLE>_<KEY>', () => {
    const yaml = MINIMAL.replace(
      'replicator}',
      'replicator, sslmode: verify-ca, sslrootcert: /tls/ca.crt, sslcert: /tls/r.crt, sslkey: /tls/r.key}',
    );
    const { config, errors } = loadConfig(file(yaml), {
      PATRONI_SUPERUSER_SSLMODE: 'require',
      PATRONI_SUPERUSER_SSLCERT: '/tls/su.crt',
      PATRONI_REWIND_USERNAME: 'rewinder',
      PATRONI_REWIND_CHANNEL_BINDING: 'require',
    });
    expect(errors).toEqual([]);
    const a = config!.postgresql.authentication;
    expect(a.replication).toEqual({
      username: 'replicator',
      sslmode: 'verify-ca',
      sslrootcert: '/tls/ca.crt',
      sslcert: '/tls/r.crt',
      sslkey: '/tls/r.key',
    });
    expect(a.superuser).toMatchObject({ sslmode: 'require', sslcert: '/tls/su.crt' });
    expect(a.rewind).toMatchObject({ channel_binding: 'require' });
  });

  it('names an sslmode libpq does not know', () => {
    const yaml = MINIMAL.replace('replicator}', 'replicator, sslmode: verify}');
    expect(loadConfig(file(yaml), {}).errors).toEqual([
      expect.stringMatching(/^postgresql\.authentication\.replication\.sslmode: .*verify-ca/),
    ]);
  });
});

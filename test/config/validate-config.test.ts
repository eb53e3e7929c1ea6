/**
 * `pgha agent --validate-config`, as `patroni --validate-config`: status 0 and nothing printed for a
 * configuration the agent could start with; one line per problem and status 1 otherwise. Real etcd,
 * Debian's PostgreSQL programs, the built CLI; every address is on loopback.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { detectBinDir } from '../../src/config/load.js';
import type { EtcdCluster } from '../../src/util/etcd-server.js';
import { run } from '../../src/util/process.js';
import { CLI } from '../support/cluster.js';
import { startEtcd } from '../support/etcd.js';
import { freePorts } from '../support/net.js';

let etcd: EtcdCluster;
let dir: string;
let apiPort: number;
let pgPort: number;
let deadPort: number;
const binDir = detectBinDir()!;

beforeAll(async () => {
  etcd = await startEtcd();
  dir = mkdtempSync(join(tmpdir(), 'pgha-validate-'));
  [apiPort, pgPort, deadPort] = (await freePorts(3)) as [number, number, number];
}, 60_000);

afterAll(async () => {
  await etcd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A node's YAML, loosely typed: each case edits what it needs. */
interface NodeYaml {
  etcd3: { hosts: string[] };
  postgresql: Record<string, unknown>;
  [key: string]: unknown;
}

/** Writes a node's configuration with `edit` applied and runs the check on it. */
async function validate(
  edit: (cfg: NodeYaml) => void = () => undefined,
  flags: string[] = [],
): Promise<{ code: number | null; out: string }> {
  const cfg: NodeYaml = {
    scope: 'validate',
    name: 'n1',
    restapi: { listen: `127.0.0.1:${apiPort}`, connect_address: `127.0.0.1:${apiPort}` },
    etcd3: { hosts: etcd.endpoints },
    postgresql: {
      listen: `127.0.0.1:${pgPort}`,
      connect_address: `127.0.0.1:${pgPort}`,
      data_dir: join(dir, 'data'),
      bin_dir: binDir,
      authentication: {
        superuser: { username: 'postgres', password: 'x' },
        replication: { username: 'replicator', password: 'x' },
      },
    },
  };
  edit(cfg);
  const path = join(dir, 'patroni.yml');
  writeFileSync(path, stringify(cfg));
  return check(path, flags);
}

async function check(path: string, flags: string[] = []): Promise<{ code: number | null; out: string }> {
  const res = await run(process.execPath, [CLI, 'agent', '--validate-config', ...flags, path], {
    timeoutMs: 30_000,
  });
  return { code: res.code, out: res.stdout + res.stderr };
}

describe('pgha agent --validate-config', () => {
  it('a configuration the agent could start with: status 0; loopback addresses get a warning', async () => {
    const r = await validate();
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(
      /^warning: restapi\.connect_address: 127\.0\.0\.1:\d+ cannot be reached from other hosts/m,
    );
    expect(r.out).not.toMatch(/problem/);
  });

  it('names every problem at once: no programs, an etcd member that does not answer, a data directory of files', async () => {
    const data = join(dir, 'not-a-cluster');
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, 'notes.txt'), 'x');
    const r = await validate((cfg) => {
      cfg.postgresql.bin_dir = join(dir, 'no-such-bin');
      cfg.postgresql.data_dir = data;
      cfg.etcd3.hosts = [...etcd.endpoints, `127.0.0.1:${deadPort}`];
    });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/has 3 problem\(s\)/);
    expect(r.out).toMatch(
      /postgresql\.bin_dir: \S+no-such-bin is not a directory; install PostgreSQL or fix bin_dir/,
    );
    expect(r.out).toMatch(new RegExp(`etcd3\\.hosts: 127\\.0\\.0\\.1:${deadPort} is not reachable`));
    expect(r.out).toMatch(
      /postgresql\.data_dir: \S+not-a-cluster is not empty but holds no PostgreSQL cluster/,
    );
    expect(r.out).not.toMatch(/at .*\.js:\d+/); // no stack trace
  });

  it('data of another PostgreSQL version than bin_dir: says which', async () => {
    const data = join(dir, 'old');
    mkdirSync(join(data, 'pg_wal'), { recursive: true });
    writeFileSync(join(data, 'PG_VERSION'), '11\n');
    const r = await validate((cfg) => (cfg.postgresql.data_dir = data));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      /postgresql\.data_dir: \S+old holds PostgreSQL 11 data, but \S+postgres is PostgreSQL \d+/,
    );
  });

  it('a listen port taken by another process is a problem, unless --ignore-listen-port says it is the node itself', async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(apiPort, '127.0.0.1', r));
    try {
      const r = await validate();
      expect(r.code).toBe(1);
      expect(r.out).toMatch(new RegExp(`restapi\\.listen: 127\\.0\\.0\\.1:${apiPort} is already in use`));
      const ignored = await validate(() => undefined, ['--ignore-listen-port']);
      expect(ignored.code, ignored.out).toBe(0);
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });

  it('a directory of YAML files, merged in name order as Patroni does', async () => {
    await validate();
    const conf = join(dir, 'conf.d');
    mkdirSync(conf, { recursive: true });
    const base = readFileSync(join(dir, 'patroni.yml'), 'utf8');
    writeFileSync(join(conf, '10-cluster.yml'), base.replace(`bin_dir: ${binDir}`, 'bin_dir: /nowhere'));
    writeFileSync(join(conf, '20-node.yml'), stringify({ postgresql: { bin_dir: binDir } }));
    const r = await check(conf);
    expect(r.code, r.out).toBe(0);
    rmSync(join(conf, '20-node.yml'));
    expect((await check(conf)).out).toMatch(/bin_dir: \/nowhere is not a directory/);
  });

  it('a key the agent refuses to run with and a schema error are problems too, before anything on the host', async () => {
    const r = await validate((cfg) => {
      cfg.postgresql.pre_promote = '/bin/true';
      cfg.bootstrap = { dcs: { ttl: 'abc' } };
    });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/pre_promote/);
    expect(r.out).toMatch(/ttl/);
  });
});

/**
 * The seed's scenario: nodes that already hold a PostgreSQL installation (Debian's split layout,
 * config in its own directory) and the seed's patroni.yml with only addresses, ports and paths
 * changed. The first agent adopts its data; the others refuse, change nothing, and join after
 * `pgha ctl reinit` or Patroni's own `patronictl reinit`.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  createWriteStream,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { isStreamingMember } from '../../src/dcs/types.js';
import { isAlive, run, runAsUser, startProcess, stopProcess } from '../../src/util/process.js';
import { CLI } from '../support/cluster.js';
import { startEtcd, type EtcdCluster } from '../support/etcd.js';
import { freePorts } from '../support/net.js';
import { createPgTestBase, PG_BIN, waitFor, type PgTestBase } from '../support/postgres.js';

/** The parts of the seed's YAML a test may change: addresses, ports and paths. */
interface SeedYaml {
  name: string;
  restapi: { listen: string; connect_address: string };
  etcd3: { hosts: string[] };
  postgresql: Record<string, string>;
  log: { dir: string };
}

const SEED = join(import.meta.dirname, '..', 'fixtures', 'config', 'seed-catalog01.yml');
const PASSWORD = 'Admin@Bacula25';
const NAMES = ['catalog01', 'catalog02', 'catalog03'];

let etcd: EtcdCluster;
let base: PgTestBase;
let watcher: EtcdDcs;
const agents = new Map<string, ChildProcess>();
const nodes = new Map<
  string,
  { config: string; pgPort: number; dataDir: string; confDir: string; log: string }
>();

/** Creates a PostgreSQL installation the way a package would: initdb, config moved to its own dir. */
async function existingInstallation(name: string, pgPort: number) {
  const cfg = await base.pgConfig(name, { splitConfig: true });
  const nodeDir = join(base.dir, name);
  const user = runAsUser('postgres');
  const initdb = await run(
    join(PG_BIN, 'initdb'),
    ['-D', cfg.data_dir, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256'],
    { user },
  );
  expect(initdb.code, initdb.stderr).toBe(0);
  const confDir = cfg.config_dir;
  mkdirSync(confDir, { recursive: true });
  for (const f of ['postgresql.conf', 'pg_hba.conf', 'pg_ident.conf'])
    renameSync(join(cfg.data_dir, f), join(confDir, f));
  appendFileSync(
    join(confDir, 'postgresql.conf'),
    `data_directory = '${cfg.data_dir}'\nhba_file = '${confDir}/pg_hba.conf'\nident_file = '${confDir}/pg_ident.conf'\n` +
      `port = ${pgPort}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${nodeDir}'\nshared_buffers = '16MB'\nfsync = off\n`,
  );
  if (user) execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, confDir]);
  const pgctl = (args: string[]) => run(join(PG_BIN, 'pg_ctl'), args, { user, timeoutMs: 30_000 });
  const started = await pgctl(['start', '-w', '-D', confDir, '-l', join(nodeDir, 'pre.log')]);
  expect(started.code, started.stderr + started.stdout).toBe(0);
  // The users the seed creates by hand before starting Patroni.
  const sql = [
    `CREATE USER pat_admin WITH SUPERUSER ENCRYPTED PASSWORD '${PASSWORD}'`,
    `CREATE USER pat_replica WITH REPLICATION ENCRYPTED PASSWORD '${PASSWORD}'`,
    `CREATE TABLE catalog_marker (node text)`,
    `INSERT INTO catalog_marker VALUES ('${name}')`,
  ];
  for (const s of sql) {
    const r = await run(
      join(PG_BIN, 'psql'),
      [
        '-h',
        nodeDir,
        '-p',
        String(pgPort),
        '-U',
        'postgres',
        '-d',
        'postgres',
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        s,
      ],
      { user },
    );
    expect(r.code, r.stderr).toBe(0);
  }
  const stopped = await pgctl(['stop', '-w', '-m', 'fast', '-D', confDir]);
  expect(stopped.code, stopped.stderr).toBe(0);
  return { dataDir: cfg.data_dir, confDir };
}

function seedConfig(name: string, apiPort: number, pgPort: number, dataDir: string, confDir: string): string {
  const cfg = parse(readFileSync(SEED, 'utf8')) as SeedYaml;
  cfg.name = name;
  cfg.restapi.listen = `127.0.0.1:${apiPort}`;
  cfg.restapi.connect_address = `127.0.0.1:${apiPort}`;
  cfg.etcd3.hosts = etcd.endpoints;
  cfg.postgresql.listen = `127.0.0.1:${pgPort}`;
  cfg.postgresql.connect_address = `127.0.0.1:${pgPort}`;
  cfg.postgresql.data_dir = dataDir;
  cfg.postgresql.bin_dir = PG_BIN;
  cfg.postgresql.config_dir = confDir;
  cfg.postgresql.pgpass = join(base.dir, name, 'pgpass');
  cfg.log.dir = join(base.dir, name, 'log');
  const path = join(base.dir, `${name}.yml`);
  writeFileSync(path, stringify(cfg));
  return path;
}

function startAgent(name: string): void {
  const n = nodes.get(name)!;
  const child = startProcess(process.execPath, [CLI, 'agent', n.config]);
  const out = createWriteStream(join(base.dir, `${name}.stderr`), { flags: 'a' });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  agents.set(name, child);
}

function hashDir(dir: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).sort()) h.update(f).update(readFileSync(join(dir, f)));
  return h.digest('hex');
}

async function sysid(dataDir: string): Promise<string> {
  const r = await run(join(PG_BIN, 'pg_controldata'), [dataDir], { env: { ...process.env, LC_ALL: 'C' } });
  return /Database system identifier:\s+(\d+)/.exec(r.stdout)?.[1] ?? '';
}

async function memberState(name: string): Promise<string | undefined> {
  const c = await watcher.readCluster();
  return c.members.find((m) => m.name === name)?.data.state;
}

async function isStreaming(name: string): Promise<boolean> {
  const c = await watcher.readCluster();
  const m = c.members.find((x) => x.name === name);
  return m !== undefined && isStreamingMember(m.data);
}

beforeAll(async () => {
  etcd = await startEtcd({ members: 1 });
  base = createPgTestBase();
  watcher = new EtcdDcs({
    hosts: etcd.endpoints,
    namespace: '/db/',
    scope: 'bacula_cluster',
    name: 'watcher',
    ttl: 30,
  });
  const ports = await freePorts(NAMES.length * 2);
  for (const [i, name] of NAMES.entries()) {
    const pgPort = ports[2 * i]!;
    const { dataDir, confDir } = await existingInstallation(name, pgPort);
    const config = seedConfig(name, ports[2 * i + 1]!, pgPort, dataDir, confDir);
    nodes.set(name, { config, pgPort, dataDir, confDir, log: join(base.dir, name, 'log', 'patroni.log') });
  }
});

afterAll(async () => {
  await Promise.all([...agents.values()].filter(isAlive).map((a) => stopProcess(a, 'SIGTERM', 60_000)));
  await watcher?.close({ revokeLease: false });
  await base?.cleanup();
  await etcd?.stop();
});

it('adopts the first existing installation, refuses the others untouched, and reinit joins them', async () => {
  const first = nodes.get('catalog01')!;
  const firstSysid = await sysid(first.dataDir);
  startAgent('catalog01');
  await waitFor(
    'catalog01 to lead',
    async () => {
      const c = await watcher.readCluster();
      return (
        c.leader?.name === 'catalog01' &&
        c.initialize === firstSysid &&
        (await memberState('catalog01')) === 'running'
      );
    },
    60_000,
  );

  const before = new Map(
    ['catalog02', 'catalog03'].map((n) => [n, { conf: hashDir(nodes.get(n)!.confDir) }]),
  );
  const otherSysids = new Map<string, string>();
  for (const n of ['catalog02', 'catalog03']) {
    otherSysids.set(n, await sysid(nodes.get(n)!.dataDir));
    startAgent(n);
  }
  for (const n of ['catalog02', 'catalog03']) {
    await waitFor(
      `${n} to refuse`,
      async () => {
        try {
          const log = readFileSync(nodes.get(n)!.log, 'utf8');
          return (
            log.includes(`database system ${otherSysids.get(n)}`) &&
            log.includes('reinit') &&
            (await memberState(n)) === 'stopped'
          );
        } catch {
          return false;
        }
      },
      30_000,
    );
    // Nothing changed: same system identifier, same configuration files, PostgreSQL not started.
    expect(await sysid(nodes.get(n)!.dataDir)).toBe(otherSysids.get(n));
    expect(hashDir(nodes.get(n)!.confDir)).toBe(before.get(n)!.conf);
  }

  // pgha's own ctl for one, Patroni's patronictl for the other.
  const ours = execFileSync(
    process.execPath,
    [CLI, 'ctl', '-c', nodes.get('catalog02')!.config, 'reinit', 'bacula_cluster', 'catalog02', '--force'],
    { encoding: 'utf8' },
  );
  expect(ours).toContain('Success: reinitialize for member catalog02');
  const theirs = execFileSync(
    'patronictl',
    ['-c', nodes.get('catalog03')!.config, 'reinit', 'bacula_cluster', 'catalog03', '--force'],
    { encoding: 'utf8' },
  );
  expect(theirs).toContain('Success: reinitialize for member catalog03');

  for (const n of ['catalog02', 'catalog03']) {
    await waitFor(`${n} streaming`, () => isStreaming(n), 90_000);
    expect(await sysid(nodes.get(n)!.dataDir)).toBe(firstSysid);
  }
  // Debian's patronictl 3.0.2 shows the member key's state (running); pgha ctl shows streaming.
  const list = execFileSync('patronictl', ['-c', first.config, 'list', '-f', 'json'], { encoding: 'utf8' });
  const rows = JSON.parse(list) as Array<{ Member: string; Role: string; State: string }>;
  expect(rows.map((r) => `${r.Member}:${r.Role}:${r.State}`)).toEqual([
    'catalog01:Leader:running',
    'catalog02:Replica:running',
    'catalog03:Replica:running',
  ]);
});

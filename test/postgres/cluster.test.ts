/**
 * Real PostgreSQL 15: bootstrap a primary, clone a streaming replica, promote it, crash the old
 * primary, rewind it onto the new timeline and stream again. The steps depend on each other, so
 * they run in order in one file.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresqlConfig } from '../../src/config/types.js';
import { Postgres } from '../../src/postgres/postgres.js';
import type { RoleConfig } from '../../src/postgres/types.js';
import { runAsUser } from '../../src/util/process.js';
import {
  createPgTestBase,
  killPostmaster,
  PG_OS_USER,
  waitFor,
  type PgTestBase,
} from '../support/postgres.js';

let base: PgTestBase;
let cfgA: PostgresqlConfig;
let cfgB: PostgresqlConfig;
let a: Postgres;
let b: Postgres;

const primary = (cfg: PostgresqlConfig): RoleConfig => ({ role: 'primary', parameters: cfg.parameters });
const replicaOf = (
  cfg: PostgresqlConfig,
  up: PostgresqlConfig,
  upName: string,
  slot: string | null,
): RoleConfig => ({
  role: 'replica',
  upstream: { host: '127.0.0.1', port: up.listen.port, member: upName },
  slotName: slot,
  parameters: cfg.parameters,
});

beforeAll(async () => {
  base = createPgTestBase();
  cfgA = await base.pgConfig('n1', { splitConfig: true });
  cfgB = await base.pgConfig('n2');
  a = new Postgres(cfgA, { name: 'n1', scope: 'testcluster' });
  b = new Postgres(cfgB, { name: 'n2', scope: 'testcluster' });
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await base?.cleanup();
});

describe('Postgres with real PostgreSQL 15', () => {
  it('bootstraps a primary: initdb, configure, start, users, status', async () => {
    expect(await a.dataDirectoryState()).toBe('empty');
    expect(await a.binaryVersion()).toBe(15);
    await a.initdb([{ encoding: 'UTF8' }, { locale: 'C.UTF-8' }]);
    expect(await a.dataDirectoryState()).toBe('initialized');
    const cd = await a.controlData();
    expect(cd?.dataChecksums).toBe(true);
    expect(cd?.clusterState).toBe('shut down');

    await a.configure(primary(cfgA));
    const conf = readFileSync(join(cfgA.config_dir, 'postgresql.conf'), 'utf8');
    expect(conf.startsWith('# Do not edit: managed by pgha')).toBe(true);
    expect(conf).toContain("include 'postgresql.base.conf'");
    expect(conf).toContain(`data_directory = '${cfgA.data_dir}'`);
    expect(conf).toContain("cluster_name = 'testcluster'");
    expect(existsSync(join(cfgA.config_dir, 'postgresql.base.conf'))).toBe(true);
    expect(readFileSync(join(cfgA.config_dir, 'pg_hba.conf'), 'utf8')).toContain(
      'host replication all 127.0.0.1/32 scram-sha-256',
    );
    const user = runAsUser(PG_OS_USER);
    if (user) expect(statSync(cfgA.pgpass).uid).toBe(user.uid);
    expect(statSync(cfgA.pgpass).mode & 0o777).toBe(0o600);
    expect(statSync(cfgA.data_dir).mode & 0o777).toBe(0o700);

    await a.start(30_000);
    expect(await a.isRunning()).toBe(true);
    await a.createUsers();
    await a.createUsers(); // idempotent

    const st = await a.status();
    expect(st).not.toBeNull();
    expect(st?.inRecovery).toBe(false);
    expect(st?.timeline).toBe(1);
    expect(st?.systemIdentifier).toBe(cd?.systemIdentifier);
    expect(st?.serverVersion).toBeGreaterThanOrEqual(150000);
    expect(st?.walPosition).toBeGreaterThan(0);
    expect(st?.pendingRestart).toBe(false);
    expect(st?.postmasterStartTime).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+[+-]\d\d:\d\d$/);

    const roles = await a.query<{ rolname: string; rolreplication: boolean }>(
      `SELECT rolname::text, rolreplication FROM pg_roles WHERE rolname IN ('replicator', 'rewinder') ORDER BY 1`,
    );
    expect(roles).toEqual([
      { rolname: 'replicator', rolreplication: true },
      { rolname: 'rewinder', rolreplication: false },
    ]);
    await a.query('CREATE TABLE t (id int PRIMARY KEY, origin text)');
    await a.query(`INSERT INTO t VALUES (1, 'n1')`);
  });

  it('creates physical slots that reserve WAL at once, lists them and drops them', async () => {
    await a.createPhysicalSlot('n2');
    await a.createPhysicalSlot('extra');
    await a.createPhysicalSlot('n2'); // already there: nothing happens
    const slots = await a.replicationSlots();
    expect(slots.map((s) => s.name)).toEqual(['extra', 'n2']);
    expect(slots.every((s) => s.type === 'physical' && !s.active && s.restartLsn !== null)).toBe(true);
    expect(await a.dropSlot('extra')).toBe(true);
    expect(await a.dropSlot('gone')).toBe(false); // absent: nothing happens
    expect((await a.replicationSlots()).map((s) => s.name)).toEqual(['n2']);
  });

  it('clones a replica with pg_basebackup that streams from the primary', async () => {
    const progress: string[] = [];
    await b.basebackup(
      { host: '127.0.0.1', port: cfgA.listen.port, member: 'n1' },
      [{ 'max-rate': '500M' }],
      (l) => progress.push(l),
    );
    expect(progress.length).toBeGreaterThan(0);
    expect(await b.dataDirectoryState()).toBe('initialized');
    await b.configure(replicaOf(cfgB, cfgA, 'n1', 'n2'));
    expect(existsSync(join(cfgB.data_dir, 'standby.signal'))).toBe(true);
    await b.start(30_000);

    const st = await waitFor('replica streaming', async () => {
      const s = await b.status();
      return s?.replicationState === 'streaming' ? s : null;
    });
    expect(st.inRecovery).toBe(true);
    expect(st.timeline).toBe(1);
    expect(st.receiverUpstream).toEqual({ host: '127.0.0.1', port: cfgA.listen.port });

    await a.query(`INSERT INTO t VALUES (2, 'n1')`);
    await waitFor('row replicated', async () => (await b.query('SELECT 1 FROM t WHERE id = 2')).length === 1);
    const pst = await a.status();
    expect(pst?.replication.map((r) => [r.application_name, r.usename, r.state])).toEqual([
      ['n2', 'replicator', 'streaming'],
    ]);
    const slot = await a.query<{ active: boolean }>(
      `SELECT active FROM pg_replication_slots WHERE slot_name = 'n2'`,
    );
    expect(slot[0]?.active).toBe(true);
  });

  it('refuses to clone into a data directory that is not empty', async () => {
    await expect(
      b.basebackup({ host: '127.0.0.1', port: cfgA.listen.port, member: 'n1' }, []),
    ).rejects.toThrow(/not empty/);
  });

  it('promotes the replica, and rewinds the crashed old primary onto the new timeline', async () => {
    await b.promote(30_000);
    const bst = await b.status();
    expect(bst?.inRecovery).toBe(false);
    expect(bst?.timeline).toBe(2);
    // promote() checkpoints in the background, so pg_rewind soon sees the new timeline in pg_control.
    await b.checkpointAfterPromote();
    expect((await b.controlData())?.timeline).toBe(2);
    await b.checkpoint();
    await b.query(`INSERT INTO t VALUES (3, 'n2')`);

    // Diverge: the old primary takes a write the new one never sees, then crashes.
    await a.query(`INSERT INTO t VALUES (100, 'lost')`);
    const pid = await a.postmasterPid();
    expect(pid).not.toBeNull();
    await a.close();
    await killPostmaster(pid as number);
    expect(await a.isRunning()).toBe(false);
    expect(await a.postmasterPid()).toBeNull();
    expect(existsSync(join(cfgA.data_dir, 'postmaster.pid'))).toBe(true);
    expect(await a.status()).toBeNull();
    expect((await a.controlData())?.clusterState).toBe('in production');

    await a.rewind({ host: '127.0.0.1', port: cfgB.listen.port, member: 'n2' });
    await b.createPhysicalSlot('n1');
    await a.configure(replicaOf(cfgA, cfgB, 'n2', 'n1'));
    await a.start(60_000);
    const ast = await waitFor('rewound node streaming', async () => {
      const s = await a.status();
      return s?.replicationState === 'streaming' ? s : null;
    });
    expect(ast.timeline).toBe(2);
    expect(ast.receiverUpstream?.port).toBe(cfgB.listen.port);
    await b.query(`INSERT INTO t VALUES (4, 'n2')`);
    await waitFor(
      'row on the new timeline',
      async () => (await a.query('SELECT 1 FROM t WHERE id = 4')).length === 1,
    );
    expect(await a.query('SELECT id FROM t ORDER BY id')).toEqual([
      { id: 1 },
      { id: 2 },
      { id: 3 },
      { id: 4 },
    ]);
  });

  it('stops in each mode, and restarts', async () => {
    await a.stop('smart', 20_000);
    expect(await a.isRunning()).toBe(false);
    expect((await a.controlData())?.clusterState).toBe('shut down in recovery');
    await a.start(30_000);
    await a.stop('immediate', 20_000);
    expect(await a.isRunning()).toBe(false);
    await a.start(60_000);
    const before = (await b.status())?.postmasterStartTime;
    await b.restart(30_000);
    expect((await b.status())?.postmasterStartTime).not.toBe(before);
    await b.reload();
    await b.stop('fast', 20_000);
    expect(await b.isRunning()).toBe(false);
    expect(await b.status()).toBeNull();
    await b.stop('fast', 1000); // no-op when stopped
  });

  it('leaves out a value PostgreSQL would refuse, and reports a failed start with the server log', async () => {
    await b.configure({ role: 'primary', parameters: { ...cfgB.parameters, shared_buffers: 'nonsense' } });
    const conf = readFileSync(join(cfgB.config_dir, 'postgresql.conf'), 'utf8');
    expect(conf).not.toMatch(/^shared_buffers/m);
    // A library that does not exist passes every check of a value: only the start finds out.
    await b.configure({
      role: 'primary',
      parameters: { ...cfgB.parameters, shared_preload_libraries: 'pgha_no_such_library' },
    });
    await expect(b.start(10_000)).rejects.toThrow(/pgha_no_such_library/);
  });

  it('removes the data directory contents of a stopped node', async () => {
    await expect(a.removeDataDirectory()).rejects.toThrow(/running/);
    await b.removeDataDirectory();
    expect(await b.dataDirectoryState()).toBe('empty');
    expect(existsSync(cfgB.data_dir)).toBe(true);
  });
});

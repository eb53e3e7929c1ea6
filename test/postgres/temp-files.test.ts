/**
 * The agent rewrites files inside the data directory (pg_hba.conf, postgresql.conf, the signal
 * files) while other members may be cloning from it. The invariant: nothing the agent writes
 * appears in the data directory before it is complete and owned by the server's user — its
 * temporary files live in base/pgsql_tmp, which pg_basebackup and pg_rewind skip — so a clone
 * never meets a file it cannot read. Checked on a real primary with a real pg_basebackup running
 * while the configuration is rewritten over and over.
 */
import { watch, type FSWatcher } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresqlConfig } from '../../src/config/types.js';
import { Postgres } from '../../src/postgres/postgres.js';
import type { RoleConfig } from '../../src/postgres/types.js';
import { createPgTestBase, type PgTestBase } from '../support/postgres.js';

let base: PgTestBase;
let cfgA: PostgresqlConfig;
let cfgB: PostgresqlConfig;
let a: Postgres;
let b: Postgres;
const watchers: FSWatcher[] = [];

beforeAll(async () => {
  base = createPgTestBase();
  ({ cfg: cfgA, pg: a } = await base.primary('n1', { scope: 'temp' }));
  cfgB = await base.pgConfig('n2');
  b = new Postgres(cfgB, { name: 'n2', scope: 'temp' });
  // Enough data that the clone takes a while.
  await a.query('CREATE TABLE filler AS SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g');
});

afterAll(async () => {
  for (const w of watchers) w.close();
  await a?.close();
  await b?.close();
  await base?.cleanup();
});

describe('files the agent writes into a data directory', () => {
  it('never appear there unfinished, and a clone running meanwhile succeeds', async () => {
    // Every name that appears at the top of the data directory, as it appears.
    const seen = new Set<string>();
    watchers.push(watch(cfgA.data_dir, (_event, name) => name && seen.add(name)));
    const role = (n: number): RoleConfig => ({
      role: 'primary',
      parameters: { ...cfgA.parameters, work_mem: `${4 + (n % 4)}MB` },
      pgHba: [...(cfgA.pg_hba ?? []), `# rewrite ${n}`],
    });
    let rewrites = 0;
    let stop = false;
    const rewriting = (async () => {
      while (!stop) await a.configure(role(rewrites++));
    })();
    try {
      await b.basebackup({ host: '127.0.0.1', port: cfgA.listen.port, member: 'n1' }, []);
    } finally {
      stop = true;
      await rewriting;
    }
    // Several rewrites overlapped the clone (how many depends on the machine's speed).
    expect(rewrites).toBeGreaterThan(5);
    const unfinished = [...seen].filter((n) => /tmp/i.test(n) && n !== 'base');
    expect(unfinished).toEqual([]);
    expect(await b.dataDirectoryState()).toBe('initialized');
  }, 120_000);
});

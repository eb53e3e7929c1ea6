/**
 * A replica method marked `no_leader` with real processes: a new member whose data directory is
 * empty while no leader runs creates its data with that method (here a copy of a base backup),
 * starts it read-only and, under failsafe_mode, does not promote it, as it is not in the
 * `failsafe` key the last leader wrote.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { PG_BIN, PG_OS_USER, waitFor } from '../support/postgres.js';

const TTL = 10;
let c: TestCluster;
/** Holds the restore script and the base backup; the postgres OS user writes the backup. */
const work = mkdtempSync('/tmp/pgha-no-leader-');
const backup = join(work, 'backup');

beforeAll(async () => {
  chmodSync(work, 0o755);
  const id = (flag: string) => Number(execFileSync('id', [flag, PG_OS_USER]).toString().trim());
  chownSync(work, id('-u'), id('-g'));
  writeFileSync(
    join(work, 'restore.sh'),
    [
      'for a in "$@"; do case "$a" in --datadir=*) d="${a#--datadir=}";; esac; done',
      `mkdir -p "$d" && cp -a ${backup}/. "$d"/ && chmod 700 "$d"`,
      '',
    ].join('\n'),
  );
  c = await startCluster({
    nodes: 2,
    ttl: TTL,
    loopWait: 1,
    retryTimeout: 3,
    edit: (cfg, name) => {
      ((cfg.bootstrap as Record<string, unknown>).dcs as Record<string, unknown>).failsafe_mode = true;
      if (name !== 'pg2') return;
      const pg = cfg.postgresql as Record<string, unknown>;
      pg.create_replica_methods = ['restore'];
      pg.restore = { command: `/bin/sh ${join(work, 'restore.sh')}`, no_leader: true };
    },
  });
  c.startAgent('pg1');
  await c.waitHealthy(0);
}, 120_000);

afterAll(async () => {
  await c?.stop();
  rmSync(work, { recursive: true, force: true });
});

it('creates a new member from a backup with no leader, and keeps it a replica', async () => {
  await waitFor('pg1 in the failsafe key', async () => (await c.readCluster()).failsafe?.pg1 !== undefined);
  const pg1 = c.node('pg1');
  execFileSync(
    'runuser',
    ['-u', PG_OS_USER, '--', 'env', `PGPASSWORD=${c.connection('pg1').password}`]
      .concat([join(PG_BIN, 'pg_basebackup'), '-h', '127.0.0.1', '-p', String(pg1.pgPort)])
      .concat(['-U', 'replicator', '-D', backup, '-X', 'stream', '-c', 'fast']),
    { stdio: 'pipe' },
  );
  await c.stopAgent('pg1');

  c.startAgent('pg2');
  await waitFor(
    'pg2 running read-only from the backup',
    async () => (await c.query<{ r: boolean }>('pg2', 'SELECT pg_is_in_recovery() AS r'))[0]?.r === true,
    60_000,
    500,
  );
  // Not in the failsafe key the last leader wrote: it must not take over.
  await new Promise((r) => setTimeout(r, (TTL + 5) * 1000));
  expect((await c.query<{ r: boolean }>('pg2', 'SELECT pg_is_in_recovery() AS r'))[0]?.r).toBe(true);
  expect((await c.readCluster()).leader).toBeNull();
}, 150_000);

/**
 * `bootstrap.method` naming a section with a `command`, as Patroni runs it: the command gets
 * `--scope` and `--datadir` and must create the data directory; a command that fails leaves no
 * data directory to start and is tried again; `bootstrap.users` and `post_bootstrap` (with a
 * connection string to the new cluster) run after it; the second node clones through a custom
 * replica method (`create_replica_methods`) that gets `--scope`, `--role`, `--datadir` and `--connstring`.
 *
 * The "restore" here is initdb into `--datadir`, made by the test; it fails on its first run after
 * leaving a half-made directory behind.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import { logLines } from '../support/ha-probes.js';

let c: TestCluster;
const dir = mkdtempSync(join(tmpdir(), 'pgha-custom-bootstrap-'));
const restoreLog = join(dir, 'restore.log');
const cloneLog = join(dir, 'clone.log');
const postLog = join(dir, 'post.log');

function script(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

beforeAll(async () => {
  chmodSync(dir, 0o777);
  let binDir = '';
  c = await startCluster({
    nodes: 2,
    edit: (cfg) => {
      binDir = String((cfg.postgresql as { bin_dir: string }).bin_dir);
    },
  });
  for (const f of [restoreLog, cloneLog, postLog]) {
    writeFileSync(f, '');
    chmodSync(f, 0o666);
  }
  const datadirOf = 'for a in "$@"; do case "$a" in --datadir=*) D="${a#--datadir=}";; esac; done';
  const restore = script(
    'restore.sh',
    `echo "$@" >> ${restoreLog}\n${datadirOf}\n` +
      `if [ ! -e ${dir}/failed-once ]; then touch ${dir}/failed-once; mkdir -p "$D"; echo half > "$D/PG_VERSION"; exit 3; fi\n` +
      `${binDir}/initdb -D "$D" -U postgres --data-checksums >/dev/null && echo restored > "$D/restored-by-script"`,
  );
  const clone = script(
    'clone.sh',
    `echo "$@" >> ${cloneLog}\n${datadirOf}\n` +
      'for a in "$@"; do case "$a" in --connstring=*) C="${a#--connstring=}";; esac; done\n' +
      `${binDir}/pg_basebackup -D "$D" -X stream -c fast -d "$C"`,
  );
  const post = script(
    'post.sh',
    `echo "$@" >> ${postLog}\n${binDir}/psql -w -Atc "CREATE TABLE made_by_post (x int)" "$1"`,
  );
  for (const n of c.nodes) {
    const text = readFileSync(n.configPath, 'utf8');
    writeFileSync(
      n.configPath,
      text.replace(
        /^bootstrap:\n/m,
        `bootstrap:\n  method: restore\n  restore:\n    command: ${restore} --from=backup\n` +
          `  post_bootstrap: ${post}\n  users:\n    reporter:\n      password: secret\n      options: [createdb]\n`,
      ) + `\n`,
    );
    const withMethods = readFileSync(n.configPath, 'utf8').replace(
      /^postgresql:\n/m,
      `postgresql:\n  create_replica_methods: [myclone, basebackup]\n  myclone:\n    command: ${clone}\n    extra: 1\n`,
    );
    writeFileSync(n.configPath, withMethods);
  }
  c.startAgent('pg1');
  await c.waitHealthy(0, 90_000);
}, 150_000);

afterAll(async () => {
  await c?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('runs the bootstrap command with --scope and --datadir, again after a failure, then users and post_bootstrap', async () => {
  const runs = readFileSync(restoreLog, 'utf8').trim().split('\n');
  expect(runs.length, logLines(c.node('pg1').logPath, /bootstrap|restore/)).toBe(2);
  expect(runs[1]).toMatch(/^--from=backup --scope=\S+ --datadir=\S+pg1/);
  expect(existsSync(join(c.node('pg1').dataDir, 'restored-by-script'))).toBe(true);
  expect(logLines(c.node('pg1').logPath, /bootstrap failed/)).toMatch(/exit code 3/);
  expect(readFileSync(postLog, 'utf8')).toMatch(/dbname='postgres' user='postgres'/);
  expect(await c.query('pg1', "SELECT to_regclass('made_by_post') IS NOT NULL AS t")).toEqual([{ t: true }]);
  expect(
    await c.query('pg1', "SELECT rolcreatedb, rolcanlogin FROM pg_roles WHERE rolname = 'reporter'"),
  ).toEqual([{ rolcreatedb: true, rolcanlogin: true }]);
});

it('creates a replica with the first create_replica_method, given --scope, --role, --datadir and --connstring', async () => {
  c.startAgent('pg2');
  await c.waitHealthy(1, 90_000);
  const run = readFileSync(cloneLog, 'utf8').trim();
  expect(run).toMatch(/--extra=1 --scope=\S+ --role=replica --datadir=\S+pg2\S* --connstring=.*port=/);
  await waitFor(
    'made_by_post on pg2',
    async () => (await c.query('pg2', "SELECT to_regclass('made_by_post') IS NOT NULL AS t"))[0]?.t === true,
    20_000,
  );
});

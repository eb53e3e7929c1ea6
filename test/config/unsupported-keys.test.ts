/**
 * Patroni keys pgha does not act on, with real agents: a `standby_cluster` (in the file's bootstrap.dcs
 * or in the config key in etcd) stops the agent before it writes or initialises anything; the other
 * keys are named once each in the agent's log, at start and when they appear in etcd later; a replica
 * whose create_replica_methods leave out basebackup does not clone.
 */
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { SCOPE, startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

const PREFIX = `/service/${SCOPE}/`;

let cluster: TestCluster;
let etcd: Etcd3;
/** Each node's YAML as startCluster wrote it; each scenario starts from a copy. */
const original = new Map<string, Record<string, unknown>>();

beforeAll(async () => {
  cluster = await startCluster({ nodes: 2 });
  etcd = new Etcd3({ hosts: cluster.etcd.endpoints.map((e) => `http://${e}`) });
  for (const n of cluster.nodes)
    original.set(n.name, parse(readFileSync(n.configPath, 'utf8')) as Record<string, unknown>);
});

afterAll(async () => {
  etcd?.close();
  await cluster?.stop();
});

/** Writes a node's YAML: the original with `edit` applied to a copy. */
function writeConfig(edit: (cfg: Record<string, unknown>) => void, name = 'pg1'): void {
  const cfg = structuredClone(original.get(name)!);
  edit(cfg);
  writeFileSync(cluster.node(name).configPath, stringify(cfg));
}

function dcsOf(cfg: Record<string, unknown>): Record<string, unknown> {
  return (cfg.bootstrap as { dcs: Record<string, unknown> }).dcs;
}

const log = (name = 'pg1') => {
  const path = cluster.node(name).logPath;
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
};
/** Log lines written since `from` (a length of the log). */
const logSince = (from: number, name = 'pg1') => log(name).slice(from);
const count = (text: string, needle: string) => text.split(needle).length - 1;
/** Waits until `test` holds for the log written since `from`. */
const logShows = (what: string, from: number, test: (text: string) => boolean, name = 'pg1') =>
  waitFor(what, () => Promise.resolve(test(logSince(from, name))));

/** Starts pg1's agent and waits for it to exit by itself; returns its exit code. */
async function runUntilExit(): Promise<number | null> {
  cluster.startAgent('pg1');
  const child = cluster.node('pg1').agent!;
  const [code] = (await Promise.race([
    once(child, 'exit'),
    new Promise((_, reject) => setTimeout(() => reject(new Error('the agent did not exit')), 30_000)),
  ])) as [number | null];
  cluster.node('pg1').agent = null;
  return code;
}

async function keysInEtcd(): Promise<string[]> {
  return (await etcd.getAll().prefix(PREFIX).keys()).sort();
}

function dataDirEntries(name = 'pg1'): string[] {
  const dir = cluster.node(name).dataDir;
  return existsSync(dir) ? readdirSync(dir) : [];
}

describe('standby_cluster stops the agent before it changes anything', () => {
  it('in the YAML file: bootstrap.dcs.standby_cluster', async () => {
    writeConfig((cfg) => {
      dcsOf(cfg).standby_cluster = { host: '127.0.0.1', port: 5999, primary_slot_name: 'standby' };
    });
    const from = log().length;
    expect(await runUntilExit()).toBe(1);
    expect(logSince(from)).toContain(
      'bootstrap.dcs.standby_cluster is set: pgha cannot run a standby cluster yet; refusing to start ' +
        '(it would run as an independent writable primary). Remove bootstrap.dcs.standby_cluster or run Patroni for this cluster',
    );
    expect(logSince(from)).not.toMatch(/initdb|won the initialisation race/);
    expect(await keysInEtcd()).toEqual([]);
    expect(dataDirEntries()).toEqual([]);
  });

  it('in the config key in etcd (as patronictl edit-config writes it)', async () => {
    writeConfig(() => undefined);
    await etcd
      .put(`${PREFIX}config`)
      .value(JSON.stringify({ ttl: 10, loop_wait: 1, standby_cluster: { host: '127.0.0.1', port: 5999 } }));
    try {
      const from = log().length;
      expect(await runUntilExit()).toBe(1);
      expect(logSince(from)).toContain(
        'standby_cluster is set in the configuration in etcd: pgha cannot run a standby cluster yet; refusing to start ' +
          '(it would run as an independent writable primary). Remove standby_cluster or run Patroni for this cluster',
      );
      expect(await keysInEtcd()).toEqual([`${PREFIX}config`]);
      expect(dataDirEntries()).toEqual([]);
    } finally {
      await etcd.delete().key(`${PREFIX}config`);
    }
  });
});

describe('keys pgha does not act on are named in the log', () => {
  const baseUrl = () => `http://127.0.0.1:${cluster.node('pg1').apiPort}`;
  const patch = (body: unknown) =>
    fetch(`${baseUrl()}/config`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  let startedAt = 0;

  beforeAll(async () => {
    writeConfig((cfg) => {
      const dcs = dcsOf(cfg);
      dcs.slots = { keep_for_backup: { type: 'physical' } };
      dcs.ignore_slots = [{ name: 'managed_elsewhere', type: 'physical' }];
      dcs.member_slots_ttl = '30min';
      dcs.maximum_lag_on_syncnode = 1048576;
      dcs.check_timeline = true;
      const boot = cfg.bootstrap as Record<string, unknown>;
      boot.users = { app: { password: 'app-pw', options: ['createdb'] } };
      boot.post_bootstrap = '/usr/local/bin/after-bootstrap';
    });
    startedAt = log().length;
    cluster.startAgent('pg1');
    await cluster.waitHealthy(0);
  });

  afterAll(async () => {
    await cluster.stopAgent('pg1');
  });

  it('once each at start, from the file, and once each from the config key in etcd', async () => {
    // A few HA cycles (loop_wait 1 s): the notes of the config key are not repeated every cycle.
    await new Promise((r) => setTimeout(r, 4000));
    const text = logSince(startedAt);
    for (const key of [
      'bootstrap.dcs.slots',
      'bootstrap.dcs.ignore_slots',
      'bootstrap.dcs.member_slots_ttl',
      'bootstrap.dcs.maximum_lag_on_syncnode',
      'bootstrap.users',
      'bootstrap.post_bootstrap',
    ])
      expect(count(text, `configuration: ${key}: not acted on by pgha; `), key).toBe(1);
    for (const key of ['slots', 'ignore_slots', 'member_slots_ttl', 'maximum_lag_on_syncnode'])
      expect(count(text, `dynamic configuration: ${key}: not acted on by pgha; `), key).toBe(1);
    expect(text).toContain(
      'configuration: bootstrap.dcs.slots: not acted on by pgha; pgha creates no permanent slots',
    );
    expect(text).toContain(
      'configuration: bootstrap.users: not acted on by pgha; pgha creates only the superuser',
    );
    // check_timeline is acted on: no word about it.
    expect(text).not.toContain('check_timeline');
  });

  it('again when a key appears or changes in etcd, once', async () => {
    const from = log().length;
    expect((await patch({ primary_race_backoff: 5 })).status).toBe(200);
    await logShows('the note about primary_race_backoff', from, (t) =>
      t.includes('dynamic configuration: primary_race_backoff: not acted on by pgha; '),
    );
    expect((await patch({ primary_race_backoff: 7 })).status).toBe(200);
    await logShows(
      'the note about the changed primary_race_backoff',
      from,
      (t) => count(t, 'dynamic configuration: primary_race_backoff: ') === 2,
    );
    await new Promise((r) => setTimeout(r, 3000));
    expect(count(logSince(from), 'dynamic configuration: primary_race_backoff: ')).toBe(2);
  });

  it('PATCH /config refuses to add standby_cluster; written behind its back, it stops the agent acting', async () => {
    const refused = await patch({ standby_cluster: { host: '127.0.0.1', port: 5999 } });
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain('standby_cluster: pgha cannot run a standby cluster yet');

    const from = log().length;
    const current = JSON.parse((await etcd.get(`${PREFIX}config`).string())!) as Record<string, unknown>;
    await etcd
      .put(`${PREFIX}config`)
      .value(JSON.stringify({ ...current, standby_cluster: { host: '127.0.0.1', port: 5999 } }));
    await logShows('the agent to stop acting', from, (t) =>
      t.includes(
        'standby_cluster is set in the configuration in etcd: pgha cannot run a standby cluster yet; not acting on PostgreSQL while it is set',
      ),
    );
    // It keeps what it has (the leader key, a running primary) and does nothing else.
    expect((await cluster.readCluster()).leader?.name).toBe('pg1');
    const removed = log().length;
    await etcd.put(`${PREFIX}config`).value(JSON.stringify(current));
    await logShows('the agent to act again', removed, (t) =>
      t.includes('I am the leader with the lock: renewed the leader lease'),
    );
  });

  it('a replica whose create_replica_methods leave out basebackup does not clone', async () => {
    writeConfig((cfg) => {
      const pg = cfg.postgresql as Record<string, unknown>;
      pg.create_replica_methods = ['pgbackrest'];
      pg.pgbackrest = { command: '/usr/local/bin/restore-replica', no_params: true };
    }, 'pg2');
    cluster.startAgent('pg2');
    try {
      await logShows(
        'pg2 to refuse to clone',
        0,
        (t) =>
          t.includes('pgha clones with pg_basebackup only, and basebackup is not listed; refusing to clone'),
        'pg2',
      );
      const text = log('pg2');
      expect(count(text, 'configuration: postgresql.create_replica_methods: not acted on by pgha; ')).toBe(1);
      expect(count(text, 'configuration: postgresql.pgbackrest: not acted on by pgha; ')).toBe(1);
      expect(text).not.toContain('running pg_basebackup');
      expect(dataDirEntries('pg2')).toEqual([]);
    } finally {
      await cluster.stopAgent('pg2');
    }
  });
});

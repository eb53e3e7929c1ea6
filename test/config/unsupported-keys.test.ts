/**
 * Patroni keys pgha does not act on, with real agents: a refused key (`postgresql.pre_promote`)
 * stops the agent before it writes or initialises anything; the other keys are named once each in
 * the agent's log, at start and when they appear in etcd later.
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

describe('a refused key stops the agent before it changes anything', () => {
  it('postgresql.pre_promote in the YAML file', async () => {
    writeConfig((cfg) => {
      (cfg.postgresql as Record<string, unknown>).pre_promote = '/usr/local/bin/fence-check';
    });
    const from = log().length;
    expect(await runUntilExit()).toBe(1);
    expect(logSince(from)).toContain(
      'postgresql.pre_promote is set: pgha does not run the pre_promote fencing script; refusing to start ' +
        '(it would promote a replica without the check that may veto the promotion). ' +
        'Remove postgresql.pre_promote or run Patroni for this cluster',
    );
    expect(logSince(from)).not.toMatch(/initdb|won the initialisation race/);
    expect(await keysInEtcd()).toEqual([]);
    expect(dataDirEntries()).toEqual([]);
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
      dcs.max_timelines_history = 5;
      dcs.postgresql = { ...(dcs.postgresql as object), pg_ident: ['ops root postgres'] };
      dcs.check_timeline = true;
      (cfg.postgresql as Record<string, unknown>).before_stop = '/usr/local/bin/drain';
      (cfg.restapi as Record<string, unknown>).server_tokens = 'Minimal';
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
      'bootstrap.dcs.max_timelines_history',
      'bootstrap.dcs.postgresql.pg_ident',
      'postgresql.before_stop',
      'restapi.server_tokens',
    ])
      expect(count(text, `configuration: ${key}: not acted on by pgha; `), key).toBe(1);
    for (const key of ['max_timelines_history', 'postgresql.pg_ident'])
      expect(count(text, `dynamic configuration: ${key}: not acted on by pgha; `), key).toBe(1);
    expect(text).toContain(
      'configuration: bootstrap.dcs.max_timelines_history: not acted on by pgha; pgha keeps the whole timeline history in the history key',
    );
    expect(text).toContain(
      'configuration: postgresql.before_stop: not acted on by pgha; pgha stops PostgreSQL without running a script first',
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
});

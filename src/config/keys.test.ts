import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  dynamicProblems,
  newProblems,
  changedNotes,
  coveringKeyRow,
  DYNAMIC_KEYS,
  findKeyRow,
  keyNotes,
  LOCAL_KEYS,
  NoteMemory,
  type KeyRow,
  type KeySource,
} from './keys.js';
import { validateConfig } from './load.js';
import { parseDynamicConfig } from './schema.js';

/** Every key of Patroni 4.1's configuration, as `path: example`, in two sections. */
const FIXTURE = resolve(import.meta.dirname, '../../test/fixtures/config/patroni-keys.yml');
const listed = parse(readFileSync(FIXTURE, 'utf8')) as Record<KeySource, Record<string, unknown>>;

/** `{'a.b': 1, 'a.c': 2}` → `{a: {b: 1, c: 2}}`. */
function expand(flat: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [path, value] of Object.entries(flat)) {
    const segs = path.split('.');
    let cur = out;
    for (const s of segs.slice(0, -1)) cur = (cur[s] ??= {}) as Record<string, unknown>;
    cur[segs.at(-1)!] = value;
  }
  return out;
}

function valueAt(root: unknown, path: string): unknown {
  let cur = root;
  for (const s of path.split('.')) cur = (cur as Record<string, unknown> | undefined)?.[s];
  return cur;
}

/**
 * What the table says must happen to `path` in `root`: nothing (acted on), or a warning or refusal
 * naming the first key on the way down that is not acted on.
 */
function expected(
  source: KeySource,
  path: string,
  root: unknown,
): { kind: 'acted' | 'ignored' | 'refused'; at: string } {
  const segs = path.split('.');
  for (let n = 1; n <= segs.length; n++) {
    const at = segs.slice(0, n).join('.');
    const row = findKeyRow(source, at, root);
    if (!row) continue;
    if (row.status !== 'acted' && !row.unless?.test(valueAt(root, at))) return { kind: row.status, at };
    if (row.status === 'acted' && row.nested) {
      const inner = expected(row.nested, segs.slice(n).join('.'), valueAt(root, at));
      return { ...inner, at: `${at}.${inner.at}` };
    }
  }
  return { kind: 'acted', at: path };
}

const local = expand(listed.local);
const dynamic = expand(listed.dynamic);
// The file's bootstrap.dcs holds the whole dynamic configuration too.
(local.bootstrap as Record<string, unknown>).dcs = dynamic;

describe("the table covers Patroni 4.1's configuration (test/fixtures/config/patroni-keys.yml)", () => {
  it('has a row for every key Patroni knows', () => {
    const missing = (['local', 'dynamic'] as const).flatMap((source) =>
      Object.keys(listed[source])
        .filter((p) => !coveringKeyRow(source, p, source === 'local' ? local : dynamic))
        .map((p) => `${source}: ${p}`),
    );
    expect(missing).toEqual([]);
  });

  it('lists every row of the table in the fixture (pgha extensions and the catch-all aside)', () => {
    const used = new Set<KeyRow>();
    for (const source of ['local', 'dynamic'] as const) {
      const root = source === 'local' ? local : dynamic;
      for (const p of Object.keys(listed[source])) {
        const segs = p.split('.');
        for (let n = 1; n <= segs.length; n++) {
          const row = findKeyRow(source, segs.slice(0, n).join('.'), root);
          if (row) used.add(row);
        }
      }
    }
    // urls is pgha's; postgresql.* catches keys Patroni merges into each node's postgresql section.
    const unused = [...LOCAL_KEYS, ...DYNAMIC_KEYS]
      .filter((r) => !used.has(r) && !r.pgha && r.path !== 'postgresql.*' && !r.path.endsWith('.urls'))
      .map((r) => r.path);
    expect(unused).toEqual([]);
  });

  it('has no duplicate rows and says something in every row', () => {
    for (const rows of [LOCAL_KEYS, DYNAMIC_KEYS]) {
      const paths = rows.map((r) => r.path);
      expect(paths.filter((p, i) => paths.indexOf(p) !== i)).toEqual([]);
      for (const r of rows) {
        const text = r.status === 'acted' ? r.where : r.status === 'ignored' ? r.instead : r.why;
        expect(text.length, r.path).toBeGreaterThan(5);
      }
    }
  });

  describe('the local file: every key is acted on or named in a warning or refusal', () => {
    const result = validateConfig(local, 'patroni.yml', {});
    const said = [...result.warnings, ...(result.refusals ?? [])];
    const names = (p: string) => said.filter((w) => w.startsWith(`${p}:`) || w.startsWith(`${p} is set:`));

    it('loads without errors', () => {
      expect(result.errors).toEqual([]);
    });

    for (const path of [
      ...Object.keys(listed.local),
      ...Object.keys(listed.dynamic).map((p) => `bootstrap.dcs.${p}`),
    ]) {
      it(path, () => {
        const e = expected('local', path, local);
        if (e.kind === 'acted') {
          expect(names(path)).toEqual([]);
          return;
        }
        const list = e.kind === 'refused' ? (result.refusals ?? []) : result.warnings;
        expect(
          list.filter((w) => w.startsWith(e.kind === 'refused' ? `${e.at} is set:` : `${e.at}:`)),
        ).toHaveLength(1);
      });
    }
  });

  describe('the dynamic configuration in etcd: every key is acted on or noted', () => {
    const notes = keyNotes(dynamic, 'dynamic');

    it('is valid', () => {
      expect(parseDynamicConfig(dynamic).errors).toEqual([]);
      expect(notes.filter((n) => n.kind === 'unknown')).toEqual([]);
    });

    for (const path of Object.keys(listed.dynamic)) {
      it(path, () => {
        const e = expected('dynamic', path, dynamic);
        if (e.kind === 'acted') expect(notes.filter((n) => n.path === path)).toEqual([]);
        else expect(notes.filter((n) => n.path === e.at).map((n) => n.kind)).toEqual([e.kind]);
      });
    }
  });
});

describe('keyNotes', () => {
  it('acts on standby_cluster, custom methods and the tags of cascading, without a word', () => {
    const cfg = {
      bootstrap: {
        dcs: { standby_cluster: { host: '10.0.0.1', port: 5432, create_replica_methods: ['restore'] } },
        method: 'restore',
        restore: { command: 'x', recovery_conf: { restore_command: 'cp %f %p' } },
        users: { admin: { password: 'x', options: ['createdb'] } },
        post_bootstrap: 'true',
      },
      postgresql: { create_replica_methods: ['restore'], restore: { command: 'x', no_leader: true } },
      tags: { clonefrom: true, replicatefrom: 'n1', nostream: true },
    };
    expect(keyNotes(cfg, 'local')).toEqual([]);
    expect(keyNotes({ standby_cluster: { restore_command: 'cp /a/%f %p' } }, 'dynamic')).toEqual([]);
  });

  it('lets values pgha handles as Patroni does pass without a word', () => {
    const quiet = {
      standby_cluster: { primary_slot_name: 'x' }, // no host, port or restore_command: no standby (Patroni's rule)
      slots: {},
      ignore_slots: [],
      max_timelines_history: 0,
      maximum_lag_on_syncnode: -1,
      primary_race_backoff: 0,
      member_slots_ttl: null,
      check_timeline: true,
      pause: true,
      fast_failover: false,
      move_etcd_leader: false,
    };
    expect(keyNotes(quiet, 'dynamic')).toEqual([]);
    const file = {
      bootstrap: { method: 'initdb', initdb: ['data-checksums'], users: {}, post_bootstrap: '' },
      postgresql: { create_replica_methods: ['basebackup'], use_unix_socket_repl: false },
      tags: { clonefrom: false, nostream: false, custom: 'x' },
      etcd3: { use_proxies: true },
      log: { deduplicate_heartbeat_logs: true },
    };
    expect(keyNotes(file, 'local')).toEqual([]);
  });

  it('notes one warning for a whole section, not one per key in it', () => {
    const notes = keyNotes(
      { consul: { host: 'h:8500', token: 't' }, postgresql: { bin_name: { pg_ctl: 'x' } } },
      'local',
    );
    expect(notes.map((n) => n.path)).toEqual(['consul', 'postgresql.bin_name']);
    expect(notes[0]!.message).toBe(
      "consul: not acted on by pgha; pgha keeps the cluster's state in etcd only (the etcd3 section); this section is not read",
    );
  });

  it('knows a custom method section only when the method is named', () => {
    const named = {
      postgresql: { create_replica_methods: ['wal_g', 'basebackup'], wal_g: { command: 'x' } },
    };
    expect(findKeyRow('local', 'postgresql.wal_g', named)?.status).toBe('acted');
    // Not named: the schema reports postgresql.wal_g as an unknown key instead.
    expect(findKeyRow('local', 'postgresql.wal_g', { postgresql: {} })).toBeUndefined();
    const boot = { bootstrap: { method: 'restore', restore: { command: 'x' } } };
    expect(keyNotes(boot, 'local')).toEqual([]);
  });

  it('reports unknown keys of the dynamic configuration, and local postgresql keys put there', () => {
    const notes = keyNotes(
      { ttl: 30, colour: 'red', postgresql: { use_slots: true, callbacks: {} } },
      'dynamic',
    );
    expect(notes.map((n) => [n.path, n.kind])).toEqual([
      ['colour', 'unknown'],
      ['postgresql.callbacks', 'ignored'],
    ]);
    expect(notes[0]!.message).toBe('colour: unknown key, ignored');
  });

  it('acts on the TLS settings of each PostgreSQL role', () => {
    const notes = keyNotes(
      { postgresql: { authentication: { superuser: { username: 'postgres', sslmode: 'require' } } } },
      'local',
    );
    expect(notes).toEqual([]);
  });
});

describe('NoteMemory: a key read every cycle is reported when it appears or changes', () => {
  it('reports new and changed keys once', () => {
    const memory = new NoteMemory();
    const notes = (v: Record<string, unknown>) => keyNotes(v, 'dynamic');
    expect(memory.fresh(notes({ max_timelines_history: 5 })).map((n) => n.path)).toEqual([
      'max_timelines_history',
    ]);
    expect(memory.fresh(notes({ max_timelines_history: 5 }))).toEqual([]);
    const both = { max_timelines_history: 5, primary_race_backoff: 1 };
    expect(memory.fresh(notes(both)).map((n) => n.path)).toEqual(['primary_race_backoff']);
    expect(memory.fresh(notes({ ...both, primary_race_backoff: 2 })).map((n) => n.path)).toEqual([
      'primary_race_backoff',
    ]);
    expect(memory.fresh(notes({}))).toEqual([]);
    expect(memory.fresh(notes({ primary_race_backoff: 2 })).map((n) => n.path)).toEqual([
      'primary_race_backoff',
    ]);
  });

  it('changedNotes compares two configurations', () => {
    const before = keyNotes({ max_timelines_history: 5 }, 'dynamic');
    const after = keyNotes({ max_timelines_history: 5, primary_race_backoff: 1 }, 'dynamic');
    expect(changedNotes(before, after).map((n) => n.path)).toEqual(['primary_race_backoff']);
  });
});

describe('dynamicProblems and newProblems: what an edit of the dynamic configuration is refused for', () => {
  const cases: Array<{
    what: string;
    before: Record<string, unknown>;
    after: Record<string, unknown>;
    want: string[];
  }> = [
    { what: 'a valid change', before: { ttl: 30 }, after: { ttl: 20 }, want: [] },
    {
      what: 'a value the agents could not use',
      before: { ttl: 30 },
      after: { ttl: 'abc' },
      want: ['ttl: expected a number, got "abc"'],
    },
    {
      what: 'a problem the stored configuration already had is not blamed on the edit',
      before: { ttl: 'abc' },
      after: { ttl: 'abc', loop_wait: 5 },
      want: [],
    },
    {
      what: 'an edit that mends one problem and adds another',
      before: { ttl: 'abc' },
      after: { ttl: 30, synchronous_mode: 'sometimes' },
      want: ['synchronous_mode: expected true, false or quorum, got "sometimes"'],
    },
  ];
  it.each(cases)('$what', ({ before, after, want }) => {
    expect(newProblems(dynamicProblems(before), dynamicProblems(after))).toEqual(want);
  });
});

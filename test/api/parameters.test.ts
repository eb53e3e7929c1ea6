/**
 * PostgreSQL parameters on a real two-node cluster (etcd, `pgha agent` processes, PostgreSQL 15):
 * PUT/PATCH /config and `pgha ctl edit-config` refuse values PostgreSQL would refuse and write
 * nothing; a bad value written straight into the etcd `config` key (as a Patroni tool could) is
 * dropped with a warning and PostgreSQL still restarts; `wal_keep_segments` becomes `wal_keep_size`.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { CLI, SCOPE, startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

let c: TestCluster;
let dcs: EtcdDcs;

beforeAll(async () => {
  c = await startCluster({
    nodes: 2,
    edit: (cfg) => {
      // Leave max_connections and wal_keep_size to the dynamic configuration, which these tests edit.
      const local = (cfg.postgresql as { parameters: Record<string, unknown> }).parameters;
      delete local.max_connections;
      const dyn = (cfg.bootstrap as { dcs: { postgresql: { parameters: Record<string, unknown> } } }).dcs;
      delete dyn.postgresql.parameters.wal_keep_size;
    },
  });
  dcs = new EtcdDcs({ hosts: c.etcd.endpoints, namespace: '/service/', scope: SCOPE, name: 'tool', ttl: 10 });
  for (const n of c.nodes) c.startAgent(n.name);
  await c.waitHealthy(1, 90_000);
});

afterAll(async () => {
  await dcs?.close({ revokeLease: false }).catch(() => undefined);
  await c?.stop();
});

async function api(name: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`http://127.0.0.1:${c.node(name).apiPort}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    signal: AbortSignal.timeout(90_000),
  });
  return { status: res.status, text: await res.text() };
}

async function roles(): Promise<{ leader: string; replica: string }> {
  const s = await c.waitHealthy(1);
  const leader = s.leader!.name;
  return { leader, replica: c.nodes.find((n) => n.name !== leader)!.name };
}

async function show(name: string, setting: string): Promise<string> {
  const rows = await c.query<{ v: string }>(name, `SELECT current_setting('${setting}') AS v`);
  return rows[0]!.v;
}

function ctl(args: string[], config = c.nodes[0]!.configPath): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.PATRONICTL_CONFIG_FILE;
    const child = spawn(process.execPath, [CLI, 'ctl', '-c', config, ...args], { env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
    child.stdin.end();
  });
}

async function configKey() {
  const s = await c.readCluster();
  return { value: s.config!.value, modRevision: s.config!.modRevision };
}

describe('PostgreSQL parameters', () => {
  it('PUT and PATCH /config refuse max_connections "lots" with 400, write nothing, and a restart still works', async () => {
    const { leader, replica } = await roles();
    const before = await configKey();
    const put = await api(leader, 'PUT', '/config', {
      ...before.value,
      postgresql: { parameters: { max_connections: 'lots' } },
    });
    expect(put.status).toBe(400);
    expect(JSON.parse(put.text)).toEqual({
      error:
        "the configuration is invalid: postgresql.parameters.max_connections: invalid value 'lots': expected an integer",
    });
    const patch = await api(replica, 'PATCH', '/config', {
      postgresql: { parameters: { max_connections: 'lots', log_destination: 'nowhere' } },
    });
    expect(patch.status).toBe(400);
    const error = (JSON.parse(patch.text) as { error: string }).error;
    expect(error).toContain("postgresql.parameters.max_connections: invalid value 'lots'");
    // Caught by the binary's own check (a check hook), not by the parser.
    expect(error).toContain(
      `postgresql.parameters.log_destination: invalid value 'nowhere': PostgreSQL refuses it`,
    );
    expect(await configKey()).toEqual(before);

    expect(await api(replica, 'POST', '/restart', {})).toEqual({
      status: 200,
      text: 'restarted successfully',
    });
    await c.waitHealthy(1);
    expect(await show(replica, 'max_connections')).toBe('100');
  });

  it('a bad value written straight into etcd is dropped with a warning, and both nodes restart', async () => {
    const { leader, replica } = await roles();
    const before = await configKey();
    const params = (before.value.postgresql as { parameters: Record<string, unknown> }).parameters;
    const res = await dcs.setConfig({
      ...before.value,
      postgresql: {
        ...(before.value.postgresql as object),
        parameters: { ...params, max_connections: 'lots', log_destination: 'nowhere', wal_levle: 'logical' },
      },
    });
    expect(res.ok).toBe(true);

    expect(await api(replica, 'POST', '/restart', {})).toEqual({
      status: 200,
      text: 'restarted successfully',
    });
    // The agent applies the new configuration when its watch delivers it (a reload, or the restart).
    const wanted = [
      "ignoring postgresql parameter max_connections: invalid value 'lots': expected an integer",
      "ignoring postgresql parameter log_destination: invalid value 'nowhere'",
      'ignoring postgresql parameter wal_levle: PostgreSQL 15 has no such parameter',
    ];
    await waitFor(
      'the dropped parameters named in the replica log',
      () => Promise.resolve(wanted.every((w) => readFileSync(c.node(replica).logPath, 'utf8').includes(w))),
      30_000,
    ).catch((e: Error) => {
      throw new Error(
        `${e.message}\n${readFileSync(c.node(replica).logPath, 'utf8')
          .split('\n')
          .filter((l) => /max_conn|ignor|lots|WARN|ERROR/.test(l))
          .slice(-15)
          .join('\n')}`,
      );
    });

    const restart = await ctl(['restart', SCOPE, leader, '--force']);
    expect(restart, restart.out).toMatchObject({ code: 0 });
    expect(restart.out).toContain(`Success: restart on member ${leader}`);
    await c.waitHealthy(1);
    for (const n of [leader, replica]) {
      expect(await show(n, 'max_connections')).toBe('100');
      expect(await show(n, 'log_destination')).toBe('stderr');
    }
    expect(readFileSync(c.node(leader).logPath, 'utf8')).toContain(
      "ignoring postgresql parameter max_connections: invalid value 'lots'",
    );
  });

  it('wal_keep_segments: 8 in the dynamic configuration runs as wal_keep_size = 128MB', async () => {
    const { leader } = await roles();
    for (const n of c.nodes) expect(await show(n.name, 'wal_keep_size')).toBe('0');
    // The bad values left by the previous test are not blamed on this edit, which also removes them.
    const res = await api(leader, 'PATCH', '/config', {
      postgresql: {
        parameters: { wal_keep_segments: 8, max_connections: null, log_destination: null, wal_levle: null },
      },
    });
    expect(res.status).toBe(200);
    for (const n of c.nodes) {
      await waitFor(
        `wal_keep_size on ${n.name}`,
        async () => (await show(n.name, 'wal_keep_size')) === '128MB',
        30_000,
      );
      expect(readFileSync(n.logPath, 'utf8')).toContain(
        "postgresql parameter converted: wal_keep_segments = '8' → wal_keep_size = '128MB'",
      );
    }
  });

  it('pgha ctl edit-config refuses a bad value with one line and exit code 1, writing nothing', async () => {
    const before = await configKey();
    const bad = await ctl(['edit-config', '-p', 'max_connections=lots', '--force']);
    expect(bad).toEqual({
      code: 1,
      out: "pgha: the configuration is invalid, nothing was changed: postgresql.parameters.max_connections: invalid value 'lots': expected an integer\n",
    });
    expect(await configKey()).toEqual(before);

    // The other keys are checked as PATCH /config checks them, binaries or not: the agents would
    // not use this value but fall back to the default (ttl 30) with a warning in their logs.
    expect(await ctl(['edit-config', '-s', 'ttl=abc', '--force'])).toEqual({
      code: 1,
      out: 'pgha: the configuration is invalid, nothing was changed: ttl: expected a number, got "abc"\n',
    });
    expect(await configKey()).toEqual(before);

    // Where there are no PostgreSQL binaries it says it could not check, and goes on.
    const elsewhere = parse(readFileSync(c.nodes[0]!.configPath, 'utf8')) as {
      postgresql: { bin_dir: string };
    };
    elsewhere.postgresql.bin_dir = '/nonexistent/bin';
    const path = `${c.base.dir}/no-binaries.yml`;
    writeFileSync(path, stringify(elsewhere));
    const unchecked = await ctl(['edit-config', '-p', 'work_mem=5MB', '--force', '--quiet'], path);
    expect(unchecked.code).toBe(0);
    expect(unchecked.out).toContain(
      'could not validate postgresql.parameters (no PostgreSQL binaries in /nonexistent/bin); the agents ignore values their PostgreSQL refuses',
    );
    expect(unchecked.out).toContain('Configuration changed');
    const after = await configKey();
    expect((after.value.postgresql as { parameters: Record<string, unknown> }).parameters.work_mem).toBe(
      '5MB',
    );
  });
});

/**
 * `pgha demo` as a user runs it: a three-node cluster on loopback behind a `pgha router`, ready in
 * under 60 s; a client connected to the router's port keeps its session across a switchover.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import pg from 'pg';
import { stopProcess } from '../src/util/process.js';
import { canBind } from './support/net.js';
import { waitFor } from './support/postgres.js';

const dir = mkdtempSync(join(tmpdir(), 'pgha-demo-test-'));

/**
 * A base port whose every derived port (PostgreSQL, etcd +2000, REST +3000, router +4000) is free
 * right now and below the kernel's ephemeral range (32768+), where an outgoing connection could
 * take one between this check and the demo's bind.
 */
async function demoBasePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20000 + Math.floor(Math.random() * (32768 - 4003 - 20000));
    const ports = [0, 1, 2, 2000, 2001, 3000, 3001, 3002, 4000, 4001, 4002].map((d) => base + d);
    if ((await Promise.all(ports.map((p) => canBind(p)))).every(Boolean)) return base;
  }
  throw new Error('no free port range for the demo');
}

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

it('pgha demo reaches one leader and two streaming replicas in under 60 s, then stops cleanly', async () => {
  const base = await demoBasePort();
  const started = Date.now();
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['dist/cli.js', 'demo', '--dir', dir, '--base-port', String(base), '--exit-when-ready'],
    { timeout: 120_000 },
  );
  const m = /cluster "demo" is up in ([\d.]+) s: leader (pg\d), 2 streaming replica\(s\)/.exec(stdout);
  expect(m, stdout).not.toBeNull();
  expect(Number(m![1])).toBeLessThan(60);
  expect(stdout).toContain(`psql "host=127.0.0.1 port=${base + 4000} `);
  expect(stdout).toContain('stopped.');
  expect(Date.now() - started).toBeLessThan(120_000);
});

it('a session on the router port survives pgha ctl switchover', async () => {
  const base = await demoBasePort();
  const runDir = mkdtempSync(join(tmpdir(), 'pgha-demo-switch-'));
  const demo = spawn(
    process.execPath,
    ['dist/cli.js', 'demo', '--dir', runDir, '--base-port', String(base)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  demo.stdout.on('data', (d: Buffer) => (out += d.toString()));
  demo.stderr.on('data', (d: Buffer) => (out += d.toString()));
  let client: pg.Client | null = null;
  try {
    await waitFor('the demo to be ready', () => Promise.resolve(out.includes('press Ctrl-C')), 120_000).catch(
      (e: Error) => {
        throw new Error(`${e.message}\n${out}`);
      },
    );
    const password = /password=(\S+) dbname/.exec(out)![1]!;
    const leader = /leader (pg\d)/.exec(out)![1]!;
    client = new pg.Client({
      host: '127.0.0.1',
      port: base + 4000,
      user: 'postgres',
      password,
      database: 'postgres',
    });
    await client.connect();
    await client.query("SET application_name = 'kept'");
    const before = await client.query<{ port: number }>('SELECT inet_server_port() AS port');
    const sw = await promisify(execFile)(
      process.execPath,
      ['dist/cli.js', 'ctl', '-c', join(runDir, 'pg1.yml'), 'switchover', '--leader', leader, '--force'],
      { timeout: 120_000 },
    );
    expect(sw.stdout).toMatch(/Successfully switched over/);
    await waitFor(
      'the session to reach the new primary',
      async () => {
        const r = await client!.query<{ port: number; ro: boolean; app: string }>(
          "SELECT inet_server_port() AS port, pg_is_in_recovery() AS ro, current_setting('application_name') AS app",
        );
        return r.rows[0]!.port !== before.rows[0]!.port && !r.rows[0]!.ro ? r.rows[0] : null;
      },
      60_000,
    ).then((row) => expect(row.app).toBe('kept'));
  } finally {
    await client?.end().catch(() => undefined);
    await stopProcess(demo, 'SIGINT', 120_000);
    rmSync(runDir, { recursive: true, force: true });
  }
  expect(out).toContain('stopped.');
}, 300_000);

/**
 * `pgha router` on a port another process holds: one line that names the setting, the address and
 * what to do, exit status 1 — not an "unexpected error" with a stack trace — for each of its three
 * listeners.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../support/net.js';

const dir = mkdtempSync(join(tmpdir(), 'pgha-router-listen-'));
const config = join(dir, 'router.yml');
let busy: Server;
let busyPort = 0;

beforeAll(async () => {
  // etcd is never reached: the router listens before it reads the cluster.
  writeFileSync(config, 'scope: demo\nname: r1\netcd3:\n  hosts: 127.0.0.1:9\nlog:\n  level: ERROR\n');
  busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const a = busy.address();
  busyPort = typeof a === 'object' && a ? a.port : 0;
});

afterAll(async () => {
  await new Promise((r) => busy.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function router(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['dist/cli.js', 'router', config, ...args],
      { timeout: 30_000 },
      (err, _stdout, stderr) => resolve({ code: err ? (err.code as number | null) : 0, stderr }),
    );
  });
}

it.each([
  { flag: '--listen', setting: 'router.listen' },
  { flag: '--replica-listen', setting: 'router.replica_listen' },
  { flag: '--status-listen', setting: 'router.status_listen' },
])('$setting on a port in use: a clear error, exit 1', async ({ flag, setting }) => {
  const others = ['--listen', '--replica-listen', '--status-listen'].filter((f) => f !== flag);
  const args = [flag, `127.0.0.1:${busyPort}`];
  for (const f of others) args.push(f, `127.0.0.1:${await freePort()}`);
  const { code, stderr } = await router(args);
  expect(stderr).not.toMatch(/unexpected error|at Server\./);
  expect(stderr).toContain(
    `pgha: ${setting}: cannot listen on 127.0.0.1:${busyPort}: address already in use`,
  );
  expect(stderr).toMatch(/another process holds it: stop it, or choose another port/);
  expect(code).toBe(1);
});

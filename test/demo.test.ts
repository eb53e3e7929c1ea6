/** `pgha demo` as a user runs it: a three-node cluster on loopback, ready in under 60 s. */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { createServer } from 'node:net';

const dir = mkdtempSync(join(tmpdir(), 'pgha-demo-test-'));

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A base port whose every derived port (PostgreSQL, etcd, REST) is free right now. */
async function demoBasePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20000 + Math.floor(Math.random() * 9000);
    const ports = [0, 1, 2, 2000, 2001, 3000, 3001, 3002].map((d) => base + d);
    if ((await Promise.all(ports.map(canBind))).every(Boolean)) return base;
  }
  throw new Error('no free port range for the demo');
}

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

it('pgha demo reaches one leader and two streaming replicas in under 60 s, then stops cleanly', async () => {
  // Three PostgreSQL ports from a base below the kernel's ephemeral range (32768+), where outgoing
  // connections cannot hold them; the REST (+3000) and etcd (+2000) ports derive from it.
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
  expect(stdout).toContain('psql "host=127.0.0.1');
  expect(stdout).toContain('stopped.');
  expect(Date.now() - started).toBeLessThan(120_000);
});

/** `pgha demo` as a user runs it: a three-node cluster on loopback, ready in under 60 s. */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { freePorts } from './support/net.js';

const dir = mkdtempSync(join(tmpdir(), 'pgha-demo-test-'));

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

it('pgha demo reaches one leader and two streaming replicas in under 60 s, then stops cleanly', async () => {
  // Three PostgreSQL ports from a free base; REST and etcd ports derive from it.
  const [base] = await freePorts(1);
  const started = Date.now();
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      'dist/cli.js',
      'demo',
      '--dir',
      dir,
      '--base-port',
      String((base! % 20000) + 20000),
      '--exit-when-ready',
    ],
    { timeout: 120_000 },
  );
  const m = /cluster "demo" is up in ([\d.]+) s: leader (pg\d), 2 streaming replica\(s\)/.exec(stdout);
  expect(m, stdout).not.toBeNull();
  expect(Number(m![1])).toBeLessThan(60);
  expect(stdout).toContain('psql "host=127.0.0.1');
  expect(stdout).toContain('stopped.');
  expect(Date.now() - started).toBeLessThan(120_000);
});

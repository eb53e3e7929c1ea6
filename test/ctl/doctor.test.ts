/**
 * `pgha ctl doctor` and the agent's start-up warnings, end to end: a cluster on a two-member etcd
 * (no majority when either member is lost) gets the quorum finding from both; a configuration
 * whose REST API listens beyond loopback without authentication gets the open-API finding; a
 * healthy cluster on three etcd members gets nothing to fix. `ctl list` and `topology` add the
 * quorum finding on stderr after the table.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

let c: TestCluster | null = null;

afterEach(async () => {
  await c?.stop();
  c = null;
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function ctl(cfg: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.PATRONICTL_CONFIG_FILE;
    const child = spawn(process.execPath, [CLI, 'ctl', '-c', cfg, ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const doctor = (cfg: string) => ctl(cfg, 'doctor');

describe('set-up checks', () => {
  it('a two-member etcd: the agent warns at start, doctor reports the quorum and an open REST API', async () => {
    c = await startCluster({ nodes: 1, etcdMembers: 2 });
    const n = c.nodes[0]!;
    c.startAgent(n.name);
    await c.waitHealthy(0, 60_000);
    const line = await waitFor(
      'the etcd quorum warning in the agent log',
      () =>
        Promise.resolve(
          readFileSync(n.logPath, 'utf8')
            .split('\n')
            .find((l) => l.includes('etcd-quorum')) ?? null,
        ),
      15_000,
    );
    expect(line).toMatch(/WARN.*etcd has 2 members \(etcd0, etcd1\).*Fix: add a third etcd member/);
    // Listening on loopback: no REST warning.
    expect(readFileSync(n.logPath, 'utf8')).not.toContain('rest-open');

    const r = await doctor(n.configPath);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    // On a loaded machine a member may miss the status deadline: that adds a line, not this one.
    expect(lines).toContainEqual(
      expect.stringMatching(/^etcd-quorum: etcd has 2 members .*less available than one\. Fix: /),
    );
    expect(lines.every((l) => l.startsWith('etcd-quorum: '))).toBe(true);
    expect(r.code).toBe(1);

    // ctl list and topology: the table on stdout as patronictl prints it, the finding on stderr.
    for (const view of ['list', 'topology']) {
      const l = await ctl(n.configPath, view);
      expect(l.code).toBe(0);
      expect(l.stdout).toContain(`| ${n.name} `);
      expect(l.stdout).not.toContain('etcd-quorum');
      expect(l.stderr).toMatch(
        / - WARNING - etcd-quorum: etcd has 2 members \(etcd0, etcd1\).*Fix: add a third/,
      );
    }

    // The same configuration listening on every address, without authentication (never started).
    const open = parse(readFileSync(n.configPath, 'utf8')) as { restapi: Record<string, unknown> };
    open.restapi.listen = `0.0.0.0:${n.apiPort}`;
    const openPath = n.configPath.replace(/\.yml$/, '-open.yml');
    writeFileSync(openPath, stringify(open));
    const r2 = await doctor(openPath);
    expect(r2.stdout).toMatch(
      /^rest-open: the REST API listens on 0\.0\.0\.0 port \d+ without authentication/m,
    );
  }, 110_000);

  it('a healthy cluster on three etcd members: nothing to fix', async () => {
    c = await startCluster({ nodes: 2, etcdMembers: 3 });
    for (const n of c.nodes) c.startAgent(n.name);
    await c.waitHealthy(1, 90_000);
    const r = await doctor(c.nodes[0]!.configPath);
    expect({ out: r.stdout.trim(), err: r.stderr, code: r.code }).toEqual({
      out: 'nothing to fix',
      err: '',
      code: 0,
    });
    for (const n of c.nodes) expect(readFileSync(n.logPath, 'utf8')).not.toMatch(/etcd-quorum|rest-open/);
    const l = await ctl(c.nodes[0]!.configPath, 'list');
    expect([l.code, l.stderr]).toEqual([0, '']);
  }, 110_000);
});

/**
 * The doc's etcd files form a working three-member cluster: /etc/default/etcd of catalog01, made
 * into catalog02's and dirtoha's as docs/bacula.md says, each "machine" on its own loopback address
 * (127.X.Y.151, .152, .180 for 192.168.1.151, ...), Debian's etcd started with only that
 * environment. The nodes' etcd3 hosts are the members' client URLs.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { run, startProcess, stopProcess } from '../../src/util/process.js';
import { waitFor } from '../support/postgres.js';
import { fixture } from './debian.js';

const started: ChildProcess[] = [];
const dir = mkdtempSync('/tmp/pgha-bacula-etcd-');

afterAll(async () => {
  for (const c of started) await stopProcess(c, 'SIGTERM', 10_000);
  rmSync(dir, { recursive: true, force: true });
});

/** KEY=value lines of an environment file (comments and blank lines skipped). */
function envFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

it('starts a three-member etcd from the doc files, the members the nodes list in etcd3.hosts', async () => {
  // A per-run /24 of loopback addresses, so two runs on one machine do not meet.
  const net = `127.${(process.pid >> 8) & 255}.${process.pid & 255}`;
  const machines = [
    { name: 'db1', ip: '192.168.1.151' },
    { name: 'db2', ip: '192.168.1.152' },
    { name: 'db3', ip: '192.168.1.180' },
  ];
  const doc = fixture('etcd-catalog01.env');
  const members = machines.map(({ name, ip }) => {
    // The doc's change for the other machines: their own name and address in the first five settings.
    const lines = doc.split('\n');
    const first = lines.findIndex((l) => l.startsWith('ETCD_NAME='));
    for (let i = first; i < first + 5; i++)
      lines[i] = lines[i]!.replace('ETCD_NAME=db1', `ETCD_NAME=${name}`).replaceAll('192.168.1.151', ip);
    const env = envFile(lines.join('\n').replaceAll('192.168.1.', `${net}.`));
    env.ETCD_DATA_DIR = join(dir, name);
    return env;
  });
  for (const env of members) {
    const child = startProcess('/usr/bin/etcd', [], { env: { PATH: process.env.PATH, ...env } });
    child.stdout?.resume();
    child.stderr?.resume();
    started.push(child);
  }
  const endpoints = members.map((m) => m.ETCD_ADVERTISE_CLIENT_URLS!).join(',');
  await waitFor(
    'three healthy etcd members',
    async () => {
      const r = await run('/usr/bin/etcdctl', ['--endpoints', endpoints, 'endpoint', 'health'], {
        env: { ...process.env, ETCDCTL_API: '3' },
        timeoutMs: 10_000,
      });
      return r.code === 0 && (r.stdout + r.stderr).match(/is healthy/g)?.length === 3;
    },
    30_000,
  );
  const list = await run('/usr/bin/etcdctl', ['--endpoints', endpoints, 'member', 'list'], {
    env: { ...process.env, ETCDCTL_API: '3' },
    timeoutMs: 10_000,
  });
  const names = list.stdout
    .trim()
    .split('\n')
    .map((l) => l.split(', ')[2]);
  expect(names.sort()).toEqual(['db1', 'db2', 'db3']);

  const urls = members.map((m) =>
    m.ETCD_ADVERTISE_CLIENT_URLS!.replace('http://', '').replaceAll(net, '192.168.1'),
  );
  for (const file of ['catalog01.yml', 'catalog.yml']) {
    const yml = parse(fixture(file)) as { etcd3: { hosts: string[] } };
    expect(yml.etcd3.hosts, file).toEqual(urls);
  }
});

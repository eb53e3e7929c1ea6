/**
 * `pgha vip` on a small lab without PostgreSQL: one etcd, two nodes, a client. The test holds the
 * `leader` key itself (as an agent would) and moves it; the VIP follows, and the takeover is
 * announced so the client's neighbour entry for the VIP points at the new node without the client
 * sending anything: gratuitous ARP for IPv4, the kernel's unsolicited neighbour advertisement for
 * IPv6. Also: the one-line errors for a wrong interface and a bad address.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { stopProcess } from '../../src/util/process.js';
import { CLI } from '../support/cluster.js';
import { createNetLab, type LabHost, type NetLab } from '../support/netns.js';
import { waitFor } from '../support/postgres.js';

let lab: NetLab;
let dir: string;
let etcd: ChildProcess;
const children: ChildProcess[] = [];
const holders: EtcdDcs[] = [];
let endpoint = '';

function writeConfig(node: string, vip: Record<string, unknown>): string {
  const path = join(dir, `${node}-${String(vip.address).replaceAll(':', '_')}.yml`);
  writeFileSync(
    path,
    stringify({ scope: 'demo', namespace: '/service/', name: node, etcd3: { hosts: [endpoint] }, vip }),
  );
  return path;
}

function startVip(node: string, vip: Record<string, unknown>): ChildProcess {
  const config = writeConfig(node, vip);
  const child = lab.host(node).spawn(process.execPath, [CLI, 'vip', config]);
  const log = createWriteStream(config.replace(/\.yml$/, '.log'));
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  children.push(child);
  return child;
}

let keeper: NodeJS.Timeout | null = null;

/** Makes `node` the holder of the leader key, and keeps its lease alive as its agent would. */
async function lead(node: string): Promise<void> {
  if (keeper) clearInterval(keeper);
  for (const h of holders.splice(0)) await h.close({ revokeLease: true });
  const dcs = new EtcdDcs({ hosts: [endpoint], namespace: '/service/', scope: 'demo', name: node, ttl: 10 });
  holders.push(dcs);
  expect(await dcs.attemptToAcquireLeader()).toBe(true);
  keeper = setInterval(() => void dcs.updateLeader().catch(() => undefined), 2000);
}

async function mac(h: LabHost): Promise<string> {
  const [l] = JSON.parse(await h.ip('-j', 'link', 'show', 'dev', h.iface)) as Array<{ address: string }>;
  return l!.address;
}

/** The client's neighbour entry for `address` (lladdr), or null. */
async function neighbour(address: string): Promise<string | null> {
  const c = lab.host('client');
  const entries = JSON.parse(await c.ip('-j', 'neigh', 'show', address, 'dev', c.iface)) as Array<{
    lladdr?: string;
  }>;
  return entries[0]?.lladdr ?? null;
}

/** A TCP connection attempt from the client, so it resolves the VIP's link-layer address. */
async function touch(address: string): Promise<void> {
  const code = `const s = require('net').connect({ host: process.argv[1], port: 9 });
    s.on('error', () => {}); s.on('connect', () => s.destroy()); setTimeout(() => process.exit(0), 500);`;
  await lab.host('client').exec(process.execPath, ['-e', code, address]);
}

beforeAll(async () => {
  lab = await createNetLab({ hosts: ['n1', 'n2', 'client'] });
  dir = mkdtempSync('/tmp/pgha-vip-');
  const e = lab.host('n1');
  endpoint = `${e.address}:2379`;
  etcd = e.spawn('/usr/bin/etcd', [
    '--name',
    'e1',
    '--data-dir',
    join(dir, 'etcd'),
    '--listen-client-urls',
    `http://${e.address}:2379`,
    '--advertise-client-urls',
    `http://${e.address}:2379`,
    '--listen-peer-urls',
    `http://127.0.0.1:2380`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:2380`,
    '--initial-cluster',
    'e1=http://127.0.0.1:2380',
    '--log-level',
    'warn',
    '--logger',
    'zap',
  ]);
  etcd.stdout?.resume();
  etcd.stderr?.resume();
  await waitFor(
    'etcd',
    async () => (await fetch(`http://${endpoint}/health`, { signal: AbortSignal.timeout(1000) })).ok,
    30_000,
    100,
  );
  await lead('n1');
});

afterAll(async () => {
  if (keeper) clearInterval(keeper);
  await Promise.all(children.map((c) => stopProcess(c, 'SIGTERM', 5000)));
  for (const h of holders) await h.close({ revokeLease: true }).catch(() => undefined);
  if (etcd) await stopProcess(etcd, 'SIGTERM', 3000);
  await lab?.cleanup();
  if (!dir) return;
  if (process.env.PGHA_TEST_LOGS)
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.log')))
      console.log(`--- ${f}\n${readFileSync(join(dir, f), 'utf8')}`);
  rmSync(dir, { recursive: true, force: true });
});

describe('pgha vip announces takeovers', () => {
  it('follows the leader key; the client learns the new MAC from the announcement (IPv4 and IPv6)', async () => {
    const v4 = lab.spareAddress(0);
    const v6 = lab.spareAddress6(0);
    for (const node of ['n1', 'n2']) {
      startVip(node, { address: v4, prefix: 24, interface: 'eth0', check_interval: 0.5 });
      startVip(node, { address: v6, prefix: 64, interface: 'eth0', check_interval: 0.5 });
    }
    const on = (address: string, node: string) =>
      waitFor(
        `${address} on ${node} only`,
        () =>
          Promise.resolve(
            lab.host(node).localAddresses().has(address) &&
              !lab
                .host(node === 'n1' ? 'n2' : 'n1')
                .localAddresses()
                .has(address),
          ),
        60_000,
        20,
      );
    await on(v4, 'n1');
    await on(v6, 'n1');
    // The client talks to the VIPs once: its neighbour entries point at n1.
    await waitFor(
      'IPv6 DAD on n1',
      async () => !(await lab.host('n1').ip('-6', 'addr', 'show', 'tentative')).includes(v6),
      10_000,
      100,
    );
    await touch(v4);
    await touch(v6);
    const [mac1, mac2] = [await mac(lab.host('n1')), await mac(lab.host('n2'))];
    expect(await neighbour(v4)).toBe(mac1);
    expect(await neighbour(v6)).toBe(mac1);

    await lead('n2');
    await on(v4, 'n2');
    await on(v6, 'n2');
    // No traffic from the client: only the announcements can have changed its entries.
    await waitFor(
      `the client's ARP entry for ${v4} to name n2`,
      async () => (await neighbour(v4)) === mac2,
      5000,
      100,
    );
    await waitFor(
      `the client's neighbour entry for ${v6} to name n2`,
      async () => (await neighbour(v6)) === mac2,
      5000,
      100,
    );
  });

  it('says in one line what is wrong: an unknown interface, a bad address', async () => {
    const run = async (vip: Record<string, unknown>) => {
      const child = lab.host('n1').spawn(process.execPath, [CLI, 'vip', writeConfig('n1', vip)]);
      let err = '';
      child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
      child.stdout?.resume();
      const [code] = (await once(child, 'exit')) as [number];
      return { code, err: err.trim() };
    };
    expect(await run({ address: lab.spareAddress(5), interface: 'eth9' })).toEqual({
      code: 1,
      err: 'pgha: vip.interface: no network interface "eth9" on this host (there are: lo, eth0)',
    });
    const bad = await run({ address: '10.0.0.256', interface: 'eth0' });
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/vip\.address: expected an IPv4 or IPv6 address, got "10\.0\.0\.256"$/);
  });
});

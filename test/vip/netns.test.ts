/**
 * The network lab itself (test/support/netns.ts): hosts reach each other and the test process over
 * the bridge, nothing else; partitions drop silently or reject, heal undoes them, a pulled link
 * cuts a host, and cleanup leaves no namespace, veth or bridge behind.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopProcess } from '../../src/util/process.js';
import { createNetLab, type LabHost, type NetLab } from '../support/netns.js';

let lab: NetLab;
let server: ChildProcess;
const PORT = 7070;

/** From inside `from`, connects to `address:PORT`; resolves to what happened within `timeoutMs`. */
async function probe(from: LabHost, address: string, timeoutMs = 1500): Promise<string> {
  const code = `
    const s = require('net').connect({ host: process.argv[1], port: ${PORT} });
    const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, ${timeoutMs});
    s.on('data', (d) => { console.log('ok:' + d); clearTimeout(t); s.destroy(); });
    s.on('error', (e) => { console.log('error:' + e.code); clearTimeout(t); });`;
  return (await from.exec(process.execPath, ['-e', code, address])).trim();
}

/** Connects from the test process itself (the root namespace). */
async function probeFromRunner(address: string): Promise<string> {
  const s = connect({ host: address, port: PORT, timeout: 1500 });
  try {
    const [d] = (await Promise.race([once(s, 'data'), once(s, 'timeout').then(() => ['timeout'])])) as [
      Buffer | string,
    ];
    return String(d);
  } finally {
    s.destroy();
  }
}

beforeAll(async () => {
  lab = await createNetLab({ hosts: ['a', 'b', 'c'] });
  server = lab
    .host('a')
    .spawn(process.execPath, [
      '-e',
      `require('net').createServer((s) => s.end('hi')).listen(${PORT}, '::', () => console.log('up'))`,
    ]);
  await once(server.stdout!, 'data');
});

afterAll(async () => {
  if (server) await stopProcess(server);
  await lab?.cleanup();
});

describe('createNetLab', () => {
  it('gives each host its address on one bridge, and the test process .1', async () => {
    const [a, b] = [lab.host('a'), lab.host('b')];
    expect(a.address).toMatch(/^10\.213\.\d+\.11$/);
    expect(b.address).toBe(a.address.replace(/11$/, '12'));
    expect(lab.runnerAddress).toBe(a.address.replace(/11$/, '1'));
    expect(await a.addresses()).toEqual([a.address, a.address6]);
    expect([...a.localAddresses()].filter((x) => !x.startsWith('fe80:')).sort()).toEqual(
      ['127.0.0.1', '::1', a.address, a.address6].sort(),
    );
    expect(a.ns).toContain(String(process.pid));
    expect(a.peer.length).toBeLessThanOrEqual(15);
    // lo is up, and there is no route out of the lab.
    expect(await a.exec('ip', ['-o', 'link', 'show', 'lo'])).toMatch(/UP/);
    expect(await a.exec('ip', ['route'])).not.toMatch(/default/);
  });

  it('hosts reach each other (IPv4 and IPv6) and the test process reaches them', async () => {
    const [a, b] = [lab.host('a'), lab.host('b')];
    expect(await probe(b, a.address)).toBe('ok:hi');
    expect(await probe(b, a.address6)).toBe('ok:hi');
    expect(await probeFromRunner(a.address)).toBe('hi');
    expect(await probe(b, '192.0.2.1')).toBe('error:ENETUNREACH');
  });

  it('partition drops silently, reject refuses at once, heal restores', async () => {
    const [a, b, c] = [lab.host('a'), lab.host('b'), lab.host('c')];
    await lab.partition(b, [a.address]);
    expect(await probe(b, a.address, 800)).toBe('timeout');
    expect(await probe(c, a.address)).toBe('ok:hi');
    await lab.heal(b);
    expect(await probe(b, a.address)).toBe('ok:hi');

    await lab.partition(b, [a.address], { mode: 'reject' });
    expect(await probe(b, a.address)).toMatch(/^error:E(ACCES|HOSTUNREACH)/);
    await lab.heal(b);
    expect(await probe(b, a.address)).toBe('ok:hi');

    await lab.split([a], [b, c]);
    expect(await probe(c, a.address, 800)).toBe('timeout');
    await Promise.all([a, b, c].map((h) => lab.heal(h)));
    expect(await probe(c, a.address)).toBe('ok:hi');
  });

  it('linkDown cuts the host off, linkUp reconnects it', async () => {
    const [a, b] = [lab.host('a'), lab.host('b')];
    await lab.linkDown(a);
    expect(await probe(b, a.address, 800)).toBe('timeout');
    await lab.linkUp(a);
    expect(await probe(b, a.address)).toBe('ok:hi');
  });

  it('cleanup removes every namespace, veth and the bridge, and kills what ran inside', async () => {
    const other = await createNetLab({ hosts: ['x', 'y'] });
    const sleeper = other.host('x').spawn('sleep', ['60']);
    await other.cleanup();
    await other.cleanup(); // idempotent
    if (sleeper.exitCode === null && sleeper.signalCode === null) await once(sleeper, 'exit');
    expect(sleeper.signalCode).toBe('SIGKILL');
    const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
    expect(namespaces).not.toContain(`pgha-${other.id}-`);
    expect(links).not.toContain(other.bridge);
    expect(links).not.toContain(other.host('x').peer);
  });
});

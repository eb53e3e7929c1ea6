/**
 * `pgha vip` on the seed's layout, in network namespaces: three nodes on one bridge, each with
 * etcd, a `pgha agent`, a `pgha router` on 5433 and two `pgha vip` processes — one VIP in router
 * mode (the seed's Keepalived tracking HAProxy: clients use VIP:5433) and one in leader mode
 * (clients use VIP:5432, straight to the primary) — plus a client namespace where two writers
 * insert through the VIPs and reconnect after errors. Through a switchover, a failover (kill -9 of
 * the leader's agent and postmaster), the death of the router holding the router VIP and a clean
 * stop of a `pgha vip`, the writers keep working, and `ip addr` sampled in every node namespace
 * never shows a VIP on two nodes.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopProcess } from '../../src/util/process.js';
import { NET_PORTS, startNetCluster, type NetCluster } from '../support/netns-cluster.js';
import { waitFor } from '../support/postgres.js';

const ROOT = join(import.meta.dirname, '..', '..');
const WRITER = join(import.meta.dirname, 'writer.ts');
const VIP_STATUS_PORT = { router: 8010, leader: 8011 };

interface WriterEvent {
  t: number;
  ok?: number;
  node?: string;
  connected?: string;
  err?: string;
}

/** A writer running in the client namespace, with every event it printed. */
class Writer {
  readonly events: WriterEvent[] = [];
  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as WriterEvent);
      } catch {
        // not ours
      }
    });
  }
  /** Waits for an acknowledged write after `since` (optionally served by `node`). */
  okAfter(since: number, node?: string, timeoutMs = 30_000): Promise<WriterEvent> {
    return waitFor(
      `${this.name}: a write after ${new Date(since).toISOString()}${node ? ` on ${node}` : ''} ` +
        `(last events: ${JSON.stringify(this.events.slice(-3))})`,
      () =>
        Promise.resolve(
          this.events.find((e) => e.ok !== undefined && e.t > since && (!node || e.node === node)),
        ),
      timeoutMs,
      50,
    );
  }
  /** Longest time between two acknowledged writes in [from, to]. */
  longestGap(from: number, to: number): number {
    const oks = this.events.filter((e) => e.ok !== undefined && e.t >= from && e.t <= to).map((e) => e.t);
    let gap = 0;
    for (let i = 1; i < oks.length; i++) gap = Math.max(gap, oks[i]! - oks[i - 1]!);
    return gap;
  }
}

let c: NetCluster;
let vipR = '';
let vipL = '';
const vips: Record<string, Record<'router' | 'leader', ChildProcess>> = {};
const writers: Writer[] = [];
let writerR: Writer;
let writerL: Writer;
let sampling = false;
let sampler: Promise<void> | null = null;
let samples = 0;
let samplingSince = 0;
/** Latest sample: which nodes have each VIP. */
let holders: Record<string, string[]> = {};
const violations: string[] = [];
const timings: Record<string, number> = {};

/**
 * Samples the local addresses of every node namespace (procfs, through each host's anchor process,
 * so a round takes microseconds) every 20 ms until stopped, and records any VIP seen on two nodes.
 */
async function sample(): Promise<void> {
  while (sampling) {
    const seen: Record<string, string[]> = { [vipR]: [], [vipL]: [] };
    for (const n of c.nodes) for (const a of n.host.localAddresses()) seen[a]?.push(n.name);
    for (const [vip, on] of Object.entries(seen))
      if (on.length > 1) violations.push(`${new Date().toISOString()} ${vip} on ${on.join(' and ')}`);
    holders = seen;
    samples++;
    await new Promise((r) => setTimeout(r, 20));
  }
}

function holderOf(vip: string): string | null {
  const on = holders[vip] ?? [];
  return on.length === 1 ? on[0]! : null;
}

/** Waits until `vip` is on exactly one node (satisfying `accept`), per the sampler. */
function waitHolder(vip: string, accept: (node: string) => boolean, what: string, timeoutMs = 30_000) {
  return waitFor(
    `${vip} ${what} (now on ${JSON.stringify(holders[vip])})`,
    () => {
      const h = holderOf(vip);
      return Promise.resolve(h !== null && accept(h) ? h : null);
    },
    timeoutMs,
    50,
  );
}

function startVip(node: string, mode: 'router' | 'leader'): ChildProcess {
  const cfg = c.config(node);
  cfg.vip = {
    address: mode === 'router' ? vipR : vipL,
    prefix: mode === 'router' ? 24 : 32,
    interface: 'eth0',
    mode,
    check_interval: 0.5,
    status_listen: `${c.node(node).address}:${VIP_STATUS_PORT[mode]}`,
  };
  const path = c.writeConfig(`${node}-vip-${mode}.yml`, cfg);
  return c.startCli(node, ['vip', path], `vip-${mode}`);
}

async function vipStatus(node: string, mode: 'router' | 'leader'): Promise<Record<string, unknown>> {
  const res = await fetch(`http://${c.node(node).address}:${VIP_STATUS_PORT[mode]}/status`, {
    signal: AbortSignal.timeout(2000),
  });
  return (await res.json()) as Record<string, unknown>;
}

function startWriter(name: string, host: string, port: number, table: string): Writer {
  const child = c.clients[0]!.spawn(
    process.execPath,
    ['--import', 'tsx', WRITER, host, String(port), table, '50'],
    {
      cwd: ROOT,
    },
  );
  child.stderr?.resume();
  const w = new Writer(name, child);
  writers.push(w);
  return w;
}

// The timeout is generous: three etcd members, three agents bootstrapping and cloning, and nine
// more Node.js processes share two cores, on a machine that may be busy with other work too.
beforeAll(async () => {
  const t0 = Date.now();
  c = await startNetCluster({ nodes: 3, clients: ['client'], routers: true, ttl: 10, loopWait: 1 });
  const state = await c.waitHealthy(2);
  timings.clusterReadyS = (Date.now() - t0) / 1000;
  vipR = c.lab.spareAddress(0);
  vipL = c.lab.spareAddress(1);
  for (const table of ['vip_router', 'vip_leader'])
    await c.query(
      state.leader!.name,
      `CREATE TABLE ${table} (n int PRIMARY KEY, at timestamptz DEFAULT now())`,
    );
  sampling = true;
  samplingSince = Date.now();
  sampler = sample();
  // The writers first: they retry until the VIPs answer, and their start-up overlaps the VIPs'.
  writerR = startWriter('router-VIP writer', vipR, NET_PORTS.router, 'vip_router');
  writerL = startWriter('leader-VIP writer', vipL, NET_PORTS.pg, 'vip_leader');
  for (const n of c.nodes)
    vips[n.name] = { router: startVip(n.name, 'router'), leader: startVip(n.name, 'leader') };
}, 240_000);

afterAll(async () => {
  sampling = false;
  await sampler;
  await Promise.all(writers.map((w) => stopProcess(w.child, 'SIGTERM', 3000)));
  console.log(
    `vip test: ${samples} samples of the node namespaces' addresses, timings ${JSON.stringify(timings)}`,
  );
  await c?.stop();
}, 180_000);

describe('pgha vip in network namespaces', () => {
  it('puts each VIP on exactly one node, the leader-mode VIP on the leader, and the writers get through', async () => {
    const leader = (await c.readCluster()).leader!.name;
    const t = Date.now();
    // Generous: nine Node.js processes load at once on two cores.
    const r = await waitHolder(vipR, () => true, 'on one node', 90_000);
    await waitHolder(vipL, (h) => h === leader, `on the leader ${leader}`, 30_000);
    await writerR.okAfter(0, leader);
    await writerL.okAfter(0, leader);
    timings.firstWritesS = (Date.now() - t) / 1000;
    const status = await vipStatus(r, 'router');
    expect(status).toMatchObject({
      node: r,
      address: vipR,
      mode: 'router',
      held: true,
      holder: r,
      eligible: true,
    });
    const metrics = await (
      await fetch(`http://${c.node(r).address}:${VIP_STATUS_PORT.router}/metrics`)
    ).text();
    expect(metrics).toMatch(/^pgha_vip_held\{[^}]*\} 1$/m);
    expect(metrics).toMatch(/^pgha_vip_takeovers_total\{[^}]*\} 1$/m);
    expect(violations).toEqual([]);
  });

  it('switchover: the leader-mode VIP follows the new leader; both writers carry on', async () => {
    const before = await c.readCluster();
    const old = before.leader!.name;
    const timeline = Number(before.members.find((m) => m.name === old)?.data.timeline ?? 1);
    const candidate = c.nodes.map((n) => n.name).find((n) => n !== old)!;
    const t = Date.now();
    const res = await fetch(`http://${c.node(old).address}:${NET_PORTS.api}/switchover`, {
      method: 'POST',
      body: JSON.stringify({ leader: old, candidate }),
      signal: AbortSignal.timeout(30_000),
    });
    expect(res.status).toBe(200);
    await c.waitLeader(old);
    await waitHolder(vipL, (h) => h === candidate, `on the new leader ${candidate}`);
    timings.switchoverVipMovedS = (Date.now() - t) / 1000;
    await writerL.okAfter(t, candidate);
    await writerR.okAfter(t, candidate);
    timings.switchoverGapLeaderVipS = writerL.longestGap(t - 1000, Date.now()) / 1000;
    timings.switchoverGapRouterVipS = writerR.longestGap(t - 1000, Date.now()) / 1000;
    expect(violations).toEqual([]);
    // One fault at a time: the next test kills the leader, which must have both replicas streaming
    // from it on its timeline — and staying so: right after a switchover a replica may still stop
    // to rewind, and a leader killed then leaves no member that can take over.
    await c.waitSteady({ replicas: 2, forMs: 8000, minTimeline: timeline + 1 });
  });

  it('failover (kill -9 of the leader agent and postmaster): the VIP moves, the writers reconnect', async () => {
    const old = (await c.readCluster()).leader!.name;
    const t = Date.now();
    await c.killAgent(old);
    await c.killPostmaster(old);
    const next = await c.waitLeader(old, 60_000);
    await waitHolder(vipL, (h) => h === next, `on the new leader ${next}`);
    timings.failoverVipMovedS = (Date.now() - t) / 1000;
    await writerL.okAfter(t, next);
    await writerR.okAfter(t, next);
    timings.failoverGapLeaderVipS = writerL.longestGap(t - 1000, Date.now()) / 1000;
    timings.failoverGapRouterVipS = writerR.longestGap(t - 1000, Date.now()) / 1000;
    expect(violations).toEqual([]);
  });

  it('the router holding the router VIP dies: the VIP moves to a node with a running router', async () => {
    const from = holderOf(vipR)!;
    expect(from).not.toBeNull();
    const leader = (await c.readCluster()).leader!.name;
    const t = Date.now();
    await c.stopRouter(from, 'SIGKILL');
    const to = await waitHolder(vipR, (h) => h !== from, `away from ${from}`, 15_000);
    timings.routerDeathVipMovedS = (Date.now() - t) / 1000;
    await writerR.okAfter(t, leader);
    timings.routerDeathGapS = writerR.longestGap(t - 1000, Date.now()) / 1000;
    expect(await vipStatus(from, 'router')).toMatchObject({ held: false, eligible: false });
    expect((await vipStatus(to, 'router')).held).toBe(true);
    expect(violations).toEqual([]);
  });

  it('SIGTERM on the holding pgha vip removes the address and hands the VIP over at once', async () => {
    const from = holderOf(vipR)!;
    const t = Date.now();
    const child = vips[from]!.router;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
    expect(await c.node(from).host.addresses()).not.toContain(vipR);
    const to = await waitHolder(vipR, (h) => h !== from, `away from ${from}`, 10_000);
    timings.handoverS = (Date.now() - t) / 1000;
    expect(timings.handoverS).toBeLessThan(5);
    await writerR.okAfter(Date.now());
    expect(to).not.toBe(from);
    expect(violations).toEqual([]);
  });

  it('kill -9 of the holding pgha vip: the kernel drops the address before the key can pass on', async () => {
    // The node whose router died earlier gets it back, so it can take over.
    const spare = c.nodes.find((n) => !n.router)!.name;
    c.startRouter(spare);
    const from = holderOf(vipR)!;
    const t = Date.now();
    await stopProcess(vips[from]!.router, 'SIGKILL');
    const gone = await waitFor(
      `${vipR} to expire on ${from}`,
      () => Promise.resolve(!c.node(from).host.localAddresses().has(vipR) && Date.now()),
      20_000,
      20,
    );
    const to = await waitHolder(vipR, (h) => h !== from, `away from ${from}`, 20_000);
    timings.killedVipAddressGoneS = (gone - t) / 1000;
    timings.killedVipTakenOverS = (Date.now() - t) / 1000;
    // Gone within the lifetime given at the last renewal (ttl − 2 s, + 1 s of kernel rounding).
    expect(gone - t).toBeLessThan(9_500);
    expect(to).toBe(spare);
    await writerR.okAfter(Date.now());
    expect(violations).toEqual([]);
    // The sampler really ran all along (tens of rounds per second).
    expect(samples / ((Date.now() - samplingSince) / 1000)).toBeGreaterThan(5);
  });
});

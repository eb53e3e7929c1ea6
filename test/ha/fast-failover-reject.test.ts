/**
 * `fast_failover` (docs/ha-loop.md) lets a replica delete its leader's key at once when the leader's
 * PostgreSQL and REST ports both refuse connections several times in a row. A firewall REJECT rule
 * (TCP reset) on the replicas' side looks exactly like that while the leader is alive, writable and
 * in touch with etcd. That must not cost the leader its key, nor make a second primary.
 *
 * Network namespaces (test/support/netns-cluster.ts): each node has its own address; inside each
 * replica's namespace, iptables rejects TCP to the leader's address on 5432 and 8008 with a reset.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import pg from 'pg';
import { NET_PORTS, startNetCluster, type NetCluster } from '../support/netns-cluster.js';
import { RoleSampler } from '../support/observe.js';

const TTL = 8;
let c: NetCluster;
let roles: RoleSampler | null = null;

beforeAll(async () => {
  c = await startNetCluster({ nodes: 3, ttl: TTL, loopWait: 1, retryTimeout: 3 });
}, 180_000);

afterAll(async () => {
  await roles?.stop().catch(() => undefined);
  // The rules live in the lab's namespaces and go with them.
  await c?.stop();
});

/** The iptables rule (without -A/-D) that makes `leaderAddress:port` refuse TCP from this namespace. */
function rejectRule(leaderAddress: string, port: number): string[] {
  return [
    'OUTPUT',
    '-p',
    'tcp',
    '-d',
    leaderAddress,
    '--dport',
    String(port),
    '-j',
    'REJECT',
    '--reject-with',
    'tcp-reset',
  ];
}

/** What a TCP connection from inside `node`'s namespace to `host:port` gets: 'open', or the error code. */
async function connectFrom(node: string, host: string, port: number): Promise<string> {
  const script =
    `const s = require('node:net').connect(${port}, ${JSON.stringify(host)});` +
    `s.setTimeout(3000, () => { console.log('timeout'); process.exit(0); });` +
    `s.on('connect', () => { console.log('open'); process.exit(0); });` +
    `s.on('error', (e) => { console.log(e.code); process.exit(0); });`;
  return (await c.node(node).host.exec(process.execPath, ['-e', script], { timeoutMs: 10_000 })).trim();
}

it('a leader whose ports the replicas see refused by a firewall keeps its key, and no replica is promoted', async () => {
  const state = await c.waitSteady({ replicas: 2, forMs: 3000, timeoutMs: 120_000 });
  const leader = state.leader!.name;
  const leaderAddress = c.node(leader).address;
  const replicas = c.nodes.map((n) => n.name).filter((n) => n !== leader);
  await c.query(leader, 'CREATE TABLE f (id serial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())');
  roles = new RoleSampler(Object.fromEntries(replicas.map((r) => [r, () => c.connection(r)])));
  roles.start();

  for (const r of replicas)
    for (const port of [NET_PORTS.pg, NET_PORTS.api])
      await c.node(r).host.exec('iptables', ['-A', ...rejectRule(leaderAddress, port)]);
  // From the replicas, the leader's ports now refuse at once (a reset, not a timeout).
  for (const r of replicas)
    for (const port of [NET_PORTS.pg, NET_PORTS.api])
      expect(await connectFrom(r, leaderAddress, port), `${r} -> ${leader}:${port}`).toBe('ECONNREFUSED');

  // For 2 × ttl: the key stays the leader's, the leader takes every write (from the test process,
  // which the rules do not affect), and no replica runs as a writable primary.
  const holders = new Set<string>();
  const failedWrites: string[] = [];
  let writes = 0;
  const client = new pg.Client({
    ...c.connection(leader),
    connectionTimeoutMillis: 2000,
    query_timeout: 2000,
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const until = Date.now() + 2 * TTL * 1000 + 2000;
    while (Date.now() < until) {
      holders.add((await c.readCluster()).leader?.name ?? '(none)');
      try {
        await client.query('INSERT INTO f DEFAULT VALUES');
        writes++;
      } catch (e) {
        failedWrites.push(`${new Date().toISOString()} ${e instanceof Error ? e.message : String(e)}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await client.end().catch(() => undefined);
  }
  await roles.stop();
  expect([...holders], 'leader key holders while the replicas saw the leader refuse').toEqual([leader]);
  expect(failedWrites, `writes on ${leader}`).toEqual([]);
  expect(writes).toBeGreaterThan(0);
  expect(roles.writableSightings(), 'replicas seen running as a writable primary').toEqual([]);

  // Rules gone: the cluster is healthy again.
  for (const r of replicas)
    for (const port of [NET_PORTS.pg, NET_PORTS.api])
      await c.node(r).host.exec('iptables', ['-D', ...rejectRule(leaderAddress, port)]);
  const healed = await c.waitSteady({ replicas: 2, forMs: 3000, timeoutMs: 120_000 });
  expect(healed.leader?.name).toBe(leader);
  const [row] = await c.query<{ n: string }>(leader, 'SELECT count(*) AS n FROM f');
  expect(Number(row?.n)).toBe(writes);
}, 400_000);

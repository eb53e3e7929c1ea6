/**
 * Graceful switchover with real processes: the leader checkpoints, stops, waits for the candidate
 * to hold its last WAL, releases the lock; the candidate promotes at once; the old leader follows
 * it without pg_rewind, and no acknowledged write is lost.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { SCOPE, startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import { isStreamingMember } from '../../src/dcs/types.js';

let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({ nodes: 3, ttl: 10, loopWait: 1, retryTimeout: 3 });
  for (const n of c.nodes) c.startAgent(n.name);
});

afterAll(async () => {
  await c?.stop();
});

it('switches over to the named candidate quickly, and the old leader follows without pg_rewind', async () => {
  const state = await c.waitHealthy(2, 90_000);
  const old = state.leader!.name;
  const candidate = c.nodes.map((n) => n.name).find((n) => n !== old)!;
  await c.query(old, 'CREATE TABLE s (id int PRIMARY KEY)');
  await waitFor(
    'table on the candidate',
    async () => (await c.query(candidate, "SELECT to_regclass('s') AS t"))[0]?.t !== null,
  );

  // A writer that follows the primary (whichever node takes writes) and records every ack.
  const acked: Array<{ id: number; at: number }> = [];
  let writing = true;
  let next = 1;
  const writer = (async () => {
    let target = old;
    let client: pg.Client | null = null;
    while (writing) {
      try {
        if (!client) {
          client = new pg.Client({
            ...c.connection(target),
            connectionTimeoutMillis: 2000,
            query_timeout: 2000,
          });
          client.on('error', () => undefined);
          await client.connect();
        }
        await client.query('INSERT INTO s VALUES ($1)', [next]);
        acked.push({ id: next, at: Date.now() });
        next++;
      } catch {
        await client?.end().catch(() => undefined);
        client = null;
        target = target === old ? candidate : old;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    await client?.end().catch(() => undefined);
  })();
  await new Promise((r) => setTimeout(r, 1000));

  const dcs = new EtcdDcs({
    hosts: c.etcd.endpoints,
    namespace: '/service/',
    scope: SCOPE,
    name: 'test-ctl',
    ttl: 10,
  });
  try {
    const requested = Date.now();
    expect((await dcs.setFailover({ leader: old, member: candidate })).ok).toBe(true);
    await waitFor(
      'the candidate to lead',
      async () => (await c.readCluster()).leader?.name === candidate,
      20_000,
    );
    await waitFor(
      'writes on the candidate',
      () => Promise.resolve(acked.some((a) => a.at > requested + 100)),
      20_000,
    );
    await new Promise((r) => setTimeout(r, 1000));
    writing = false;
    await writer;

    let gap = 0;
    for (let i = 1; i < acked.length; i++) gap = Math.max(gap, acked[i]!.at - acked[i - 1]!.at);
    console.log(`switchover: longest write gap ${gap} ms over ${acked.length} acknowledged writes`);
    expect(gap).toBeLessThan(5000);

    const rows = await c.query<{ id: number }>(candidate, 'SELECT id FROM s');
    const present = new Set(rows.map((r) => r.id));
    expect(acked.filter((a) => !present.has(a.id))).toEqual([]);
    expect((await c.readCluster()).failover).toBeNull();
  } finally {
    writing = false;
    await writer;
    await dcs.close({ revokeLease: false });
  }

  await waitFor(
    `${old} streaming from ${candidate}`,
    async () => {
      const s = await c.readCluster();
      return isStreamingMember(s.members.find((m) => m.name === old)?.data ?? {});
    },
    30_000,
  );
  const oldLog = readFileSync(c.node(old).logPath, 'utf8');
  if (/running pg_rewind/.test(oldLog))
    console.log(
      oldLog
        .split('\n')
        .filter((l) => !l.includes('DEBUG'))
        .slice(-40)
        .join('\n'),
    );
  expect(oldLog).not.toMatch(/running pg_rewind/);
});
afterAll(() => {
  if (!process.env.PGHA_DEBUG_SWITCHOVER) return;
  for (const n of c.nodes)
    console.log(
      readFileSync(`${n.dataDir}.log`, 'utf8')
        .split('\n')
        .filter((l) => /shutdown|shut down|promot|checkpoint|selected new timeline|ready to accept/.test(l))
        .map((l) => `${n.name}-pg ${l.slice(0, 160)}`)
        .join('\n'),
    );
  for (const n of c.nodes) {
    const lines = readFileSync(n.logPath, 'utf8').split('\n');
    console.log(
      lines
        .filter(
          (l) =>
            process.env.PGHA_DEBUG_SWITCHOVER === 'all' ||
            /switch|promot|leader key|stopping|starting|race|pg_ctl/.test(l),
        )
        .map((l) => `${n.name} ${l.slice(0, 200)}`)
        .join('\n'),
    );
  }
});

/**
 * The REST API of real `pgha agent` processes on a real three-node cluster (etcd, PostgreSQL):
 * health checks over the socket, the status documents, PATCH /config applied to every node,
 * reload, restart, a switchover through POST /switchover, and garbage that must not hurt the agent.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

let c: TestCluster;

beforeAll(async () => {
  c = await startCluster({ nodes: 3, ttl: 10, loopWait: 1, retryTimeout: 3 });
  for (const n of c.nodes) c.startAgent(n.name);
  await c.waitHealthy(2, 90_000);
});

afterAll(async () => {
  await c?.stop();
});

async function api(
  name: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${c.node(name).apiPort}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : {
          body: typeof body === 'string' ? body : JSON.stringify(body),
          headers: { 'content-type': 'application/json' },
        }),
    signal: AbortSignal.timeout(60_000),
  });
  return { status: res.status, text: await res.text() };
}

async function leader(): Promise<string> {
  const s = await c.readCluster();
  if (!s.leader) throw new Error('no leader');
  return s.leader.name;
}

async function show(name: string, setting: string): Promise<string> {
  const rows = await c.query<{ v: string }>(name, `SELECT current_setting('${setting}') AS v`);
  return rows[0]!.v;
}

describe('REST API on a real cluster', () => {
  it('OPTIONS /primary is 200 on the leader only; /replica the other way round', async () => {
    const lead = await leader();
    for (const n of c.nodes) {
      const primary = await api(n.name, 'OPTIONS', '/primary');
      expect([n.name, primary.status, primary.text]).toEqual([n.name, n.name === lead ? 200 : 503, '']);
      const replica = await api(n.name, 'HEAD', '/replica');
      expect([n.name, replica.status]).toEqual([n.name, n.name === lead ? 503 : 200]);
      expect((await api(n.name, 'GET', '/health')).status).toBe(200);
      expect((await api(n.name, 'GET', '/liveness')).status).toBe(200);
      expect((await api(n.name, 'GET', '/readiness')).status).toBe(200);
    }
  });

  it('GET /patroni, /cluster, /history, /config, /metrics', async () => {
    const lead = await leader();
    const st = JSON.parse((await api(lead, 'GET', '/patroni')).text) as Record<string, unknown>;
    expect(st).toMatchObject({
      state: 'running',
      role: 'master', // Patroni 3.0.2's name for the primary
      timeline: 1,
      patroni: { scope: 'demo', name: lead },
    });
    const cl = JSON.parse((await api(lead, 'GET', '/cluster')).text) as {
      members: Array<{ name: string; role: string }>;
    };
    expect(cl.members.map((m) => m.role).sort()).toEqual(['leader', 'replica', 'replica']);
    expect(JSON.parse((await api(lead, 'GET', '/history')).text)).toEqual([]);
    expect(JSON.parse((await api(lead, 'GET', '/config')).text)).toMatchObject({ ttl: 10, loop_wait: 1 });
    const metrics = (await api(lead, 'GET', '/metrics')).text;
    expect(metrics).toContain(`patroni_primary{scope="demo",name="${lead}"} 1`);
  });

  it('PATCH /config work_mem reaches every node without a restart', async () => {
    const lead = await leader();
    for (const n of c.nodes) expect(await show(n.name, 'work_mem')).toBe('4MB');
    const res = await api(lead, 'PATCH', '/config', { postgresql: { parameters: { work_mem: '7MB' } } });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toMatchObject({ postgresql: { parameters: { work_mem: '7MB' } } });
    for (const n of c.nodes) {
      await waitFor(`work_mem on ${n.name}`, async () => (await show(n.name, 'work_mem')) === '7MB', 20_000);
    }
    // null deletes the key: the server default comes back.
    const del = await api(lead, 'PATCH', '/config', { postgresql: { parameters: { work_mem: null } } });
    expect(del.status).toBe(200);
    for (const n of c.nodes) {
      await waitFor(
        `work_mem back on ${n.name}`,
        async () => (await show(n.name, 'work_mem')) === '4MB',
        20_000,
      );
    }
  });

  it('POST /reload re-reads the YAML, applies its parameters and tags, and the node keeps running', async () => {
    // One node's file gains a local parameter and a tag, as an operator editing patroni.yml would.
    const edited = c.nodes[0]!;
    const cfg = parse(readFileSync(edited.configPath, 'utf8')) as {
      postgresql: { parameters: Record<string, unknown> };
      tags?: Record<string, unknown>;
    };
    cfg.postgresql.parameters.log_min_duration_statement = 1234;
    cfg.tags = { ...cfg.tags, rack: 'r7' };
    writeFileSync(edited.configPath, stringify(cfg));
    for (const n of c.nodes) {
      expect(await api(n.name, 'POST', '/reload')).toEqual({ status: 202, text: 'reload scheduled' });
    }
    await waitFor(
      'the reloaded parameter',
      async () => (await show(edited.name, 'log_min_duration_statement')) === '1234ms',
      10_000,
    );
    const patroni = JSON.parse((await api(edited.name, 'GET', '/patroni')).text) as { tags?: unknown };
    expect(patroni.tags).toMatchObject({ rack: 'r7' });
    expect(readFileSync(edited.logPath, 'utf8')).toMatch(/re-read .*: applied postgresql\.parameters, tags/);
    for (const n of c.nodes) expect((await api(n.name, 'GET', '/health')).status).toBe(200);
  });

  it('POST /restart restarts PostgreSQL on a replica, which streams again', async () => {
    const lead = await leader();
    const replica = c.nodes.find((n) => n.name !== lead)!.name;
    const before = await c.query<{ t: string }>(replica, 'SELECT pg_postmaster_start_time()::text AS t');
    const res = await api(replica, 'POST', '/restart', { role: 'replica' });
    expect(res).toEqual({ status: 200, text: 'restarted successfully' });
    const after = await c.query<{ t: string }>(replica, 'SELECT pg_postmaster_start_time()::text AS t');
    expect(after[0]!.t).not.toBe(before[0]!.t);
    expect(await api(replica, 'POST', '/restart', { role: 'primary' })).toEqual({
      status: 503,
      text: 'restart conditions are not satisfied',
    });
    await c.waitHealthy(2, 30_000);
    // On the leader: restarted in place, the lock kept, no failover.
    const pm = await c.query<{ t: string }>(lead, 'SELECT pg_postmaster_start_time()::text AS t');
    expect(await api(lead, 'POST', '/restart')).toEqual({ status: 200, text: 'restarted successfully' });
    const pm2 = await c.query<{ t: string }>(lead, 'SELECT pg_postmaster_start_time()::text AS t');
    expect(pm2[0]!.t).not.toBe(pm[0]!.t);
    expect(await leader()).toBe(lead);
    await c.waitHealthy(2, 30_000);
  });

  it('POST /switchover moves the leader to the candidate and answers when it is done', async () => {
    const old = await leader();
    const candidate = c.nodes.find((n) => n.name !== old)!.name;
    const res = await api(old, 'POST', '/switchover', { leader: old, candidate });
    expect(res).toEqual({ status: 200, text: `Successfully switched over to "${candidate}"` });
    expect(await leader()).toBe(candidate);
    await c.waitHealthy(2, 60_000);
    await waitFor(
      'the health checks to follow',
      async () => {
        const a = await api(candidate, 'OPTIONS', '/primary');
        const b = await api(old, 'OPTIONS', '/primary');
        return a.status === 200 && b.status === 503;
      },
      20_000,
    );
    const history = JSON.parse((await api(candidate, 'GET', '/history')).text) as unknown[][];
    expect(history.at(-1)?.[4]).toBe(candidate);
  });

  it('garbage requests get 4xx and leave the agent and its loop healthy', async () => {
    const lead = await leader();
    expect((await api(lead, 'POST', '/switchover', '{"leader":')).status).toBe(400);
    expect((await api(lead, 'POST', '/switchover', { leader: 42 })).status).toBe(400);
    expect((await api(lead, 'PATCH', '/config', [1, 2])).status).toBe(400);
    expect((await api(lead, 'PATCH', '/config', { loop_wait: 'often' })).status).toBe(400);
    expect((await api(lead, 'POST', '/restart', { schedule: 'yesterday-ish' })).status).toBe(422);
    expect((await api(lead, 'PATCH', '/config', { pad: 'x'.repeat(2 * 1024 * 1024) })).status).toBe(413);
    expect((await api(lead, 'GET', '/liveness')).status).toBe(200);
    expect(await leader()).toBe(lead);
  });
});

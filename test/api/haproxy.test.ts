/**
 * Debian's HAProxy in front of a real pgha cluster, with the backend block from the seed document
 * (`option httpchk OPTIONS /primary`, `http-check expect status 200`, `check port <api>`): it routes
 * to the leader, and to the new leader after a switchover through the REST API. Only
 * `default-server inter 500ms` is added, for test speed; the block's semantics are the seed's.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, startProcess, stopProcess } from '../../src/util/process.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { freePort } from '../support/net.js';
import { waitFor } from '../support/postgres.js';

const HAPROXY = '/usr/sbin/haproxy';
let c: TestCluster;
let haproxy: ChildProcess | null = null;
let haproxyLog = '';
let frontPort = 0;

function haproxyConfig(port: number): string {
  const servers = c.nodes
    .map((n) => `    server ${n.name} 127.0.0.1:${n.pgPort} port ${n.apiPort} check verify none`)
    .join('\n');
  return `global
    maxconn 200

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    default-server inter 500ms

frontend postgres_frontend
    bind 127.0.0.1:${port}
    mode tcp
    default_backend postgres_backend

backend postgres_backend
    mode tcp
    option tcp-check
    option httpchk OPTIONS /primary
    http-check expect status 200
    timeout connect 5s
    timeout server 30s
${servers}
`;
}

beforeAll(async () => {
  c = await startCluster({ nodes: 3, ttl: 10, loopWait: 1, retryTimeout: 3 });
  for (const n of c.nodes) c.startAgent(n.name);
  await c.waitHealthy(2, 90_000);
  frontPort = await freePort();
  const cfg = join(c.base.dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig(frontPort));
  haproxy = startProcess(HAPROXY, ['-f', cfg, '-db']);
  haproxy.stdout?.on('data', (d: Buffer) => (haproxyLog += d.toString()));
  haproxy.stderr?.on('data', (d: Buffer) => (haproxyLog += d.toString()));
});

afterAll(async () => {
  if (haproxy) await stopProcess(haproxy, 'SIGTERM', 5000);
  await c?.stop();
});

/** The port and role of the server HAProxy sends a new connection to. */
async function throughHaproxy(): Promise<{ port: number; recovery: boolean }> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: frontPort,
    user: 'postgres',
    password: 'test-pw',
    database: 'postgres',
    connectionTimeoutMillis: 3000,
    query_timeout: 5000,
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const r = await client.query<{ port: string; recovery: boolean }>(
      "SELECT current_setting('port') AS port, pg_is_in_recovery() AS recovery",
    );
    return { port: Number(r.rows[0]!.port), recovery: r.rows[0]!.recovery };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Waits until HAProxy sends every new connection to `port`: servers start UP and need `fall`
 * failed checks to go DOWN, so right after a change connections may still reach another server.
 */
async function routedOnlyTo(port: number, what: string, timeoutMs: number): Promise<void> {
  await waitFor(
    what,
    async () => {
      for (let i = 0; i < 6; i++) {
        const r = await throughHaproxy().catch(() => null);
        if (!r || r.port !== port || r.recovery) return false;
      }
      return true;
    },
    timeoutMs,
  );
}

async function leader(): Promise<string> {
  const s = await c.readCluster();
  if (!s.leader) throw new Error('no leader');
  return s.leader.name;
}

describe('HAProxy with the seed backend block', () => {
  it('routes to the leader', async () => {
    expect(haproxy && isAlive(haproxy), haproxyLog).toBe(true);
    const lead = c.node(await leader());
    await routedOnlyTo(lead.pgPort, 'HAProxy to route every connection to the leader', 20_000);
  });

  it('routes to the new leader after POST /switchover', async () => {
    const old = await leader();
    const candidate = c.nodes.find((n) => n.name !== old)!;
    const res = await fetch(`http://127.0.0.1:${c.node(old).apiPort}/switchover`, {
      method: 'POST',
      body: JSON.stringify({ leader: old, candidate: candidate.name }),
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(60_000),
    });
    expect([res.status, await res.text()]).toEqual([
      200,
      `Successfully switched over to "${candidate.name}"`,
    ]);
    const switched = Date.now();
    await routedOnlyTo(candidate.pgPort, 'HAProxy to route every connection to the new leader', 30_000);
    // fall 3 × inter 500ms: HAProxy follows within a few seconds of the answer.
    expect(Date.now() - switched).toBeLessThan(15_000);
    expect(isAlive(haproxy!), haproxyLog).toBe(true);
  });
});

/**
 * Patroni's own patronictl (Debian's `patroni` package) against a pgha cluster, pointed at the
 * agents' YAML: list, switchover --force, and edit-config that pgha then applies.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
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

function patronictl(...args: string[]): string {
  return execFileSync('patronictl', ['-c', c.nodes[0]!.configPath, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
}

it('patronictl switchover --force moves the leader to the candidate', async () => {
  const state = await c.waitHealthy(2, 90_000);
  const old = state.leader!.name;
  const candidate = c.nodes.map((n) => n.name).find((n) => n !== old)!;
  const out = patronictl('switchover', '--leader', old, '--candidate', candidate, '--force');
  expect(out).toMatch(new RegExp(`Successfully switched over to "${candidate}"`));
  await waitFor(
    'the old leader to stream from the candidate',
    async () => {
      const s = await c.readCluster();
      return (
        s.leader?.name === candidate && isStreamingMember(s.members.find((m) => m.name === old)?.data ?? {})
      );
    },
    60_000,
  );
  // Every member publishes the new timeline once it streams from the new leader.
  const rows = await waitFor(
    'every member on timeline 2 in patronictl list',
    () => {
      const list = JSON.parse(patronictl('list', '-f', 'json')) as Array<{
        Member: string;
        Role: string;
        TL: number;
      }>;
      return Promise.resolve(list.every((r) => r.TL === 2) ? list : null);
    },
    30_000,
  );
  expect(rows.find((r) => r.Member === candidate)?.Role).toBe('Leader');
});

it('patronictl edit-config changes a parameter that pgha applies on every node', async () => {
  patronictl('edit-config', '-p', 'work_mem=7MB', '-s', 'maximum_lag_on_failover=2097152', '--force');
  const config = (await c.readCluster()).config!.value as { maximum_lag_on_failover: number };
  expect(config.maximum_lag_on_failover).toBe(2097152);
  for (const n of c.nodes) {
    await waitFor(
      `work_mem on ${n.name}`,
      async () => {
        const [row] = await c.query<{ work_mem: string }>(n.name, 'SHOW work_mem');
        return row?.work_mem === '7MB';
      },
      30_000,
    );
  }
});

/**
 * EtcdDcs against a 3-member etcd cluster: losing one member, even the raft leader, must not stop
 * reads, lease renewals, leader-key renewal or the watch for more than a brief retry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { startEtcd, type EtcdCluster } from '../support/etcd.js';

let etcd: EtcdCluster;
const open: EtcdDcs[] = [];

beforeAll(async () => {
  etcd = await startEtcd({ members: 3 });
});

afterAll(async () => {
  await Promise.all(open.splice(0).map((d) => d.close().catch(() => undefined)));
  await etcd?.stop();
});

/** Retries `fn` until it succeeds, as the HA loop would on its next cycle; returns the elapsed ms. */
async function eventually<T>(fn: () => Promise<T>, timeoutMs: number): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  let last: unknown;
  while (Date.now() - t0 < timeoutMs) {
    try {
      return { value: await fn(), ms: Date.now() - t0 };
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`still failing after ${timeoutMs} ms: ${String(last)}`);
}

describe('EtcdDcs on a 3-member etcd cluster', () => {
  it('keeps working when the etcd leader member stops, and when another member stops', async () => {
    const d = new EtcdDcs({
      hosts: etcd.endpoints,
      namespace: '/service/',
      scope: 'ha',
      name: 'n1',
      ttl: 10,
      requestTimeoutMs: 2000,
    });
    open.push(d);
    const seen = new Set<string>();
    const stopWatch = d.watch((keys) => keys.forEach((k) => seen.add(k)));
    await d.touchMember({ state: 'running', role: 'primary' });
    expect(await d.attemptToAcquireLeader()).toBe(true);

    const leader = await etcd.leaderIndex();
    expect(leader).toBeGreaterThanOrEqual(0);
    await etcd.stopMember(leader, 'SIGKILL'); // no graceful leadership transfer: a real election

    const read = await eventually(() => d.readCluster(), 8000);
    expect(read.value.leader?.name).toBe('n1');
    expect(read.ms).toBeLessThan(5000);
    const refreshed = await eventually(() => d.refreshLease(), 5000);
    expect(refreshed.ms).toBeLessThan(3000);
    expect((await eventually(() => d.updateLeader(), 5000)).value).toBe(true);

    // The watch moved to a surviving member too.
    await eventually(() => d.setConfig({ ttl: 10 }), 5000);
    await eventually(() => {
      if (!seen.has('config')) return Promise.reject(new Error('config change not seen by the watch yet'));
      return Promise.resolve();
    }, 8000);

    // Bring it back and stop a different member; quorum (2 of 3) is kept throughout.
    await etcd.startMember(leader);
    const other = (leader + 1) % 3;
    await etcd.stopMember(other);
    const again = await eventually(() => d.readCluster(), 8000);
    expect(again.value.members.map((m) => m.name)).toEqual(['n1']);
    expect((await eventually(() => d.updateLeader(), 5000)).value).toBe(true);
    await etcd.startMember(other);

    await stopWatch();
  });
});

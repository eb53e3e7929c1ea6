/**
 * Directed scenarios on the model: one fault each, at a chosen moment, with what must follow.
 * They complement the random runs in model.test.ts with the paths the HA rules were written for.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KEYS } from '../../dcs/keys.js';
import { World } from './world.js';

let w: World;
afterEach(() => {
  for (const n of w.nodes) w.killAgent(n.name);
});

async function healthyWorld(opts: ConstructorParameters<typeof World>[0]): Promise<World> {
  w = new World(opts);
  for (const n of w.nodes) w.startAgent(n.name);
  for (let i = 0; i < 120; i++) {
    await w.time.advance(500);
    if (w.healthy()) return w;
  }
  throw new Error(`no healthy cluster:\n${w.report()}`);
}

function leader(): string | null {
  return w.store.read().leader?.name ?? null;
}

/** When a leader other than `old` first takes writes, within `ms` (null: not by then). */
async function newWritableLeader(old: string, ms: number): Promise<number | null> {
  for (let t = 0; t < ms; t += 100) {
    await w.time.advance(100);
    w.check('scenario');
    const l = leader();
    if (l && l !== old && w.node(l).server.writable(w.time.mono)) return w.time.mono;
  }
  return null;
}

/**
 * A healthy world in synchronous mode at ttl 10 and loop_wait 1: its leader, and the standby the
 * sync key names once it names one.
 */
async function syncWorld(seed: number): Promise<{ old: string; sync: string }> {
  await healthyWorld({ seed, ttl: 10, loopWait: 1, synchronousMode: true });
  const old = leader()!;
  for (let t = 0; t < 20_000; t += 250) {
    await w.time.advance(250);
    const sync = w.store.read().sync?.sync_standby;
    if (sync) return { old, sync };
  }
  throw new Error(`no synchronous standby in the sync key\n${w.report()}`);
}

async function run(ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 250) {
    await w.time.advance(250);
    w.check('scenario');
  }
}

function expectClean(): void {
  if (w.violations.length) console.error(w.report());
  expect(w.violations).toEqual([]);
}

describe('model scenarios', () => {
  it('a leader cut off from etcd and its peers stops taking writes before another is promoted', async () => {
    await healthyWorld({ seed: 11 });
    const old = leader()!;
    w.node(old).etcdCut = true;
    w.isolate(old);
    await run(30_000);
    expect(leader()).not.toBe(old);
    expect(w.node(old).server.writable(w.time.mono)).toBe(false);
    expectClean();
  });
});

describe('model scenarios: a host lost with the etcd leader member', () => {
  // The new etcd leader renews every lease in full, the lost leader's too, so its key would stand
  // for ttl + election + ttl. The replicas time the key's revision themselves (ha/silence.ts).
  it('is replaced within ttl + 1 s of its last renewal, although etcd renewed its lease', async () => {
    await healthyWorld({ seed: 15, ttl: 10, loopWait: 1 });
    const old = leader()!;
    const cutAt = w.time.mono;
    w.node(old).etcdCut = true;
    w.isolate(old);
    await w.time.advance(1000);
    w.store.promote(1000);
    const writableAt = await newWritableLeader(old, 29_000);
    expect(writableAt, 'a new writable leader').not.toBeNull();
    console.log(`model: a new writable leader ${((writableAt! - cutAt) / 1000).toFixed(1)} s after the cut`);
    // The last renewal came at most loop_wait before the cut.
    expect(writableAt! - cutAt).toBeLessThanOrEqual((10 + 1) * 1000);
    expect(w.node(old).server.writable(w.time.mono)).toBe(false);
    const released = w.nodes
      .flatMap((n) => n.log)
      .filter((l) => /is gone: its leader key has not been renewed/.test(l));
    expect(released.length, w.report()).toBeGreaterThan(0);
    expectClean();
  });

  // The synchronous standby, the only one that may take the key, can see the last renewal late:
  // its etcd member was the cut host's, say, and its reads came back only after an election. It
  // must not then wait for its own late request to the lost leader's REST API.
  it.each([17, 18, 19, 20, 21])(
    'is replaced within ttl + 1 s when the synchronous standby saw the last renewal 2 s late (seed %d)',
    async (seed) => {
      const { old, sync } = await syncWorld(seed);
      w.node(sync).etcdCut = true;
      await w.time.advance(1500);
      const cutAt = w.time.mono;
      w.node(old).etcdCut = true;
      w.isolate(old);
      await w.time.advance(2000);
      w.node(sync).etcdCut = false;
      const writableAt = await newWritableLeader(old, 28_000);
      expect(writableAt, `a new writable leader\n${w.report()}`).not.toBeNull();
      console.log(
        `model: a new writable leader ${((writableAt! - cutAt) / 1000).toFixed(1)} s after the cut`,
      );
      expect(leader()).toBe(sync);
      expect(writableAt! - cutAt, w.report()).toBeLessThanOrEqual((10 + 1) * 1000);
      expectClean();
    },
  );
});

describe('model scenarios: a synchronous standby that vanishes', () => {
  // Its host cut off from the others (etcd still answers it, so its member key stays): PostgreSQL
  // keeps its walsender, 'streaming' at its last position, until wal_sender_timeout (a minute), and
  // commits wait for it. The leader leaves it out once it has answered nothing for 2 s while the
  // other standby answers, 5 s when no other standby does.
  async function commitAfterCut(old: string, sync: string): Promise<number> {
    const cutAt = w.time.mono;
    const endAtCut = w.node(old).server.wal.end;
    w.isolate(sync);
    let ackedAt: number | null = null;
    for (let t = 0; t < 70_000 && ackedAt === null; t += 100) {
      await w.time.advance(100);
      w.check('scenario');
      if ((w.lastAcked.get(old) ?? 0) >= endAtCut) ackedAt = w.time.mono;
    }
    expect(ackedAt, `a commit acknowledged after the cut\n${w.report()}`).not.toBeNull();
    expect(leader()).toBe(old);
    expect(w.store.read().sync?.sync_standby).not.toBe(sync);
    expectClean();
    return ackedAt! - cutAt;
  }

  it('commits go on after about 2 s on the other standby, not at wal_sender_timeout', async () => {
    const { old, sync } = await syncWorld(18);
    const waited = await commitAfterCut(old, sync);
    console.log(`model: a commit acknowledged ${waited} ms after the synchronous standby's cut`);
    expect(waited).toBeGreaterThanOrEqual(2000);
    expect(waited, w.report()).toBeLessThan(5000);
  });

  it('with no other standby, commits go on after about 5 s', async () => {
    const { old, sync } = await syncWorld(18);
    w.powerOff(w.nodes.find((n) => n.name !== old && n.name !== sync)!.name);
    await run(15_000);
    expect(w.store.read().sync?.sync_standby).toBe(sync);
    const waited = await commitAfterCut(old, sync);
    console.log(`model: alone, a commit acknowledged ${waited} ms after the synchronous standby's cut`);
    expect(waited).toBeGreaterThanOrEqual(5000);
    expect(waited, w.report()).toBeLessThan(10_000);
  });
});

describe('model scenarios: a switchover whose leader vanished', () => {
  // The request names a member the sync key does not (the key changed after the request was
  // taken): that member may never take the key, and the synchronous standby must not wait for it.
  it('the synchronous standby takes over although the request names another member', async () => {
    const { old, sync } = await syncWorld(19);
    const other = w.nodes.find((n) => n.name !== old && n.name !== sync)!.name;
    w.powerOff(old);
    w.store.put(KEYS.failover, JSON.stringify({ leader: old, member: other }));
    const writableAt = await newWritableLeader(old, 40_000);
    expect(writableAt, w.report()).not.toBeNull();
    expect(leader()).toBe(sync);
    await run(3_000);
    expect(w.store.read().failover, 'the request is cleaned up').toBeNull();
    expectClean();
  });
});

describe('model scenarios: the store, starts, pause, holds', () => {
  it('a wiped store: the primary re-registers without a restart and no replica ever runs writable', async () => {
    await healthyWorld({ seed: 12 });
    const old = leader()!;
    const pid = w.node(old).server.pid;
    w.store.deleteAll();
    await run(20_000);
    expect(leader()).toBe(old);
    expect(w.node(old).server.pid).toBe(pid);
    expect(w.store.read().initialize).toBe(w.node(old).server.sysid);
    expectClean();
  });

  it("a leader's killed postmaster is restarted in place at once, not at the next loop_wait", async () => {
    await healthyWorld({ seed: 16, ttl: 30, loopWait: 10, retryTimeout: 10 });
    const old = leader()!;
    const runner = w.node(old).agent!.runner;
    // Right after a cycle, when the loop has the longest to sleep.
    const last = runner.snapshot.lastLoop;
    for (let t = 0; t < 20_000 && runner.snapshot.lastLoop === last; t += 20) await w.time.advance(20);
    const pid = w.node(old).server.pid;
    /** Kills the postmaster; when it takes writes again (null: not within 15 s). */
    const crashAndWait = async (): Promise<number | null> => {
      w.node(old).server.crash();
      for (let t = 0; t < 15_000; t += 50) {
        await w.time.advance(50);
        w.check('scenario');
        if (w.node(old).server.writable(w.time.mono)) return w.time.mono;
      }
      return null;
    };
    const killedAt = w.time.mono;
    const backAt = await crashAndWait();
    expect(backAt, w.report()).not.toBeNull();
    console.log(`model: killed postmaster writable again ${backAt! - killedAt} ms after the kill`);
    expect(backAt! - killedAt).toBeLessThan(3000);
    expect(w.node(old).server.pid).not.toBe(pid);
    expect(leader()).toBe(old);
    // Killed again at once: a crash loop restarts at the loop's pace, not as fast as it crashes.
    const againAt = w.time.mono;
    const backAgainAt = await crashAndWait();
    expect(backAgainAt, w.report()).not.toBeNull();
    expect(backAgainAt! - againAt).toBeGreaterThan(5000);
    expectClean();
  });

  it('a leader whose PostgreSQL cannot start hands over within seconds', async () => {
    await healthyWorld({ seed: 13 });
    const old = leader()!;
    w.node(old).server.failStart = true;
    w.node(old).server.stop(false);
    await run(8_000);
    expect(leader()).not.toBe(old);
    expect(leader()).not.toBeNull();
    expectClean();
  });

  it('in pause, an agent restart leaves the primary running and takes the key back', async () => {
    await healthyWorld({ seed: 14 });
    const old = leader()!;
    const cfg = JSON.parse(w.store.get('config')!.value) as Record<string, unknown>;
    w.store.put('config', JSON.stringify({ ...cfg, pause: true }));
    await run(3_000);
    const pid = w.node(old).server.pid;
    await w.stopAgent(old);
    expect(w.node(old).server.running).toBe(true);
    w.startAgent(old);
    await run(5_000);
    expect(leader()).toBe(old);
    expect(w.node(old).server.pid).toBe(pid);
    expectClean();
  });

  it('a hold written beside the data directory survives an agent restart', async () => {
    await healthyWorld({ seed: 15 });
    const replica = w.nodes.find((n) => n.name !== leader())!;
    replica.server.hold = 'pg_rewind from n1 failed: could not find common ancestor';
    w.killAgent(replica.name);
    replica.server.stop(true);
    w.startAgent(replica.name);
    await run(5_000);
    expect(replica.server.running).toBe(false);
    expect(replica.log.join('\n')).toMatch(/waiting for an operator .*could not find common ancestor/);
    expectClean();
  });
});

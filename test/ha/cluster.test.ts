/**
 * End to end with real etcd, real PostgreSQL and real `pgha agent` processes: bootstrap,
 * replication, crash restart in place, failover after kill -9, and rejoin with pg_rewind.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { SCOPE, startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import { isStreamingMember } from '../../src/dcs/types.js';

const TTL = 10;
let c: TestCluster;

async function leaderName(): Promise<string> {
  const s = await c.readCluster();
  if (!s.leader) throw new Error('no leader');
  return s.leader.name;
}

async function count(name: string): Promise<number> {
  const rows = await c.query<{ n: string }>(name, 'SELECT count(*) AS n FROM t');
  return Number(rows[0]?.n);
}

/** Each node's callbacks append `<action> <role> <scope>` to `<base>/<node>.callbacks`. */
function callbackLog(name: string): string[] {
  const path = join(c.base.dir, `${name}.callbacks`);
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n') : [];
}

beforeAll(async () => {
  c = await startCluster({
    nodes: 3,
    ttl: TTL,
    loopWait: 1,
    retryTimeout: 3,
    edit: (cfg, name) => {
      const nodeDir = dirname(String((cfg.postgresql as { data_dir: string }).data_dir));
      const script = join(nodeDir, 'callback.sh');
      writeFileSync(script, `#!/bin/sh\necho "$@" >> "${join(nodeDir, '..', `${name}.callbacks`)}"\n`, {
        mode: 0o755,
      });
      const actions = ['on_start', 'on_stop', 'on_restart', 'on_reload', 'on_role_change'];
      (cfg.postgresql as Record<string, unknown>).callbacks = Object.fromEntries(
        actions.map((a) => [a, script]),
      );
    },
  });
  for (const n of c.nodes) c.startAgent(n.name);
});

afterAll(async () => {
  await c?.stop();
});

describe('a three-node cluster', () => {
  it('bootstraps one leader and two streaming replicas, and replicates rows', async () => {
    const state = await c.waitHealthy(2, 90_000);
    expect(state.initialize).toMatch(/^\d+$/);
    const leader = state.leader!.name;
    await c.query(leader, 'CREATE TABLE t (id serial PRIMARY KEY, v text)');
    await c.query(leader, "INSERT INTO t (v) SELECT 'row ' || g FROM generate_series(1, 100) g");
    for (const n of c.nodes.filter((x) => x.name !== leader)) {
      await waitFor(`rows on ${n.name}`, async () => (await count(n.name)) === 100, 20_000);
      const ro = await c.query<{ r: boolean }>(n.name, 'SELECT pg_is_in_recovery() AS r');
      expect(ro[0]?.r).toBe(true);
    }
    // Keys as Patroni lays them out, with a slot per replica on the leader.
    const slots = await c.query<{ slot_name: string }>(
      leader,
      'SELECT slot_name FROM pg_replication_slots ORDER BY 1',
    );
    expect(slots.map((s) => s.slot_name)).toEqual(
      c.nodes.filter((n) => n.name !== leader).map((n) => n.name),
    );
    // cluster_name is the scope on every member, as Patroni sets it.
    for (const n of c.nodes) {
      const [cn] = await c.query<{ s: string }>(n.name, "SELECT current_setting('cluster_name') AS s");
      expect(cn?.s).toBe(SCOPE);
    }
  });

  it("is listed correctly by Debian's patronictl and by pgha ctl", async () => {
    const cfg = c.nodes[0]!.configPath;
    const env = { ...process.env, PATRONICTL_CONFIG_FILE: cfg };
    const patroni = execFileSync('patronictl', ['-c', cfg, 'list', '-f', 'json'], { encoding: 'utf8', env });
    const rows = JSON.parse(patroni) as Array<{ Member: string; Role: string; State: string; TL: number }>;
    expect(rows.map((r) => r.Role).sort()).toEqual(['Leader', 'Replica', 'Replica']);
    expect(rows.every((r) => r.TL === 1)).toBe(true);
    // Debian's patronictl 3.0.2 shows the member key's state; pgha (as patronictl 3.1+) shows a
    // replica's replication_state, streaming.
    expect(
      rows.filter((r) => r.Role === 'Replica').map((r) => r.State),
      patroni,
    ).toEqual(['running', 'running']);
    const pretty = execFileSync('patronictl', ['-c', cfg, 'list'], { encoding: 'utf8', env });
    const ours = execFileSync(process.execPath, ['dist/cli.js', 'ctl', '-c', cfg, 'list'], {
      encoding: 'utf8',
    });
    // Patroni 3.0.2 leaves the system identifier out of the title; newer versions (and pgha) show it.
    const [ourTitle, ...ourRows] = ours.trim().split('\n');
    const [, ...theirRows] = pretty.trim().split('\n');
    const cells = (lines: string[]) =>
      lines.filter((l) => !/^\+[-+]*\+$/.test(l)).map((l) => l.split('|').map((x) => x.trim()));
    const ourCells = cells(ourRows);
    expect(ourCells.filter((r) => r.includes('Replica')).every((r) => r.includes('streaming'))).toBe(true);
    expect(ourCells.map((r) => r.map((x) => (x === 'streaming' ? 'running' : x)))).toEqual(cells(theirRows));
    const sysid = (await c.readCluster()).initialize!;
    expect(ourTitle).toMatch(new RegExp(`^\\+ Cluster: demo \\(${sysid}\\) -+\\+`));
  });

  it('restarts a crashed postmaster in place on the leader, without a failover', async () => {
    const leader = await leaderName();
    const killedAt = Date.now();
    await c.killPostmaster(leader);
    await waitFor(
      'the leader to accept writes again',
      async () => {
        await c.query(leader, "INSERT INTO t (v) VALUES ('after crash')");
        return true;
      },
      60_000,
      50,
    );
    console.log(`killed postmaster: the leader took writes again ${Date.now() - killedAt} ms after the kill`);
    expect(await leaderName()).toBe(leader);
    const tl = await c.query<{ tl: number }>(leader, 'SELECT timeline_id AS tl FROM pg_control_checkpoint()');
    expect(tl[0]?.tl).toBe(1);
  });

  it('fails over before the lease expires when the leader node dies, losing no committed row', async () => {
    const old = await leaderName();
    await c.query(old, "INSERT INTO t (v) SELECT 'before failover ' || g FROM generate_series(1, 50) g");
    const committed = await count(old);
    // Wait until both replicas have the rows, as an asynchronous cluster promises nothing more.
    for (const n of c.nodes.filter((x) => x.name !== old)) {
      await waitFor(`catch-up of ${n.name}`, async () => (await count(n.name)) === committed, 20_000);
    }
    const killedAt = Date.now();
    await c.stopAgent(old, 'SIGKILL');
    await c.killPostmaster(old);
    const newLeader = await waitFor(
      'a new writable leader',
      async () => {
        const name = (await c.readCluster()).leader?.name;
        if (!name || name === old) return null;
        await c.query(name, "INSERT INTO t (v) VALUES ('on the new leader')");
        return name;
      },
      (TTL + 10) * 1000,
    );
    const took = Date.now() - killedAt;
    // Both ports refuse connections: the replicas release the dead leader's key (fast_failover).
    expect(took).toBeLessThan(TTL * 1000);
    const logs = c.nodes.map((n) => readFileSync(n.logPath, 'utf8')).join('\n');
    expect(logs).toMatch(
      new RegExp(
        `leader ${old} is gone: its PostgreSQL .* refused \\d+ connection attempts in a row and its lease has not been renewed`,
      ),
    );
    expect(await count(newLeader)).toBe(committed + 1);
    // The new leader records the promotion in `history` once it runs as primary (as Patroni does,
    // in the cycle after the promotion): it may come a moment after the first write.
    await waitFor(
      'the promotion in history',
      async () => (await c.readCluster()).history.at(-1)?.[4] === newLeader,
      10_000,
    );
    // Callbacks run as Patroni runs them: <cmd> <action> <role> <scope>.
    await waitFor(
      'the on_role_change callback',
      () => Promise.resolve(callbackLog(newLeader).includes('on_role_change master demo')),
      10_000,
    );
    expect(callbackLog(newLeader)).toContain('on_start replica demo');
  });

  it('rejoins the killed node as a replica of the new leader (pg_rewind path)', async () => {
    const state = await c.readCluster();
    const newLeader = state.leader!.name;
    const old = c.nodes.find((n) => !n.agent)!.name;
    c.startAgent(old);
    await waitFor(
      `${old} streaming from ${newLeader}`,
      async () => {
        const s = await c.readCluster();
        const m = s.members.find((x) => x.name === old);
        return (
          m !== undefined &&
          isStreamingMember(m.data) &&
          m.data.role === 'replica' &&
          s.leader?.name === newLeader
        );
      },
      90_000,
    );
    await c.query(newLeader, "INSERT INTO t (v) VALUES ('after rejoin')");
    const total = await count(newLeader);
    await waitFor(`rows on ${old}`, async () => (await count(old)) === total, 20_000);
    expect(readFileSync(c.node(old).logPath, 'utf8')).toMatch(/running pg_rewind from/);
  });
});

describe('a dynamic ttl change', () => {
  it('moves every key onto a new lease, so no member key expires', async () => {
    const before = await c.readCluster();
    const dcs = new EtcdDcs({
      hosts: c.etcd.endpoints,
      namespace: '/service/',
      scope: 'demo',
      name: 'test-edit',
      ttl: 10,
    });
    try {
      const cfg = before.config!;
      expect(
        (await dcs.setConfig({ ...cfg.value, ttl: 6, loop_wait: 1, retry_timeout: 2 }, cfg.modRevision)).ok,
      ).toBe(true);
      await new Promise((r) => setTimeout(r, 12_000)); // longer than both the old and the new ttl
      const after = await c.readCluster();
      expect(after.members.map((m) => m.name).sort()).toEqual(['pg1', 'pg2', 'pg3']);
      expect(after.leader?.name).toBe(before.leader?.name);
    } finally {
      await dcs.close({ revokeLease: false });
    }
  });
});

/**
 * The model run: bootstrap a simulated cluster, then take `steps` seeded random steps — mostly the
 * passing of time, sometimes a fault (a machine crash, a postmaster crash, an agent killed and
 * restarted, a node cut off from etcd or from everyone — with the etcd leader member or not — a
 * promotion that takes longer than ttl, a server that cannot start, a switchover, the store
 * losing every key, a wall-clock step, pause and resume) — checking the invariants of world.ts
 * after every step. One fault that breaks the cluster's redundancy runs at a time, and heals on
 * its own schedule, as the HA design promises nothing against two at once.
 */
import { KEYS } from '../../dcs/keys.js';
import { World, type ModelOptions, type Violation } from './world.js';

export interface ModelResult {
  seed: number;
  steps: number;
  simulatedMs: number;
  violations: Violation[];
  stats: World['stats'];
  faults: Record<string, number>;
  /** The last events and each node's last log lines, for a failure report. */
  report: string;
}

type Fault = {
  name: string;
  major: boolean;
  weight: number;
  run(w: World, pick: () => string): Promise<void> | void;
};

function ms(w: World, min: number, max: number): number {
  return Math.round(min + w.random() * (max - min));
}

/** Schedules `fn` on the world's clock (a heal). */
function later(w: World, delayMs: number, fn: () => void | Promise<void>): void {
  w.time.add('faults', () => void fn(), delayMs);
}

/** Cuts `n` off from etcd and from its peers (clients still reach it) for `forMs`. */
function partitionFor(w: World, n: ReturnType<World['node']>, forMs: number): void {
  n.etcdCut = true;
  w.isolate(n.name);
  later(w, forMs, () => {
    n.etcdCut = false;
    for (const o of w.nodes) if (o !== n) w.cut(n.name, o.name, false);
    w.event(`heal: ${n.name}'s partition ends`);
  });
}

const FAULTS: Fault[] = [
  {
    name: 'crash_node',
    major: true,
    weight: 3,
    run(w, pick) {
      const n = w.node(pick());
      w.event(`fault: ${n.name} crashes (machine down)`);
      w.powerOff(n.name);
      later(w, ms(w, 2000, 30_000), () => {
        n.up = true;
        w.event(`heal: ${n.name} boots`);
        w.startAgent(n.name);
      });
    },
  },
  {
    name: 'crash_postmaster',
    major: false,
    weight: 3,
    run(w, pick) {
      const n = w.node(pick());
      w.event(`fault: ${n.name}'s postmaster is killed`);
      n.server.crash();
    },
  },
  {
    name: 'kill_agent',
    major: true,
    weight: 2,
    run(w, pick) {
      const n = w.node(pick());
      w.event(`fault: ${n.name}'s agent is killed (its PostgreSQL keeps running), restarted soon`);
      w.killAgent(n.name);
      // Without a watchdog nothing fences a primary whose agent stays dead; restart it within ttl/2.
      later(w, ms(w, 200, (w.opts.ttl * 1000) / 2), () => w.startAgent(n.name));
    },
  },
  {
    name: 'restart_agent',
    major: true,
    weight: 2,
    async run(w, pick) {
      const n = w.node(pick());
      w.event(`fault: ${n.name}'s agent stops (SIGTERM) and starts again`);
      await w.stopAgent(n.name);
      w.startAgent(n.name);
    },
  },
  {
    name: 'etcd_cut',
    major: true,
    weight: 3,
    run(w, pick) {
      const n = w.node(pick());
      w.event(`fault: ${n.name} cannot reach etcd`);
      n.etcdCut = true;
      later(w, ms(w, 1000, 3 * w.opts.ttl * 1000), () => {
        n.etcdCut = false;
        w.event(`heal: ${n.name} reaches etcd again`);
      });
    },
  },
  {
    name: 'partition',
    major: true,
    weight: 3,
    run(w, pick) {
      const n = w.node(pick());
      w.event(`fault: ${n.name} is cut off from etcd and its peers (clients still reach it)`);
      partitionFor(w, n, ms(w, 1000, 3 * w.opts.ttl * 1000));
    },
  },
  {
    // The host goes with the etcd leader member: the other members elect a new etcd leader after
    // an election timeout, and it renews every lease in full — the partitioned leader's too.
    name: 'partition_with_etcd_leader',
    major: true,
    weight: 2,
    run(w, pick) {
      const n = w.node(pick());
      w.event(`fault: ${n.name} is cut off with the etcd leader member (clients still reach it)`);
      later(w, 1000, () => {
        w.event('etcd: a new etcd leader renews every lease');
        w.store.promote(1000);
      });
      partitionFor(w, n, ms(w, 1000, 3 * w.opts.ttl * 1000));
    },
  },
  {
    name: 'slow_promotion',
    major: false,
    weight: 2,
    run(w, pick) {
      const n = w.node(pick());
      n.server.promoteDelayMs = ms(w, 1.5 * w.opts.ttl * 1000, 3 * w.opts.ttl * 1000);
      w.event(`fault: ${n.name}'s next promotion takes ${n.server.promoteDelayMs} ms`);
    },
  },
  {
    name: 'cannot_start',
    major: true,
    weight: 2,
    run(w, pick) {
      const n = w.node(pick());
      w.event(`fault: ${n.name}'s PostgreSQL cannot start (a bad parameter) and its postmaster is killed`);
      n.server.failStart = true;
      n.server.crash();
      later(w, ms(w, 5000, 40_000), () => {
        n.server.failStart = false;
        w.event(`heal: ${n.name}'s PostgreSQL can start again`);
      });
    },
  },
  {
    name: 'switchover',
    major: false,
    weight: 3,
    run(w) {
      const c = w.store.read();
      const leader = c.leader?.name;
      const others = c.members.filter((m) => m.name !== leader).map((m) => m.name);
      if (!leader || others.length === 0) return;
      const candidate = w.random() < 0.3 ? null : (others[Math.floor(w.random() * others.length)] ?? null);
      w.event(`fault: switchover requested from ${leader}${candidate ? ` to ${candidate}` : ''}`);
      w.store.put(KEYS.failover, JSON.stringify(candidate ? { leader, member: candidate } : { leader }));
    },
  },
  {
    name: 'wipe_store',
    major: true,
    weight: 2,
    run(w) {
      w.event('fault: every key of the cluster vanishes from etcd');
      w.store.deleteAll();
    },
  },
  {
    name: 'clock_step',
    major: false,
    weight: 2,
    run(w, pick) {
      const n = w.node(pick());
      const delta = (w.random() < 0.5 ? -1 : 1) * ms(w, 1000, 120_000);
      n.wallOffset += delta;
      w.event(`fault: ${n.name}'s wall clock steps ${delta} ms`);
    },
  },
  {
    name: 'pause',
    major: true,
    weight: 1,
    run(w) {
      const cfg = w.store.get(KEYS.config);
      if (!cfg) return;
      const value = JSON.parse(cfg.value) as Record<string, unknown>;
      w.event('fault: maintenance mode on');
      w.store.put(KEYS.config, JSON.stringify({ ...value, pause: true }));
      later(w, ms(w, 2000, 30_000), () => {
        const now = w.store.get(KEYS.config);
        const v = now ? (JSON.parse(now.value) as Record<string, unknown>) : value;
        w.store.put(KEYS.config, JSON.stringify({ ...v, pause: false }));
        w.event('heal: maintenance mode off');
      });
    },
  },
];

/** Runs one seeded model. */
export async function runModel(
  opts: ModelOptions & { steps: number; faultEvery?: number },
): Promise<ModelResult> {
  const w = new World(opts);
  const faults: Record<string, number> = {};
  for (const n of w.nodes) w.startAgent(n.name);
  // Bootstrap: a leader and streaming replicas.
  for (let i = 0; i < 120 && !healthy(w); i++) await w.time.advance(500);
  let majorUntil = 0;
  const total = FAULTS.reduce((a, f) => a + f.weight, 0);
  for (w.step = 1; w.step <= opts.steps; w.step++) {
    const majorActive = w.time.mono < majorUntil;
    if (w.random() < 1 / (opts.faultEvery ?? 8)) {
      let r = w.random() * total;
      const fault = FAULTS.find((f) => (r -= f.weight) < 0) ?? FAULTS[0]!;
      if (!(fault.major && (majorActive || !healthy(w)))) {
        faults[fault.name] = (faults[fault.name] ?? 0) + 1;
        w.stats.faults++;
        // Half of the faults hit the leader: that is where the rules are tested hardest.
        const names = w.nodes.map((n) => n.name);
        const leader = w.store.read().leader?.name;
        await fault.run(w, () =>
          leader && w.random() < 0.5 ? leader : (names[Math.floor(w.random() * names.length)] ?? 'n1'),
        );
        // A major fault and its recovery: the next one waits until the cluster is healthy again.
        if (fault.major) majorUntil = w.time.mono + (3 * w.opts.ttl + 40) * 1000;
      }
    }
    const before = w.time.mono;
    await w.time.advance(50 + Math.floor(w.random() * 1500));
    if (!w.store.read().leader) w.stats.leaderlessMs += w.time.mono - before;
    w.check('step');
  }
  const report = w.report();
  for (const n of w.nodes) w.killAgent(n.name);
  return {
    seed: opts.seed,
    steps: opts.steps,
    simulatedMs: w.time.mono,
    violations: w.violations,
    stats: w.stats,
    faults,
    report,
  };
}

function healthy(w: World): boolean {
  const c = w.store.read();
  const leader = c.leader?.name;
  if (!leader) return false;
  const now = w.time.mono;
  return w.nodes.every(
    (n) =>
      n.up &&
      n.agent &&
      n.server.ready(now) &&
      (n.name === leader ? n.server.writable(now) : n.server.streaming),
  );
}

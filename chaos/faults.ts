/**
 * The faults the chaos suite injects into a lab cluster (test/support/netns-cluster.ts), how it
 * undoes them, and the seeded plan that decides which one comes next and when.
 *
 * Every fault is aimed by role at the moment it starts (the leader, a replica, the etcd raft
 * leader), so the same seed replays the same sequence of kinds, pauses and hold times; which node
 * plays which role depends on how the earlier faults played out.
 */
import type { NetCluster } from '../test/support/netns-cluster.js';
import { NET_PORTS } from '../test/support/netns-cluster.js';
import { CLI } from '../test/support/cluster.js';
import { isAlive, run, signalPid } from '../src/util/process.js';
import type { FaultRecord, SyncMode } from './checker.js';
import { createRng, type Rng } from './rng.js';
import { isStreamingMember } from '../src/dcs/types.js';
import { deadline } from '../src/util/abort.js';

export const FAULT_KINDS = [
  'kill-agent',
  'kill-postmaster',
  'kill-both',
  'kill-replica',
  'stop-agent',
  'partition-primary',
  'partition-replica',
  'kill-etcd-member',
  'kill-etcd-leader',
  'switchover',
  'switchover-ctl',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

/** One line per kind, for `--help` and the README. */
export const FAULT_HELP: Record<FaultKind, string> = {
  'kill-agent': "SIGKILL the leader's agent (PostgreSQL keeps running); restart it before ttl runs out",
  'kill-postmaster': "SIGKILL the leader's postmaster; its agent restarts it in place",
  'kill-both': "SIGKILL the leader's agent and postmaster; restart the agent a few seconds later",
  'kill-replica': 'SIGKILL the agent and postmaster of a replica (the synchronous one when there is one)',
  'stop-agent': "SIGSTOP the leader's agent for longer than ttl, then SIGCONT",
  'partition-primary':
    'cut the primary off from the other nodes (their etcd members and agents) for longer than ttl; clients still reach it',
  'partition-replica':
    'cut a replica (the synchronous one when there is one) off from the other nodes for longer than ttl',
  'kill-etcd-member': 'SIGKILL an etcd member that is not the raft leader; restart it',
  'kill-etcd-leader': 'SIGKILL the etcd raft leader; restart it',
  switchover: "POST /switchover to the leader's REST API",
  'switchover-ctl': 'pgha ctl switchover --force',
};

/** True when `s` names a fault kind. */
export function isFaultKind(s: string): s is FaultKind {
  return (FAULT_KINDS as readonly string[]).includes(s);
}

/** What a fault needs from the run. */
export interface FaultEnv {
  cluster: NetCluster;
  mode: SyncMode;
  /** The cluster's ttl in seconds (hold times of the faults that must outlast it). */
  ttl: number;
  signal: AbortSignal;
  log(line: string): void;
}

/** The next fault of a plan: its kind, the pause before it, and the seed of its own choices. */
export interface PlannedFault {
  n: number;
  kind: FaultKind;
  gapMs: number;
  seed: number;
}

/**
 * The seeded sequence of faults. `shuffle` deals the kinds in shuffled rounds (each kind once per
 * round); `listed` takes them in the given order, round after round. Each fault gets its own seed,
 * so its choices (hold time, which replica) do not shift the rest of the plan.
 */
export class FaultPlan {
  private readonly rng: Rng;
  private bag: FaultKind[] = [];
  private n = 0;

  constructor(
    seed: number,
    private readonly kinds: readonly FaultKind[],
    private readonly order: 'shuffle' | 'listed',
    private readonly gapMs: readonly [number, number],
  ) {
    if (kinds.length === 0) throw new Error('FaultPlan: no fault kinds');
    this.rng = createRng(seed);
  }

  next(): PlannedFault {
    if (this.bag.length === 0)
      this.bag = this.order === 'shuffle' ? this.rng.shuffle(this.kinds) : [...this.kinds];
    const kind = this.bag.shift()!;
    return { n: ++this.n, kind, gapMs: this.rng.int(this.gapMs[0], this.gapMs[1]), seed: this.rng.seed() };
  }
}

/** Resolves after `ms`, or at once when `signal` aborts; says whether it was aborted. */
export function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve(signal.aborted);
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal.addEventListener('abort', done, { once: true });
  });
}

/** The current leader's name (retries for a few seconds while etcd is being elected). */
async function currentLeader(c: NetCluster): Promise<string> {
  const deadline = Date.now() + 15_000;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const state = await c.readCluster();
      if (state.leader?.name) return state.leader.name;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no leader in etcd${last instanceof Error ? `: ${last.message}` : ''}`);
}

/** Streaming replicas, the ones in the `sync` key first (sorted, so choices replay). */
async function replicas(c: NetCluster): Promise<{ sync: string[]; all: string[] }> {
  const state = await c.readCluster();
  const all = state.members
    .filter((m) => m.name !== state.leader?.name && isStreamingMember(m.data))
    .map((m) => m.name)
    .sort();
  const named = (state.sync?.sync_standby ?? '').split(',').filter((x) => x !== '');
  return { sync: all.filter((n) => named.includes(n)), all };
}

/** The etcd member that is the raft leader, asked over etcd's JSON gateway; null when nobody knows. */
export async function etcdLeader(c: NetCluster): Promise<string | null> {
  const ids = new Map<string, string>();
  let leader: string | null = null;
  await Promise.all(
    c.nodes.map(async (n) => {
      try {
        const res = await fetch(`http://${n.address}:${NET_PORTS.etcd}/v3/maintenance/status`, {
          method: 'POST',
          body: '{}',
          signal: AbortSignal.timeout(1500),
        });
        const body = (await res.json()) as { header?: { member_id?: string }; leader?: string };
        if (body.header?.member_id) ids.set(body.header.member_id, n.name);
        if (body.leader && body.leader !== '0') leader = body.leader;
      } catch {
        // down or partitioned: ask the others
      }
    }),
  );
  return leader === null ? null : (ids.get(leader) ?? null);
}

/**
 * Carries out one fault, waits its hold time, and undoes it. Returns the record for the checker;
 * a fault that cannot be carried out as planned returns with `error` set, it does not throw.
 */
export async function injectFault(planned: PlannedFault, env: FaultEnv): Promise<FaultRecord> {
  const rng = createRng(planned.seed);
  const c = env.cluster;
  const ttlMs = env.ttl * 1000;
  const leaderBefore = await currentLeader(c).catch(() => null);
  const rec: FaultRecord = {
    n: planned.n,
    kind: planned.kind,
    target: '—',
    detail: '',
    injectedAt: Date.now(),
    restoredAt: Date.now(),
    leaderBefore,
  };
  const hold = async (ms: number) => {
    rec.detail += `, held ${(ms / 1000).toFixed(1)} s`;
    return !(await pause(ms, env.signal));
  };
  const restartAgent = (name: string) => {
    const n = c.node(name);
    if (!n.agent || !isAlive(n.agent)) c.startAgent(name);
  };
  try {
    switch (planned.kind) {
      case 'kill-agent': {
        const L = await currentLeader(c);
        rec.target = L;
        rec.detail = `SIGKILL agent of leader ${L}`;
        rec.injectedAt = Date.now();
        await c.killAgent(L);
        // Back before the lease can expire: the agent must take the running primary over again.
        if (await hold(rng.int(2000, Math.max(2000, Math.min(6000, ttlMs / 2))))) restartAgent(L);
        break;
      }
      case 'kill-postmaster': {
        const L = await currentLeader(c);
        rec.target = L;
        rec.detail = `SIGKILL postmaster of leader ${L} (pid ${c.postmasterPid(L) ?? '?'})`;
        rec.injectedAt = Date.now();
        await c.killPostmaster(L);
        break;
      }
      case 'kill-both': {
        const L = await currentLeader(c);
        rec.target = L;
        rec.detail = `SIGKILL agent and postmaster of leader ${L}`;
        rec.injectedAt = Date.now();
        await c.killAgent(L);
        await c.killPostmaster(L);
        if (await hold(rng.int(3000, 8000))) restartAgent(L);
        break;
      }
      case 'kill-replica': {
        const r = await replicas(c);
        const R = rng.pick(r.sync.length > 0 ? r.sync : r.all);
        rec.target = R;
        rec.detail = `SIGKILL agent and postmaster of ${r.sync.includes(R) ? 'synchronous ' : ''}replica ${R}`;
        rec.injectedAt = Date.now();
        await c.killAgent(R);
        await c.killPostmaster(R);
        if (await hold(rng.int(3000, 8000))) restartAgent(R);
        break;
      }
      case 'stop-agent': {
        const L = await currentLeader(c);
        const pid = c.node(L).agent?.pid;
        if (!pid) throw new Error(`agent of ${L} is not running`);
        rec.target = L;
        rec.detail = `SIGSTOP agent of leader ${L} (pid ${pid})`;
        rec.injectedAt = Date.now();
        signalPid(pid, 'SIGSTOP');
        try {
          await hold(ttlMs + rng.int(2000, 6000));
        } finally {
          signalPid(pid, 'SIGCONT');
        }
        break;
      }
      case 'partition-primary': {
        const L = await currentLeader(c);
        const others = c.nodes.filter((n) => n.name !== L).map((n) => n.name);
        // Whose etcd member leads etcd matters: cutting it off costs etcd an election as well.
        const E = await etcdLeader(c);
        rec.target = L;
        rec.detail = `cut leader ${L} off from ${others.join(', ')} (both ways; the router and clients still reach it; etcd's raft leader on ${E ?? 'no member'})`;
        rec.injectedAt = Date.now();
        // Only node-to-node traffic is cut: the client namespace (router) and the runner keep
        // reaching the old primary, the case where a fence that fails would show.
        await c.lab.split([L], others);
        if (await hold(ttlMs + rng.int(3000, 10_000))) for (const n of [L, ...others]) await c.lab.heal(n);
        break;
      }
      case 'partition-replica': {
        const r = await replicas(c);
        const R = rng.pick(r.sync.length > 0 ? r.sync : r.all);
        const others = c.nodes.filter((n) => n.name !== R).map((n) => n.name);
        rec.target = R;
        rec.detail = `cut ${r.sync.includes(R) ? 'synchronous ' : ''}replica ${R} off from ${others.join(', ')} (both ways)`;
        rec.injectedAt = Date.now();
        // Packets are dropped, not refused: the primary's walsender keeps the connection, as with a
        // host that lost power or its cable.
        await c.lab.split([R], others);
        if (await hold(ttlMs + rng.int(3000, 10_000))) for (const n of [R, ...others]) await c.lab.heal(n);
        break;
      }
      case 'kill-etcd-member':
      case 'kill-etcd-leader': {
        const E = await etcdLeader(c);
        if (!E) throw new Error('no etcd member knows the raft leader');
        const M =
          planned.kind === 'kill-etcd-leader'
            ? E
            : rng.pick(
                c.nodes
                  .map((n) => n.name)
                  .filter((n) => n !== E)
                  .sort(),
              );
        rec.target = M;
        rec.detail = `SIGKILL etcd member ${M}${M === E ? ' (raft leader)' : ` (raft leader is ${E})`}`;
        rec.injectedAt = Date.now();
        await c.stopEtcdMember(M, 'SIGKILL');
        if (await hold(rng.int(2000, 8000))) await c.startEtcdMember(M);
        break;
      }
      case 'switchover': {
        const L = await currentLeader(c);
        const r = await replicas(c);
        const pool = env.mode !== 'async' && r.sync.length > 0 ? r.sync : r.all;
        if (pool.length === 0) throw new Error('no streaming replica to switch over to');
        const C = rng.pick(pool);
        rec.target = L;
        rec.detail = `POST /switchover leader=${L} candidate=${C}`;
        rec.injectedAt = Date.now();
        const limit = deadline(60_000, env.signal);
        try {
          const res = await fetch(`http://${c.node(L).address}:${NET_PORTS.api}/switchover`, {
            method: 'POST',
            body: JSON.stringify({ leader: L, candidate: C }),
            signal: limit.signal,
          });
          const text = (await res.text()).trim();
          rec.detail += `: ${res.status} ${text}`;
          if (res.status !== 200) rec.error = `switchover refused: ${res.status} ${text}`;
        } finally {
          limit.clear();
        }
        break;
      }
      case 'switchover-ctl': {
        const L = await currentLeader(c);
        const r = await replicas(c);
        // Half the time without --candidate: the leader picks (a synchronous standby in sync modes).
        const C =
          rng.next() < 0.5 && r.all.length > 0
            ? rng.pick(env.mode !== 'async' && r.sync.length ? r.sync : r.all)
            : null;
        const args = [CLI, 'ctl', '-c', c.node(L).configPath, 'switchover', '--force', '--leader', L];
        if (C) args.push('--candidate', C);
        rec.target = L;
        rec.detail = `pgha ctl switchover --force --leader ${L}${C ? ` --candidate ${C}` : ''}`;
        rec.injectedAt = Date.now();
        const out = await run(process.execPath, args, { timeoutMs: 90_000, signal: env.signal });
        const last = (out.stdout + out.stderr).trim().split('\n').at(-1) ?? '';
        rec.detail += `: exit ${out.code}, ${last}`;
        if (out.code !== 0) rec.error = `pgha ctl switchover failed: ${last}`;
        break;
      }
    }
  } catch (err) {
    rec.error = err instanceof Error ? err.message : String(err);
  }
  rec.restoredAt = Date.now();
  return rec;
}

/**
 * Undoes whatever may still be broken (after an interrupted or failed fault, and before the final
 * check): heals every partition, SIGCONTs every agent, starts every etcd member and agent that is
 * not running.
 */
export async function restoreEverything(env: FaultEnv): Promise<string[]> {
  const c = env.cluster;
  const done: string[] = [];
  for (const h of c.lab.hosts) await c.lab.heal(h.name);
  for (const n of c.nodes) if (n.agent?.pid && isAlive(n.agent)) signalPid(n.agent.pid, 'SIGCONT');
  for (const n of c.nodes) {
    if (!n.etcd || !isAlive(n.etcd)) {
      await c.startEtcdMember(n.name);
      done.push(`started etcd on ${n.name}`);
    }
  }
  for (const n of c.nodes) {
    if (!n.agent || !isAlive(n.agent)) {
      c.startAgent(n.name);
      done.push(`started the agent on ${n.name}`);
    }
  }
  return done;
}

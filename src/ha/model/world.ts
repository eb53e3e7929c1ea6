/**
 * The model test's world: N nodes, each a simulated machine with a PostgreSQL (sim-postgres.ts)
 * and a real `HaRunner` on a simulated etcd (sim-store.ts) and clock (sim-clock.ts); a workload of
 * clients writing to whichever node accepts writes; seeded random faults; and the invariants,
 * checked after every step:
 *
 * 1. at most one node accepts writes at any moment;
 * 2. in synchronous modes, a node that accepts writes holds every commit ever acknowledged;
 * 3. no node keeps the leader key while unable to serve for longer than the rules allow.
 */
import pino from 'pino';
import { parseDynamicConfig } from '../../config/schema.js';
import { validateConfig } from '../../config/load.js';
import type { PghaConfig } from '../../config/types.js';
import { demoNodeConfig } from '../../demo/demo.js';
import { KEYS } from '../../dcs/keys.js';
import type { Member } from '../../dcs/types.js';
import { slotNameForMember } from '../../postgres/slots.js';
import { statusBody } from '../../api/status.js';
import { peerStatusFromBody } from '../peer.js';
import { HaRunner } from '../runner.js';
import type { PeerStatus } from '../types.js';
import { SimClock, SimTime } from './sim-clock.js';
import { parseSsn, resetUids, SimPostgres, SimServer, statusOf } from './sim-postgres.js';
import { SimDcs, SimStore } from './sim-store.js';

/** A seeded pseudo-random generator (mulberry32), so a failing seed replays exactly. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ModelOptions {
  seed: number;
  nodes?: number;
  synchronousMode?: boolean | 'quorum';
  synchronousNodeCount?: number;
  ttl?: number;
  loopWait?: number;
  retryTimeout?: number;
}

interface Node {
  name: string;
  server: SimServer;
  /** The machine is up (its processes can run). */
  up: boolean;
  agent: { runner: HaRunner; dcs: SimDcs; pg: SimPostgres; clock: SimClock; incarnation: number } | null;
  etcdCut: boolean;
  wallOffset: number;
  log: string[];
}

interface Commit {
  node: string;
  pos: number;
  uid: number;
}

export interface Violation {
  step: number;
  atMs: number;
  invariant: string;
  detail: string;
}

const PREFIX = '/service/model/';
/** PostgreSQL's default: how long a walsender waits for an unreachable standby's answer. */
const WAL_SENDER_TIMEOUT_MS = 60_000;

export class World {
  readonly time = new SimTime();
  readonly store = new SimStore(this.time, PREFIX);
  readonly nodes: Node[] = [];
  readonly random: () => number;
  readonly opts: Required<ModelOptions>;
  private sysidCounter = 7_000_000_000_000_000_000n;
  private cuts = new Set<string>();
  private pending: Commit[] = [];
  /** Commits acknowledged with a synchronous standby's confirmation. */
  readonly acked: Commit[] = [];
  /** Per node, the WAL position of the last commit acknowledged there, confirmed or not. */
  readonly lastAcked = new Map<string, number>();
  readonly violations: Violation[] = [];
  readonly events: string[] = [];
  private keyHeldDown = new Map<string, number>();
  step = 0;
  private incarnations = 0;
  private walSenderPids = 1000;
  stats = { writes: 0, acked: 0, promotions: 0, faults: 0, leaderlessMs: 0 };

  constructor(opts: ModelOptions) {
    resetUids();
    this.opts = {
      nodes: 3,
      synchronousMode: false,
      synchronousNodeCount: 1,
      ttl: 10,
      loopWait: 1,
      retryTimeout: 3,
      ...opts,
    };
    this.random = rng(opts.seed);
    const sysids = { next: () => String((this.sysidCounter += 1n)) };
    for (let i = 1; i <= this.opts.nodes; i++) {
      const name = `n${i}`;
      this.nodes.push({
        name,
        server: new SimServer(name, sysids),
        up: true,
        agent: null,
        etcdCut: false,
        wallOffset: Date.parse('2026-06-01T00:00:00Z'),
        log: [],
      });
    }
    this.time.add('world', () => this.tick(), 100);
  }

  node(name: string): Node {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  members(): Map<string, SimServer> {
    return new Map(this.nodes.filter((n) => n.up).map((n) => [n.name, n.server]));
  }

  addressOf(name: string): string {
    return name;
  }

  /** Cuts (or heals) the network between two nodes. */
  cut(a: string, b: string, on: boolean): void {
    const k = [a, b].sort().join('|');
    if (on) this.cuts.add(k);
    else this.cuts.delete(k);
  }

  linked(a: string, b: string): boolean {
    return !this.cuts.has([a, b].sort().join('|')) && this.node(a).up && this.node(b).up;
  }

  private config(name: string): PghaConfig {
    const raw = demoNodeConfig({
      name,
      etcd: ['127.0.0.1:2379'],
      pgPort: 5432,
      apiPort: 8008,
      dataDir: `/nonexistent/${name}`,
      password: 'x',
    });
    const pgSection = raw.postgresql as Record<string, unknown>;
    pgSection.connect_address = `${name}:5432`;
    pgSection.bin_dir = '/usr/lib/postgresql/15/bin';
    (raw.restapi as Record<string, unknown>).connect_address = `${name}:8008`;
    const dcs = (raw.bootstrap as { dcs: Record<string, unknown> }).dcs;
    Object.assign(dcs, {
      ttl: this.opts.ttl,
      loop_wait: this.opts.loopWait,
      retry_timeout: this.opts.retryTimeout,
      primary_start_timeout: 10,
      synchronous_mode: this.opts.synchronousMode,
      synchronous_node_count: this.opts.synchronousNodeCount,
      postgresql: { ...(dcs.postgresql as object), use_pg_rewind: true, use_slots: true },
    });
    const res = validateConfig(raw, `${name}.yml`, { PATH: '/usr/bin' });
    if (!res.config) throw new Error(`model config: ${res.errors.join('; ')}`);
    return res.config;
  }

  /** Starts the agent of a node whose machine is up. */
  startAgent(name: string): void {
    const n = this.node(name);
    if (!n.up || n.agent) return;
    const incarnation = ++this.incarnations;
    const owner = `${name}#${incarnation}`;
    const clock = new SimClock(this.time, owner, () => n.wallOffset);
    const config = this.config(name);
    const dcs = new SimDcs(this.store, clock, name, this.opts.ttl, {
      cut: () => n.etcdCut || !n.up,
      latencyMs: () => 2 + Math.floor(this.random() * 20),
      timeoutMs: () => this.opts.retryTimeout * 1000,
    });
    const pg = new SimPostgres(n.server, clock, this);
    const log = n.log;
    const logger = pino(
      { level: 'info', base: {} },
      {
        write: (line: string) => {
          const o = JSON.parse(line) as { msg?: string; level?: number };
          log.push(
            `${(this.time.mono / 1000).toFixed(1)}s ${o.level === 50 ? 'ERROR' : o.level === 40 ? 'WARN' : 'INFO'} ${o.msg ?? ''}`,
          );
          if (log.length > 20_000) log.splice(0, log.length - 20_000);
        },
      },
    );
    const runner = new HaRunner({
      config,
      dcs,
      pg,
      logger,
      clock,
      parseDynamic: (raw) => parseDynamicConfig(raw).config,
      fetchPeer: (m, signal) => this.fetchPeer(name, m, signal),
      probePort: (host, port) => Promise.resolve(this.probe(name, host, port)),
      postFailsafe: () => Promise.reject(new Error('no failsafe in the model')),
      runCallback: () => undefined,
      slotName: slotNameForMember,
      version: 'model',
    });
    n.agent = { runner, dcs, pg, clock, incarnation };
    void runner.start().catch((err: unknown) => this.event(`${name}: agent start failed: ${String(err)}`));
  }

  /** The machine goes down at once: its agent and PostgreSQL die with it (a crash, not a stop). */
  powerOff(name: string): void {
    const n = this.node(name);
    this.killAgent(name);
    n.server.stop(false);
    n.up = false;
  }

  /** Cuts a node off from every other node (its etcd is a separate switch: `etcdCut`). */
  isolate(name: string): void {
    for (const o of this.nodes) if (o.name !== name) this.cut(name, o.name, true);
  }

  /** Kills the agent process (SIGKILL): its timers stop, its requests never arrive. */
  killAgent(name: string): void {
    const n = this.node(name);
    const a = n.agent;
    if (!a) return;
    a.dcs.kill();
    a.pg.kill();
    this.time.cancelOwner(a.clock.owner);
    n.agent = null;
  }

  /** A clean agent stop (SIGTERM): the runner's own shutdown. */
  async stopAgent(name: string): Promise<void> {
    const a = this.node(name).agent;
    if (!a) return;
    const done = a.runner.shutdown();
    await this.time.advance(30_000);
    await done;
    this.killAgent(name);
  }

  private fetchPeer(from: string, m: Member, signal: AbortSignal): Promise<PeerStatus> {
    const t = this.nodes.find((x) => x.name === m.name);
    if (!t || !t.agent || !this.linked(from, m.name)) {
      return new Promise((_, reject) => {
        const fail = () => reject(new Error('unreachable'));
        if (signal.aborted) fail();
        else signal.addEventListener('abort', fail, { once: true });
      });
    }
    const snap = { ...t.agent.runner.snapshot };
    const st = statusOf(t.server, this.time.mono, this);
    snap.running = t.server.running;
    snap.status = st;
    const body = statusBody(snap, 'model');
    return Promise.resolve(peerStatusFromBody(m, body as Parameters<typeof peerStatusFromBody>[1]));
  }

  private probe(from: string, host: string, port: number): 'open' | 'refused' | 'unknown' {
    const t = this.nodes.find((x) => x.name === host);
    if (!t || !this.linked(from, host)) return 'unknown';
    if (port === 5432) return t.server.running ? 'open' : 'refused';
    return t.agent ? 'open' : 'refused';
  }

  event(text: string): void {
    this.events.push(`${this.step} ${(this.time.mono / 1000).toFixed(1)}s ${text}`);
    if (this.events.length > 20_000) this.events.splice(0, this.events.length - 20_000);
  }

  // ---- the world's clock tick: replication, workload, acknowledgements, invariants ------------

  private tick(): void {
    this.time.add('world', () => this.tick(), 100);
    const now = this.time.mono;
    for (const n of this.nodes) this.replicate(n, now);
    for (const n of this.nodes) this.keepWalSenders(n, now);
    for (const n of this.nodes) {
      if (n.up && n.server.writable(now) && this.random() < 0.5) {
        const s = n.server.wal.append(100, n.name);
        this.pending.push({ node: n.name, pos: n.server.wal.end - 1, uid: s.uid });
        this.stats.writes++;
      }
    }
    this.acknowledge(now);
    this.check('tick');
  }

  private replicate(r: Node, now: number): void {
    const s = r.server;
    s.streaming = false;
    if (!r.up || !s.ready(now) || !s.inRecovery || !s.upstream) return;
    const u = this.nodes.find((x) => x.name === s.upstream);
    if (!u || !u.up || !u.server.ready(now) || !this.linked(r.name, u.name)) return;
    if (!s.wal.prefixOf(u.server.wal)) return; // diverged: the receiver cannot continue
    s.streaming = true;
    const lag = this.random() < 0.2 ? Math.floor(this.random() * 300) : 0;
    const target = Math.max(s.wal.end, u.server.wal.end - lag);
    s.wal = u.server.wal.copy(target);
    const w = u.server.walSenders.get(r.name);
    u.server.walSenders.set(r.name, {
      pid: w?.pid ?? ++this.walSenderPids,
      sent: u.server.wal.end,
      flushed: s.wal.end,
      replyAt: now,
    });
    const slot = s.slotName ? u.server.slots.get(s.slotName) : undefined;
    if (slot) {
      slot.active = true;
      slot.restartLsn = s.wal.end;
    }
  }

  /**
   * A primary's walsenders for standbys that no longer stream from it: closed when the standby's
   * host answers (its server stopped, or follows another), kept when it cannot be reached (a cut,
   * a host down) until wal_sender_timeout, the WAL the primary writes still sent into it.
   */
  private keepWalSenders(p: Node, now: number): void {
    for (const [name, w] of p.server.walSenders) {
      const r = this.node(name).server;
      if (r.streaming && r.upstream === p.name) continue;
      if (this.linked(p.name, name) || now - w.replyAt >= WAL_SENDER_TIMEOUT_MS)
        p.server.walSenders.delete(name);
      else w.sent = p.server.wal.end;
    }
  }

  /** A primary's shutdown checkpoint reaches every replica streaming from it. */
  private flushTo(p: SimServer): void {
    for (const r of this.nodes)
      if (
        r.up &&
        r.server.streaming &&
        r.server.upstream === p.name &&
        this.linked(r.name, p.name) &&
        r.server.wal.prefixOf(p.wal)
      )
        r.server.wal = p.wal.copy();
  }

  private acknowledge(now: number): void {
    const keep: Commit[] = [];
    for (const c of this.pending) {
      const n = this.node(c.node);
      if (!n.up || !n.server.writable(now) || !n.server.wal.holds(c.pos, c.uid)) continue; // the client saw an error
      const ssn = parseSsn(n.server.ssnActive);
      let ok = !ssn;
      if (ssn) {
        const holders = this.nodes.filter(
          (r) =>
            r !== n &&
            r.up &&
            r.server.streaming &&
            r.server.upstream === n.name &&
            r.server.wal.holds(c.pos, c.uid),
        );
        const listed = holders.filter((r) => ssn.names.includes('*') || ssn.names.includes(r.name));
        ok = listed.length >= ssn.n;
      }
      if (ok) {
        // Only what a synchronous standby confirmed is promised: without one (not strict) the
        // leader acknowledges alone, as PostgreSQL does with an empty synchronous_standby_names.
        if (ssn) this.acked.push(c);
        this.lastAcked.set(c.node, Math.max(c.pos, this.lastAcked.get(c.node) ?? 0));
        this.stats.acked++;
      } else keep.push(c);
    }
    this.pending = keep;
  }

  /** A leader accepting writes and every other member streaming. */
  healthy(): boolean {
    const leader = this.store.read().leader?.name;
    if (!leader) return false;
    const now = this.time.mono;
    return this.nodes.every(
      (n) =>
        n.up &&
        n.agent &&
        n.server.ready(now) &&
        (n.name === leader ? n.server.writable(now) : n.server.streaming),
    );
  }

  /** The last events and each node's last log lines. */
  report(): string {
    const end = (this.violations[0]?.atMs ?? this.time.mono) / 1000 + 2;
    const inWindow = (line: string) => {
      const t = Number(/(\d+(?:\.\d+)?)s /.exec(line)?.[1]);
      return Number.isFinite(t) && t >= end - 62 && t <= end;
    };
    return [
      ...this.events.filter(inWindow),
      ...this.violations.map(
        (v) => `VIOLATION step ${v.step} at ${(v.atMs / 1000).toFixed(1)} s: ${v.invariant}: ${v.detail}`,
      ),
      ...this.nodes.flatMap((n) => [
        `--- ${n.name} (up ${n.up}, agent ${n.agent ? 'running' : 'down'})`,
        ...n.log.filter(inWindow),
      ]),
    ].join('\n');
  }

  // ---- invariants ---------------------------------------------------------------------------

  check(where: string): void {
    const now = this.time.mono;
    const writable = this.nodes.filter((n) => n.up && n.server.writable(now));
    if (writable.length > 1)
      this.violate(
        'one writable node',
        `${writable.map((n) => n.name).join(' and ')} accept writes at once (${where})`,
      );
    if (this.opts.synchronousMode) {
      for (const w of writable) {
        const missing = this.acked.filter((c) => !w.server.wal.holds(c.pos, c.uid));
        if (missing.length > 0)
          this.violate(
            'acknowledged commits kept',
            `${w.name} accepts writes but lacks ${missing.length} acknowledged commit(s), the first written on ${missing[0]?.node} at ${missing[0]?.pos}`,
          );
      }
    }
    const leader = this.store.read().leader?.name ?? null;
    if (!leader) this.stats.leaderlessMs += 0; // measured by the caller
    for (const n of this.nodes) {
      // A promotion in progress serves soon: the lease is kept for it on purpose (a long replay).
      const stuck = leader === n.name && !n.server.writable(now) && !n.server.promotion && !this.paused();
      if (!stuck) {
        this.keyHeldDown.delete(n.name);
        continue;
      }
      const since = this.keyHeldDown.get(n.name) ?? now;
      this.keyHeldDown.set(n.name, since);
      const bound = (this.opts.ttl + 10 + 4 * this.opts.loopWait + this.opts.retryTimeout * 2) * 1000;
      if (now - since > bound)
        this.violate(
          'no leader stuck unable to serve',
          `${n.name} has held the leader key for ${Math.round((now - since) / 1000)} s without accepting writes`,
        );
    }
  }

  private paused(): boolean {
    const cfg = this.store.get(KEYS.config);
    return !!cfg && /"pause":true/.test(cfg.value);
  }

  /** Records a violation once per invariant and subject (the first node named in the detail). */
  private violate(invariant: string, detail: string): void {
    const subject = (d: string) => d.split(' ')[0];
    if (this.violations.some((v) => v.invariant === invariant && subject(v.detail) === subject(detail)))
      return;
    this.violations.push({ step: this.step, atMs: this.time.mono, invariant, detail });
  }
}

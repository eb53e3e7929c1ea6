/**
 * `pgha router`: sends PostgreSQL clients to the primary (read-write port) or to healthy replicas
 * (read-only port), from the cluster as etcd shows it, without polling health checks.
 *
 * - Topology: a prefix watch on the cluster wakes a linearizable re-read at once; a read every
 *   `check_interval` proves the view is current even when nothing changes.
 * - Fence: when the primary changes, loses the leader key, or may have lost its lease (etcd
 *   unreachable for longer than the ttl since our last good read), every session routed to it as
 *   primary is closed at once. stolon-proxy does the same; HAProxy only with `shutdown-sessions`.
 *   With `failsafe_mode`, while etcd is unreachable the router asks the members' agents
 *   (`GET /primary`) and keeps routing to the last known primary past the ttl only while that agent
 *   itself says it is the primary with failsafe mode active (ha/failsafe-view.ts has the rule).
 * - No primary for a moment: new connections wait (up to `wait_timeout`), then go to the new one.
 * - Replicas: a replica that stops qualifying for reads (gone, not streaming, lagging past
 *   `max_lag`, tagged noloadbalance) gets no new sessions at once, and its read-only sessions move
 *   to another replica when it is still unfit `replica_grace` seconds later (HAProxy's
 *   `on-marked-down shutdown-sessions` closes them); a replica that became the leader moves them at once.
 * - Sessions move (session.ts): when the primary changes, sessions to the old one are stopped where
 *   they stand (the fence) and re-attached to the new one. A switchover drains first: the old
 *   primary's agent writes a `drain` key; the router holds its sessions at their next idle
 *   boundary (new transactions wait), lets transactions in flight finish within `drain_timeout`,
 *   reads each held session's state from the old server, cuts what cannot move, and answers
 *   `routers/<id>/drained` (it registers as `routers/<id>` on its own lease); once the new primary
 *   runs, the held sessions move to it. Sessions still starting when the drain began are held as
 *   their startup ends (`sessionRelaying`).
 */
import { staleViewDeadline } from '../ha/timing.js';
import { failsafeView } from '../ha/failsafe-view.js';
import { FailsafeProbe, PRIMARY_ANSWER_TIMEOUT_MS } from '../ha/failsafe-probe.js';
import { createServer, type Server, type Socket } from 'node:net';
import { listenOrExplain } from '../util/net.js';
import { connect } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { ListenAddress } from '../config/types.js';
import type { ClusterState, DrainKey } from '../dcs/types.js';
import { ConfigError, errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { cancelRequest, type FrontendPacket } from './protocol.js';
import { nativeRelay, type DataPath, type NativeRelay } from './native.js';
import type { RoleSecrets } from './role-secrets.js';
import { RouterRefusal, Session, type PortKind, type SessionHost } from './session.js';
import {
  ReplicaPicker,
  computeTopology,
  sameBackend,
  type Backend,
  type BalancePolicy,
  type Topology,
} from './topology.js';

/** What the router needs from the DCS (an `EtcdDcs` fits). */
export interface TopologySource {
  readCluster(signal?: AbortSignal): Promise<ClusterState>;
  /** `onChange([])` means "changes may have been missed: re-read everything". */
  watch(onChange: (keys: string[]) => void): () => Promise<void>;
  /** Keys on the router's own lease (registration, drain answers); absent: the router does not register. */
  claimKey?(
    rel: string,
    value: string,
    signal?: AbortSignal,
  ): Promise<{ held: boolean; holder: string | null }>;
  releaseKey?(rel: string, value: string): Promise<boolean>;
  refreshLease?(signal?: AbortSignal): Promise<number>;
  /** The deadline of each request (the cluster's `retry_timeout`, as the agents use it). */
  setRequestTimeout?(ms: number): void;
}

export interface RouterOptions {
  source: TopologySource;
  logger: Logger;
  /** Read-write listener(s). */
  listen: ListenAddress;
  /** Read-only listener(s); none when absent. */
  replicaListen?: ListenAddress;
  balance: BalancePolicy;
  maxLagBytes: number | null;
  fallbackToPrimary: boolean;
  waitTimeoutMs: number;
  /** How long a replica may stay unfit before its read-only sessions are closed (default 10 s). */
  replicaGraceMs?: number;
  connectTimeoutMs: number;
  checkIntervalMs: number;
  /** Confirm a new primary with its agent's `GET /primary` before routing writes to it. */
  verifyPrimary: boolean;
  /** How long a client may take to send its first packet (default 30 s). */
  startupTimeoutMs?: number;
  /**
   * Where bytes are copied after a session's startup phase: `native` (the relay thread of
   * native/relay.c; the router refuses to start without it), `javascript`, or `auto` (native when
   * it is built, else JavaScript with a warning). Default `auto`.
   */
  dataPath?: 'auto' | DataPath;
  /** Threads of the native relay (default 1); the first router of a process sets it. */
  relayThreads?: number;
  /** How long a switchover's drain lets transactions finish before it cuts them (default 5 s). */
  drainTimeoutMs?: number;
  /** `router.tls`: terminate clients' TLS (their sessions can then move); absent: pass it through. */
  tls?: SecureContext | null;
  /** Role verifiers, to authenticate as a client on another server; absent: sessions cannot move. */
  secrets?: RoleSecrets | null;
  /** The name this router registers under in etcd (`routers/<id>`). */
  id?: string;
}

/** One change of where writes go, for the status endpoint and logs. */
export interface TopologyChange {
  at: string;
  from: string | null;
  to: string | null;
  reason: string;
}

export interface RouterStats {
  sessionsOpened: { rw: number; ro: number };
  fenced: number;
  /** Read-only sessions closed because their replica stopped qualifying. */
  replicaCut: number;
  refused: Record<string, number>;
  cancels: { routed: number; broadcast: number };
  topologyChanges: number;
  closedBytesFromClients: number;
  closedBytesToClients: number;
  /** Sessions moved to another server. */
  moved: number;
  /** Sessions that could not move and were closed, by kind of reason. */
  cut: Record<string, number>;
  /** The pause of the last move and the longest, in ms (from the stop to the new server). */
  movePauseMs: { last: number | null; max: number | null };
  /** Switchover drains this router took part in. */
  drains: number;
}

/** A switchover's drain in progress (see the file comment). */
interface ActiveDrain {
  key: DrainKey;
  startedAt: number;
  /** Sessions asked to hold, until they are held and their state read. */
  waiting: Set<Session>;
  /** Sessions held (their state being read, or read). */
  held: Set<Session>;
  reading: number;
  /** Cut at the end of the drain (encrypted end to end: they cannot be held). */
  blind: Set<Session>;
  /**
   * Sessions whose startup ended once the drain was finishing: asked to hold, never cut by it and
   * never waited for (their state is not read: their server may be stopping; the recorded state,
   * a session this fresh has little else, decides whether they can move).
   */
  late: Set<Session>;
  timer: NodeJS.Timeout | null;
  /** Set once the router answered `drained`. */
  answered: boolean;
  finishing: boolean;
  expiry: NodeJS.Timeout | null;
}

/** A bounded label for a cut reason (metrics). */
export function cutKind(reason: string): string {
  const kinds: Array<[RegExp, string]> = [
    [/temporary tables/, 'temporary_tables'],
    [/LISTEN/, 'listen'],
    [/advisory/, 'advisory_locks'],
    [/WITH HOLD/, 'with_hold_cursors'],
    [/COPY/, 'copy'],
    [/open transaction/, 'open_transaction'],
    [/still running/, 'statement_running'],
    [/encrypted end to end/, 'tls'],
    [/authenticat|verifier|SCRAM|password/i, 'authentication'],
    [/no (primary|replica) available/, 'no_server'],
  ];
  return kinds.find(([re]) => re.test(reason))?.[1] ?? 'other';
}

interface Waiter {
  port: PortKind;
  resolve: (v: { backend: Backend; role: 'primary' | 'replica' }) => void;
}

export class Router {
  private readonly log: Logger;
  private readonly servers: Array<{ kind: PortKind; server: Server }> = [];
  private readonly sessions = new Map<number, Session>();
  /** Cancel keys the clients know → their session (whose server may have changed since). */
  private readonly keys = new Map<string, Session>();
  private readonly waiters = new Set<Waiter>();
  private readonly lastConnectWarn = new Map<string, number>();
  private readonly picker: ReplicaPicker;
  private stopWatch: (() => Promise<void>) | null = null;
  private interval: NodeJS.Timeout | null = null;
  private leaseTimer: NodeJS.Timeout | null = null;
  /** Unfit replicas that still have read-only sessions: when those get closed. */
  private readonly replicaCuts = new Map<string, NodeJS.Timeout>();
  private stopped = false;
  private relay: NativeRelay | null = null;
  /** The data path in use, decided at start. */
  dataPath: DataPath = 'javascript';
  private drain: ActiveDrain | null = null;
  /** Drain requests already handled (so a lingering key is not drained twice). */
  private readonly drainsSeen: string[] = [];
  private registration: NodeJS.Timeout | null = null;
  private registered: string | null = null;
  readonly id: string;

  private topology: Topology | null = null;
  /** The topology of the last good read, untouched by the fence: its primary is the last known one. */
  private lastRead: Topology | null = null;
  /** failsafe_mode: asks the members' agents while etcd is unreachable. */
  private readonly failsafe: FailsafeProbe;
  /** Why writes still go to the primary past the read's deadline; null when they do not. */
  private failsafeWhy: string | null = null;
  /** Where writes go now (verified); null while there is none. */
  private primary: Backend | null = null;
  private primaryReason = 'no etcd read yet';
  /** A primary named by etcd, awaiting its agent's confirmation. */
  private verifying: Backend | null = null;
  private reading = false;
  private readAgain = false;
  /** Monotonic send time of the last good read (every deadline is on the monotonic clock). */
  private lastReadSentAt: number | null = null;
  private lastReadOkAt: number | null = null;
  private etcdError: string | null = null;
  private lastChange: TopologyChange | null = null;
  readonly stats: RouterStats = {
    sessionsOpened: { rw: 0, ro: 0 },
    fenced: 0,
    replicaCut: 0,
    refused: {},
    cancels: { routed: 0, broadcast: 0 },
    topologyChanges: 0,
    closedBytesFromClients: 0,
    closedBytesToClients: 0,
    moved: 0,
    cut: {},
    movePauseMs: { last: null, max: null },
    drains: 0,
  };
  /** Called after every topology change (metrics, tests). */
  onChange: ((t: TopologyChange) => void) | null = null;

  constructor(private readonly opts: RouterOptions) {
    this.log = opts.logger;
    this.picker = new ReplicaPicker(opts.balance);
    this.id = opts.id ?? `router-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.failsafe = new FailsafeProbe({
      intervalMs: opts.checkIntervalMs,
      timeoutMs: PRIMARY_ANSWER_TIMEOUT_MS,
      now: () => performance.now(),
      onAnswer: () => this.checkView(),
      onError: (err) => this.log.error({ err: errorMessage(err) }, 'failsafe check failed'),
    });
  }

  private get drainTimeoutMs(): number {
    return this.opts.drainTimeoutMs ?? 5000;
  }

  /** Binds the listeners and starts following etcd. Connections arriving before the first read wait. */
  async start(): Promise<void> {
    this.chooseDataPath();
    await this.listenAll('rw', this.opts.listen);
    if (this.opts.replicaListen) await this.listenAll('ro', this.opts.replicaListen);
    this.stopWatch = this.opts.source.watch((keys) => {
      if (
        keys.length === 0 ||
        keys.some((k) => k === 'leader' || k === 'config' || k.startsWith('members/'))
      ) {
        this.refresh();
      }
    });
    this.interval = setInterval(() => this.refresh(), this.opts.checkIntervalMs);
    this.refresh();
    this.register();
  }

  /**
   * Keeps `routers/<id>` on the router's own lease (refreshed every second or two), so an agent
   * switching over knows which routers to wait for; a router that dies drops out with its lease.
   */
  private register(): void {
    const src = this.opts.source;
    if (!src.claimKey || !src.refreshLease) return;
    const value = JSON.stringify({
      drain_timeout_ms: this.drainTimeoutMs,
      listen: `${this.opts.listen.hosts.join(',')}:${this.port('rw') ?? this.opts.listen.port}`,
      pid: process.pid,
    });
    const tick = async () => {
      try {
        await src.refreshLease!(AbortSignal.timeout(5000));
        const r = await src.claimKey!(`routers/${this.id}`, value, AbortSignal.timeout(5000));
        if (!r.held && this.registered !== 'conflict') {
          this.log.warn({ id: this.id, holder: r.holder }, 'another router holds this router id in etcd');
          this.registered = 'conflict';
        } else if (r.held && this.registered !== 'ok') {
          this.log.info({ id: this.id }, 'registered in etcd (switchovers wait for this router to drain)');
          this.registered = 'ok';
        }
      } catch (err) {
        if (this.registered !== 'failed')
          this.log.warn({ err: errorMessage(err) }, 'could not register the router in etcd; retrying');
        this.registered = 'failed';
      }
      if (!this.stopped)
        this.registration = setTimeout(
          () => void tick(),
          Math.min(2000, Math.max(500, this.opts.checkIntervalMs)),
        );
      this.registration?.unref();
    };
    void tick();
  }

  private chooseDataPath(): void {
    const want = this.opts.dataPath ?? 'auto';
    if (want === 'javascript') return;
    const relay = nativeRelay(this.opts.relayThreads ?? 1);
    if (relay instanceof Error) {
      if (want === 'native') throw new ConfigError([`router.data_path: native: ${relay.message}`]);
      this.log.warn({ reason: relay.message }, 'relaying in JavaScript: the native data path is not built');
      return;
    }
    this.relay = relay;
    this.dataPath = 'native';
    this.log.info('native data path: sessions are relayed by the relay thread after their startup phase');
  }

  private async listenAll(kind: PortKind, addr: ListenAddress): Promise<void> {
    for (const host of addr.hosts) {
      const server = createServer({ noDelay: true }, (sock) => this.accept(kind, sock));
      const h = host === '*' || host === '' ? '0.0.0.0' : host;
      await listenOrExplain(server, h, addr.port, kind === 'rw' ? 'router.listen' : 'router.replica_listen');
      server.on('error', (err) => this.log.error({ err: err.message, kind }, 'router listener error'));
      this.servers.push({ kind, server });
      const a = server.address();
      this.log.info(
        { port: typeof a === 'object' && a ? a.port : addr.port, host: h },
        kind === 'rw' ? 'read-write port listening' : 'read-only port listening',
      );
    }
  }

  /** The bound port of the first listener of a kind (useful with port 0). */
  port(kind: PortKind): number | null {
    const s = this.servers.find((x) => x.kind === kind);
    const a = s?.server.address();
    return typeof a === 'object' && a ? a.port : null;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.interval) clearInterval(this.interval);
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
    this.failsafe.stop();
    if (this.registration) clearTimeout(this.registration);
    if (this.drain) {
      if (this.drain.timer) clearTimeout(this.drain.timer);
      if (this.drain.expiry) clearTimeout(this.drain.expiry);
    }
    for (const timer of this.replicaCuts.values()) clearTimeout(timer);
    this.replicaCuts.clear();
    await this.stopWatch?.().catch(() => undefined);
    const closing = this.servers.map(({ server }) => new Promise<void>((r) => server.close(() => r())));
    for (const s of [...this.sessions.values()]) s.close();
    await Promise.all(closing);
  }

  // ---- topology ---------------------------------------------------------------------------------

  /** Re-reads the cluster now; coalesces overlapping requests into one more read. */
  refresh(): void {
    if (this.stopped) return;
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    void this.readOnce().finally(() => {
      this.reading = false;
      if (this.readAgain) {
        this.readAgain = false;
        this.refresh();
      }
    });
  }

  private async readOnce(): Promise<void> {
    const sentAt = performance.now();
    let cluster: ClusterState;
    try {
      cluster = await this.opts.source.readCluster();
    } catch (err) {
      const msg = errorMessage(err);
      if (this.etcdError === null) {
        this.log.warn(
          { err: msg, leaseDeadline: wallIso(this.leaseDeadline()) },
          'etcd unreachable: routing to the last known primary until its lease could have expired',
        );
      }
      this.etcdError = msg;
      this.startFailsafeProbe();
      return;
    }
    if (this.stopped) return;
    if (this.etcdError !== null) this.log.info('etcd reachable again');
    this.etcdError = null;
    this.lastReadSentAt = sentAt;
    this.lastReadOkAt = Date.now();
    this.failsafe.stop();
    this.failsafeWhy = null;
    const t = computeTopology(cluster, { maxLagBytes: this.opts.maxLagBytes });
    this.lastRead = t;
    this.apply(t);
    this.followDrain(cluster.drain ?? null);
  }

  /** When the leader's lease could have expired if it was not renewed after our last read. */
  private leaseDeadline(): number | null {
    if (this.lastReadSentAt === null || this.topology === null) return null;
    return staleViewDeadline(this.lastReadSentAt, this.topology.ttl);
  }

  private apply(t: Topology): void {
    const prev = this.topology;
    this.topology = t;
    if (prev?.retryTimeout !== t.retryTimeout) this.opts.source.setRequestTimeout?.(t.retryTimeout * 1000);
    this.armLeaseTimer();

    // Sessions on the read-only port to a member that became the leader: it is no longer a replica.
    if (prev && t.leaderName !== null && prev.leaderName !== t.leaderName) {
      this.moveReplicaSessions(t.leaderName, `replica ${t.leaderName} promoted`);
    }
    this.watchReplicaSessions(t);

    if (t.primary === null) {
      this.verifying = null;
      if (this.primary !== null) this.setPrimary(null, t.primaryReason ?? 'no primary');
      else this.primaryReason = t.primaryReason ?? 'no primary';
    } else if (!sameBackend(t.primary, this.primary)) {
      if (this.primary !== null) this.setPrimary(null, `leader changed to ${t.primary.name}`);
      if (this.opts.verifyPrimary && t.primary.apiUrl) {
        if (!sameBackend(t.primary, this.verifying)) this.verify(t.primary);
      } else {
        this.setPrimary(t.primary, `leader ${t.primary.name}`);
      }
    }
    this.serveWaiters();
  }

  /**
   * Arms a timer for each replica that has read-only sessions but no longer qualifies, and disarms
   * those of replicas that qualify again.
   */
  private watchReplicaSessions(t: Topology): void {
    const fit = new Set(t.replicas.map((r) => r.name));
    for (const [name, timer] of this.replicaCuts) {
      if (!fit.has(name)) continue;
      clearTimeout(timer);
      this.replicaCuts.delete(name);
    }
    for (const s of this.sessions.values()) {
      const name = s.role === 'replica' ? s.backend?.name : undefined;
      if (name === undefined || fit.has(name) || this.replicaCuts.has(name)) continue;
      const timer = setTimeout(() => this.cutReplica(name), this.opts.replicaGraceMs ?? 10_000);
      timer.unref();
      this.replicaCuts.set(name, timer);
    }
  }

  /** Moves the read-only sessions of a replica that is still unfit. */
  private cutReplica(name: string): void {
    this.replicaCuts.delete(name);
    const t = this.topology;
    if (this.stopped || t === null || t.replicas.some((r) => r.name === name)) return;
    const why =
      t.excluded.find((e) => e.name === name)?.reason ??
      (t.leaderName === name ? 'became the leader' : 'no longer a member');
    this.stats.replicaCut += this.moveReplicaSessions(name, `replica ${name} unfit for reads: ${why}`);
  }

  /** Moves the read-only sessions on member `name` to another replica once idle; returns how many. */
  private moveReplicaSessions(name: string, why: string): number {
    let n = 0;
    for (const s of [...this.sessions.values()]) {
      if (s.role !== 'replica' || s.backend?.name !== name) continue;
      s.moveWhenIdle(why, this.drainTimeoutMs);
      n++;
    }
    if (n > 0) this.log.info({ sessions: n, why }, 'moving read-only sessions');
    return n;
  }

  /** Asks a new primary's agent whether it agrees (`GET /primary`: 200 only on the running leader). */
  private verify(candidate: Backend): void {
    this.verifying = candidate;
    const attempt = async (): Promise<void> => {
      if (this.stopped || !sameBackend(this.verifying, candidate)) return;
      let status: number | null = null;
      let err: string | null = null;
      try {
        const res = await fetch(`${candidate.apiUrl}/primary`, {
          method: 'GET',
          signal: AbortSignal.timeout(1000),
        });
        status = res.status;
        await res.body?.cancel();
      } catch (e) {
        err = errorMessage(e);
      }
      if (this.stopped || !sameBackend(this.verifying, candidate)) return;
      if (status === 200 || err !== null) {
        // The REST check adds safety when it answers; etcd alone decides when the agent cannot be reached.
        if (err !== null)
          this.log.warn(
            { member: candidate.name, err },
            'could not confirm the new primary over REST; trusting etcd',
          );
        this.verifying = null;
        this.setPrimary(candidate, `leader ${candidate.name}`);
        this.serveWaiters();
        return;
      }
      this.primaryReason = `leader ${candidate.name} answers ${status} on /primary`;
      setTimeout(() => void attempt(), 100).unref();
    };
    void attempt();
  }

  private setPrimary(next: Backend | null, reason: string): void {
    const old = this.primary;
    if (sameBackend(old, next)) return;
    this.primary = next;
    this.primaryReason = next === null ? reason : '';
    const change: TopologyChange = {
      at: new Date().toISOString(),
      from: old?.name ?? null,
      to: next?.name ?? null,
      reason,
    };
    this.lastChange = change;
    this.stats.topologyChanges++;
    if (old !== null) {
      // The fence: nobody keeps writing to a server that is no longer (or may no longer be) the
      // primary. Its sessions stop where they stand and move to the next primary.
      let n = 0;
      for (const s of [...this.sessions.values()]) {
        if (s.role !== 'primary' || s.backend?.name !== old.name) continue;
        n++;
        if (s.isHeld) void s.moveHeld(`primary changed: ${reason}`);
        else s.fence(`primary changed: ${reason}`);
      }
      this.stats.fenced += n;
      this.log.warn({ from: old.name, to: next?.name ?? null, reason, sessions: n }, 'primary changed');
    } else {
      this.log.info({ to: next?.name ?? null, reason }, 'primary changed');
    }
    try {
      this.onChange?.(change);
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'topology change hook threw');
    }
  }

  private armLeaseTimer(): void {
    this.armViewTimer(this.leaseDeadline());
  }

  /** Re-checks the view at `at` (monotonic ms): the read's deadline, or a confirmation's. */
  private armViewTimer(at: number | null): void {
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
    this.leaseTimer = null;
    if (at === null) return;
    this.leaseTimer = setTimeout(() => this.checkView(), Math.max(0, at - performance.now()));
    this.leaseTimer.unref();
  }

  /** etcd is unreachable: with failsafe_mode, ask the agents of the members last read. */
  private startFailsafeProbe(): void {
    const t = this.lastRead;
    if (!t?.failsafeMode || !t.primary) return;
    const targets = t.all.flatMap((b) => (b.apiUrl ? [{ name: b.name, apiUrl: b.apiUrl }] : []));
    if (!this.failsafe.active)
      this.log.warn(
        { members: targets.map((x) => x.name) },
        'failsafe_mode: asking the agents whether the primary stays in failsafe mode',
      );
    this.failsafe.start(targets);
  }

  /**
   * Whether writes may still go to the last known primary (at the read's deadline, at a
   * confirmation's, and on every failsafe answer): `failsafeView` decides, this carries it out.
   */
  private checkView(): void {
    if (this.stopped) return;
    const t = this.lastRead;
    const now = performance.now();
    const deadline = this.leaseDeadline();
    const v = failsafeView({
      enabled: t?.failsafeMode ?? false,
      now,
      viewDeadline: deadline,
      primary: t?.primary?.name ?? null,
      answers: this.failsafe.latest(),
      // A confirmation counts as a read sent when it was asked: `staleViewDeadline`, no margin.
      ttlS: t?.ttl ?? 0,
      marginMs: 0,
    });
    if (v.act) {
      // The read still holds (a timer may fire a little before the deadline it was set for on the
      // monotonic clock): check again at the deadline, or no fence would ever come.
      if (!v.failsafe || !t?.primary) return this.armViewTimer(v.until);
      this.armViewTimer(v.until);
      if (this.failsafeWhy === null)
        this.log.warn(
          { primary: t.primary.name },
          'etcd unreachable past ttl: routing writes to the primary while it confirms failsafe mode',
        );
      this.failsafeWhy = v.why;
      if (!sameBackend(this.primary, t.primary)) {
        this.verifying = null;
        this.setPrimary(t.primary, `failsafe_mode: ${v.why}`);
        this.serveWaiters();
      }
      return;
    }
    if (deadline === null || now < deadline) return;
    const since = this.lastReadOkAt ? new Date(this.lastReadOkAt).toISOString() : 'never';
    const reason =
      `etcd unreachable (last good read ${since}, ttl ${this.topology?.ttl ?? '?'} s): the leader's lease may ` +
      `have expired, writes stopped${this.etcdError ? ` (${this.etcdError})` : ''}` +
      (t?.failsafeMode ? `; failsafe_mode: ${v.why}` : '');
    if (this.primary !== null || this.verifying !== null)
      this.log.error({ reason }, 'stopped routing writes');
    this.failsafeWhy = null;
    this.verifying = null;
    this.setPrimary(null, reason);
    this.primaryReason = reason;
    // Replicas keep serving reads; a topology read (or, with failsafe_mode, a confirmation) brings writes back.
    if (this.topology) this.topology = { ...this.topology, primary: null, primaryReason: reason };
  }

  // ---- switchover drain -------------------------------------------------------------------------

  /** Starts, follows or ends a drain as the `drain` key says. */
  private followDrain(key: DrainKey | null): void {
    const d = this.drain;
    if (key !== null && d?.key.id !== key.id) {
      if (d) this.endDrain('another drain request');
      if (!this.drainsSeen.includes(key.id)) this.startDrain(key);
    } else if (key === null && d) {
      this.endDrain('the switchover is over');
    }
  }

  private startDrain(key: DrainKey): void {
    this.drainsSeen.push(key.id);
    if (this.drainsSeen.length > 20) this.drainsSeen.shift();
    const d: ActiveDrain = {
      key,
      startedAt: performance.now(),
      waiting: new Set(),
      held: new Set(),
      reading: 0,
      blind: new Set(),
      late: new Set(),
      timer: null,
      answered: false,
      finishing: false,
      expiry: null,
    };
    this.drain = d;
    this.stats.drains++;
    for (const s of this.sessions.values()) {
      if (s.role !== 'primary' || s.backend?.name !== key.from) continue;
      if (s.holdForDrain()) d.waiting.add(s);
      else if (s.phase === 'tls') d.blind.add(s);
    }
    this.log.info(
      { from: key.from, to: key.to, sessions: d.waiting.size, drainTimeoutMs: this.drainTimeoutMs },
      'switchover: draining sessions of the old primary (new transactions wait)',
    );
    d.timer = setTimeout(() => this.finishDrain(d), this.drainTimeoutMs);
    d.timer.unref();
    this.maybeFinishDrain(d);
  }

  /**
   * A session's data path is up, nothing relayed yet. It was picked before a drain of its server
   * began (`startDrain` could not hold it yet) or before the primary changed (the fence found no
   * link to stop); it is held, or moved, now, before its first statement.
   */
  private sessionRelaying(s: Session): void {
    if (s.role !== 'primary' || s.backend === null) return;
    if (!sameBackend(this.primary, s.backend)) {
      s.fence(`the primary changed to ${this.primary?.name ?? 'none'} while the session started`);
      return;
    }
    const d = this.drain;
    if (!d || !this.drainHolds(s.backend)) return;
    if (s.holdForDrain()) (d.finishing ? d.late : d.waiting).add(s);
    else if (s.phase === 'tls' && !d.finishing) d.blind.add(s);
  }

  /** A session stopped at an idle boundary: read its state while its server still runs. */
  private sessionHeld(s: Session): void {
    const d = this.drain;
    if (d?.late.delete(s)) {
      d.held.add(s);
      return;
    }
    if (!d || !d.waiting.delete(s)) return;
    d.held.add(s);
    d.reading++;
    void s.introspect().then((reason) => {
      d.reading--;
      if (reason !== null) {
        d.held.delete(s);
        s.cut(reason, `switchover to ${d.key.to}`);
      }
      this.maybeFinishDrain(d);
    });
  }

  /** A session that ended is waited for no more (a drain answers without waiting out its timeout). */
  private drainForget(s: Session): void {
    const d = this.drain;
    if (!d) return;
    const waited = d.waiting.delete(s);
    d.late.delete(s);
    d.blind.delete(s);
    d.held.delete(s);
    if (waited) this.maybeFinishDrain(d);
  }

  private maybeFinishDrain(d: ActiveDrain): void {
    if (d.answered) return;
    if (d.finishing ? d.reading === 0 : d.waiting.size === 0 && d.reading === 0) this.finishDrain(d);
  }

  /**
   * Ends the drain's wait: sessions not idle by now are cut (an open transaction, a statement still
   * running, a COPY), then the router answers `drained` once every held session's state is read.
   */
  private finishDrain(d: ActiveDrain): void {
    if (d.answered || this.drain !== d) return;
    if (d.timer) clearTimeout(d.timer);
    d.timer = null;
    d.finishing = true;
    const why = `switchover to ${d.key.to}`;
    for (const s of d.waiting) {
      const state = s.pauseNow();
      s.cut(s.busyReason(state, this.drainTimeoutMs), why, state);
    }
    d.waiting.clear();
    for (const s of d.blind) s.cut('encrypted end to end (the router does not terminate TLS)', why);
    d.blind.clear();
    if (d.reading > 0) return; // answered when the last read ends
    d.answered = true;
    const ms = Math.round(performance.now() - d.startedAt);
    this.log.info({ from: d.key.from, to: d.key.to, held: d.held.size, ms }, 'switchover: drained');
    const src = this.opts.source;
    if (src.claimKey)
      src
        .claimKey(`routers/${this.id}/drained`, d.key.id)
        .catch((err: unknown) =>
          this.log.warn({ err: errorMessage(err) }, 'could not answer the drain request'),
        );
    // Should the switchover never come, the held sessions go on after a while.
    d.expiry = setTimeout(() => {
      if (this.drain === d) this.endDrain('the switchover did not happen in time');
    }, this.opts.waitTimeoutMs + this.drainTimeoutMs);
    d.expiry.unref();
  }

  /** The drain is over: held sessions go on where they are, or move to the new primary. */
  private endDrain(why: string): void {
    const d = this.drain;
    if (!d) return;
    this.drain = null;
    if (d.timer) clearTimeout(d.timer);
    if (d.expiry) clearTimeout(d.expiry);
    for (const s of [...d.waiting, ...d.late]) s.cancelHold();
    const src = this.opts.source;
    if (d.answered && src.releaseKey)
      void src.releaseKey(`routers/${this.id}/drained`, d.key.id).catch(() => false);
    const stays = this.primary?.name === d.key.from;
    this.log.info(
      { why, sessions: d.held.size, to: stays ? d.key.from : (this.primary?.name ?? null) },
      'switchover: drain ended',
    );
    for (const s of d.held) {
      if (!s.isHeld) continue;
      if (stays) s.resumeInPlace();
      else void s.moveHeld(`switchover to ${d.key.to}`);
    }
    this.serveWaiters();
  }

  // ---- picking backends -------------------------------------------------------------------------

  private sessionsOn(name: string): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.backend?.name === name) n++;
    return n;
  }

  /** Whether a switchover's drain holds new transactions on `b` (the primary it drains). */
  private drainHolds(b: Backend | null): boolean {
    return b !== null && this.drain?.key.from === b.name;
  }

  /** True while a drain holds new transactions for the current primary. */
  private get draining(): boolean {
    return this.drainHolds(this.primary);
  }

  /** Where writes go now: the primary, unless a drain holds its new transactions. */
  private get writeTarget(): Backend | null {
    return this.draining ? null : this.primary;
  }

  private tryPick(port: PortKind): { backend: Backend; role: 'primary' | 'replica' } | null {
    const primary = this.writeTarget;
    if (port === 'rw') return primary ? { backend: primary, role: 'primary' } : null;
    const replicas = this.topology?.replicas ?? [];
    const r = this.picker.pick(replicas, (name) => this.sessionsOn(name));
    if (r) return { backend: r, role: 'replica' };
    if (this.opts.fallbackToPrimary && primary) return { backend: primary, role: 'primary' };
    return null;
  }

  private serveWaiters(): void {
    for (const w of [...this.waiters]) {
      const got = this.tryPick(w.port);
      if (!got) continue;
      this.waiters.delete(w);
      w.resolve(got);
    }
  }

  private refuse(reason: string): void {
    this.stats.refused[reason] = (this.stats.refused[reason] ?? 0) + 1;
  }

  private async pick(
    port: PortKind,
    signal: AbortSignal,
  ): Promise<{ backend: Backend; role: 'primary' | 'replica' }> {
    const now = this.tryPick(port);
    if (now) return now;
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        port,
        resolve: (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v);
        },
      };
      const onAbort = () => {
        this.waiters.delete(waiter);
        const what = port === 'rw' ? 'primary' : 'replica';
        const why = port === 'rw' ? this.primaryReason : this.replicaReason();
        this.refuse(port === 'rw' ? 'no_primary' : 'no_replica');
        reject(
          new RouterRefusal(
            '57P03',
            `pgha router: no ${what} available after ${this.opts.waitTimeoutMs} ms: ${why}`,
            why,
          ),
        );
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
    });
  }

  private replicaReason(): string {
    const ex = this.topology?.excluded ?? [];
    if (ex.length === 0) return 'no replica members';
    return ex.map((e) => `${e.name}: ${e.reason}`).join('; ');
  }

  // ---- sessions ---------------------------------------------------------------------------------

  private accept(port: PortKind, sock: Socket): void {
    if (this.stopped) {
      sock.destroy();
      return;
    }
    this.stats.sessionsOpened[port]++;
    const host: SessionHost = {
      pick: (p, signal) => this.pick(p, signal),
      connectFailed: (b, err) => {
        // Many held sessions retry at once: say it once a second per backend.
        const now = Date.now();
        if ((this.lastConnectWarn.get(b.name) ?? 0) + 1000 <= now) {
          this.lastConnectWarn.set(b.name, now);
          this.log.warn(
            { member: b.name, err: err.message },
            'cannot connect to backend; new sessions wait and retry',
          );
        }
        this.refresh();
      },
      register: (s) => this.sessions.set(s.id, s),
      keyLearned: (s, keyId) => {
        this.keys.set(keyId, s);
      },
      unregister: (s) => {
        if (!this.sessions.delete(s.id)) return;
        this.drainForget(s);
        if (s.keyId) this.keys.delete(s.keyId);
        this.stats.closedBytesFromClients += s.bytesFromClient;
        this.stats.closedBytesToClients += s.bytesToClient;
      },
      cancel: (pkt) => this.cancel(pkt),
      connectTimeoutMs: this.opts.connectTimeoutMs,
      startupTimeoutMs: this.opts.startupTimeoutMs ?? 30_000,
      waitTimeoutMs: this.opts.waitTimeoutMs,
      relay: this.relay,
      tls: this.opts.tls ?? null,
      secrets: this.opts.secrets ?? null,
      members: (first) => {
        const all = this.topology?.all ?? [];
        return first ? [first, ...all.filter((b) => b.name !== first.name)] : all;
      },
      serves: (b, role) =>
        role === 'primary'
          ? sameBackend(this.writeTarget, b)
          : (this.topology?.replicas ?? []).some((r) => sameBackend(r, b)),
      relaying: (s) => this.sessionRelaying(s),
      draining: (s) => s.role === 'primary' && this.drainHolds(s.backend),
      held: (s) => this.sessionHeld(s),
      moved: (s, m) => {
        this.stats.moved++;
        this.stats.movePauseMs.last = m.ms;
        this.stats.movePauseMs.max = Math.max(this.stats.movePauseMs.max ?? 0, m.ms);
        this.log.info(
          {
            session: s.id,
            client: s.clientAddress,
            user: s.user,
            from: m.from,
            to: m.to,
            ms: m.ms,
            why: m.why,
          },
          'session moved',
        );
      },
      cut: (s, reason, why) => {
        const kind = cutKind(reason);
        this.stats.cut[kind] = (this.stats.cut[kind] ?? 0) + 1;
        this.log.warn(
          { session: s.id, client: s.clientAddress, user: s.user, database: s.database, reason, why },
          `session cut: ${reason}`,
        );
      },
      debug: (msg, details) => this.log.debug(details ?? {}, msg),
      warn: (msg, details) => this.log.warn(details ?? {}, msg),
    };
    void new Session(port, sock, host).run();
  }

  /**
   * Forwards a CancelRequest to the server that owns the session. A key the router never saw
   * (the session is encrypted end to end) goes to every member: a server ignores keys it did not issue.
   */
  private cancel(pkt: Extract<FrontendPacket, { kind: 'cancel' }>): void {
    const id = `${pkt.key.pid}:${pkt.key.secret.toString('hex')}`;
    const owner = this.keys.get(id);
    let targets: Backend[];
    let raw = pkt.raw;
    if (owner) {
      // The session may have moved since the client learned its key: the current server's key.
      const t = owner.cancelTarget();
      if (!t) return;
      this.stats.cancels.routed++;
      targets = [t.backend];
      raw = cancelRequest(t.key);
    } else {
      this.stats.cancels.broadcast++;
      targets = this.topology?.all ?? [];
    }
    for (const b of targets) {
      const s = connect({ host: b.host, port: b.port });
      s.on('error', (err) =>
        this.log.debug({ member: b.name, err: err.message }, 'cancel request not delivered'),
      );
      s.setTimeout(this.opts.connectTimeoutMs, () => s.destroy());
      s.on('connect', () => s.end(raw));
    }
  }

  // ---- status -----------------------------------------------------------------------------------

  /** The router's state for `GET /status`. */
  status(): RouterStatus {
    const t = this.topology;
    const perBackend = new Map<string, { rw: number; ro: number }>();
    let fromClients = this.stats.closedBytesFromClients;
    let toClients = this.stats.closedBytesToClients;
    const list: RouterStatus['sessions']['list'] = [];
    for (const s of this.sessions.values()) {
      fromClients += s.bytesFromClient;
      toClients += s.bytesToClient;
      if (s.backend) {
        const c = perBackend.get(s.backend.name) ?? { rw: 0, ro: 0 };
        c[s.port]++;
        perBackend.set(s.backend.name, c);
      }
      if (list.length < 1000) {
        list.push({
          id: s.id,
          port: s.port,
          backend: s.backend?.name ?? null,
          role: s.role,
          phase: s.phase,
          dataPath: s.dataPath,
          moves: s.moves,
          client: s.clientAddress,
          since: new Date(s.startedAt).toISOString(),
          bytesFromClient: s.bytesFromClient,
          bytesToClient: s.bytesToClient,
        });
      }
    }
    const deadline = this.leaseDeadline();
    const backends: RouterStatus['backends'] = (t?.all ?? []).map((b) => {
      const replica = t?.replicas.find((r) => r.name === b.name);
      const excluded = t?.excluded.find((e) => e.name === b.name);
      const role =
        this.primary?.name === b.name
          ? 'primary'
          : replica
            ? 'replica'
            : t?.leaderName === b.name
              ? 'leader'
              : 'other';
      const out: RouterStatus['backends'][number] = {
        name: b.name,
        address: `${b.host}:${b.port}`,
        role,
        sessions: perBackend.get(b.name) ?? { rw: 0, ro: 0 },
      };
      if (replica?.lagBytes !== undefined) out.lagBytes = replica.lagBytes;
      if (excluded) out.excludedBecause = excluded.reason;
      return out;
    });
    return {
      primary: this.primary?.name ?? null,
      ...(this.primary === null ? { noPrimaryBecause: this.primaryReason } : {}),
      leader: t?.leaderName ?? null,
      replicas: (t?.replicas ?? []).map((r) => r.name),
      backends,
      etcd: {
        reachable: this.etcdError === null && this.lastReadOkAt !== null,
        lastGoodRead: this.lastReadOkAt ? new Date(this.lastReadOkAt).toISOString() : null,
        leaseDeadline: wallIso(deadline),
        ...(this.etcdError ? { error: this.etcdError } : {}),
        ...(this.failsafeWhy ? { failsafe: this.failsafeWhy } : {}),
      },
      lastTopologyChange: this.lastChange,
      dataPath: this.dataPath,
      relayThreads: this.relay?.threads ?? null,
      waiting: this.waiters.size,
      id: this.id,
      drain: this.drain
        ? {
            id: this.drain.key.id,
            from: this.drain.key.from,
            to: this.drain.key.to,
            holding: this.drain.waiting.size,
            held: this.drain.held.size,
            drained: this.drain.answered,
          }
        : null,
      sessions: { open: this.sessions.size, list },
      bytes: { fromClients, toClients },
      stats: this.stats,
    };
  }
}

export interface RouterStatus {
  primary: string | null;
  noPrimaryBecause?: string;
  leader: string | null;
  replicas: string[];
  backends: Array<{
    name: string;
    address: string;
    role: 'primary' | 'replica' | 'leader' | 'other';
    sessions: { rw: number; ro: number };
    lagBytes?: number;
    excludedBecause?: string;
  }>;
  etcd: {
    reachable: boolean;
    lastGoodRead: string | null;
    leaseDeadline: string | null;
    error?: string;
    /** failsafe_mode keeps writes on the primary past `leaseDeadline`: why. */
    failsafe?: string;
  };
  lastTopologyChange: TopologyChange | null;
  /** Where bytes are copied after the startup phase. */
  dataPath: DataPath;
  /** Threads of the native relay; null on the JavaScript data path. */
  relayThreads: number | null;
  waiting: number;
  /** The name the router registers under in etcd. */
  id: string;
  /** A switchover drain in progress. */
  drain: { id: string; from: string; to: string; holding: number; held: number; drained: boolean } | null;
  sessions: {
    open: number;
    list: Array<{
      id: number;
      port: PortKind;
      backend: string | null;
      role: 'primary' | 'replica' | null;
      phase: string;
      /** null during the startup phase. */
      dataPath: DataPath | null;
      /** Times the session moved to another server. */
      moves: number;
      client: string;
      since: string;
      bytesFromClient: number;
      bytesToClient: number;
    }>;
  };
  bytes: { fromClients: number; toClients: number };
  stats: RouterStats;
}

/** A monotonic moment (performance.now) as a wall-clock ISO time, for logs and /status. */
function wallIso(mono: number | null): string | null {
  return mono === null ? null : new Date(Date.now() + (mono - performance.now())).toISOString();
}

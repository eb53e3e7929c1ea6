/**
 * `pgha router`: sends PostgreSQL clients to the primary (read-write port) or to healthy replicas
 * (read-only port), from the cluster as etcd shows it, without polling health checks.
 *
 * - Topology: a prefix watch on the cluster wakes a linearizable re-read at once; a read every
 *   `check_interval` proves the view is current even when nothing changes.
 * - Fence: when the primary changes, loses the leader key, or may have lost its lease (etcd
 *   unreachable for longer than the ttl since our last good read), every session routed to it as
 *   primary is closed at once. stolon-proxy does the same; HAProxy only with `shutdown-sessions`.
 * - No primary for a moment: new connections wait (up to `wait_timeout`), then go to the new one.
 * - Replicas: a replica that stops qualifying for reads (gone, not streaming, lagging past
 *   `max_lag`, tagged noloadbalance) gets no new sessions at once, and its read-only sessions are
 *   closed when it is still unfit `replica_grace` seconds later, as HAProxy's `on-marked-down
 *   shutdown-sessions` does after its checks fail; a replica that became the leader loses them at once.
 */
import { staleViewDeadline } from '../ha/timing.js';
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { connect } from 'node:net';
import type { ListenAddress } from '../config/types.js';
import type { ClusterState } from '../dcs/types.js';
import { ConfigError, errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { FrontendPacket } from './protocol.js';
import { nativeRelay, type DataPath, type NativeRelay } from './native.js';
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
}

interface Waiter {
  port: PortKind;
  resolve: (v: { backend: Backend; role: 'primary' | 'replica' }) => void;
}

export class Router {
  private readonly log: Logger;
  private readonly servers: Array<{ kind: PortKind; server: Server }> = [];
  private readonly sessions = new Map<number, Session>();
  private readonly keys = new Map<string, Backend>();
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

  private topology: Topology | null = null;
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
  };
  /** Called after every topology change (metrics, tests). */
  onChange: ((t: TopologyChange) => void) | null = null;

  constructor(private readonly opts: RouterOptions) {
    this.log = opts.logger;
    this.picker = new ReplicaPicker(opts.balance);
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
      server.on('error', (err) => this.log.error({ err: err.message, kind }, 'router listener error'));
      const h = host === '*' || host === '' ? '0.0.0.0' : host;
      server.listen(addr.port, h);
      await once(server, 'listening');
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
      return;
    }
    if (this.stopped) return;
    if (this.etcdError !== null) this.log.info('etcd reachable again');
    this.etcdError = null;
    this.lastReadSentAt = sentAt;
    this.lastReadOkAt = Date.now();
    this.apply(computeTopology(cluster, { maxLagBytes: this.opts.maxLagBytes }));
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
      this.closeReplicaSessions(t.leaderName, 'replica promoted');
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

  /** Closes the read-only sessions of a replica that is still unfit. */
  private cutReplica(name: string): void {
    this.replicaCuts.delete(name);
    const t = this.topology;
    if (this.stopped || t === null || t.replicas.some((r) => r.name === name)) return;
    const why =
      t.excluded.find((e) => e.name === name)?.reason ??
      (t.leaderName === name ? 'became the leader' : 'no longer a member');
    this.stats.replicaCut += this.closeReplicaSessions(name, `replica ${name} unfit for reads: ${why}`);
  }

  /** Closes the read-only sessions on member `name`; returns how many. */
  private closeReplicaSessions(name: string, reason: string): number {
    return this.closeSessions((s) => s.role === 'replica' && s.backend?.name === name, reason);
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
      // The fence: nobody keeps writing to a server that is no longer (or may no longer be) the primary.
      const n = this.closeSessions((s) => s.role === 'primary' && s.backend?.name === old.name, reason);
      this.stats.fenced += n;
      this.log.warn({ from: old.name, to: next?.name ?? null, reason, closedSessions: n }, 'primary changed');
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
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
    const deadline = this.leaseDeadline();
    if (deadline === null) return;
    this.leaseTimer = setTimeout(
      () => this.leaseExpired(deadline),
      Math.max(0, deadline - performance.now()),
    );
    this.leaseTimer.unref();
  }

  private leaseExpired(deadline: number): void {
    if (this.stopped || this.leaseDeadline() !== deadline) return;
    const since = this.lastReadOkAt ? new Date(this.lastReadOkAt).toISOString() : 'never';
    const reason =
      `etcd unreachable (last good read ${since}, ttl ${this.topology?.ttl ?? '?'} s): the leader's lease may ` +
      `have expired, writes stopped${this.etcdError ? ` (${this.etcdError})` : ''}`;
    if (this.primary !== null || this.verifying !== null)
      this.log.error({ reason }, 'stopped routing writes');
    this.verifying = null;
    this.setPrimary(null, reason);
    this.primaryReason = reason;
    // Replicas keep serving reads; a topology read will bring writes back.
    if (this.topology) this.topology = { ...this.topology, primary: null, primaryReason: reason };
  }

  private closeSessions(match: (s: Session) => boolean, reason: string): number {
    let n = 0;
    for (const s of [...this.sessions.values()]) {
      if (!match(s)) continue;
      s.close();
      n++;
    }
    if (n > 0) this.log.info({ sessions: n, reason }, 'closed sessions');
    return n;
  }

  // ---- picking backends -------------------------------------------------------------------------

  private sessionsOn(name: string): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.backend?.name === name) n++;
    return n;
  }

  private tryPick(port: PortKind): { backend: Backend; role: 'primary' | 'replica' } | null {
    if (port === 'rw') return this.primary ? { backend: this.primary, role: 'primary' } : null;
    const replicas = this.topology?.replicas ?? [];
    const r = this.picker.pick(replicas, (name) => this.sessionsOn(name));
    if (r) return { backend: r, role: 'replica' };
    if (this.opts.fallbackToPrimary && this.primary) return { backend: this.primary, role: 'primary' };
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
        if (s.backend) this.keys.set(keyId, s.backend);
      },
      unregister: (s) => {
        if (!this.sessions.delete(s.id)) return;
        if (s.keyId) this.keys.delete(s.keyId);
        this.stats.closedBytesFromClients += s.bytesFromClient;
        this.stats.closedBytesToClients += s.bytesToClient;
      },
      cancel: (pkt) => this.cancel(pkt),
      connectTimeoutMs: this.opts.connectTimeoutMs,
      startupTimeoutMs: this.opts.startupTimeoutMs ?? 30_000,
      waitTimeoutMs: this.opts.waitTimeoutMs,
      relay: this.relay,
      debug: (msg, details) => this.log.debug(details ?? {}, msg),
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
    if (owner) {
      this.stats.cancels.routed++;
      targets = [owner];
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
      s.on('connect', () => s.end(pkt.raw));
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
      },
      lastTopologyChange: this.lastChange,
      dataPath: this.dataPath,
      relayThreads: this.relay?.threads ?? null,
      waiting: this.waiters.size,
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
  etcd: { reachable: boolean; lastGoodRead: string | null; leaseDeadline: string | null; error?: string };
  lastTopologyChange: TopologyChange | null;
  /** Where bytes are copied after the startup phase. */
  dataPath: DataPath;
  /** Threads of the native relay; null on the JavaScript data path. */
  relayThreads: number | null;
  waiting: number;
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

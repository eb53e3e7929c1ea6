/**
 * The `Dcs` on etcd v3: Patroni's key layout, one lease per node renewed only when the HA loop asks
 * (so renewals stop when the loop stops — that is what fences a hung leader), compare-and-set
 * transactions, and a prefix watch that re-establishes itself.
 */
import { readFileSync } from 'node:fs';
import { ConsecutiveBreaker, ConstantBackoff, circuitBreaker, handleWhen, retry } from 'cockatiel';
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  isRecoverableError,
  type ICompare,
  type IDuplexStream,
  type IKeyValue,
  type IOptions,
  type IRequestOp,
  type ITxnResponse,
  type IWatchRequest,
  type IWatchResponse,
} from 'etcd3';
import pino from 'pino';
import type { PghaConfig } from '../config/types.js';
import { DcsError, errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { KEYS, clusterPrefix, compactJson, parseCluster, prefixRangeEnd, type RawKey } from './keys.js';
import type {
  CasResult,
  ClusterState,
  Dcs,
  FailoverKey,
  HistoryEntry,
  MemberData,
  StatusKey,
  SyncKey,
} from './types.js';

export interface EtcdDcsOptions {
  /** `host:port` endpoints; a `http(s)://` prefix is tolerated and stripped. */
  hosts: string[];
  protocol?: 'http' | 'https';
  username?: string;
  password?: string;
  /** PEM file paths for TLS. */
  cacert?: string;
  cert?: string;
  key?: string;
  /** `/service/` style; slashes are normalised as Patroni does. */
  namespace: string;
  scope: string;
  /** This node's member name. */
  name: string;
  /** Lease TTL in seconds (dynamic `ttl`). */
  ttl: number;
  logger?: Logger;
  /** Deadline for every single request, retries included (default 10 000 ms, Patroni's retry_timeout). */
  requestTimeoutMs?: number;
}

// etcd's enums as numbers (the proto is loaded with numeric enums on input).
const CMP_EQUAL = 0;
const TARGET_CREATE = 1;
const TARGET_MOD = 2;
const TARGET_VALUE = 3;
const TARGET_LEASE = 4;

type WatchStream = IDuplexStream<IWatchRequest, IWatchResponse>;
/** gRPC call options (the deadline), as etcd3's clients take them. */
type CallOptions = NonNullable<Parameters<Etcd3['kv']['range']>[1]>;

/** Keep-alive attempts per `refreshLease` before giving up (each may reach another member). */
const KEEPALIVE_ATTEMPTS = 6;

/** Implements `Dcs` over etcd v3 with the `etcd3` gRPC client. */
export class EtcdDcs implements Dcs {
  readonly prefix: string;
  readonly memberName: string;

  private readonly client: Etcd3;
  private readonly hostsLabel: string;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private readonly prefixBuf: Buffer;
  private ttl: number;
  private lease: { id: string; ttl: number } | null = null;
  private lastRefreshSentAt: number | null = null;
  private readonly watchStops = new Set<() => Promise<void>>();
  private closed = false;

  constructor(opts: EtcdDcsOptions) {
    if (opts.hosts.length === 0) throw new DcsError('no etcd hosts configured', { retryable: false });
    if (!(opts.ttl >= 1))
      throw new DcsError(`invalid ttl ${opts.ttl}: must be at least 1 second`, { retryable: false });
    this.prefix = clusterPrefix(opts.namespace, opts.scope);
    this.prefixBuf = Buffer.from(this.prefix);
    this.memberName = opts.name;
    this.ttl = Math.ceil(opts.ttl);
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.log = opts.logger ?? pino({ level: 'silent' });
    const protocol = opts.protocol ?? 'http';
    const hosts = opts.hosts.map((h) => h.replace(/^[a-z]+:\/\//i, ''));
    this.hostsLabel = hosts.join(', ');

    const options: IOptions = {
      hosts: hosts.map((h) => `${protocol}://${h}`),
      dialTimeout: this.timeoutMs,
      // A request that hangs must never block the caller: every unary call gets a deadline. The
      // methods below pass an explicit absolute deadline so retries share it; this is a fallback.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
      faultHandling: {
        // A failed host is skipped for a second, not etcd3's default five, so a restarted etcd
        // is used again quickly.
        host: () =>
          circuitBreaker(handleWhen(isRecoverableError), {
            halfOpenAfter: 1000,
            breaker: new ConsecutiveBreaker(3),
          }),
        // Each retry picks another host; the shared deadline bounds the total time.
        global: retry(
          handleWhen((e) => isRecoverableError(e) && !(e instanceof GRPCDeadlineExceededError)),
          { maxAttempts: Math.max(2, hosts.length * 2), backoff: new ConstantBackoff(100) },
        ),
      },
      grpcOptions: {
        // Detect a silently dead connection (e.g. a partition) on long-lived watch streams.
        // etcd refuses pings more often than every 5 s.
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
      },
    };
    if (opts.username !== undefined && opts.username !== '') {
      options.auth = {
        username: opts.username,
        password: opts.password ?? '',
        callOptions: () => ({ deadline: Date.now() + this.timeoutMs }),
      };
    }
    if (opts.cacert !== undefined || opts.cert !== undefined) {
      const credentials: NonNullable<IOptions['credentials']> = {
        // grpc-js accepts null for "use the system roots"; the typing wants a Buffer.
        rootCertificate: opts.cacert !== undefined ? readFileSync(opts.cacert) : (null as unknown as Buffer),
      };
      if (opts.cert !== undefined) credentials.certChain = readFileSync(opts.cert);
      if (opts.key !== undefined) credentials.privateKey = readFileSync(opts.key);
      options.credentials = credentials;
    }
    this.client = new Etcd3(options);
  }

  /** The current lease id (decimal string), or null before the first grant / after loss. */
  get leaseId(): string | null {
    return this.lease?.id ?? null;
  }

  /** Send time (monotonic ms, `performance.now`) of the last successful lease grant or keep-alive. */
  get lastLeaseRefreshAt(): number | null {
    return this.lastRefreshSentAt;
  }

  private key(rel: string): Buffer {
    return Buffer.from(this.prefix + rel);
  }

  /**
   * Runs one etcd operation under a deadline (shared by etcd3's retries) and the caller's signal,
   * and turns whatever fails into a `DcsError` naming the endpoints.
   */
  private async rpc<T>(
    what: string,
    signal: AbortSignal | undefined,
    fn: (opts: CallOptions) => Promise<T>,
  ): Promise<T> {
    if (this.closed) throw new DcsError(`etcd ${what}: client is closed`, { retryable: false });
    if (signal?.aborted) throw new DcsError(`etcd ${what} cancelled`, { cause: signal.reason });
    const deadline = Date.now() + this.timeoutMs;
    // gRPC enforces the deadline per call; this timer also covers what happens outside a call
    // (authentication, a connection being set up, backoff between retries).
    const guard = AbortSignal.timeout(this.timeoutMs + 250);
    const abort = signal ? AbortSignal.any([signal, guard]) : guard;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_resolve, reject) => {
      onAbort = () =>
        reject(
          signal?.aborted
            ? new DcsError(`etcd ${what} cancelled`, { cause: signal.reason })
            : new DcsError(
                `etcd unreachable at ${this.hostsLabel}: ${what} timed out after ${this.timeoutMs} ms`,
              ),
        );
      abort.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const call = fn({ deadline });
      call.catch(() => undefined); // may settle after the race was lost to an abort; never unhandled
      return await Promise.race([call, aborted]);
    } catch (err) {
      throw this.wrapError(what, err);
    } finally {
      if (onAbort) abort.removeEventListener('abort', onAbort);
    }
  }

  private wrapError(what: string, err: unknown): DcsError {
    if (err instanceof DcsError) return err;
    const reason = errorMessage(err);
    if (err instanceof EtcdAuthenticationFailedError || err instanceof EtcdPermissionDeniedError) {
      return new DcsError(`etcd ${what} refused at ${this.hostsLabel}: ${reason}`, {
        cause: err,
        retryable: false,
      });
    }
    const unreachable =
      (typeof err === 'object' && err !== null && isRecoverableError(err as Error)) ||
      (err instanceof Error && err.name === 'BrokenCircuitError');
    const head = unreachable
      ? `etcd unreachable at ${this.hostsLabel}`
      : `etcd ${what} failed at ${this.hostsLabel}`;
    return new DcsError(unreachable ? `${head}: ${what}: ${reason}` : `${head}: ${reason}`, { cause: err });
  }

  private async txn(
    what: string,
    compare: ICompare[],
    success: IRequestOp[],
    failure: IRequestOp[] = [],
    signal?: AbortSignal,
  ): Promise<ITxnResponse> {
    return this.rpc(what, signal, (o) => this.client.kv.txn({ compare, success, failure }, o));
  }

  private put(rel: string, value: string, lease?: string): IRequestOp {
    return { request_put: { key: this.key(rel), value: Buffer.from(value), lease: lease ?? 0 } };
  }

  private async plainPut(what: string, rel: string, value: string, signal?: AbortSignal): Promise<string> {
    const res = await this.rpc(what, signal, (o) =>
      this.client.kv.put({ key: this.key(rel), value: Buffer.from(value) }, o),
    );
    return res.header.revision;
  }

  private async plainDelete(what: string, rel: string): Promise<void> {
    await this.rpc(what, undefined, (o) => this.client.kv.deleteRange({ key: this.key(rel) }, o));
  }

  /** Writes `rel` (optionally only if its mod_revision is unchanged) and returns the CAS result. */
  private async casPut(
    what: string,
    rel: string,
    value: string,
    expectedModRevision?: string,
  ): Promise<CasResult> {
    if (expectedModRevision === undefined) {
      return { ok: true, modRevision: await this.plainPut(what, rel, value) };
    }
    const res = await this.txn(
      what,
      [{ key: this.key(rel), target: TARGET_MOD, result: CMP_EQUAL, mod_revision: expectedModRevision }],
      [this.put(rel, value)],
    );
    return res.succeeded ? { ok: true, modRevision: res.header.revision } : { ok: false };
  }

  async readCluster(signal?: AbortSignal): Promise<ClusterState> {
    const res = await this.rpc('read cluster', signal, (o) =>
      // serializable: false — a linearizable read, never a stale follower's view.
      this.client.kv.range(
        { key: this.prefixBuf, range_end: prefixRangeEnd(this.prefixBuf), serializable: false },
        o,
      ),
    );
    const keys: RawKey[] = res.kvs.map((kv: IKeyValue) => ({
      key: kv.key.toString('utf8').slice(this.prefix.length),
      value: kv.value.toString('utf8'),
      modRevision: kv.mod_revision,
      lease: kv.lease,
    }));
    return parseCluster(keys, res.header.revision, (msg, details) => this.log.warn(details, msg));
  }

  private async grantLease(signal?: AbortSignal): Promise<number> {
    const ttl = this.ttl;
    const sentAt = performance.now();
    const res = await this.rpc('lease grant', signal, (o) =>
      this.client.leaseClient.leaseGrant({ TTL: ttl, ID: 0 }, o),
    );
    if (res.error) throw new DcsError(`etcd lease grant failed at ${this.hostsLabel}: ${res.error}`);
    this.lease = { id: res.ID, ttl };
    this.lastRefreshSentAt = sentAt;
    this.log.info({ lease: res.ID, ttl: res.TTL }, 'granted a new etcd lease');
    return sentAt;
  }

  /** One keep-alive round trip on a short-lived stream; returns the TTL etcd reports (0: lease gone). */
  private async keepAliveOnce(id: string, signal?: AbortSignal): Promise<number> {
    return this.rpc('lease keep-alive', signal, async (o) => {
      const stream = await this.client.leaseClient.leaseKeepAlive(o);
      try {
        return await new Promise<number>((resolve, reject) => {
          stream.on('data', (res) => resolve(Number(res.TTL)));
          stream.on('error', reject);
          stream.on('end', () => reject(new Error('lease keep-alive stream ended without an answer')));
          stream.write({ ID: id });
        });
      } finally {
        // Half-close: etcd then ends the call. A deadline that fired has already cancelled it.
        stream.end();
      }
    });
  }

  async refreshLease(signal?: AbortSignal): Promise<number> {
    const lease = this.lease;
    // A lease keeps the TTL it was granted with: a changed ttl needs a new lease. The old one is
    // not revoked (that would drop the leader key at once); the caller re-puts its keys.
    if (lease === null || lease.ttl !== this.ttl) return this.grantLease(signal);
    let sentAt = performance.now();
    let ttl: number | undefined;
    // A keep-alive is a stream, which etcd3's retry policy does not cover; each attempt picks a
    // member at random, so retrying a few times rides out one dead member of the cluster.
    const giveUpAt = Date.now() + this.timeoutMs;
    for (let attempt = 1; ttl === undefined; attempt++) {
      sentAt = performance.now();
      try {
        ttl = await this.keepAliveOnce(lease.id, signal);
      } catch (err) {
        if (err instanceof DcsError && err.cause instanceof EtcdLeaseInvalidError) ttl = 0;
        else if (
          attempt >= KEEPALIVE_ATTEMPTS ||
          signal?.aborted ||
          Date.now() + 50 >= giveUpAt ||
          !(err instanceof DcsError && err.retryable)
        )
          throw err;
        else await new Promise((r) => setTimeout(r, 50));
      }
    }
    if (ttl <= 0) {
      this.log.warn({ lease: lease.id }, 'etcd lease expired; granting a new one');
      if (this.lease === lease) this.lease = null;
      return this.grantLease(signal);
    }
    this.lastRefreshSentAt = sentAt;
    return sentAt;
  }

  setTtl(ttlSeconds: number): void {
    if (!(ttlSeconds >= 1))
      throw new DcsError(`invalid ttl ${ttlSeconds}: must be at least 1 second`, { retryable: false });
    this.ttl = Math.ceil(ttlSeconds);
  }

  private async currentLease(signal?: AbortSignal): Promise<string> {
    if (this.lease === null || this.lease.ttl !== this.ttl) await this.grantLease(signal);
    return this.lease!.id;
  }

  /** Runs a write that needs the lease, granting a new lease and retrying once when it was lost. */
  private async withLease<T>(signal: AbortSignal | undefined, fn: (lease: string) => Promise<T>): Promise<T> {
    const lease = await this.currentLease(signal);
    try {
      return await fn(lease);
    } catch (err) {
      if (!(err instanceof DcsError && err.cause instanceof EtcdLeaseInvalidError)) throw err;
      if (this.lease?.id === lease) this.lease = null;
      return fn(await this.currentLease(signal));
    }
  }

  async touchMember(data: MemberData, signal?: AbortSignal): Promise<void> {
    const rel = KEYS.members + this.memberName;
    await this.withLease(signal, (lease) =>
      this.rpc('write member key', signal, (o) =>
        this.client.kv.put({ key: this.key(rel), value: Buffer.from(compactJson(data)), lease }, o),
      ),
    );
  }

  async deleteMember(name: string): Promise<void> {
    await this.plainDelete(`delete member ${name}`, KEYS.members + name);
  }

  async attemptToAcquireLeader(signal?: AbortSignal): Promise<boolean> {
    // A fresh lease first, so the leader key gets a full TTL from now.
    await this.refreshLease(signal);
    return this.withLease(signal, async (lease) => {
      const leaderKey = this.key(KEYS.leader);
      const res = await this.txn(
        'acquire leader key',
        [{ key: leaderKey, target: TARGET_CREATE, result: CMP_EQUAL, create_revision: 0 }],
        [this.put(KEYS.leader, this.memberName, lease)],
        [{ request_range: { key: leaderKey } }],
        signal,
      );
      if (res.succeeded) return true;
      // If a retried request had already succeeded, the key is ours: same name and same lease.
      const kv = res.responses[0]?.response_range?.kvs[0];
      return kv !== undefined && kv.value.toString('utf8') === this.memberName && kv.lease === lease;
    });
  }

  async updateLeader(signal?: AbortSignal): Promise<boolean> {
    return (await this.renewLeader(signal)) !== null;
  }

  async renewLeader(signal?: AbortSignal): Promise<number | null> {
    const sent = await this.refreshLease(signal);
    return this.withLease(signal, async (lease) => {
      const leaderKey = this.key(KEYS.leader);
      const ours: ICompare = {
        key: leaderKey,
        target: TARGET_VALUE,
        result: CMP_EQUAL,
        value: Buffer.from(this.memberName),
      };
      // Usually the key already hangs on our lease and nothing is written (no revision, no watch
      // event). Otherwise, if it still holds our name, re-attach it to the current lease.
      const res = await this.txn(
        'update leader key',
        [ours, { key: leaderKey, target: TARGET_LEASE, result: CMP_EQUAL, lease }],
        [],
        [
          {
            request_txn: {
              compare: [ours],
              success: [this.put(KEYS.leader, this.memberName, lease)],
              failure: [],
            },
          },
        ],
        signal,
      );
      if (res.succeeded) return sent;
      const reattached = res.responses[0]?.response_txn?.succeeded === true;
      if (!reattached) return null;
      this.log.info({ lease }, 're-attached the leader key to the new lease');
      // The key now hangs on `lease`, which was granted or renewed at `lastRefreshSentAt`.
      return this.lastRefreshSentAt ?? sent;
    });
  }

  async leaseSilentMs(lease: string, signal?: AbortSignal): Promise<number | null> {
    if (lease === '0' || lease === '') return null;
    const res = await this.rpc('lease time-to-live', signal, (o) =>
      this.client.leaseClient.leaseTimeToLive({ ID: lease, keys: false }, o),
    );
    const remaining = Number(res.TTL);
    const granted = Number(res.grantedTTL);
    if (!Number.isFinite(remaining) || !Number.isFinite(granted) || remaining < 0) return null;
    return Math.max(0, granted - remaining) * 1000;
  }

  async deleteLeader(): Promise<boolean> {
    const leaderKey = this.key(KEYS.leader);
    const res = await this.txn(
      'delete leader key',
      [{ key: leaderKey, target: TARGET_VALUE, result: CMP_EQUAL, value: Buffer.from(this.memberName) }],
      [{ request_delete_range: { key: leaderKey } }],
    );
    return res.succeeded;
  }

  async deleteLeaderOf(name: string, modRevision: string): Promise<boolean> {
    const leaderKey = this.key(KEYS.leader);
    const res = await this.txn(
      `delete ${name}'s leader key`,
      [
        { key: leaderKey, target: TARGET_VALUE, result: CMP_EQUAL, value: Buffer.from(name) },
        { key: leaderKey, target: TARGET_MOD, result: CMP_EQUAL, mod_revision: modRevision },
      ],
      [{ request_delete_range: { key: leaderKey } }],
    );
    return res.succeeded;
  }

  async claimKey(
    rel: string,
    value: string,
    signal?: AbortSignal,
  ): Promise<{ held: boolean; holder: string | null }> {
    return this.withLease(signal, async (lease) => {
      const key = this.key(rel);
      const res = await this.txn(
        `claim ${rel}`,
        [{ key, target: TARGET_CREATE, result: CMP_EQUAL, create_revision: 0 }],
        [this.put(rel, value, lease)],
        [{ request_range: { key } }],
        signal,
      );
      if (res.succeeded) return { held: true, holder: value };
      const kv = res.responses[0]?.response_range?.kvs[0];
      const holder = kv ? kv.value.toString('utf8') : null;
      return { held: kv !== undefined && holder === value && kv.lease === lease, holder };
    });
  }

  async releaseKey(rel: string, value: string): Promise<boolean> {
    const lease = this.lease?.id;
    if (lease === undefined) return false; // a key on a lost lease expires with it
    const key = this.key(rel);
    const res = await this.txn(
      `release ${rel}`,
      [
        { key, target: TARGET_VALUE, result: CMP_EQUAL, value: Buffer.from(value) },
        { key, target: TARGET_LEASE, result: CMP_EQUAL, lease },
      ],
      [{ request_delete_range: { key } }],
    );
    return res.succeeded;
  }

  async initialize(value: string, create: boolean): Promise<boolean> {
    if (!create) {
      await this.plainPut('write initialize key', KEYS.initialize, value);
      return true;
    }
    const res = await this.txn(
      'create initialize key',
      [{ key: this.key(KEYS.initialize), target: TARGET_CREATE, result: CMP_EQUAL, create_revision: 0 }],
      [this.put(KEYS.initialize, value)],
    );
    return res.succeeded;
  }

  async cancelInitialization(): Promise<void> {
    await this.plainDelete('delete initialize key', KEYS.initialize);
  }

  async setConfig(value: Record<string, unknown>, expectedModRevision?: string): Promise<CasResult> {
    return this.casPut('write config key', KEYS.config, compactJson(value), expectedModRevision);
  }

  async setFailover(
    value: Omit<FailoverKey, 'modRevision'>,
    expectedModRevision?: string,
  ): Promise<CasResult> {
    // Patroni includes only the fields that are set.
    const out: Record<string, string> = {};
    if (value.leader) out.leader = value.leader;
    if (value.member) out.member = value.member;
    if (value.scheduled_at) out.scheduled_at = value.scheduled_at;
    return this.casPut('write failover key', KEYS.failover, compactJson(out), expectedModRevision);
  }

  async clearFailover(): Promise<void> {
    // Patroni clears a request by writing `{}`, not by deleting the key.
    await this.plainPut('clear failover key', KEYS.failover, '{}');
  }

  async setSync(value: Omit<SyncKey, 'modRevision'>, expectedModRevision?: string): Promise<CasResult> {
    const out: Record<string, unknown> = { leader: value.leader, sync_standby: value.sync_standby };
    if (value.quorum !== undefined) out.quorum = value.quorum;
    return this.casPut('write sync key', KEYS.sync, compactJson(out), expectedModRevision);
  }

  async setHistory(history: HistoryEntry[]): Promise<void> {
    await this.plainPut('write history key', KEYS.history, compactJson(history));
  }

  async setStatus(status: StatusKey): Promise<void> {
    await this.plainPut('write status key', KEYS.status, compactJson(status));
  }

  async setFailsafe(value: Record<string, string> | null): Promise<void> {
    if (value === null) await this.plainDelete('delete failsafe key', KEYS.failsafe);
    else await this.plainPut('write failsafe key', KEYS.failsafe, compactJson(value));
  }

  async deleteCluster(): Promise<void> {
    await this.rpc('delete cluster', undefined, (o) =>
      this.client.kv.deleteRange({ key: this.prefixBuf, range_end: prefixRangeEnd(this.prefixBuf) }, o),
    );
  }

  /**
   * Watches the prefix from the current revision. `onChange` receives the changed keys relative
   * to the prefix; an empty list means "changes may have been missed (compaction), re-read all".
   */
  watch(onChange: (keys: string[]) => void): () => Promise<void> {
    let stopped = false;
    let stream: WatchStream | null = null;
    let timer: NodeJS.Timeout | null = null;
    let nextRevision: bigint | null = null;
    let delayMs = 50;

    const notify = (keys: string[]) => {
      try {
        onChange(keys);
      } catch (err) {
        this.log.error({ err }, 'watch callback threw');
      }
    };

    const drop = () => {
      const s = stream;
      stream = null;
      if (!s) return;
      try {
        s.end();
        s.cancel();
      } catch {
        // already closed
      }
    };

    const reestablish = (reason: string, immediate = false) => {
      if (stopped) return;
      drop();
      if (timer) return;
      this.log.warn(
        { reason, retryInMs: immediate ? 0 : delayMs },
        'etcd watch interrupted; re-establishing',
      );
      timer = setTimeout(
        () => {
          timer = null;
          void establish();
        },
        immediate ? 0 : delayMs,
      );
      if (!immediate) delayMs = Math.min(delayMs * 2, 1000);
    };

    const onData = (s: WatchStream, res: IWatchResponse) => {
      if (stopped || s !== stream) return;
      if (res.compact_revision && res.compact_revision !== '0') {
        // The revision we wanted to resume from is gone: start over from now and ask for a full re-read.
        this.log.warn({ compactRevision: res.compact_revision }, 'etcd watch revision compacted');
        nextRevision = null;
        notify([]);
        reestablish('compacted', true);
        return;
      }
      if (res.canceled) {
        reestablish(`cancelled by etcd: ${res.cancel_reason || 'no reason given'}`);
        return;
      }
      if (res.created) {
        delayMs = 50;
        if (nextRevision === null) nextRevision = BigInt(res.header.revision) + 1n;
      }
      if (res.events.length > 0) {
        const keys = new Set<string>();
        for (const ev of res.events) {
          const rev = BigInt(ev.kv.mod_revision) + 1n;
          if (nextRevision === null || rev > nextRevision) nextRevision = rev;
          keys.add(ev.kv.key.toString('utf8').slice(this.prefix.length));
        }
        notify([...keys]);
      } else if (!res.created && res.header.revision) {
        // Progress notification: everything up to this revision has been delivered.
        const rev = BigInt(res.header.revision) + 1n;
        if (nextRevision === null || rev > nextRevision) nextRevision = rev;
      }
    };

    const establish = async () => {
      if (stopped || this.closed) return;
      let s: WatchStream;
      try {
        s = await this.client.watchClient.watch();
      } catch (err) {
        reestablish(errorMessage(err));
        return;
      }
      if (stopped) {
        s.end();
        s.cancel();
        return;
      }
      stream = s;
      s.on('data', (res) => onData(s, res));
      s.on('error', (err) => {
        if (s === stream) reestablish(`etcd unreachable at ${this.hostsLabel}: ${errorMessage(err)}`);
      });
      s.on('end', () => {
        if (s === stream) reestablish('watch stream ended');
      });
      s.write({
        create_request: {
          key: this.prefixBuf,
          range_end: prefixRangeEnd(this.prefixBuf),
          start_revision: nextRevision === null ? 0 : nextRevision.toString(),
          progress_notify: true,
        },
      });
    };

    void establish();

    const stop = async (): Promise<void> => {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      drop();
      this.watchStops.delete(stop);
      await Promise.resolve();
    };
    this.watchStops.add(stop);
    return stop;
  }

  async close(opts: { revokeLease?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.watchStops].map((stop) => stop()));
    const lease = this.lease;
    if (opts.revokeLease && lease !== null) {
      try {
        await this.rpc('lease revoke', undefined, (o) =>
          this.client.leaseClient.leaseRevoke({ ID: lease.id }, o),
        );
        this.lease = null;
      } catch (err) {
        this.log.warn(
          { err: errorMessage(err) },
          'could not revoke the etcd lease; its keys expire with the TTL',
        );
      }
    }
    this.closed = true;
    this.client.close();
  }
}

/** Options the config file does not carry: the dynamic ttl and the request deadline. */
export interface CreateEtcdDcsOptions {
  ttl: number;
  /** Usually the dynamic `retry_timeout`, in ms. */
  requestTimeoutMs?: number;
  logger?: Logger;
}

/** Builds an `EtcdDcs` from the normalised configuration's `etcd` section, scope, namespace and name. */
export function createEtcdDcs(config: PghaConfig, opts: CreateEtcdDcsOptions): EtcdDcs {
  const e = config.etcd;
  const o: EtcdDcsOptions = {
    hosts: e.hosts,
    protocol: e.protocol,
    namespace: config.namespace,
    scope: config.scope,
    name: config.name,
    ttl: opts.ttl,
  };
  if (e.username !== undefined) o.username = e.username;
  if (e.password !== undefined) o.password = e.password;
  if (e.cacert !== undefined) o.cacert = e.cacert;
  if (e.cert !== undefined) o.cert = e.cert;
  if (e.key !== undefined) o.key = e.key;
  if (opts.requestTimeoutMs !== undefined) o.requestTimeoutMs = opts.requestTimeoutMs;
  if (opts.logger !== undefined) o.logger = opts.logger;
  return new EtcdDcs(o);
}

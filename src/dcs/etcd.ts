/**
 * The `Dcs` on etcd v3: Patroni's key layout, one lease per node renewed only when the HA loop asks
 * (so renewals stop when the loop stops — that is what fences a hung leader), compare-and-set
 * transactions, and a prefix watch that re-establishes itself. Requests go through `EtcdClient`
 * (etcd-http.ts): etcd's JSON gateway, one deadline per request, a failed member skipped by the
 * next requests; the watch runs on the member requests use and moves with them.
 */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import type { PghaConfig } from '../config/types.js';
import { DcsError, errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { EtcdClient, EtcdRpcError, GRPC, type CallOptions, type EtcdStream } from './etcd-http.js';
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
  WatchEvent,
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
  /** Deadline for every single request, every member tried included (default 10 000 ms, Patroni's retry_timeout). */
  requestTimeoutMs?: number;
  /** Whether an endpoint runs on this host (default: its address is one of this host's). */
  isLocal?: (endpoint: string) => boolean;
}

/** One etcd key-value as the JSON gateway returns it (bytes in base64, 64-bit numbers as strings). */
interface JsonKv {
  key?: string;
  value?: string;
  mod_revision?: string;
  create_revision?: string;
  lease?: string;
}
interface JsonHeader {
  revision?: string;
  member_id?: string;
  raft_term?: string;
}
interface RangeResponse {
  header?: JsonHeader;
  kvs?: JsonKv[];
}
interface TxnResponse {
  header?: JsonHeader;
  succeeded?: boolean;
  responses?: Array<{ response_range?: RangeResponse; response_txn?: { succeeded?: boolean } }>;
}
type Compare = Record<string, unknown>;
type RequestOp = Record<string, unknown>;

interface WatchResult {
  header?: JsonHeader;
  created?: boolean;
  canceled?: boolean;
  cancel_reason?: string;
  compact_revision?: string;
  events?: Array<{ type?: string; kv?: JsonKv }>;
}

/** One member of the etcd cluster, as `MemberList` names it. */
export interface EtcdMemberInfo {
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/** One member's own status (`Maintenance.Status`), asked of that member. */
export interface EtcdMemberStatus {
  endpoint: string;
  id: string;
  leader: string;
  version: string;
  raftTerm: string;
  dbSize: number;
}

/** A configured member's own status (`status` null: it did not answer), and whether it is on this host. */
export interface EtcdEndpointStatus {
  endpoint: string;
  local: boolean;
  status: EtcdMemberStatus | null;
}

const b64 = (v: string | Buffer): string => (Buffer.isBuffer(v) ? v : Buffer.from(v)).toString('base64');
const unb64 = (v: string | undefined): string => (v ? Buffer.from(v, 'base64').toString('utf8') : '');

/** Keep-alive attempts per `refreshLease` beyond the first (each may reach another member). */
const KEEPALIVE_RETRIES = 3;

/** True when etcd said the lease is gone (expired or revoked). */
function leaseGone(err: unknown): boolean {
  return err instanceof EtcdRpcError && err.grpcCode === GRPC.NOT_FOUND && /lease/i.test(err.message);
}

/** Implements `Dcs` over etcd v3 with `EtcdClient`. */
export class EtcdDcs implements Dcs {
  readonly prefix: string;
  readonly memberName: string;
  readonly client: EtcdClient;

  private timeoutMs: number;
  private readonly log: Logger;
  private readonly prefixB64: string;
  private readonly rangeEndB64: string;
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
    const prefixBuf = Buffer.from(this.prefix);
    this.prefixB64 = b64(prefixBuf);
    this.rangeEndB64 = b64(prefixRangeEnd(prefixBuf));
    this.memberName = opts.name;
    this.ttl = Math.ceil(opts.ttl);
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.client = new EtcdClient({
      endpoints: opts.hosts,
      protocol: opts.protocol ?? 'http',
      ...(opts.username !== undefined && opts.username !== '' ? { username: opts.username } : {}),
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      ...(opts.cacert !== undefined ? { ca: readFileSync(opts.cacert) } : {}),
      ...(opts.cert !== undefined ? { cert: readFileSync(opts.cert) } : {}),
      ...(opts.key !== undefined ? { key: readFileSync(opts.key) } : {}),
      requestTimeoutMs: this.timeoutMs,
      logger: this.log,
      ...(opts.isLocal ? { isLocal: opts.isLocal } : {}),
    });
  }

  /** The current lease id (decimal string), or null before the first grant / after loss. */
  get leaseId(): string | null {
    return this.lease?.id ?? null;
  }

  /** Send time (monotonic ms, `performance.now`) of the last successful lease grant or keep-alive. */
  get lastLeaseRefreshAt(): number | null {
    return this.lastRefreshSentAt;
  }

  private key(rel: string): string {
    return b64(this.prefix + rel);
  }

  private call<T>(
    path: string,
    body: unknown,
    what: string,
    signal?: AbortSignal,
    retry?: CallOptions['retry'],
  ): Promise<T> {
    return this.client.call<T>(path, body, {
      what,
      ...(signal ? { signal } : {}),
      ...(retry ? { retry } : {}),
    });
  }

  private txn(
    what: string,
    compare: Compare[],
    success: RequestOp[],
    failure: RequestOp[] = [],
    signal?: AbortSignal,
    retry?: CallOptions['retry'],
  ): Promise<TxnResponse> {
    return this.call<TxnResponse>('/kv/txn', { compare, success, failure }, what, signal, retry);
  }

  private put(rel: string, value: string, lease?: string): RequestOp {
    return { request_put: { key: this.key(rel), value: b64(value), ...(lease ? { lease } : {}) } };
  }

  private async plainPut(what: string, rel: string, value: string, signal?: AbortSignal): Promise<string> {
    const res = await this.call<RangeResponse>(
      '/kv/put',
      { key: this.key(rel), value: b64(value) },
      what,
      signal,
    );
    return res.header?.revision ?? '0';
  }

  private async plainDelete(what: string, rel: string): Promise<void> {
    await this.call('/kv/deleterange', { key: this.key(rel) }, what);
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
      [{ key: this.key(rel), target: 'MOD', result: 'EQUAL', mod_revision: expectedModRevision }],
      [this.put(rel, value)],
      [],
      undefined,
      // Run twice, a write that succeeded would fail its own comparison: never retried once sent.
      'unsent',
    );
    return res.succeeded ? { ok: true, modRevision: res.header?.revision ?? '0' } : { ok: false };
  }

  async readCluster(signal?: AbortSignal): Promise<ClusterState> {
    // serializable: false — a linearizable read, never a stale follower's view.
    const res = await this.call<RangeResponse>(
      '/kv/range',
      { key: this.prefixB64, range_end: this.rangeEndB64 },
      'read cluster',
      signal,
    );
    const keys: RawKey[] = (res.kvs ?? []).map((kv) => ({
      key: unb64(kv.key).slice(this.prefix.length),
      value: unb64(kv.value),
      modRevision: kv.mod_revision ?? '0',
      lease: kv.lease ?? '0',
    }));
    return parseCluster(keys, res.header?.revision ?? '0', (msg, details) => this.log.warn(details, msg));
  }

  private async grantLease(signal?: AbortSignal): Promise<number> {
    const ttl = this.ttl;
    const sentAt = performance.now();
    const res = await this.call<{ ID?: string; TTL?: string; error?: string }>(
      '/lease/grant',
      { TTL: ttl },
      'lease grant',
      signal,
    );
    if (res.error || !res.ID)
      throw new DcsError(
        `etcd lease grant failed at ${this.client.endpointsLabel}: ${res.error ?? 'no lease id'}`,
      );
    this.lease = { id: res.ID, ttl };
    this.lastRefreshSentAt = sentAt;
    this.log.info({ lease: res.ID, ttl: Number(res.TTL) }, 'granted a new etcd lease');
    return sentAt;
  }

  /** One keep-alive; returns the TTL etcd reports (0: lease gone). */
  private async keepAliveOnce(id: string, signal?: AbortSignal): Promise<number> {
    const res = await this.call<{ result?: { TTL?: string }; error?: unknown }>(
      '/lease/keepalive',
      { ID: id },
      'lease keep-alive',
      signal,
    );
    if (!res.result) throw new DcsError(`etcd lease keep-alive: no answer for lease ${id}`);
    return Number(res.result.TTL ?? 0);
  }

  async refreshLease(signal?: AbortSignal): Promise<number> {
    const lease = this.lease;
    // A lease keeps the TTL it was granted with: a changed ttl needs a new lease. The old one is
    // not revoked (that would drop the leader key at once); the caller re-puts its keys.
    if (lease === null || lease.ttl !== this.ttl) return this.grantLease(signal);
    let sentAt = performance.now();
    let ttl: number | undefined;
    const giveUpAt = performance.now() + this.timeoutMs;
    // The client already tries every member within its deadline; a few more tries cover a leader
    // election, whose "no leader" answers come back at once from every member.
    for (let attempt = 0; ttl === undefined; attempt++) {
      sentAt = performance.now();
      try {
        ttl = await this.keepAliveOnce(lease.id, signal);
      } catch (err) {
        if (
          attempt >= KEEPALIVE_RETRIES ||
          signal?.aborted ||
          performance.now() + 100 >= giveUpAt ||
          !(err instanceof DcsError && err.retryable)
        )
          throw err;
        await new Promise((r) => setTimeout(r, 100));
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

  setRequestTimeout(ms: number): void {
    if (!(ms >= 100)) return;
    this.timeoutMs = ms;
    this.client.setRequestTimeout(ms);
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
      if (!leaseGone(err)) throw err;
      if (this.lease?.id === lease) this.lease = null;
      return fn(await this.currentLease(signal));
    }
  }

  async touchMember(data: MemberData, signal?: AbortSignal): Promise<void> {
    const rel = KEYS.members + this.memberName;
    await this.withLease(signal, (lease) =>
      this.call(
        '/kv/put',
        { key: this.key(rel), value: b64(compactJson(data)), lease },
        'write member key',
        signal,
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
        [{ key: leaderKey, target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
        [this.put(KEYS.leader, this.memberName, lease)],
        [{ request_range: { key: leaderKey } }],
        signal,
      );
      if (res.succeeded) return true;
      // If a retried request had already succeeded, the key is ours: same name and same lease.
      const kv = res.responses?.[0]?.response_range?.kvs?.[0];
      return kv !== undefined && unb64(kv.value) === this.memberName && (kv.lease ?? '0') === lease;
    });
  }

  async updateLeader(signal?: AbortSignal): Promise<boolean> {
    return (await this.renewLeader(signal)) !== null;
  }

  async renewLeader(signal?: AbortSignal): Promise<number | null> {
    const sent = await this.refreshLease(signal);
    return this.withLease(signal, async (lease) => {
      const leaderKey = this.key(KEYS.leader);
      const ours: Compare = { key: leaderKey, target: 'VALUE', result: 'EQUAL', value: b64(this.memberName) };
      // The key is rewritten (same name, same lease) at every renewal, so its revision moves: the
      // replicas time the leader by it, not by etcd's lease alone (ha/silence.ts). If the key holds
      // our name on an older lease, it is re-attached to the current one.
      const res = await this.txn(
        'update leader key',
        [ours, { key: leaderKey, target: 'LEASE', result: 'EQUAL', lease }],
        [this.put(KEYS.leader, this.memberName, lease)],
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
      const reattached = res.responses?.[0]?.response_txn?.succeeded === true;
      if (!reattached) return null;
      this.log.info({ lease }, 're-attached the leader key to the new lease');
      // The key now hangs on `lease`, which was granted or renewed at `lastRefreshSentAt`.
      return this.lastRefreshSentAt ?? sent;
    });
  }

  /** etcd's view of `lease`: seconds left and seconds granted; null when the lease is gone. */
  private async leaseTimeToLive(
    lease: string,
    signal?: AbortSignal,
  ): Promise<{ remaining: number; granted: number } | null> {
    if (lease === '0' || lease === '') return null;
    const res = await this.call<{ TTL?: string; grantedTTL?: string }>(
      '/lease/timetolive',
      { ID: lease, keys: false },
      'lease time-to-live',
      signal,
    );
    const remaining = Number(res.TTL ?? -1);
    if (!Number.isFinite(remaining) || remaining < 0) return null;
    const granted = Number(res.grantedTTL ?? NaN);
    if (!Number.isFinite(granted))
      throw new DcsError(`etcd lease time-to-live: no granted TTL for lease ${lease}`);
    return { remaining, granted };
  }

  async leaseSilentMs(lease: string, signal?: AbortSignal): Promise<number | null> {
    const ttl = await this.leaseTimeToLive(lease, signal);
    return ttl && Math.max(0, ttl.granted - ttl.remaining) * 1000;
  }

  async leaseGrantedTtlS(lease: string, signal?: AbortSignal): Promise<number | null> {
    return (await this.leaseTimeToLive(lease, signal))?.granted ?? null;
  }

  async deleteLeader(): Promise<boolean> {
    const leaderKey = this.key(KEYS.leader);
    const res = await this.txn(
      'delete leader key',
      [{ key: leaderKey, target: 'VALUE', result: 'EQUAL', value: b64(this.memberName) }],
      [{ request_delete_range: { key: leaderKey } }],
    );
    return res.succeeded === true;
  }

  async deleteLeaderOf(name: string, modRevision: string): Promise<boolean> {
    const leaderKey = this.key(KEYS.leader);
    const res = await this.txn(
      `delete ${name}'s leader key`,
      [
        { key: leaderKey, target: 'VALUE', result: 'EQUAL', value: b64(name) },
        { key: leaderKey, target: 'MOD', result: 'EQUAL', mod_revision: modRevision },
      ],
      [{ request_delete_range: { key: leaderKey } }],
    );
    return res.succeeded === true;
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
        [{ key, target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
        [this.put(rel, value, lease)],
        [{ request_range: { key } }],
        signal,
      );
      if (res.succeeded) return { held: true, holder: value };
      const kv = res.responses?.[0]?.response_range?.kvs?.[0];
      const holder = kv ? unb64(kv.value) : null;
      return { held: kv !== undefined && holder === value && (kv.lease ?? '0') === lease, holder };
    });
  }

  async releaseKey(rel: string, value: string): Promise<boolean> {
    const lease = this.lease?.id;
    if (lease === undefined) return false; // a key on a lost lease expires with it
    const key = this.key(rel);
    const res = await this.txn(
      `release ${rel}`,
      [
        { key, target: 'VALUE', result: 'EQUAL', value: b64(value) },
        { key, target: 'LEASE', result: 'EQUAL', lease },
      ],
      [{ request_delete_range: { key } }],
    );
    return res.succeeded === true;
  }

  async initialize(value: string, create: boolean): Promise<boolean> {
    if (!create) {
      await this.plainPut('write initialize key', KEYS.initialize, value);
      return true;
    }
    const res = await this.txn(
      'create initialize key',
      [{ key: this.key(KEYS.initialize), target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      [this.put(KEYS.initialize, value)],
      [],
      undefined,
      // Every racer writes the same value, so a retry that finds the key cannot tell whose it is.
      'unsent',
    );
    return res.succeeded === true;
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
    await this.call(
      '/kv/deleterange',
      { key: this.prefixB64, range_end: this.rangeEndB64 },
      'delete cluster',
    );
  }

  /** The etcd cluster's members (`MemberList`), as the member that answers knows them. */
  async memberList(signal?: AbortSignal): Promise<EtcdMemberInfo[]> {
    const res = await this.call<{
      members?: Array<{
        ID?: string;
        name?: string;
        peerURLs?: string[];
        clientURLs?: string[];
        isLearner?: boolean;
      }>;
    }>('/cluster/member/list', {}, 'list members', signal);
    return (res.members ?? []).map((m) => ({
      id: m.ID ?? '0',
      name: m.name ?? '',
      peerUrls: m.peerURLs ?? [],
      clientUrls: m.clientURLs ?? [],
      isLearner: m.isLearner === true,
    }));
  }

  /** One member's own status, asked of that member (an endpoint in `host:port` form). */
  async memberStatus(endpoint: string, signal?: AbortSignal): Promise<EtcdMemberStatus> {
    const res = await this.client.callMember<{
      header?: JsonHeader;
      leader?: string;
      version?: string;
      raftTerm?: string;
      dbSize?: string;
    }>(endpoint, '/maintenance/status', {}, { what: 'member status', ...(signal ? { signal } : {}) });
    return {
      endpoint,
      id: res.header?.member_id ?? '0',
      leader: res.leader ?? '0',
      version: res.version ?? '',
      raftTerm: res.raftTerm ?? res.header?.raft_term ?? '0',
      dbSize: Number(res.dbSize ?? 0),
    };
  }

  /**
   * Every configured member's own status, asked of each in parallel (null: it did not answer
   * within `timeoutMs`), and whether it runs on this host.
   */
  async endpointStatuses(timeoutMs: number): Promise<EtcdEndpointStatus[]> {
    return Promise.all(
      this.client.pool.states().map(async (m) => ({
        endpoint: m.endpoint,
        local: m.local,
        status: await this.memberStatus(m.endpoint, AbortSignal.timeout(timeoutMs)).catch(() => null),
      })),
    );
  }

  /**
   * Hands etcd's raft leadership to member `targetId` (`MoveLeader`); asked of the member that
   * leads now (`leaderEndpoint`), which alone can hand it over.
   */
  async moveLeader(leaderEndpoint: string, targetId: string, signal?: AbortSignal): Promise<void> {
    await this.client.callMember(
      leaderEndpoint,
      '/maintenance/transfer-leadership',
      { targetID: targetId },
      { what: 'move leader', ...(signal ? { signal } : {}) },
    );
  }

  /**
   * Watches the prefix from the current revision. `onChange` receives the changed keys relative
   * to the prefix; an empty list means "changes may have been missed (compaction), re-read all".
   * The stream runs on the member requests go to; when that member fails (here or in any other
   * request) the watch moves to the next one and resumes after the last revision it delivered.
   */
  watch(onChange: (keys: string[], events?: WatchEvent[]) => void): () => Promise<void> {
    let stopped = false;
    let stream: EtcdStream | null = null;
    let timer: NodeJS.Timeout | null = null;
    let nextRevision: bigint | null = null;
    let delayMs = 50;
    let generation = 0;

    const notify = (keys: string[], events?: WatchEvent[]) => {
      try {
        onChange(keys, events);
      } catch (err) {
        this.log.error({ err }, 'watch callback threw');
      }
    };

    const drop = () => {
      generation += 1;
      const s = stream;
      stream = null;
      s?.close();
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

    const onData = (gen: number, res: WatchResult) => {
      if (stopped || gen !== generation) return;
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
        if (nextRevision === null) nextRevision = BigInt(res.header?.revision ?? '0') + 1n;
      }
      const events = res.events ?? [];
      if (events.length > 0) {
        const keys = new Set<string>();
        const changes: WatchEvent[] = [];
        for (const ev of events) {
          const rev = BigInt(ev.kv?.mod_revision ?? '0') + 1n;
          if (nextRevision === null || rev > nextRevision) nextRevision = rev;
          const key = unb64(ev.kv?.key).slice(this.prefix.length);
          keys.add(key);
          changes.push({
            key,
            value: ev.type === 'DELETE' ? null : unb64(ev.kv?.value),
            modRevision: ev.kv?.mod_revision ?? '0',
          });
        }
        notify([...keys], changes);
      } else if (!res.created && res.header?.revision) {
        // Progress notification: everything up to this revision has been delivered.
        const rev = BigInt(res.header.revision) + 1n;
        if (nextRevision === null || rev > nextRevision) nextRevision = rev;
      }
    };

    const establish = async () => {
      if (stopped || this.closed) return;
      const gen = ++generation;
      let s: EtcdStream;
      try {
        s = await this.client.openStream(
          '/watch',
          {
            create_request: {
              key: this.prefixB64,
              range_end: this.rangeEndB64,
              ...(nextRevision === null ? {} : { start_revision: nextRevision.toString() }),
              progress_notify: true,
            },
          },
          {
            onMessage: (msg: WatchResult) => onData(gen, msg),
            onClose: (err) => {
              if (gen === generation && !stopped) reestablish(`etcd watch: ${err.message}`);
            },
          },
        );
      } catch (err) {
        if (gen === generation) reestablish(errorMessage(err));
        return;
      }
      if (stopped || gen !== generation) {
        s.close();
        return;
      }
      stream = s;
    };

    // A member that fails a request loses the watch too: it may be cut off and silent.
    const unsubscribe = this.client.onMemberFailure((endpoint) => {
      if (stream?.endpoint === endpoint) reestablish(`member ${endpoint} failed`, true);
    });

    void establish();

    const stop = async (): Promise<void> => {
      stopped = true;
      unsubscribe();
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
        await this.call('/lease/revoke', { ID: lease.id }, 'lease revoke');
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

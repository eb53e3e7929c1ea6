/**
 * An in-memory etcd for the model test: keys with revisions, leases that expire on the simulated
 * monotonic clock (a keep-alive counts from when etcd *receives* it, as the real one), prefix
 * watches, and one `Dcs` client per agent that a fault can cut off (its requests then time out).
 */
import { compactJson, KEYS, parseCluster, type RawKey } from '../../dcs/keys.js';
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
} from '../../dcs/types.js';
import { DcsError } from '../../util/errors.js';
import type { SimClock, SimTime } from './sim-clock.js';

interface Kv {
  value: string;
  mod: number;
  create: number;
  lease: string;
}

interface Lease {
  ttlMs: number;
  expiresAt: number;
  renewedAt: number;
}

export class SimStore {
  private kvs = new Map<string, Kv>();
  private leases = new Map<string, Lease>();
  private revision = 1;
  private nextLease = 1000;
  private watchers = new Set<(keys: string[], events: WatchEvent[]) => void>();

  constructor(
    readonly time: SimTime,
    readonly prefix: string,
  ) {}

  /** Expires leases (and their keys) whose time has come. */
  expire(): void {
    const now = this.time.mono;
    const changed: string[] = [];
    for (const [id, l] of this.leases) {
      if (l.expiresAt > now) continue;
      this.leases.delete(id);
      for (const [k, kv] of this.kvs)
        if (kv.lease === id) {
          this.kvs.delete(k);
          changed.push(k);
        }
    }
    if (changed.length) this.bump(changed);
  }

  private bump(keys: string[]): void {
    this.revision++;
    const rel = keys.map((k) => k.slice(this.prefix.length));
    const events = rel.map((key) => ({ key, value: null, modRevision: String(this.revision) }));
    for (const w of this.watchers) queueMicrotask(() => w(rel, events));
  }

  get(rel: string): Kv | undefined {
    this.expire();
    return this.kvs.get(this.prefix + rel);
  }

  put(rel: string, value: string, lease = '0'): number {
    this.expire();
    const k = this.prefix + rel;
    const old = this.kvs.get(k);
    this.revision++;
    this.kvs.set(k, { value, mod: this.revision, create: old?.create ?? this.revision, lease });
    const rev = this.revision;
    const events = [{ key: rel, value, modRevision: String(rev) }];
    for (const w of this.watchers) queueMicrotask(() => w([rel], events));
    return rev;
  }

  delete(rel: string): boolean {
    this.expire();
    const existed = this.kvs.delete(this.prefix + rel);
    if (existed) this.bump([this.prefix + rel]);
    return existed;
  }

  deleteAll(): void {
    const keys = [...this.kvs.keys()];
    this.kvs.clear();
    if (keys.length) this.bump(keys);
  }

  grant(ttlS: number): string {
    const id = String(this.nextLease++);
    const now = this.time.mono;
    this.leases.set(id, { ttlMs: ttlS * 1000, expiresAt: now + ttlS * 1000, renewedAt: now });
    return id;
  }

  /** A keep-alive arriving now; false when the lease is gone. */
  keepAlive(id: string): boolean {
    this.expire();
    const l = this.leases.get(id);
    if (!l) return false;
    l.expiresAt = this.time.mono + l.ttlMs;
    l.renewedAt = this.time.mono;
    return true;
  }

  leaseAlive(id: string): boolean {
    this.expire();
    return this.leases.has(id);
  }

  leaseSilentMs(id: string): number | null {
    this.expire();
    const l = this.leases.get(id);
    if (!l) return null;
    // etcd reports whole seconds.
    return Math.floor((this.time.mono - l.renewedAt) / 1000) * 1000;
  }

  /**
   * A new etcd leader takes over (etcd's lessor `Promote`): every lease is renewed in full, plus
   * `extendMs`, from now — whatever its holder did.
   */
  promote(extendMs: number): void {
    this.expire();
    const now = this.time.mono;
    for (const l of this.leases.values()) {
      l.expiresAt = now + l.ttlMs + extendMs;
      l.renewedAt = now;
    }
  }

  leaseGrantedTtlS(id: string): number | null {
    this.expire();
    const l = this.leases.get(id);
    return l ? l.ttlMs / 1000 : null;
  }

  revoke(id: string): void {
    const l = this.leases.get(id);
    if (!l) return;
    l.expiresAt = this.time.mono;
    this.expire();
  }

  read(): ClusterState {
    this.expire();
    const keys: RawKey[] = [];
    for (const [k, kv] of this.kvs)
      if (k.startsWith(this.prefix))
        keys.push({
          key: k.slice(this.prefix.length),
          value: kv.value,
          modRevision: String(kv.mod),
          lease: kv.lease,
        });
    return parseCluster(keys, String(this.revision));
  }

  watch(fn: (keys: string[], events: WatchEvent[]) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }
}

/** One agent's etcd client. `cut` makes every request wait for its deadline and fail. */
export class SimDcs implements Dcs {
  readonly prefix: string;
  private lease: { id: string; ttl: number } | null = null;
  private ttl: number;
  private lastSent: number | null = null;
  private closed = false;
  private unwatch: (() => void) | null = null;

  constructor(
    private readonly store: SimStore,
    private readonly clock: SimClock,
    readonly memberName: string,
    ttl: number,
    private readonly net: { cut(): boolean; latencyMs(): number; timeoutMs(): number },
  ) {
    this.prefix = store.prefix;
    this.ttl = ttl;
  }

  get leaseId(): string | null {
    return this.lease?.id ?? null;
  }

  /** A request: fails after its deadline while cut off, else takes the network's latency. */
  private async rpc<T>(what: string, fn: () => T, signal?: AbortSignal): Promise<T> {
    if (this.closed) throw new DcsError(`etcd ${what}: client is closed`, { retryable: false });
    if (this.net.cut()) {
      await this.clock.sleep(this.net.timeoutMs(), signal).catch(() => undefined);
      throw new DcsError(`etcd unreachable: ${what} timed out`);
    }
    const half = this.net.latencyMs() / 2;
    await this.clock.sleep(half);
    if (this.net.cut()) throw new DcsError(`etcd unreachable: ${what} failed`);
    const out = fn();
    await this.clock.sleep(half);
    return out;
  }

  async readCluster(signal?: AbortSignal): Promise<ClusterState> {
    return this.rpc('read cluster', () => this.store.read(), signal);
  }

  async refreshLease(signal?: AbortSignal): Promise<number> {
    const sent = this.clock.mono();
    await this.rpc(
      'lease keep-alive',
      () => {
        if (!this.lease || this.lease.ttl !== this.ttl || !this.store.keepAlive(this.lease.id))
          this.lease = { id: this.store.grant(this.ttl), ttl: this.ttl };
      },
      signal,
    );
    this.lastSent = sent;
    return sent;
  }

  setTtl(ttlSeconds: number): void {
    this.ttl = ttlSeconds;
  }

  private myLease(): string {
    if (!this.lease || !this.store.leaseAlive(this.lease.id))
      this.lease = { id: this.store.grant(this.ttl), ttl: this.ttl };
    return this.lease.id;
  }

  async touchMember(data: MemberData, signal?: AbortSignal): Promise<void> {
    await this.rpc(
      'write member key',
      () => void this.store.put(KEYS.members + this.memberName, compactJson(data), this.myLease()),
      signal,
    );
  }

  async deleteMember(name: string): Promise<void> {
    await this.rpc('delete member', () => void this.store.delete(KEYS.members + name));
  }

  async attemptToAcquireLeader(signal?: AbortSignal): Promise<boolean> {
    await this.refreshLease(signal);
    return this.rpc(
      'acquire leader key',
      () => {
        if (this.store.get(KEYS.leader)) return false;
        this.store.put(KEYS.leader, this.memberName, this.myLease());
        return true;
      },
      signal,
    );
  }

  async updateLeader(signal?: AbortSignal): Promise<boolean> {
    return (await this.renewLeader(signal)) !== null;
  }

  async renewLeader(signal?: AbortSignal): Promise<number | null> {
    const sent = await this.refreshLease(signal);
    return this.rpc(
      'update leader key',
      () => {
        const kv = this.store.get(KEYS.leader);
        if (!kv || kv.value !== this.memberName) return null;
        // Rewritten at every renewal, as etcd.ts does: the replicas time the leader by its revision.
        const lease = this.myLease();
        const same = kv.lease === lease;
        this.store.put(KEYS.leader, this.memberName, lease);
        return same ? sent : (this.lastSent ?? sent);
      },
      signal,
    );
  }

  async leaseSilentMs(lease: string, signal?: AbortSignal): Promise<number | null> {
    return this.rpc('lease time-to-live', () => this.store.leaseSilentMs(lease), signal);
  }

  async leaseGrantedTtlS(lease: string, signal?: AbortSignal): Promise<number | null> {
    return this.rpc('lease time-to-live', () => this.store.leaseGrantedTtlS(lease), signal);
  }

  async deleteLeader(): Promise<boolean> {
    return this.rpc('delete leader key', () => {
      const kv = this.store.get(KEYS.leader);
      if (!kv || kv.value !== this.memberName) return false;
      return this.store.delete(KEYS.leader);
    });
  }

  async deleteLeaderOf(name: string, modRevision: string): Promise<boolean> {
    return this.rpc('delete leader key of another', () => {
      const kv = this.store.get(KEYS.leader);
      if (!kv || kv.value !== name || String(kv.mod) !== modRevision) return false;
      return this.store.delete(KEYS.leader);
    });
  }

  async claimKey(rel: string, value: string): Promise<{ held: boolean; holder: string | null }> {
    return this.rpc('claim', () => {
      const kv = this.store.get(rel);
      if (!kv) {
        this.store.put(rel, value, this.myLease());
        return { held: true, holder: value };
      }
      return { held: kv.value === value && kv.lease === this.lease?.id, holder: kv.value };
    });
  }

  async releaseKey(rel: string, value: string): Promise<boolean> {
    return this.rpc('release', () => {
      const kv = this.store.get(rel);
      return !!kv && kv.value === value && this.store.delete(rel);
    });
  }

  async initialize(value: string, create: boolean): Promise<boolean> {
    return this.rpc('initialize', () => {
      if (create && this.store.get(KEYS.initialize)) return false;
      this.store.put(KEYS.initialize, value);
      return true;
    });
  }

  async cancelInitialization(): Promise<void> {
    await this.rpc('cancel initialization', () => void this.store.delete(KEYS.initialize));
  }

  private cas(rel: string, value: string, expected?: string): CasResult {
    const kv = this.store.get(rel);
    if (expected !== undefined && String(kv?.mod ?? 0) !== expected && !(expected === '' && !kv))
      return { ok: false };
    return { ok: true, modRevision: String(this.store.put(rel, value)) };
  }

  async setConfig(value: Record<string, unknown>, expectedModRevision?: string): Promise<CasResult> {
    return this.rpc('write config', () => this.cas(KEYS.config, compactJson(value), expectedModRevision));
  }

  async setFailover(
    value: Omit<FailoverKey, 'modRevision'>,
    expectedModRevision?: string,
  ): Promise<CasResult> {
    const out: Record<string, string> = {};
    if (value.leader) out.leader = value.leader;
    if (value.member) out.member = value.member;
    if (value.scheduled_at) out.scheduled_at = value.scheduled_at;
    return this.rpc('write failover', () => this.cas(KEYS.failover, compactJson(out), expectedModRevision));
  }

  async clearFailover(): Promise<void> {
    await this.rpc('clear failover', () => void this.store.put(KEYS.failover, '{}'));
  }

  async setSync(value: Omit<SyncKey, 'modRevision'>, expectedModRevision?: string): Promise<CasResult> {
    const out: Record<string, unknown> = { leader: value.leader, sync_standby: value.sync_standby };
    if (value.quorum !== undefined) out.quorum = value.quorum;
    return this.rpc('write sync', () => this.cas(KEYS.sync, compactJson(out), expectedModRevision));
  }

  async setHistory(history: HistoryEntry[]): Promise<void> {
    await this.rpc('write history', () => void this.store.put(KEYS.history, compactJson(history)));
  }

  async setStatus(status: StatusKey): Promise<void> {
    await this.rpc('write status', () => void this.store.put(KEYS.status, compactJson(status)));
  }

  async setFailsafe(value: Record<string, string> | null): Promise<void> {
    await this.rpc(
      'write failsafe',
      () =>
        void (value === null
          ? this.store.delete(KEYS.failsafe)
          : this.store.put(KEYS.failsafe, compactJson(value))),
    );
  }

  async deleteCluster(): Promise<void> {
    await this.rpc('delete cluster', () => this.store.deleteAll());
  }

  watch(onChange: (keys: string[], events?: WatchEvent[]) => void): () => Promise<void> {
    this.unwatch = this.store.watch((keys, events) => {
      if (!this.closed && !this.net.cut()) onChange(keys, events);
    });
    return () => {
      this.unwatch?.();
      return Promise.resolve();
    };
  }

  async close(opts: { revokeLease?: boolean } = {}): Promise<void> {
    if (opts.revokeLease && this.lease && !this.net.cut()) this.store.revoke(this.lease.id);
    this.unwatch?.();
    this.closed = true;
    await Promise.resolve();
  }

  /** The process died: nothing it sends arrives any more (its lease runs out on its own). */
  kill(): void {
    this.unwatch?.();
    this.closed = true;
  }
}

/**
 * Which etcd member a request goes to: the rules of the etcd client, as a pure object (no I/O; the
 * caller passes the monotonic time), so they are tested with plain values.
 *
 * - A request goes to the member that answered last (requests and the watch stay on one member
 *   while it works), then to the other trusted members (one on this host first), and only then to
 *   members that failed recently ("suspects").
 * - A member that fails (a timeout, a refused connection, "no leader") becomes a suspect at once:
 *   the next requests go elsewhere, so a partitioned member costs one timeout, not one per request.
 * - Suspects are probed in the background, with a backoff from `probeMinMs` to `probeMaxMs`; a
 *   probe or a request that succeeds makes a member trusted again.
 */

export interface MemberState {
  /** `host:port` as configured. */
  endpoint: string;
  /** The member runs on this host (its address is one of ours, or loopback). */
  local: boolean;
  /** Monotonic ms of the first failure in the current run of failures; null: trusted. */
  suspectSince: number | null;
  /** Consecutive failures (requests and probes). */
  failures: number;
  lastError: string | null;
  /** When a background probe is due (monotonic ms); null: none needed. */
  probeAt: number | null;
}

export interface MemberPoolOptions {
  /** Whether an endpoint is on this host. Default: only loopback addresses. */
  isLocal?: (endpoint: string) => boolean;
  /** First probe of a suspect this long after its failure (default 500 ms). */
  probeMinMs?: number;
  /** Longest pause between two probes of a suspect (default 5000 ms). */
  probeMaxMs?: number;
}

/** `host` of a `host:port` endpoint (IPv6 in brackets or bare). */
export function endpointHost(endpoint: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(endpoint);
  if (m) return m[1]!;
  const i = endpoint.lastIndexOf(':');
  return i > 0 && endpoint.indexOf(':') === i ? endpoint.slice(0, i) : endpoint;
}

/** True for loopback hosts (`localhost`, 127.0.0.0/8, `::1`). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export class MemberPool {
  private readonly members: MemberState[];
  private preferred: string | null = null;
  private readonly probeMinMs: number;
  private readonly probeMaxMs: number;

  constructor(endpoints: string[], opts: MemberPoolOptions = {}) {
    if (endpoints.length === 0) throw new Error('MemberPool: no endpoints');
    const isLocal = opts.isLocal ?? ((e: string) => isLoopbackHost(endpointHost(e)));
    this.members = [...new Set(endpoints)].map((endpoint) => ({
      endpoint,
      local: isLocal(endpoint),
      suspectSince: null,
      failures: 0,
      lastError: null,
      probeAt: null,
    }));
    this.probeMinMs = opts.probeMinMs ?? 500;
    this.probeMaxMs = opts.probeMaxMs ?? 5000;
  }

  get size(): number {
    return this.members.length;
  }

  /** A copy of every member's state, in configured order. */
  states(): MemberState[] {
    return this.members.map((m) => ({ ...m }));
  }

  /** The member requests go to first (the watch follows it). */
  current(): string {
    return this.order()[0]!;
  }

  /**
   * Every member, in the order a request tries them: the one that answered last if trusted, the
   * other trusted ones (local first, then as configured), then the suspects, the one that has
   * been failing longest first (it has had the most time to come back).
   */
  order(): string[] {
    const trusted = this.members.filter((m) => m.suspectSince === null);
    const suspects = this.members.filter((m) => m.suspectSince !== null);
    trusted.sort((a, b) => rank(a, this.preferred) - rank(b, this.preferred));
    suspects.sort((a, b) => a.failures - b.failures || a.suspectSince! - b.suspectSince!);
    return [...trusted, ...suspects].map((m) => m.endpoint);
  }

  /** A request or probe to `endpoint` succeeded: it is trusted, and preferred when `sticky`. */
  succeeded(endpoint: string, opts: { sticky?: boolean } = {}): void {
    const m = this.get(endpoint);
    m.suspectSince = null;
    m.failures = 0;
    m.lastError = null;
    m.probeAt = null;
    if (opts.sticky !== false) this.preferred = endpoint;
  }

  /** A request or probe to `endpoint` failed at `now`: it becomes (or stays) a suspect. */
  failed(endpoint: string, why: string, now: number): void {
    const m = this.get(endpoint);
    m.suspectSince ??= now;
    m.failures += 1;
    m.lastError = why;
    m.probeAt = now + Math.min(this.probeMaxMs, this.probeMinMs * 2 ** Math.min(10, m.failures - 1));
    if (this.preferred === endpoint) this.preferred = null;
  }

  /** Suspects whose probe is due at `now`. */
  probesDue(now: number): string[] {
    return this.members.filter((m) => m.probeAt !== null && m.probeAt <= now).map((m) => m.endpoint);
  }

  /** When the next probe is due (monotonic ms), or null when every member is trusted. */
  nextProbeAt(): number | null {
    let next: number | null = null;
    for (const m of this.members)
      if (m.probeAt !== null && (next === null || m.probeAt < next)) next = m.probeAt;
    return next;
  }

  /** True when `endpoint` is a suspect. */
  isSuspect(endpoint: string): boolean {
    return this.get(endpoint).suspectSince !== null;
  }

  private get(endpoint: string): MemberState {
    const m = this.members.find((x) => x.endpoint === endpoint);
    if (!m) throw new Error(`MemberPool: unknown endpoint ${endpoint}`);
    return m;
  }
}

function rank(m: MemberState, preferred: string | null): number {
  if (m.endpoint === preferred) return 0;
  return m.local ? 1 : 2;
}

/**
 * How long one attempt on one member may take, out of a request's whole deadline: the deadline
 * shared among the members, but at least a second (as Patroni splits `retry_timeout` among etcd
 * hosts), and never more than the deadline.
 */
export function attemptTimeoutMs(deadlineMs: number, members: number): number {
  return Math.min(deadlineMs, Math.max(1000, Math.floor(deadlineMs / Math.max(1, members))));
}

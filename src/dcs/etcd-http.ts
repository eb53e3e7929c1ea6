/**
 * The etcd v3 client: JSON over HTTP to etcd's gRPC gateway (`/v3/kv/range`, `/v3/watch`, ...), the
 * API Patroni itself uses, on Node's own `http`/`https`. Each request has one deadline and goes to
 * one member at a time, chosen by `MemberPool` (members.ts): a member that fails is skipped by the
 * next requests and probed in the background, so a partitioned member costs one attempt's timeout
 * instead of one per request. Every request asks etcd to refuse at once when the member has no
 * raft leader (`hasleader` metadata), so a member cut off from its peers says so instead of hanging.
 */
import {
  Agent as HttpAgent,
  request as httpRequest,
  type ClientRequest,
  type IncomingMessage,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { networkInterfaces } from 'node:os';
import type { Logger } from '../util/log.js';
import { DcsError, errorMessage } from '../util/errors.js';
import { attemptTimeoutMs, endpointHost, isLoopbackHost, MemberPool } from './members.js';
import { deadline } from '../util/abort.js';

/** gRPC status codes etcd answers with (in the gateway's `code` field). */
export const GRPC = {
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  OUT_OF_RANGE: 11,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** An error etcd answered with: its gRPC code and message, and the member that gave it. */
export class EtcdRpcError extends DcsError {
  constructor(
    message: string,
    readonly grpcCode: number | null,
    readonly endpoint: string,
    options: { retryable?: boolean } = {},
  ) {
    super(message, options);
    this.name = 'EtcdRpcError';
  }
}

export interface EtcdClientOptions {
  /** `host:port` endpoints (an `http(s)://` prefix is stripped). */
  endpoints: string[];
  protocol?: 'http' | 'https';
  username?: string;
  password?: string;
  /** PEM contents for TLS. */
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** The whole deadline of one request, every member tried included. */
  requestTimeoutMs: number;
  logger?: Logger;
  /** Whether an endpoint is on this host (default: its address is one of this host's). */
  isLocal?: (endpoint: string) => boolean;
}

export interface CallOptions {
  /** What the request does, for messages ("read cluster"). */
  what: string;
  signal?: AbortSignal;
  /**
   * `any` (default): the request may run twice (a read, or a write whose effect does not change
   * when repeated), so after a timeout it is retried on another member. `unsent`: retried only
   * when no member received it (connection refused, no leader).
   */
  retry?: 'any' | 'unsent';
  /** Overrides the client's deadline for this request. */
  timeoutMs?: number;
}

/** A stream (the watch) on one member: newline-delimited JSON messages until it ends or fails. */
export interface EtcdStream {
  endpoint: string;
  close(): void;
}

export interface StreamHandlers {
  onMessage(msg: Record<string, unknown>): void;
  /** The stream failed or ended; `err` says why. Called once. */
  onClose(err: Error): void;
}

/** A transport failure of one attempt on one member. */
interface AttemptFailure {
  kind: 'timeout' | 'connect' | 'io' | 'unavailable' | 'cancelled';
  message: string;
  /** The request reached etcd (it may have been applied). */
  sent: boolean;
}

type Answer = { status: number; body: Record<string, unknown> };

/** This host's addresses, to recognise an etcd member that runs here. */
function localAddresses(): Set<string> {
  const out = new Set<string>(['localhost']);
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) out.add(a.address.replace(/%.*$/, ''));
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class EtcdClient {
  readonly pool: MemberPool;
  readonly endpointsLabel: string;
  private readonly tls: boolean;
  private readonly agents = new Map<string, HttpAgent>();
  private readonly tokens = new Map<string, string>();
  private timeoutMs: number;
  private readonly log: Logger | undefined;
  private prefix = '/v3';
  private probeTimer: NodeJS.Timeout | null = null;
  private probing = false;
  private readonly failureListeners = new Set<(endpoint: string) => void>();
  private closed = false;

  constructor(private readonly opts: EtcdClientOptions) {
    if (opts.endpoints.length === 0) throw new DcsError('no etcd hosts configured', { retryable: false });
    const endpoints = opts.endpoints.map((h) => h.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, ''));
    this.endpointsLabel = endpoints.join(', ');
    this.tls = opts.protocol === 'https';
    this.timeoutMs = opts.requestTimeoutMs;
    this.log = opts.logger;
    let local = opts.isLocal;
    if (!local) {
      const mine = localAddresses();
      local = (e) => {
        const host = endpointHost(e);
        return isLoopbackHost(host) || mine.has(host);
      };
    }
    this.pool = new MemberPool(endpoints, { isLocal: local });
  }

  /** Changes the deadline of each request from now on. */
  setRequestTimeout(ms: number): void {
    this.timeoutMs = ms;
  }

  /** Called with the endpoint each time a member fails (the watch moves off it). */
  onMemberFailure(fn: (endpoint: string) => void): () => void {
    this.failureListeners.add(fn);
    return () => this.failureListeners.delete(fn);
  }

  /**
   * One request (`path` without the `/v3` prefix, e.g. `/kv/range`) within the deadline, trying
   * members in the pool's order. Throws `EtcdRpcError` for an error etcd answered with, and a
   * `DcsError` naming each member's failure when none answered.
   */
  async call<T = Record<string, unknown>>(path: string, body: unknown, o: CallOptions): Promise<T> {
    if (this.closed) throw new DcsError(`etcd ${o.what}: client is closed`, { retryable: false });
    const total = o.timeoutMs ?? this.timeoutMs;
    const start = performance.now();
    const perAttempt = attemptTimeoutMs(total, this.pool.size);
    const failures = new Map<string, string>();
    const tried = new Set<string>();
    for (;;) {
      if (o.signal?.aborted) throw new DcsError(`etcd ${o.what} cancelled`, { cause: o.signal.reason });
      let left = total - (performance.now() - start);
      if (left < 50) break;
      let endpoint = this.pool.order().find((e) => !tried.has(e));
      if (endpoint === undefined) {
        // Every member failed once (an election in progress answers "no leader" everywhere for
        // a moment): another round after a short pause, while the deadline allows.
        await new Promise((r) => setTimeout(r, Math.min(200, left / 4)));
        left = total - (performance.now() - start);
        if (left < 50) break;
        tried.clear();
        endpoint = this.pool.order()[0]!;
      }
      tried.add(endpoint);
      const result = await this.attemptWithAuth(endpoint, path, body, Math.min(perAttempt, left), o);
      if (!('kind' in result)) return result.body as T;
      if (result.kind === 'cancelled')
        throw new DcsError(`etcd ${o.what} cancelled`, { cause: o.signal?.reason });
      failures.set(endpoint, result.message);
      this.memberFailed(endpoint, result.message);
      if (result.sent && o.retry === 'unsent') {
        throw new DcsError(
          `etcd ${o.what} failed at ${endpoint}: ${result.message} (not retried elsewhere: it may have been applied)`,
        );
      }
    }
    const elapsed = Math.round(performance.now() - start);
    throw new DcsError(
      `etcd unreachable at ${this.endpointsLabel}: ${o.what}: ` +
        (failures.size > 0
          ? [...failures].map(([e, m]) => `${e} ${m}`).join('; ')
          : `no member answered within ${elapsed} ms`),
    );
  }

  /** A request to one given member only (the doctor's per-member checks); no retries. */
  async callMember<T = Record<string, unknown>>(
    endpoint: string,
    path: string,
    body: unknown,
    o: CallOptions,
  ): Promise<T> {
    const result = await this.attemptWithAuth(endpoint, path, body, o.timeoutMs ?? this.timeoutMs, o);
    if ('kind' in result) throw new DcsError(`etcd ${o.what} at ${endpoint}: ${result.message}`);
    return result.body as T;
  }

  /**
   * Opens a stream (`/watch`) on the member requests go to now, sending `body` as its only
   * request. Resolves once etcd has answered with the stream's headers; rejects (and marks the
   * member failed) when it cannot within one attempt's timeout.
   */
  async openStream(path: string, body: unknown, handlers: StreamHandlers): Promise<EtcdStream> {
    if (this.closed) throw new DcsError('etcd watch: client is closed', { retryable: false });
    const endpoint = this.pool.current();
    const timeout = attemptTimeoutMs(this.timeoutMs, this.pool.size);
    if (this.opts.username && !this.tokens.has(endpoint)) {
      const auth = await this.authenticate(endpoint, timeout, undefined);
      if (auth !== null) {
        this.memberFailed(endpoint, auth.message);
        throw new DcsError(`etcd watch at ${endpoint}: ${auth.message}`);
      }
    }
    const abort = new AbortController();
    let closed = false;
    const finish = (err: Error) => {
      if (closed) return;
      closed = true;
      abort.abort();
      handlers.onClose(err);
    };
    return new Promise<EtcdStream>((resolve, reject) => {
      const timer = setTimeout(() => {
        const msg = `no answer within ${timeout} ms`;
        this.memberFailed(endpoint, msg);
        abort.abort();
        closed = true;
        reject(new DcsError(`etcd watch at ${endpoint}: ${msg}`));
      }, timeout);
      const req = this.request(endpoint, path, abort.signal);
      req.on('response', (res: IncomingMessage) => {
        clearTimeout(timer);
        if (res.statusCode !== 200) {
          closed = true;
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const err = this.answerError(endpoint, 'watch', res.statusCode ?? 0, Buffer.concat(chunks));
            if (err.retryable) this.memberFailed(endpoint, err.message);
            reject(err);
          });
          res.on('error', () => reject(new DcsError(`etcd watch at ${endpoint}: HTTP ${res.statusCode}`)));
          return;
        }
        this.pool.succeeded(endpoint);
        resolve({ endpoint, close: () => finish(new Error('closed')) });
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line === '') continue;
            let msg: unknown;
            try {
              msg = JSON.parse(line);
            } catch {
              finish(new Error(`unreadable watch message from ${endpoint}`));
              return;
            }
            if (!isRecord(msg)) continue;
            if (isRecord(msg.error)) {
              const e = msg.error;
              finish(
                new Error(`${endpoint}: ${typeof e.message === 'string' ? e.message : JSON.stringify(e)}`),
              );
              return;
            }
            if (isRecord(msg.result) && !closed) handlers.onMessage(msg.result);
          }
        });
        res.on('end', () => finish(new Error(`watch stream on ${endpoint} ended`)));
        res.on('error', (err) => finish(new Error(`${endpoint}: ${err.message}`)));
      });
      req.on('error', (err: Error) => {
        clearTimeout(timer);
        if (closed) return;
        closed = true;
        const msg = transportMessage(err);
        this.memberFailed(endpoint, msg);
        reject(new DcsError(`etcd watch at ${endpoint}: ${msg}`));
      });
      req.end(JSON.stringify(body));
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }

  // ---- one attempt ------------------------------------------------------------------------------

  private async attemptWithAuth(
    endpoint: string,
    path: string,
    body: unknown,
    timeoutMs: number,
    o: CallOptions,
  ): Promise<Answer | AttemptFailure> {
    const start = performance.now();
    if (this.opts.username && !this.tokens.has(endpoint)) {
      const failure = await this.authenticate(endpoint, timeoutMs, o.signal);
      if (failure) return failure;
    }
    const left = () => Math.max(1, timeoutMs - (performance.now() - start));
    let result = await this.attemptOnce(endpoint, path, body, left(), o);
    if ('kind' in result) return result;
    // A token etcd no longer knows (restarted member, expired simple token): log in again, once.
    if (this.opts.username && grpcCode(result.body) === GRPC.UNAUTHENTICATED) {
      this.tokens.delete(endpoint);
      const failure = await this.authenticate(endpoint, left(), o.signal);
      if (failure) return failure;
      result = await this.attemptOnce(endpoint, path, body, left(), o);
      if ('kind' in result) return result;
    }
    if (result.status === 200) {
      this.pool.succeeded(endpoint);
      return result;
    }
    const err = this.answerError(endpoint, o.what, result.status, result.body);
    if (!err.retryable) {
      this.pool.succeeded(endpoint, { sticky: false });
      throw err;
    }
    // No leader, a leader change, an internal timeout, too many requests: this member cannot
    // serve now; another may. Only a timeout may have applied the request.
    return {
      kind: 'unavailable',
      message: err.message.replace(/^etcd [^:]*: /, ''),
      sent: err.grpcCode === GRPC.DEADLINE_EXCEEDED,
    };
  }

  /** Logs in on `endpoint`; returns a failure, or null (logged in, or authentication is off). */
  private async authenticate(
    endpoint: string,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<AttemptFailure | null> {
    const res = await this.attemptOnce(
      endpoint,
      '/auth/authenticate',
      { name: this.opts.username, password: this.opts.password ?? '' },
      timeoutMs,
      { what: 'authenticate', ...(signal ? { signal } : {}) },
      false,
    );
    if ('kind' in res) return res;
    if (res.status === 200 && typeof res.body.token === 'string') {
      this.tokens.set(endpoint, res.body.token);
      return null;
    }
    const code = grpcCode(res.body);
    if (code === GRPC.FAILED_PRECONDITION) return null; // authentication is not enabled
    const err = this.answerError(endpoint, 'authenticate', res.status, res.body);
    if (err.retryable) return { kind: 'unavailable', message: err.message, sent: false };
    throw new EtcdRpcError(
      `etcd refused the credentials of user ${this.opts.username} at ${endpoint}: ${rpcMessage(res.body)} ` +
        '(check etcd3.username and etcd3.password)',
      code,
      endpoint,
      { retryable: false },
    );
  }

  private attemptOnce(
    endpoint: string,
    path: string,
    body: unknown,
    timeoutMs: number,
    o: CallOptions,
    withToken = true,
  ): Promise<Answer | AttemptFailure> {
    const limit = deadline(Math.max(1, Math.round(timeoutMs)), o.signal);
    const signal = limit.signal;
    const payload = JSON.stringify(body ?? {});
    const run = (retryReused: boolean): Promise<Answer | AttemptFailure> =>
      new Promise((resolve) => {
        let sent = false;
        const req = this.request(endpoint, path, signal, withToken);
        req.on('socket', (s) => {
          if (s.connecting) s.once('connect', () => (sent = true));
          else sent = true;
        });
        req.on('response', (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = { error: text.trim().slice(0, 200) || `HTTP ${res.statusCode}` };
            }
            resolve({ status: res.statusCode ?? 0, body: isRecord(parsed) ? parsed : {} });
          });
          res.on('error', (err) => resolve(this.failure(err, signal, o.signal, timeoutMs, true)));
        });
        req.on('error', (err: NodeJS.ErrnoException) => {
          // A keep-alive connection the member closed while idle: try a fresh one, once.
          if (retryReused && req.reusedSocket && err.code === 'ECONNRESET' && !signal.aborted) {
            resolve(run(false));
            return;
          }
          resolve(this.failure(err, signal, o.signal, timeoutMs, sent));
        });
        req.end(payload);
      });
    return run(true)
      .then(async (r) => {
        // etcd older than 3.4 serves the gateway under /v3beta.
        if (!('kind' in r) && r.status === 404 && this.prefix === '/v3' && r.body.error === 'Not Found') {
          this.prefix = '/v3beta';
          const again = await run(false);
          if (!('kind' in again) && again.status === 404) this.prefix = '/v3';
          return again;
        }
        return r;
      })
      .finally(() => limit.clear());
  }

  private failure(
    err: Error,
    signal: AbortSignal,
    caller: AbortSignal | undefined,
    timeoutMs: number,
    sent: boolean,
  ): AttemptFailure {
    if (caller?.aborted) return { kind: 'cancelled', message: 'cancelled', sent };
    if (signal.aborted)
      return { kind: 'timeout', message: `no answer within ${Math.round(timeoutMs)} ms`, sent };
    const code = (err as NodeJS.ErrnoException).code;
    const connect = code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH';
    return { kind: connect ? 'connect' : 'io', message: transportMessage(err), sent: connect ? false : sent };
  }

  private request(endpoint: string, path: string, signal: AbortSignal, withToken = true): ClientRequest {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      // etcd refuses at once, rather than waiting, when this member has no raft leader.
      'grpc-metadata-hasleader': 'true',
    };
    const token = withToken ? this.tokens.get(endpoint) : undefined;
    if (token) headers.authorization = token;
    const url = `${this.tls ? 'https' : 'http'}://${endpoint}${this.prefix}${path}`;
    return (this.tls ? httpsRequest : httpRequest)(url, {
      method: 'POST',
      headers,
      signal,
      agent: this.agent(endpoint),
    });
  }

  private agent(endpoint: string): HttpAgent {
    let a = this.agents.get(endpoint);
    if (!a) {
      const common = { keepAlive: true, keepAliveMsecs: 10_000, scheduling: 'lifo' as const };
      a = this.tls
        ? new HttpsAgent({
            ...common,
            ...(this.opts.ca ? { ca: this.opts.ca } : {}),
            ...(this.opts.cert ? { cert: this.opts.cert } : {}),
            ...(this.opts.key ? { key: this.opts.key } : {}),
          })
        : new HttpAgent(common);
      this.agents.set(endpoint, a);
    }
    return a;
  }

  /** Turns an error answer into an `EtcdRpcError`; `retryable` when another member may do better. */
  private answerError(
    endpoint: string,
    what: string,
    status: number,
    raw: Buffer | Record<string, unknown>,
  ): EtcdRpcError {
    let body: Record<string, unknown> = {};
    if (Buffer.isBuffer(raw)) {
      try {
        const parsed: unknown = JSON.parse(raw.toString('utf8'));
        if (isRecord(parsed)) body = isRecord(parsed.error) ? parsed.error : parsed;
      } catch {
        body = { error: raw.toString('utf8').trim().slice(0, 200) };
      }
    } else body = raw;
    const code = grpcCode(body);
    const message = rpcMessage(body) || `HTTP ${status}`;
    const retryable =
      code === GRPC.UNAVAILABLE ||
      code === GRPC.DEADLINE_EXCEEDED ||
      code === GRPC.RESOURCE_EXHAUSTED ||
      (code === null && status >= 500);
    const denied = code === GRPC.PERMISSION_DENIED || code === GRPC.UNAUTHENTICATED;
    return new EtcdRpcError(
      denied ? `etcd ${what} refused at ${endpoint}: ${message}` : `etcd ${what}: ${message}`,
      code,
      endpoint,
      { retryable },
    );
  }

  // ---- suspects ---------------------------------------------------------------------------------

  private memberFailed(endpoint: string, why: string): void {
    const wasSuspect = this.pool.isSuspect(endpoint);
    this.pool.failed(endpoint, why, performance.now());
    // Drop its pooled connections: a request must not wait on a socket to a partitioned host.
    const a = this.agents.get(endpoint);
    if (a) {
      this.agents.delete(endpoint);
      a.destroy();
    }
    if (!wasSuspect)
      this.log?.warn({ member: endpoint, err: why }, 'etcd member failed; using the others first');
    for (const fn of this.failureListeners) {
      try {
        fn(endpoint);
      } catch (err) {
        this.log?.error({ err: errorMessage(err) }, 'etcd member failure listener threw');
      }
    }
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.closed || this.probing) return;
    const next = this.pool.nextProbeAt();
    if (next === null) return;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => void this.probe(), Math.max(0, next - performance.now()));
    this.probeTimer.unref();
  }

  /** Asks each suspect whose turn it is for its status (needs a raft leader); trusts it again when it answers. */
  private async probe(): Promise<void> {
    this.probeTimer = null;
    if (this.closed) return;
    this.probing = true;
    try {
      const due = this.pool.probesDue(performance.now());
      await Promise.all(
        due.map(async (endpoint) => {
          const timeout = attemptTimeoutMs(this.timeoutMs, this.pool.size);
          const r = await this.attemptOnce(
            endpoint,
            '/maintenance/status',
            {},
            timeout,
            { what: 'probe' },
            false,
          );
          if (this.closed) return;
          if (!('kind' in r) && r.status === 200) {
            this.pool.succeeded(endpoint, { sticky: false });
            this.log?.info({ member: endpoint }, 'etcd member answers again');
          } else {
            const why = 'kind' in r ? r.message : rpcMessage(r.body) || `HTTP ${r.status}`;
            this.pool.failed(endpoint, why, performance.now());
          }
        }),
      );
    } catch (err) {
      this.log?.debug({ err: errorMessage(err) }, 'etcd probe failed');
    } finally {
      this.probing = false;
      this.scheduleProbe();
    }
  }
}

function grpcCode(body: Record<string, unknown>): number | null {
  const c = body.code ?? body.grpc_code;
  return typeof c === 'number' ? c : null;
}

function rpcMessage(body: Record<string, unknown>): string {
  const m = body.message ?? body.error;
  return typeof m === 'string' ? m : '';
}

function transportMessage(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return 'refused the connection';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'is unreachable (no route)';
  if (code === 'ECONNRESET') return 'reset the connection';
  return err.message;
}

/**
 * Patroni's REST API on hono. Routes map requests onto the pure functions in `status.ts` and onto
 * the operator's actions (`ha/operator.ts`). Routing mirrors Patroni's: the first path segment picks
 * the handler, HEAD and OPTIONS answer the health check of any path with a bare status line, and an
 * unknown GET path is a health check that fails (503).
 *
 * Bodies: Patroni's own answers (`Successfully switched over to "x"`, `restart failed`, ...) are plain
 * text, exactly as patronictl prints them; a request the API cannot take (bad JSON, a field of the
 * wrong type, a body too large, a compare-and-set conflict) gets `{"error": "..."}` with a 4xx code.
 */
import { Hono, type Context } from 'hono';
import { timingSafeEqual } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { RestApiConfig } from '../config/types.js';
import type { Operator, OperatorResult, RestartRequest, SwitchoverRequest } from '../ha/operator.js';
import type { FailsafeLeader } from '../ha/failsafe.js';
import type { AgentSnapshot } from '../ha/runner.js';
import { PghaError, errorMessage } from '../util/errors.js';
import { clusterBody, healthCode, metricsBody, statusBody, withLiveCheck, type LiveCheck } from './status.js';
import { createUiRoutes, type UiOptions } from '../ui/routes.js';

/** What the API reads from the HA runner (`HaRunner` satisfies it; tests pass plain data). */
export interface ApiRunner {
  readonly snapshot: AgentSnapshot;
  readonly scheduledRestart: Record<string, unknown> | null;
  /** Re-reads PostgreSQL's status into the snapshot (peers compare WAL positions through `/patroni`). */
  refreshStatus?(): Promise<void>;
  /** `POST /failsafe` from a leader that lost the store (failsafe_mode). */
  acceptFailsafe?(leader: FailsafeLeader): { status: number; text: string; lsn?: number };
}

/** The operator actions the API calls (`Operator` from ha/operator.ts). */
export type ApiOperator = Pick<
  Operator,
  | 'reload'
  | 'restart'
  | 'deleteScheduledRestart'
  | 'reinitialize'
  | 'getConfig'
  | 'patchConfig'
  | 'putConfig'
  | 'switchover'
  | 'deleteSwitchover'
>;

export interface ApiDeps {
  runner: ApiRunner;
  operator: ApiOperator;
  restapi: RestApiConfig;
  tags: Record<string, unknown>;
  version: string;
  /** Resolves a host name for the allowlist (default: every address `dns.lookup` gives). */
  resolveHost?: (host: string) => Promise<string[]>;
  /** Largest request body accepted (default 1 MiB). */
  maxBodyBytes?: number;
  /** The dashboard at `GET /ui` (router status URLs). */
  ui?: UiOptions;
  /**
   * Checks the local PostgreSQL for one request (api/live.ts); the health endpoints, `/patroni` and
   * `/metrics` answer from it merged over the snapshot. Without it they answer from the snapshot.
   */
  liveCheck?: () => Promise<LiveCheck>;
}

/** A request the API cannot take; answered with 400 and `{"error": message}`. */
export class ApiInputError extends Error {
  readonly code = 'PGHA_API_BAD_REQUEST';
  readonly status: 400 | 411 | 413;
  constructor(message: string, status: 400 | 411 | 413 = 400) {
    super(message);
    this.name = 'ApiInputError';
    this.status = status;
  }
}

/** Constant-time comparison of the `Authorization: Basic` header with the configured credentials. */
export function checkBasicAuth(header: string | undefined, username: string, password: string): boolean {
  const expected = Buffer.from('Basic ' + Buffer.from(`${username}:${password}`).toString('base64'));
  const given = Buffer.from(header ?? '');
  if (given.length !== expected.length) {
    timingSafeEqual(expected, expected);
    return false;
  }
  return timingSafeEqual(given, expected);
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const DEFAULT_MAX_BODY = 1024 * 1024;

/** Tags as published (false/null tags are left out, as Patroni's effective tags). */
function effectiveTags(tags: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(tags)) if (v !== false && v !== null && v !== undefined) out[k] = v;
  return out;
}

function firstSegment(path: string): string {
  return path.replace(/^\/+/, '').split('/')[0] ?? '';
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

/** Reads the body as a JSON object; `{}` when optional and empty. Throws `ApiInputError`. */
async function readJsonObject(c: Context, optional: boolean): Promise<Record<string, unknown>> {
  const text = await c.req.text();
  if (text.trim() === '') {
    if (optional) return {};
    throw new ApiInputError('a JSON object is required as the request body');
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new ApiInputError(`request body is not valid JSON: ${errorMessage(err)}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new ApiInputError(`request body must be a JSON object, got ${describeValue(body)}`);
  const obj = body as Record<string, unknown>;
  if (!optional && Object.keys(obj).length === 0)
    throw new ApiInputError('request body must be a non-empty JSON object');
  return obj;
}

/** A string field, absent when missing, null or empty (Patroni treats those as not given). */
function optString(body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new ApiInputError(`${key}: expected a string, got ${describeValue(v)}`);
  return v;
}

/** Patroni's `parse_bool`, strict about types: a boolean, 0/1, or on/off/true/false/yes/no. */
function parseBoolField(body: Record<string, unknown>, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  const s = typeof v === 'string' || typeof v === 'number' ? String(v).toLowerCase() : null;
  if (s !== null && ['on', 'true', 'yes', '1'].includes(s)) return true;
  if (s !== null && ['off', 'false', 'no', '0'].includes(s)) return false;
  throw new ApiInputError(`${key}: expected a boolean, got ${describeValue(v)}`);
}

/** `timeout` of `POST /restart`: seconds as a number, or a PostgreSQL-style duration ("30s", "2min"). */
function parseTimeoutSeconds(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) && v > 0 ? Math.round(v) : null;
  if (typeof v !== 'string') return null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$/.exec(v);
  if (!m) return null;
  const unit: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, min: 60, h: 3600, d: 86400 };
  const secs = Math.round(Number(m[1]) * (unit[m[2] ?? 's'] ?? 1));
  return secs > 0 ? secs : null;
}

function parseRestartRequest(body: Record<string, unknown>): RestartRequest | string {
  const req: RestartRequest = {};
  for (const [k, v] of Object.entries(body)) {
    switch (k) {
      case 'schedule': {
        const s = optString(body, k);
        if (s !== undefined) req.schedule = s;
        break;
      }
      case 'role':
        if (v === 'master' || v === 'primary') req.role = 'primary';
        else if (v === 'replica') req.role = 'replica';
        else return 'PostgreSQL role should be either primary or replica';
        break;
      case 'postgres_version': {
        const s = optString(body, k);
        if (s !== undefined) req.postgres_version = s;
        break;
      }
      case 'timeout': {
        const t = parseTimeoutSeconds(v);
        if (t === null) return 'Timeout should be a positive number of seconds';
        req.timeout = t;
        break;
      }
      case 'restart_pending':
        if (parseBoolField(body, k) === true) req.restart_pending = true;
        break;
      default:
        return `Unknown filter for the scheduled restart: ${k}`;
    }
  }
  return req;
}

function parseSwitchoverRequest(body: Record<string, unknown>): SwitchoverRequest {
  const req: SwitchoverRequest = {};
  const leader = optString(body, 'leader');
  const candidate = optString(body, 'candidate') ?? optString(body, 'member');
  const scheduledAt = optString(body, 'scheduled_at');
  if (leader !== undefined) req.leader = leader;
  if (candidate !== undefined) req.candidate = candidate;
  if (scheduledAt !== undefined) req.scheduled_at = scheduledAt;
  return req;
}

/** `POST /failsafe`: the calling leader's name and URLs (Patroni sends name, conn_url, api_url, slots). */
function parseFailsafeRequest(body: Record<string, unknown>): FailsafeLeader {
  const name = optString(body, 'name');
  if (!name) throw new ApiInputError('"name" is required: the name of the leader calling');
  const leader: FailsafeLeader = { name };
  const connUrl = optString(body, 'conn_url');
  const apiUrl = optString(body, 'api_url');
  if (connUrl !== undefined) leader.conn_url = connUrl;
  if (apiUrl !== undefined) leader.api_url = apiUrl;
  const slots = body.slots;
  if (slots !== null && typeof slots === 'object' && !Array.isArray(slots)) {
    const positions: Record<string, number> = {};
    for (const [k, v] of Object.entries(slots))
      if (typeof v === 'number' && Number.isFinite(v)) positions[k] = v;
    leader.slots = positions;
  }
  return leader;
}

function respond(c: Context, r: OperatorResult): Response {
  const status = r.status as 200;
  if ('json' in r) return c.json(r.json, status);
  if ('error' in r) return c.json({ error: r.error }, status);
  return c.text(r.text, status);
}

function remoteSocket(env: unknown): IncomingMessage['socket'] | undefined {
  return (env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket;
}

/** An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) as the IPv4 address it is. */
function normaliseIp(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}

async function defaultResolve(host: string): Promise<string[]> {
  const all = await lookup(host, { all: true });
  return all.map((a) => a.address);
}

/** How much of an oversized request body is read and thrown away so the client gets its 413. */
const DRAIN_LIMIT = 64 * 1024 * 1024;

/**
 * Reads a request body of at most `max` bytes. A longer one is read on and thrown away up to
 * `drain` bytes ('too large'), or left unread past that ('far too large'). Null: no body.
 */
async function readLimited(
  req: Request,
  max: number,
  drain: number,
): Promise<Uint8Array | null | 'too large' | 'far too large'> {
  if (!req.body) return null;
  const reader: ReadableStreamDefaultReader<Uint8Array> = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > drain) {
      await reader.cancel().catch(() => undefined);
      return 'far too large';
    }
    if (size <= max) chunks.push(value);
  }
  if (size > max) return 'too large';
  const out = new Uint8Array(size);
  let at = 0;
  for (const ch of chunks) {
    out.set(ch, at);
    at += ch.length;
  }
  return out;
}

export function createApi(deps: ApiDeps): Hono {
  const app = new Hono();
  const { runner, operator, restapi, version } = deps;
  const snap = () => runner.snapshot;
  // Read on every request: POST /reload may change the tags in place.
  const tags = () => effectiveTags(deps.tags);
  const resolveHost = deps.resolveHost ?? defaultResolve;
  const https = Boolean(restapi.certfile);
  const needClientCert =
    https && (restapi.verify_client === 'required' || restapi.verify_client === 'optional');
  const status = (s: AgentSnapshot) =>
    statusBody(s, version, { tags: tags(), scheduledRestart: runner.scheduledRestart });
  /** The snapshot with PostgreSQL as it answers now (Patroni queries it for every such request). */
  const current = async (): Promise<AgentSnapshot> => {
    if (!deps.liveCheck) return snap();
    return withLiveCheck(snap(), await deps.liveCheck());
  };

  app.onError((err, c) => {
    if (err instanceof ApiInputError) return c.json({ error: err.message }, err.status);
    if (err instanceof PghaError && err.retryable)
      return c.json({ error: `temporarily unavailable: ${err.message}` }, 503);
    return c.json({ error: `internal error: ${errorMessage(err)}` }, 500);
  });

  if (restapi.http_extra_headers && Object.keys(restapi.http_extra_headers).length > 0) {
    const extra = restapi.http_extra_headers;
    app.use('*', async (c, next) => {
      await next();
      for (const [k, v] of Object.entries(extra)) c.res.headers.set(k, v);
    });
  }

  const maxBody = deps.maxBodyBytes ?? DEFAULT_MAX_BODY;
  app.use('*', async (c, next) => {
    const body = await readLimited(c.req.raw, maxBody, DRAIN_LIMIT);
    if (body === 'too large') {
      // The whole upload was read (up to DRAIN_LIMIT) before answering: a client still writing
      // when the server closes would see a broken pipe instead of this answer.
      return c.json({ error: `request body too large: at most ${maxBody} bytes` }, 413);
    }
    if (body === 'far too large') {
      c.header('Connection', 'close');
      return c.json({ error: `request body too large: at most ${maxBody} bytes` }, 413);
    }
    if (body) c.req.raw = new Request(c.req.raw, { body });
    return next();
  });

  /** Is the client on the allowlist (CIDRs, addresses, host names; members' API hosts if enabled)? */
  async function allowed(ip: string | undefined): Promise<boolean> {
    const list = restapi.allowlist ?? [];
    if (list.length === 0 && !restapi.allowlist_include_members) return true;
    if (!ip) return false;
    const client = normaliseIp(ip);
    const family = isIP(client) === 6 ? 'ipv6' : 'ipv4';
    const block = new BlockList();
    const hosts: string[] = [];
    for (const entry of list) {
      if (entry.includes('/')) {
        const [net, bits] = entry.split('/');
        const fam = isIP(net ?? '');
        if (fam === 0 || bits === undefined || !/^\d+$/.test(bits)) continue;
        block.addSubnet(net!, Number(bits), fam === 6 ? 'ipv6' : 'ipv4');
      } else {
        hosts.push(entry);
      }
    }
    if (restapi.allowlist_include_members) {
      for (const m of snap().cluster?.members ?? []) {
        try {
          if (m.data.api_url) hosts.push(new URL(m.data.api_url).hostname.replace(/^\[|\]$/g, ''));
        } catch {
          // an unparsable api_url adds nothing, as in Patroni
        }
      }
    }
    const addrs = await Promise.all(
      hosts.map((h) => (isIP(h) ? Promise.resolve([h]) : resolveHost(h).catch(() => [] as string[]))),
    );
    for (const a of addrs.flat()) {
      const n = normaliseIp(a);
      block.addAddress(n, isIP(n) === 6 ? 'ipv6' : 'ipv4');
    }
    return block.check(client, family);
  }

  // Patroni's check_access, for every write: allowlist (403), client certificate (403), Basic auth (401).
  app.use('*', async (c, next) => {
    if (!WRITE_METHODS.has(c.req.method)) return next();
    const socket = remoteSocket(c.env);
    if (!(await allowed(socket?.remoteAddress))) return c.json({ error: 'Access is denied' }, 403);
    if (needClientCert && !(socket instanceof TLSSocket && socket.authorized))
      return c.json({ error: 'client certificate required' }, 403);
    if (restapi.authentication) {
      const { username, password } = restapi.authentication;
      const header = c.req.header('authorization');
      if (!checkBasicAuth(header, username, password)) {
        c.header('WWW-Authenticate', 'Basic realm="Patroni"');
        return c.json({ error: header ? 'not authenticated' : 'no auth header received' }, 401);
      }
    }
    return next();
  });

  function healthStatus(requestUrl: string, s: AgentSnapshot): number {
    const url = new URL(requestUrl);
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const q: { lag?: string; replication_state?: string; tags: Record<string, string> } = { tags: {} };
    for (const [k, v] of url.searchParams)
      if (k.startsWith('tag_') && !(k.slice(4) in q.tags)) q.tags[k.slice(4)] = v;
    const lag = url.searchParams.get('lag');
    const rs = url.searchParams.get('replication_state');
    if (lag !== null) q.lag = lag;
    if (rs !== null) q.replication_state = rs;
    return healthCode(path, s, q, tags());
  }

  // HEAD and OPTIONS: the health check of the path, status line only (HAProxy's `OPTIONS /primary`).
  app.use('*', async (c, next) => {
    if (c.req.method !== 'HEAD' && c.req.method !== 'OPTIONS') return next();
    return c.body(null, healthStatus(c.req.url, await current()) as 200);
  });

  // The dashboard; its writes have passed the access checks above.
  app.route('/ui', createUiRoutes({ runner, restapi, ui: deps.ui ?? {} }));

  app.get('*', async (c) => {
    const s = snap();
    switch (firstSegment(c.req.path)) {
      case 'patroni':
        // Fresh, as Patroni's: a switchover waits on the candidate's received WAL through this.
        if (deps.liveCheck) return c.json(status(await current()));
        await runner.refreshStatus?.();
        return c.json(status(snap()));
      case 'cluster':
        return c.json(clusterBody(s));
      case 'history':
        return c.json(s.cluster?.history ?? []);
      case 'config':
        return respond(c, await operator.getConfig());
      case 'failsafe': {
        const fs = s.cluster?.failsafe;
        return fs ? c.json(fs) : c.json({ error: 'failsafe mode is not active' }, 502);
      }
      case 'metrics':
        return c.text(metricsBody(await current(), version), 200, {
          'Content-Type': 'text/plain; charset=utf-8',
        });
      case 'liveness': {
        // Patroni: the loop ran within ttl (primary) or 2×ttl (replica); always fine while paused.
        const primary = s.running && s.status !== null && !s.status.inRecovery;
        const threshold = s.dynamic.ttl * (primary ? 1 : 2);
        const ok =
          s.paused ||
          (s.lastLoop !== null && s.lastLoop + s.dynamic.loop_wait + threshold > Date.now() / 1000);
        return c.body(null, ok ? 200 : 503);
      }
      case 'readiness': {
        const ok = s.isLeader || (s.running && s.status !== null && s.cluster !== null);
        return c.body(null, ok ? 200 : 503);
      }
      default: {
        const now = await current();
        return c.json(status(now), healthStatus(c.req.url, now) as 200);
      }
    }
  });

  app.post('*', async (c) => {
    switch (firstSegment(c.req.path)) {
      case 'switchover':
      case 'failover': {
        const action = firstSegment(c.req.path) as 'switchover' | 'failover';
        const req = parseSwitchoverRequest(await readJsonObject(c, false));
        return respond(c, await operator.switchover(action, req));
      }
      case 'restart': {
        const parsed = parseRestartRequest(await readJsonObject(c, true));
        if (typeof parsed === 'string') return c.text(parsed, 400);
        return respond(c, await operator.restart(parsed));
      }
      case 'reload':
        return respond(c, operator.reload());
      case 'failsafe': {
        const leader = parseFailsafeRequest(await readJsonObject(c, false));
        const res = runner.acceptFailsafe?.(leader) ?? { status: 502, text: 'failsafe_mode is not enabled' };
        return c.text(res.text, res.status as 200, res.lsn === undefined ? {} : { lsn: String(res.lsn) });
      }
      case 'reinitialize': {
        const body = await readJsonObject(c, true);
        return respond(c, await operator.reinitialize(parseBoolField(body, 'force') ?? false));
      }
      default:
        return unsupported(c);
    }
  });

  app.on(['PATCH', 'PUT'], '*', async (c) => {
    if (firstSegment(c.req.path) !== 'config') return unsupported(c);
    const body = await readJsonObject(c, false);
    return respond(
      c,
      c.req.method === 'PATCH' ? await operator.patchConfig(body) : await operator.putConfig(body),
    );
  });

  app.delete('*', async (c) => {
    switch (firstSegment(c.req.path)) {
      case 'switchover':
        return respond(c, await operator.deleteSwitchover());
      case 'restart':
        return respond(c, operator.deleteScheduledRestart());
      default:
        return unsupported(c);
    }
  });

  app.all('*', (c) => unsupported(c));

  return app;
}

/** No handler for this method and path: 501, as Patroni's http.server answers. */
function unsupported(c: Context): Response {
  return c.json({ error: `unsupported method ${c.req.method} for ${c.req.path}` }, 501);
}

/**
 * Patroni's REST API on hono. Routes map requests onto the pure functions in `status.ts` and onto
 * the runner's operations; every error is a JSON body with a 4xx/5xx code, never a crash.
 */
import { Hono, type Context } from 'hono';
import { timingSafeEqual } from 'node:crypto';
import type { RestApiConfig } from '../config/types.js';
import type { HaRunner } from '../ha/runner.js';
import { errorMessage } from '../util/errors.js';
import { clusterBody, healthCode, metricsBody, statusBody } from './status.js';

export interface ApiDeps {
  runner: HaRunner;
  restapi: RestApiConfig;
  tags: Record<string, unknown>;
  version: string;
}

const HEALTH_PATHS = new Set([
  '/',
  '/primary',
  '/master',
  '/read-write',
  '/leader',
  '/standby-leader',
  '/standby_leader',
  '/replica',
  '/read-only',
  '/health',
  '/sync',
  '/synchronous',
  '/async',
  '/asynchronous',
  '/read-only-sync',
  '/read-only-synchronous',
  '/quorum',
]);

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

function jsonError(c: Context, status: 400 | 401 | 403 | 404 | 409 | 412 | 503, message: string): Response {
  return c.json({ error: message }, status);
}

export function createApi(deps: ApiDeps): Hono {
  const app = new Hono();
  const { runner, version } = deps;
  const snap = () => runner.snapshot;

  app.onError((err, c) => c.json({ error: `internal error: ${errorMessage(err)}` }, 500));

  app.use('*', async (c, next) => {
    const method = c.req.method;
    if (['POST', 'PUT', 'PATCH', 'DELETE'].includes(method) && deps.restapi.authentication) {
      const { username, password } = deps.restapi.authentication;
      if (!checkBasicAuth(c.req.header('authorization'), username, password)) {
        c.header('WWW-Authenticate', 'Basic realm="pgha"');
        return c.json(
          { error: 'authentication required: send HTTP Basic credentials from restapi.authentication' },
          401,
        );
      }
    }
    await next();
  });

  app.get('/patroni', (c) => c.json(statusBody(snap(), version)));
  app.get('/cluster', (c) => c.json(clusterBody(snap())));
  app.get('/history', (c) => c.json(snap().cluster?.history ?? []));
  app.get('/config', (c) => {
    const cfg = snap().cluster?.config;
    if (!cfg) return jsonError(c, 503, 'the cluster has no dynamic configuration yet (is it initialised?)');
    return c.json(cfg.value);
  });
  app.get('/metrics', (c) =>
    c.text(metricsBody(snap(), version), 200, { 'Content-Type': 'text/plain; version=0.0.4' }),
  );
  app.on(['GET', 'HEAD', 'OPTIONS'], '/liveness', (c) => {
    const s = snap();
    const primary = s.status !== null && !s.status.inRecovery && s.running;
    const threshold = s.dynamic.ttl * (primary ? 1 : 2);
    const ok =
      s.paused || (s.lastLoop !== null && s.lastLoop + s.dynamic.loop_wait + threshold > Date.now() / 1000);
    return c.body(null, ok ? 200 : 503);
  });
  app.on(['GET', 'HEAD', 'OPTIONS'], '/readiness', (c) => {
    const s = snap();
    const ok = s.isLeader || (s.running && s.status !== null && s.cluster !== null);
    return c.body(null, ok ? 200 : 503);
  });

  app.post('/reinitialize', async (c) => {
    let force = false;
    const text = await c.req.text();
    if (text.trim() !== '') {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return jsonError(c, 400, 'request body is not valid JSON');
      }
      force = typeof body === 'object' && body !== null && (body as { force?: unknown }).force === true;
    }
    try {
      return c.text(await runner.reinitialize(force), 200);
    } catch (err) {
      return c.text(`reinitialize failed: ${errorMessage(err)}`, 503);
    }
  });

  // Health checks: GET returns the status body, HEAD and OPTIONS only the status line.
  app.on(['GET', 'HEAD', 'OPTIONS'], '*', (c) => {
    const url = new URL(c.req.url);
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const s = snap();
    const tags: Record<string, string> = {};
    for (const [k, v] of url.searchParams) if (k.startsWith('tag_')) tags[k.slice(4)] = v;
    const query = {
      lag: url.searchParams.get('lag') ?? undefined,
      replication_state: url.searchParams.get('replication_state') ?? undefined,
      tags,
    };
    const code = HEALTH_PATHS.has(path) ? healthCode(path, s, query, deps.tags) : 503;
    if (c.req.method !== 'GET') return c.body(null, code as 200);
    return c.json(statusBody(s, version), code as 200);
  });

  return app;
}

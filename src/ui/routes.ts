/**
 * `GET /ui`: the dashboard, served by every agent's REST API (mounted in `api/app.ts`). Besides the
 * page itself, two helpers the page cannot do on its own from the browser:
 *
 * - `POST /ui/members/<name>/restart|reinitialize` and `DELETE /ui/members/<name>/restart` forward
 *   the request to that member's own REST API (`api_url` in its member key), as patronictl does;
 *   the browser cannot call another agent's origin. They pass through the API's write checks
 *   (allowlist, client certificate, Basic auth) first, and are then sent with this agent's
 *   `restapi.authentication`, which the members share.
 * - `GET /ui/routers` reads the `GET /status` of the routers configured for this node.
 */
import { Hono, type Context } from 'hono';
import { readConfigPath } from '../config/load.js';
import { defaultConnectAddress, routerSection } from '../config/schema.js';
import type { PghaConfig, RestApiConfig } from '../config/types.js';
import type { AgentSnapshot } from '../ha/runner.js';
import { errorMessage } from '../util/errors.js';
import { httpRequestText } from '../util/http.js';
import { DASHBOARD_CSP, DASHBOARD_HTML } from './page.js';

/** Dashboard settings beyond what the REST API already has. */
export interface UiOptions {
  /** `GET /status` URLs of the `pgha router`s whose routing the page shows. */
  routerStatusUrls?: string[];
}

/** What the dashboard routes read from the agent. */
export interface UiDeps {
  runner: { readonly snapshot: AgentSnapshot };
  restapi: RestApiConfig;
  ui?: UiOptions;
}

/** A forwarded action may take as long as the member's own answer (a restart waits for PostgreSQL). */
const FORWARD_TIMEOUT_MS = 120_000;
const ROUTER_TIMEOUT_MS = 1500;
const FORWARDED = new Set(['restart', 'reinitialize']);

/**
 * The dashboard's router status URLs for an agent: the `router:` section of its YAML, when that names a
 * `status_listen` (a router running beside the agent with the same file). Empty when none.
 */
export function uiOptionsFromConfig(config: Pick<PghaConfig, 'source'>): UiOptions {
  if (!config.source) return {};
  try {
    const parsed = readConfigPath(config.source);
    const raw = (parsed.value as Record<string, unknown> | undefined)?.router;
    if (raw === undefined || raw === null) return {};
    const r = routerSection.safeParse(raw);
    if (!r.success || !r.data.status_listen) return {};
    return { routerStatusUrls: [`http://${defaultConnectAddress(r.data.status_listen)}/status`] };
  } catch {
    // the dashboard never stops the agent: without a readable router section it shows no routers
    return {};
  }
}

/** Builds the `/ui` routes; mount with `app.route('/ui', createUiRoutes(deps))`. */
export function createUiRoutes(deps: UiDeps): Hono {
  const ui = new Hono();
  ui.get('/routers', async (c) => {
    const urls = deps.ui?.routerStatusUrls ?? [];
    const routers = await Promise.all(
      urls.map(async (url) => {
        try {
          const res = await httpRequestText(url, { signal: AbortSignal.timeout(ROUTER_TIMEOUT_MS) });
          if (res.status !== 200) return { url, ok: false, error: `HTTP ${res.status}` };
          return { url, ok: true, status: JSON.parse(res.text) as unknown };
        } catch (err) {
          return { url, ok: false, error: errorMessage(err) };
        }
      }),
    );
    return c.json({ routers }, 200, { 'Cache-Control': 'no-store' });
  });

  // Last among the GETs: `/ui`, `/ui/` and `/ui/index.html` are the page, other paths are not found.
  ui.get('/*', (c) => {
    if (!/^\/ui(\/|\/index\.html)?$/.test(c.req.path))
      return c.json({ error: `no such page: ${c.req.path}` }, 404);
    return c.html(DASHBOARD_HTML, 200, {
      'Content-Security-Policy': DASHBOARD_CSP,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
    });
  });

  const forward = async (c: Context) => {
    const name = c.req.param('name') ?? '';
    const action = c.req.param('action') ?? '';
    if (!FORWARDED.has(action) || (c.req.method === 'DELETE' && action !== 'restart'))
      return c.json({ error: `unsupported method ${c.req.method} for ${c.req.path}` }, 501);
    const member = deps.runner.snapshot.cluster?.members.find((m) => m.name === name);
    if (!member) return c.json({ error: `no member named "${name}" in the cluster` }, 404);
    if (!member.data.api_url) return c.json({ error: `member "${name}" publishes no api_url` }, 502);
    let body: unknown;
    if (c.req.method === 'POST') {
      const text = await c.req.text();
      try {
        body = text.trim() === '' ? {} : (JSON.parse(text) as unknown);
      } catch (err) {
        return c.json({ error: `request body is not valid JSON: ${errorMessage(err)}` }, 400);
      }
    }
    const auth = deps.restapi.authentication;
    try {
      const res = await httpRequestText(new URL(`/${action}`, member.data.api_url).toString(), {
        method: c.req.method,
        json: body,
        signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
        ...(deps.restapi.cafile ? { cafile: deps.restapi.cafile } : {}),
        ...(auth ? { auth } : {}),
      });
      const type = res.headers['content-type'];
      return c.body(res.text, res.status as 200, {
        'Content-Type': typeof type === 'string' ? type : 'text/plain; charset=utf-8',
      });
    } catch (err) {
      return c.json(
        { error: `${name}'s REST API (${member.data.api_url}) did not answer: ${errorMessage(err)}` },
        502,
      );
    }
  };
  ui.post('/members/:name/:action', forward);
  ui.delete('/members/:name/:action', forward);

  return ui;
}

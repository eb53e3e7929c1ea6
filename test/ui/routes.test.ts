/**
 * The dashboard's routes in process (hono's `app.request`): the page and its security headers, the
 * forwarding of restart/reinitialize to the member they are meant for (through the API's write
 * checks first), and the routers' status. The members and routers are small HTTP servers on loopback.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import vm from 'node:vm';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, type ApiOperator, type ApiRunner } from '../../src/api/app.js';
import type { RestApiConfig } from '../../src/config/types.js';
import { CLIENT_JS } from '../../src/ui/client.js';
import { DASHBOARD_CSP, DASHBOARD_HTML } from '../../src/ui/page.js';
import { uiOptionsFromConfig } from '../../src/ui/routes.js';
import { cluster, member, snapshot } from '../api/fixtures.js';

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
  body: string;
}

/** A loopback HTTP server answering with `reply`, recording each request. */
async function fakeServer(
  reply: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, body });
      reply(req, res);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const a = server.address();
  return { server, port: typeof a === 'object' && a ? a.port : 0, seen };
}

const AUTH = { username: 'admin', password: 's3cret' };
const BASIC = 'Basic ' + Buffer.from('admin:s3cret').toString('base64');
const noOperator = {} as ApiOperator; // the routes under test never reach the operator

let peer: Awaited<ReturnType<typeof fakeServer>>;
let router: Awaited<ReturnType<typeof fakeServer>>;
const dir = mkdtempSync(join(tmpdir(), 'pgha-ui-routes-'));

beforeAll(async () => {
  peer = await fakeServer((req, res) => {
    if (req.url === '/restart' && req.method === 'POST')
      res.writeHead(503, { 'content-type': 'text/plain' }).end('restart conditions are not satisfied');
    else if (req.url === '/restart' && req.method === 'DELETE')
      res.writeHead(404).end('no restarts are scheduled');
    else res.writeHead(200, { 'content-type': 'text/plain' }).end('reinitialize started');
  });
  router = await fakeServer((_req, res) =>
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ primary: 'pg1', replicas: ['pg2', 'pg3'], sessions: { open: 4, list: [] } })),
  );
});

afterAll(async () => {
  for (const s of [peer?.server, router?.server]) if (s) await new Promise((r) => s.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function api(opts: { auth?: boolean; routers?: string[] } = {}) {
  const snap = snapshot('primary', {
    cluster: cluster({
      members: [
        member('pg1', 0, { role: 'primary' }),
        member('pg2', 1, { state: 'streaming', api_url: `http://127.0.0.1:${peer.port}/patroni` }),
        member('pg3', 2, { state: 'streaming', api_url: undefined }),
      ],
    }),
  });
  const runner: ApiRunner = { snapshot: snap, scheduledRestart: null };
  const restapi: RestApiConfig = {
    listen: { hosts: ['127.0.0.1'], port: 8008 },
    connect_address: '127.0.0.1:8008',
    ...(opts.auth === false ? {} : { authentication: AUTH }),
  };
  const app = createApi({
    runner,
    operator: noOperator,
    restapi,
    tags: {},
    version: '0.1.0',
    ui: { routerStatusUrls: opts.routers ?? [] },
  });
  return (path: string, init: RequestInit = {}) =>
    app.request(path, init, { incoming: { socket: { remoteAddress: '127.0.0.1' } } });
}

describe('GET /ui', () => {
  it('serves the self-contained page with a strict Content-Security-Policy', async () => {
    for (const path of ['/ui', '/ui/', '/ui/index.html']) {
      const res = await api()(path);
      expect([path, res.status]).toEqual([path, 200]);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('content-security-policy')).toBe(DASHBOARD_CSP);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(await res.text()).toBe(DASHBOARD_HTML);
    }
    expect(DASHBOARD_CSP).toContain("default-src 'none'");
    expect(DASHBOARD_CSP).toContain("connect-src 'self'");
    // Nothing is loaded from elsewhere: the machine may have no internet access.
    expect(DASHBOARD_HTML).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
  });

  it('ships a script that parses and never builds HTML from strings', () => {
    // Compiled, never run: a syntax error in the page's script fails here rather than in a browser.
    expect(() => new vm.Script(CLIENT_JS)).not.toThrow();
    expect(CLIENT_JS).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
    expect(CLIENT_JS).not.toMatch(/localStorage|sessionStorage|document\.cookie/);
  });

  it('leaves the health checks and other endpoints as they were', async () => {
    const req = api();
    expect((await req('/primary')).status).toBe(200);
    expect((await req('/uix')).status).toBe(503);
    expect((await req('/ui/nope')).status).toBe(404);
    expect((await req('/ui', { method: 'OPTIONS' })).status).toBe(503);
  });
});

describe('POST /ui/members/<name>/<action>', () => {
  it('checks credentials before forwarding anything', async () => {
    const before = peer.seen.length;
    const res = await api()('/ui/members/pg2/restart', { method: 'POST', body: '{}' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Basic realm="Patroni"');
    expect(await res.json()).toEqual({ error: 'no auth header received' });
    expect(peer.seen.length).toBe(before);
  });

  it("forwards to the member's own REST API with the cluster's credentials and returns its answer", async () => {
    const req = api();
    const res = await req('/ui/members/pg2/restart', {
      method: 'POST',
      body: '{}',
      headers: { authorization: BASIC, 'content-type': 'application/json' },
    });
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('restart conditions are not satisfied');
    expect(peer.seen.at(-1)).toEqual({ method: 'POST', url: '/restart', auth: BASIC, body: '{}' });

    const re = await req('/ui/members/pg2/reinitialize', {
      method: 'POST',
      body: '{"force":true}',
      headers: { authorization: BASIC },
    });
    expect([re.status, await re.text()]).toEqual([200, 'reinitialize started']);
    expect(peer.seen.at(-1)).toMatchObject({ url: '/reinitialize', body: '{"force":true}' });

    const del = await req('/ui/members/pg2/restart', { method: 'DELETE', headers: { authorization: BASIC } });
    expect([del.status, await del.text()]).toEqual([404, 'no restarts are scheduled']);
    expect(peer.seen.at(-1)).toMatchObject({ method: 'DELETE', url: '/restart', body: '' });
  });

  it('forwards without credentials when the API has none', async () => {
    const res = await api({ auth: false })('/ui/members/pg2/reinitialize', { method: 'POST' });
    expect(res.status).toBe(200);
    expect(peer.seen.at(-1)).toMatchObject({ url: '/reinitialize', auth: undefined, body: '{}' });
  });

  it('refuses unknown members, actions and bodies with a reason', async () => {
    const req = api({ auth: false });
    const post = (path: string, body = '{}') => req(path, { method: 'POST', body });
    const unknown = await post('/ui/members/pg9/restart');
    expect([unknown.status, await unknown.json()]).toEqual([
      404,
      { error: 'no member named "pg9" in the cluster' },
    ]);
    const noUrl = await post('/ui/members/pg3/restart');
    expect([noUrl.status, await noUrl.json()]).toEqual([502, { error: 'member "pg3" publishes no api_url' }]);
    expect((await post('/ui/members/pg2/switchover')).status).toBe(501);
    expect((await req('/ui/members/pg2/reinitialize', { method: 'DELETE' })).status).toBe(501);
    const bad = await post('/ui/members/pg2/restart', '{nope');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/^request body is not valid JSON/);
  });
});

describe('GET /ui/routers', () => {
  it("reads each configured router's status, and says which cannot be reached", async () => {
    const url = `http://127.0.0.1:${router.port}/status`;
    const res = await api({ routers: [url, 'http://127.0.0.1:1/status'] })('/ui/routers');
    const body = (await res.json()) as { routers: Array<Record<string, unknown>> };
    expect(body.routers[0]).toEqual({
      url,
      ok: true,
      status: { primary: 'pg1', replicas: ['pg2', 'pg3'], sessions: { open: 4, list: [] } },
    });
    expect(body.routers[1]).toMatchObject({ url: 'http://127.0.0.1:1/status', ok: false });
    expect(body.routers[1]!.error).toMatch(/ECONNREFUSED/);
    expect(await (await api()('/ui/routers')).json()).toEqual({ routers: [] });
  });

  it("finds the router's status URL in the node's YAML", () => {
    const file = join(dir, 'pg1.yml');
    writeFileSync(file, 'scope: demo\nrouter:\n  status_listen: 0.0.0.0:8009\n');
    expect(uiOptionsFromConfig({ source: file })).toEqual({
      routerStatusUrls: ['http://127.0.0.1:8009/status'],
    });
    writeFileSync(file, 'scope: demo\nrouter:\n  listen: 0.0.0.0:5433\n');
    expect(uiOptionsFromConfig({ source: file })).toEqual({});
    expect(uiOptionsFromConfig({ source: join(dir, 'missing.yml') })).toEqual({});
    expect(uiOptionsFromConfig({})).toEqual({});
  });
});

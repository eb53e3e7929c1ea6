/**
 * The REST API in process (hono `app.request`): routing, health checks for GET/HEAD/OPTIONS,
 * status documents, request parsing and every 4xx a malformed request gets, and the access checks.
 * The runner is plain data; the operator records what the API asked of it (its own behaviour is
 * tested against real etcd in operator.test.ts and on a real cluster in cluster.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { createApi, type ApiOperator, type ApiRunner } from '../../src/api/app.js';
import type { RestApiConfig } from '../../src/config/types.js';
import type { OperatorResult } from '../../src/ha/operator.js';
import type { AgentSnapshot } from '../../src/ha/runner.js';
import { cluster, snapshot } from './fixtures.js';

type Call = [string, ...unknown[]];

function recordingOperator(calls: Call[]): ApiOperator {
  const ok = (text: string): OperatorResult => ({ status: 200, text });
  return {
    reload: () => (calls.push(['reload']), { status: 202, text: 'reload scheduled' }),
    restart: (req) => (calls.push(['restart', req]), Promise.resolve(ok('restarted successfully'))),
    deleteScheduledRestart: () => (calls.push(['deleteScheduledRestart']), ok('scheduled restart deleted')),
    reinitialize: (force) => (
      calls.push(['reinitialize', force]),
      Promise.resolve(ok('reinitialize started'))
    ),
    getConfig: () => Promise.resolve({ status: 200, json: { ttl: 30 } }),
    patchConfig: (p) => (calls.push(['patchConfig', p]), Promise.resolve({ status: 200, json: p })),
    putConfig: (p) => (calls.push(['putConfig', p]), Promise.resolve({ status: 200, json: p })),
    switchover: (action, req) => (
      calls.push([action, req]),
      Promise.resolve(ok(`Successfully switched over to "pg2"`))
    ),
    deleteSwitchover: () => (
      calls.push(['deleteSwitchover']),
      Promise.resolve(ok('scheduled switchover deleted'))
    ),
  };
}

const RESTAPI: RestApiConfig = {
  listen: { hosts: ['127.0.0.1'], port: 8008 },
  connect_address: '127.0.0.1:8008',
};

function api(
  snap: AgentSnapshot,
  opts: {
    restapi?: Partial<RestApiConfig>;
    tags?: Record<string, unknown>;
    scheduledRestart?: Record<string, unknown> | null;
    resolveHost?: (h: string) => Promise<string[]>;
    maxBodyBytes?: number;
  } = {},
) {
  const calls: Call[] = [];
  const runner: ApiRunner = { snapshot: snap, scheduledRestart: opts.scheduledRestart ?? null };
  const app = createApi({
    runner,
    operator: recordingOperator(calls),
    restapi: { ...RESTAPI, ...opts.restapi },
    tags: opts.tags ?? { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
    version: '3.0.2',
    ...(opts.resolveHost ? { resolveHost: opts.resolveHost } : {}),
    ...(opts.maxBodyBytes ? { maxBodyBytes: opts.maxBodyBytes } : {}),
  });
  /** A request from `ip` (the node server passes the socket as `env.incoming`). */
  const req = (path: string, init: RequestInit = {}, ip = '127.0.0.1') =>
    app.request(path, init, { incoming: { socket: { remoteAddress: ip } } });
  return { app, calls, req };
}

const json = (method: string, body: unknown): RequestInit => ({
  method,
  body: typeof body === 'string' ? body : JSON.stringify(body),
  headers: { 'content-type': 'application/json' },
});

async function codes(snap: AgentSnapshot, paths: string[], method = 'GET') {
  const { req } = api(snap);
  const out: Record<string, number> = {};
  for (const p of paths) out[p] = (await req(p, { method })).status;
  return out;
}

const HEALTH = [
  '/',
  '/primary',
  '/master',
  '/read-write',
  '/leader',
  '/standby-leader',
  '/replica',
  '/read-only',
  '/health',
  '/sync',
  '/async',
  '/read-only-sync',
];

describe('health checks', () => {
  it('answer on the leader as Patroni does, for GET, HEAD and OPTIONS alike', async () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS']) {
      expect(await codes(snapshot('primary'), HEALTH, method)).toEqual({
        '/': 200,
        '/primary': 200,
        '/master': 200,
        '/read-write': 200,
        '/leader': 200,
        '/standby-leader': 503,
        '/replica': 503,
        '/read-only': 200,
        '/health': 200,
        '/sync': 503,
        '/async': 503,
        '/read-only-sync': 200,
      });
    }
  });

  it('answer on a streaming replica', async () => {
    expect(await codes(snapshot('replica'), HEALTH, 'OPTIONS')).toEqual({
      '/': 503,
      '/primary': 503,
      '/master': 503,
      '/read-write': 503,
      '/leader': 503,
      '/standby-leader': 503,
      '/replica': 200,
      '/read-only': 200,
      '/health': 200,
      '/sync': 503,
      '/async': 200,
      '/read-only-sync': 503,
    });
  });

  it('answer 503 everywhere but /liveness on a stopped node', async () => {
    const got = await codes(snapshot('stopped'), [...HEALTH, '/liveness', '/readiness']);
    for (const [p, code] of Object.entries(got))
      expect([p, code]).toEqual([p, p === '/liveness' ? 200 : 503]);
  });

  it('/sync and /read-only-sync follow the sync key', async () => {
    const snap = snapshot('replica', {
      cluster: cluster({ sync: { leader: 'pg1', sync_standby: 'pg2', modRevision: '7' } }),
    });
    expect(await codes(snap, ['/sync', '/synchronous', '/async', '/read-only-sync'])).toEqual({
      '/sync': 200,
      '/synchronous': 200,
      '/async': 503,
      '/read-only-sync': 200,
    });
  });

  it('/replica honours ?lag= (bytes or units) and ?replication_state=', async () => {
    const snap = snapshot('replica'); // replayed 900, leader optime 1000: 100 bytes behind
    const { req } = api(snap);
    expect((await req('/replica?lag=99')).status).toBe(503);
    expect((await req('/replica?lag=100')).status).toBe(200);
    expect((await req('/replica?lag=1kB')).status).toBe(200);
    expect((await req('/replica?lag=nonsense')).status).toBe(200);
    expect((await req('/read-only?lag=10', { method: 'HEAD' })).status).toBe(503);
    expect((await req('/replica?replication_state=streaming')).status).toBe(200);
    expect((await req('/replica?replication_state=in%20archive%20recovery')).status).toBe(503);
  });

  it('filter on ?tag_k=v, except for the leader checks', async () => {
    const tags = {
      nofailover: false,
      noloadbalance: false,
      clonefrom: false,
      nosync: false,
      zone: 'A',
      w: 2,
    };
    const { req } = api(snapshot('replica'), { tags });
    expect((await req('/replica?tag_zone=A')).status).toBe(200);
    expect((await req('/replica?tag_zone=B')).status).toBe(503);
    expect((await req('/replica?tag_w=2')).status).toBe(200);
    expect((await req('/replica?tag_rack=1')).status).toBe(503);
    const leader = api(snapshot('primary'), { tags });
    expect((await leader.req('/primary?tag_zone=B')).status).toBe(200);
  });

  it('a noloadbalance replica is not a /replica', async () => {
    const tags = { nofailover: false, noloadbalance: true, clonefrom: false, nosync: false };
    const { req } = api(snapshot('replica'), { tags });
    expect((await req('/replica')).status).toBe(503);
    expect((await req('/health')).status).toBe(200);
  });

  it('HEAD and OPTIONS send no body; GET sends the status document', async () => {
    const { req } = api(snapshot('primary'));
    const opt = await req('/primary', { method: 'OPTIONS' });
    expect(await opt.text()).toBe('');
    const head = await req('/replica', { method: 'HEAD' });
    expect(head.status).toBe(503);
    expect(await head.text()).toBe('');
    const get = await req('/replica');
    expect(get.status).toBe(503);
    expect(((await get.json()) as { role: string }).role).toBe('master');
  });

  it('an unknown path is a failing health check (503), and so is HEAD /patroni, as in Patroni', async () => {
    const { req } = api(snapshot('primary'));
    expect((await req('/nonsense')).status).toBe(503);
    expect((await req('/patroni', { method: 'HEAD' })).status).toBe(503);
    expect((await req('/patroni', { method: 'OPTIONS' })).status).toBe(503);
  });

  it('/liveness fails when the loop stalls, unless paused; /readiness needs a running server', async () => {
    const stale = { lastLoop: Date.now() / 1000 - 1000 };
    expect((await api(snapshot('primary', stale)).req('/liveness')).status).toBe(503);
    expect((await api(snapshot('primary', { ...stale, paused: true })).req('/liveness')).status).toBe(200);
    expect((await api(snapshot('replica')).req('/readiness')).status).toBe(200);
    expect((await api(snapshot('replica', { cluster: null })).req('/readiness')).status).toBe(503);
  });
});

describe('status documents', () => {
  it('GET /patroni on the primary', async () => {
    const { req } = api(snapshot('primary'), {
      tags: { nofailover: false, noloadbalance: false, clonefrom: true, nosync: false },
      scheduledRestart: { schedule: '2030-01-01T00:00:00+00:00', role: 'primary' },
    });
    const res = await req('/patroni');
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      state: 'running',
      role: 'master',
      server_version: 150004,
      timeline: 1,
      xlog: { location: 1000 },
      database_system_identifier: '7000000000000000001',
      patroni: { version: '3.0.2', scope: 'demo', name: 'pg1' },
      tags: { clonefrom: true },
      scheduled_restart: { schedule: '2030-01-01T00:00:00+00:00', role: 'primary' },
    });
    expect(body.cluster_unlocked).toBeUndefined();
  });

  it('GET /patroni on a replica, and with no leader', async () => {
    const body = (await (
      await api(snapshot('replica', { cluster: cluster({ leader: null }) })).req('/patroni')
    ).json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      role: 'replica',
      state: 'running',
      replication_state: 'streaming',
      xlog: { received_location: 900, replayed_location: 900, paused: false },
      cluster_unlocked: true,
    });
  });

  it('GET /cluster, /history, /config, /failsafe', async () => {
    const snap = snapshot('primary', {
      cluster: cluster({
        failover: {
          leader: 'pg1',
          member: 'pg2',
          scheduled_at: '2030-01-01T00:00:00+00:00',
          modRevision: '9',
        },
      }),
    });
    const { req } = api(snap);
    const c = (await (await req('/cluster')).json()) as {
      members: Array<Record<string, unknown>>;
      scheduled_switchover: unknown;
    };
    expect(c.members.map((m) => [m.name, m.role, m.lag])).toEqual([
      ['pg1', 'leader', undefined],
      ['pg2', 'replica', 100],
      ['pg3', 'replica', 0],
    ]);
    expect(c.members[0]).toMatchObject({
      host: '127.0.0.1',
      port: 5432,
      api_url: 'http://127.0.0.1:8008/patroni',
    });
    expect(c.scheduled_switchover).toEqual({ at: '2030-01-01T00:00:00+00:00', from: 'pg1', to: 'pg2' });
    expect(await (await req('/history')).json()).toEqual(snap.cluster!.history);
    expect(await (await req('/config')).json()).toEqual({ ttl: 30 });
    expect((await req('/failsafe')).status).toBe(502);
  });

  it('GET /metrics in Prometheus text with Patroni names', async () => {
    const res = await api(snapshot('replica')).req('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toContain('# TYPE patroni_postgres_running gauge');
    expect(text).toContain('patroni_replica{scope="demo",name="pg2"} 1');
    expect(text).toContain('patroni_primary{scope="demo",name="pg2"} 0');
    expect(text).toContain('patroni_xlog_replayed_location{scope="demo",name="pg2"} 900');
    expect(text).toContain('patroni_postgres_server_version{scope="demo",name="pg2"} 150004');
    expect(text).toContain('patroni_version{scope="demo",name="pg2"} 30002');
  });
});

describe('operator requests: parsing', () => {
  it('POST /switchover and /failover pass typed fields on', async () => {
    const { req, calls } = api(snapshot('primary'));
    const r = await req('/switchover', json('POST', { leader: 'pg1', candidate: 'pg2' }));
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('Successfully switched over to "pg2"');
    await req('/failover', json('POST', { member: 'pg3', scheduled_at: null }));
    expect(calls).toEqual([
      ['switchover', { leader: 'pg1', candidate: 'pg2' }],
      ['failover', { candidate: 'pg3' }],
    ]);
  });

  it('malformed bodies get 400 with a JSON error naming the problem', async () => {
    const { req, calls } = api(snapshot('primary'));
    const cases: Array<[string, RequestInit, RegExp]> = [
      ['/switchover', json('POST', '{"leader": '), /not valid JSON/],
      ['/switchover', json('POST', '[1,2]'), /must be a JSON object, got an array/],
      ['/switchover', json('POST', '"pg1"'), /must be a JSON object/],
      ['/switchover', { method: 'POST' }, /JSON object is required/],
      ['/switchover', json('POST', {}), /non-empty JSON object/],
      ['/switchover', json('POST', { leader: 1 }), /^leader: expected a string, got number 1$/],
      ['/failover', json('POST', { candidate: ['a'] }), /^candidate: expected a string, got an array$/],
      ['/switchover', json('POST', { leader: 'pg1', scheduled_at: 5 }), /^scheduled_at: expected a string/],
      ['/config', json('PATCH', 'null'), /must be a JSON object, got null/],
      ['/config', json('PUT', {}), /non-empty/],
      ['/reinitialize', json('POST', { force: { x: 1 } }), /^force: expected a boolean, got an object$/],
      ['/restart', json('POST', { restart_pending: 'maybe' }), /^restart_pending: expected a boolean/],
      ['/restart', json('POST', { schedule: 12 }), /^schedule: expected a string/],
      ['/restart', json('POST', { postgres_version: 15 }), /^postgres_version: expected a string/],
    ];
    for (const [path, init, re] of cases) {
      const res = await req(path, init);
      expect([path, res.status]).toEqual([path, 400]);
      expect(res.headers.get('content-type')).toMatch(/json/);
      expect(((await res.json()) as { error: string }).error).toMatch(re);
    }
    expect(calls).toEqual([]);
  });

  it('POST /restart: filters as Patroni parses them', async () => {
    const { req, calls } = api(snapshot('primary'));
    expect((await req('/restart', { method: 'POST' })).status).toBe(200);
    await req(
      '/restart',
      json('POST', {
        role: 'master',
        postgres_version: '15.5',
        timeout: '2min',
        restart_pending: true,
        schedule: '2030-01-01T00:00:00Z',
      }),
    );
    expect(calls).toEqual([
      ['restart', {}],
      [
        'restart',
        {
          role: 'primary',
          postgres_version: '15.5',
          timeout: 120,
          restart_pending: true,
          schedule: '2030-01-01T00:00:00Z',
        },
      ],
    ]);
    const bad: Array<[unknown, string]> = [
      [{ role: 'leader' }, 'PostgreSQL role should be either primary or replica'],
      [{ timeout: -1 }, 'Timeout should be a positive number of seconds'],
      [{ timeout: 'soon' }, 'Timeout should be a positive number of seconds'],
      [{ when: 'now' }, 'Unknown filter for the scheduled restart: when'],
    ];
    for (const [body, text] of bad) {
      const res = await req('/restart', json('POST', body));
      expect(res.status).toBe(400);
      expect(await res.text()).toBe(text);
    }
  });

  it('routes the other writes', async () => {
    const { req, calls } = api(snapshot('replica'));
    expect((await req('/reload', { method: 'POST' })).status).toBe(202);
    expect((await req('/reinitialize', json('POST', { force: 'true' }))).status).toBe(200);
    expect((await req('/reinitialize', { method: 'POST' })).status).toBe(200);
    expect((await req('/config', json('PATCH', { ttl: 20, pause: null }))).status).toBe(200);
    expect((await req('/config', json('PUT', { ttl: 20 }))).status).toBe(200);
    expect((await req('/switchover', { method: 'DELETE' })).status).toBe(200);
    expect((await req('/restart', { method: 'DELETE' })).status).toBe(200);
    expect(calls).toEqual([
      ['reload'],
      ['reinitialize', true],
      ['reinitialize', false],
      ['patchConfig', { ttl: 20, pause: null }],
      ['putConfig', { ttl: 20 }],
      ['deleteSwitchover'],
      ['deleteScheduledRestart'],
    ]);
  });

  it('an unsupported method or path gets 501, a body over the limit 413', async () => {
    const { req } = api(snapshot('primary'), { maxBodyBytes: 1024 });
    expect((await req('/patroni', { method: 'POST' })).status).toBe(501);
    expect((await req('/config', { method: 'DELETE' })).status).toBe(501);
    const big = await req('/config', json('PATCH', { x: 'y'.repeat(2000) }));
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: string }).error).toMatch(/too large/);
  });
});

describe('access control on writes', () => {
  const auth = { authentication: { username: 'admin', password: 's3cret' } };
  const basic = (u: string, p: string) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');

  it('HTTP Basic from restapi.authentication, reads stay open', async () => {
    const { req, calls } = api(snapshot('primary'), { restapi: auth });
    const none = await req('/reload', { method: 'POST' });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Basic realm="Patroni"');
    expect(((await none.json()) as { error: string }).error).toBe('no auth header received');
    const wrong = await req('/reload', {
      method: 'POST',
      headers: { authorization: basic('admin', 'nope') },
    });
    expect(wrong.status).toBe(401);
    expect((await req('/patroni')).status).toBe(200);
    expect((await req('/primary', { method: 'OPTIONS' })).status).toBe(200);
    const right = await req('/reload', {
      method: 'POST',
      headers: { authorization: basic('admin', 's3cret') },
    });
    expect(right.status).toBe(202);
    expect(calls).toEqual([['reload']]);
  });

  it('allowlist: CIDRs, addresses and host names; 403 otherwise', async () => {
    const resolveHost = (h: string) => Promise.resolve(h === 'ops.example' ? ['192.0.2.7'] : []);
    const { req } = api(snapshot('primary'), {
      restapi: { allowlist: ['10.1.0.0/16', '198.51.100.3', 'ops.example'] },
      resolveHost,
    });
    const post = (ip: string) => req('/reload', { method: 'POST' }, ip);
    expect((await post('10.1.200.4')).status).toBe(202);
    expect((await post('::ffff:10.1.0.1')).status).toBe(202);
    expect((await post('198.51.100.3')).status).toBe(202);
    expect((await post('192.0.2.7')).status).toBe(202);
    const denied = await post('10.2.0.1');
    expect(denied.status).toBe(403);
    expect(await denied.json()).toEqual({ error: 'Access is denied' });
    // Reads are not subject to the allowlist, as in Patroni.
    expect((await req('/patroni', {}, '10.2.0.1')).status).toBe(200);
  });

  it('allowlist_include_members admits the members’ API hosts', async () => {
    const snap = snapshot('primary');
    snap.cluster!.members[2]!.data.api_url = 'http://203.0.113.9:8008/patroni';
    const { req } = api(snap, { restapi: { allowlist: ['10.0.0.0/8'], allowlist_include_members: true } });
    expect((await req('/reload', { method: 'POST' }, '203.0.113.9')).status).toBe(202);
    expect((await req('/reload', { method: 'POST' }, '127.0.0.1')).status).toBe(202);
    expect((await req('/reload', { method: 'POST' }, '203.0.113.10')).status).toBe(403);
  });

  it('extra headers from restapi.http_extra_headers', async () => {
    const { req } = api(snapshot('primary'), {
      restapi: { http_extra_headers: { 'X-Frame-Options': 'DENY' } },
    });
    expect((await req('/patroni')).headers.get('x-frame-options')).toBe('DENY');
  });
});

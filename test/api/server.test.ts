/**
 * The API over a real socket: TLS from certfile/keyfile (certificates made with openssl, test/support/tls.ts),
 * client certificates (verify_client), Basic auth and the allowlist on real peer addresses, and
 * a client that sends garbage, too much, or nothing at all.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPeerTls, fetchPeerStatus, postFailsafe } from '../../src/agent.js';
import { createApi, type ApiOperator } from '../../src/api/app.js';
import { startApiServer, type ApiServer } from '../../src/api/server.js';
import type { PghaConfig, RestApiConfig } from '../../src/config/types.js';
import type { Member } from '../../src/dcs/types.js';
import { makeCa, selfSigned } from '../support/tls.js';
import { snapshot } from './fixtures.js';

let dir: string;
const servers: ApiServer[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pgha-api-tls-'));
  makeCa(dir, ['server', 'client'], '/CN=test-ca');
  // One self-signed certificate as CA, server and client certificate, naming no address (as
  // Patroni's acceptance suite makes it).
  selfSigned(dir, 'self', '/CN=batman.patroni');
  // A client certificate from a CA the server does not trust.
  selfSigned(dir, 'rogue');
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

const operator: ApiOperator = {
  reload: () => ({ status: 202, text: 'reload scheduled' }),
  restart: () => Promise.resolve({ status: 200, text: 'restarted successfully' }),
  deleteScheduledRestart: () => ({ status: 404, text: 'no restarts are scheduled' }),
  reinitialize: () => Promise.resolve({ status: 200, text: 'reinitialize started' }),
  getConfig: () => Promise.resolve({ status: 200, json: {} }),
  patchConfig: (p) => Promise.resolve({ status: 200, json: p }),
  putConfig: (p) => Promise.resolve({ status: 200, json: p }),
  switchover: () => Promise.resolve({ status: 503, text: 'Switchover failed' }),
  deleteSwitchover: () => Promise.resolve({ status: 404, text: 'no switchover is scheduled' }),
};

async function serve(extra: Partial<RestApiConfig>): Promise<number> {
  const restapi: RestApiConfig = {
    listen: { hosts: ['127.0.0.1'], port: 0 },
    connect_address: '127.0.0.1:0',
    ...extra,
  };
  const app = createApi({
    runner: { snapshot: snapshot('primary'), scheduledRestart: null },
    operator,
    restapi,
    tags: {},
    version: '3.0.2',
  });
  const server = await startApiServer(app, restapi);
  servers.push(server);
  return server.ports[0]!;
}

interface Reply {
  status: number;
  body: string;
}

function call(
  port: number,
  method: string,
  path: string,
  opts: { tls?: { cert?: string; key?: string }; body?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const base = { host: '127.0.0.1', port, method, path, headers: opts.headers ?? {} };
    const onRes = (res: import('node:http').IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    };
    const req = opts.tls
      ? httpsRequest(
          {
            ...base,
            ca: readFileSync(join(dir, 'ca.crt')),
            ...(opts.tls.cert ? { cert: readFileSync(join(dir, opts.tls.cert)) } : {}),
            ...(opts.tls.key ? { key: readFileSync(join(dir, opts.tls.key)) } : {}),
          },
          onRes,
        )
      : httpRequest(base, onRes);
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

const tlsFiles = () => ({
  certfile: join(dir, 'server.crt'),
  keyfile: join(dir, 'server.key'),
  cafile: join(dir, 'ca.crt'),
});

describe('TLS', () => {
  it('serves HTTPS with certfile/keyfile; plain HTTP is not answered', async () => {
    const port = await serve(tlsFiles());
    expect(await call(port, 'OPTIONS', '/primary', { tls: {} })).toEqual({ status: 200, body: '' });
    const st = await call(port, 'GET', '/patroni', { tls: {} });
    expect(JSON.parse(st.body)).toMatchObject({ role: 'master' });
    await expect(call(port, 'GET', '/patroni')).rejects.toThrow();
  });

  it('verify_client: required refuses a handshake without a trusted client certificate', async () => {
    const port = await serve({ ...tlsFiles(), verify_client: 'required' });
    await expect(call(port, 'GET', '/patroni', { tls: {} })).rejects.toThrow();
    await expect(
      call(port, 'GET', '/patroni', { tls: { cert: 'rogue.crt', key: 'rogue.key' } }),
    ).rejects.toThrow();
    const ok = await call(port, 'POST', '/reload', { tls: { cert: 'client.crt', key: 'client.key' } });
    expect(ok).toEqual({ status: 202, body: 'reload scheduled' });
  });

  it('verify_client: optional serves reads to anyone, writes only with a client certificate', async () => {
    const port = await serve({ ...tlsFiles(), verify_client: 'optional' });
    expect((await call(port, 'GET', '/primary', { tls: {} })).status).toBe(200);
    const anon = await call(port, 'POST', '/reload', { tls: {} });
    expect(anon.status).toBe(403);
    expect(JSON.parse(anon.body)).toEqual({ error: 'client certificate required' });
    expect(
      (await call(port, 'POST', '/reload', { tls: { cert: 'rogue.crt', key: 'rogue.key' } })).status,
    ).toBe(403);
    expect(
      (await call(port, 'POST', '/reload', { tls: { cert: 'client.crt', key: 'client.key' } })).status,
    ).toBe(202);
  });

  it('a missing certificate file is one clear error', async () => {
    await expect(serve({ certfile: join(dir, 'nope.crt') })).rejects.toThrow(
      /restapi.certfile: cannot read .*nope.crt/,
    );
  });
});

describe('plain HTTP on a real socket', () => {
  it('checks Basic auth and the allowlist against the real peer address', async () => {
    const auth = 'Basic ' + Buffer.from('admin:pw').toString('base64');
    const open = await serve({
      authentication: { username: 'admin', password: 'pw' },
      allowlist: ['127.0.0.0/8'],
    });
    expect((await call(open, 'POST', '/reload')).status).toBe(401);
    expect((await call(open, 'POST', '/reload', { headers: { authorization: auth } })).status).toBe(202);
    const closed = await serve({ allowlist: ['10.0.0.0/8', 'localhost.invalid'] });
    expect(await call(closed, 'POST', '/reload')).toEqual({
      status: 403,
      body: '{"error":"Access is denied"}',
    });
    expect((await call(closed, 'GET', '/patroni')).status).toBe(200);
    const byName = await serve({ allowlist: ['localhost'] });
    expect((await call(byName, 'POST', '/reload')).status).toBe(202);
  });

  it("answers HAProxy's check: HTTP/1.0 without a Host header, status line only", async () => {
    const port = await serve({});
    const raw = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.write('OPTIONS /primary HTTP/1.0\r\n\r\n'));
      let out = '';
      s.on('data', (d) => (out += d.toString()));
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
    });
    expect(raw).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(raw.endsWith('\r\n\r\n')).toBe(true);
  });

  it('survives garbage: bad JSON, huge bodies, broken HTTP, silent clients', async () => {
    const port = await serve({});
    const bad = await call(port, 'POST', '/switchover', {
      body: '{"leader":',
      headers: { 'content-type': 'application/json' },
    });
    expect(bad.status).toBe(400);
    expect((JSON.parse(bad.body) as { error: string }).error).toMatch(/not valid JSON/);
    const huge = await call(port, 'PATCH', '/config', { body: 'x'.repeat(2 * 1024 * 1024) });
    expect(huge.status).toBe(413);
    // A client that is still sending when the limit is hit still reads the answer (fetch).
    const fetched = await fetch(`http://127.0.0.1:${port}/config`, {
      method: 'PATCH',
      body: 'x'.repeat(2 * 1024 * 1024),
    });
    expect(fetched.status).toBe(413);
    expect((await call(port, 'GET', '/liveness')).status).toBe(200);
    // Broken HTTP gets 400 from the server, and a silent client is not waited for forever.
    const raw = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.write('NONSENSE\r\n\r\n'));
      let out = '';
      s.on('data', (d) => (out += d.toString()));
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400/);
    const silent = connect(port, '127.0.0.1');
    silent.on('error', () => undefined);
    expect((await call(port, 'GET', '/liveness')).status).toBe(200);
    silent.destroy();
  });
});

describe('the agent calling its peers over HTTPS, as Patroni', () => {
  it('shows restapi.certfile as client certificate to a peer that requires one, whatever the host name', async () => {
    const restapi: RestApiConfig = {
      listen: { hosts: ['127.0.0.1'], port: 0 },
      connect_address: '127.0.0.1:0',
      certfile: join(dir, 'self.crt'),
      keyfile: join(dir, 'self.key'),
      cafile: join(dir, 'self.crt'),
      verify_client: 'required',
    };
    const port = await serve(restapi);
    const peer: Member = {
      name: 'pg2',
      data: { api_url: `https://127.0.0.1:${port}/patroni` },
      modRevision: '1',
      lease: '0',
    };
    const status = await fetchPeerStatus(peer, AbortSignal.timeout(5000), agentPeerTls({ restapi }));
    expect(status).toMatchObject({ name: 'pg2', reachable: true, inRecovery: false });
    // The peer answered (it runs no failsafe_mode here): the handshake went through.
    const answer = await postFailsafe(peer, { name: 'pg1' }, AbortSignal.timeout(5000), {
      restapi,
    } as PghaConfig);
    expect(answer).toMatchObject({ name: 'pg2', accepted: false });
    expect(answer.detail).toMatch(/^\d{3} /);
    // Without a client certificate the peer refuses the handshake.
    await expect(
      fetchPeerStatus(peer, AbortSignal.timeout(5000), { cafile: restapi.cafile }),
    ).rejects.toThrow();
  });
});

/**
 * The small HTTP side the router and `pgha vip` share: `GET /status` (the process's JSON status),
 * `GET /metrics` (Prometheus) and `GET /health` (200 or 503 with a short JSON reason).
 */
import { createServer } from 'node:http';
import { listenOrExplain } from './net.js';
import type { Registry } from 'prom-client';

export interface StatusServer {
  port: number;
  close(): Promise<void>;
}

export interface StatusEndpoints {
  /** The `/status` document. */
  status(): unknown;
  /** `/health`: whether the process does its job now, and the body that says why. */
  health(): { ok: boolean; body: unknown };
  registry: Registry;
}

/** Serves `/status`, `/metrics` and `/health` on `host:port` (port 0: any free port). */
export async function startStatusServer(
  endpoints: StatusEndpoints,
  host: string,
  port: number,
  /** The setting `host:port` comes from, named when it cannot listen. */
  setting: string,
): Promise<StatusServer> {
  const { registry } = endpoints;
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
      return;
    }
    if (path === '/status' || path === '/') {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify(endpoints.status(), null, 2));
      return;
    }
    if (path === '/health') {
      const h = endpoints.health();
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(h.body));
      return;
    }
    res.writeHead(404).end();
  });
  await listenOrExplain(server, host, port, setting);
  const a = server.address();
  return {
    port: typeof a === 'object' && a ? a.port : port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

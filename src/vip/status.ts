/**
 * `pgha vip`'s HTTP side on `vip.status_listen`: `GET /status` (JSON: holder, eligibility and why,
 * deadline, takeovers), `GET /metrics` (Prometheus) and `GET /health` (200 while this node holds
 * the VIP, 503 otherwise, so a monitor can tell the holder at a glance).
 */
import { createServer } from 'node:http';
import { once } from 'node:events';
import { Counter, Gauge, Registry } from 'prom-client';
import type { VipStatus } from './manager.js';

/** Builds a Prometheus registry whose values are read from `status()` at scrape time. */
export function vipMetrics(status: () => VipStatus, labels: { scope: string }): Registry {
  const registry = new Registry();
  const s0 = status();
  registry.setDefaultLabels({ ...labels, address: s0.address, node: s0.node });
  new Gauge({
    name: 'pgha_vip_held',
    help: '1 while this node holds the virtual IP (address on the interface, key in etcd)',
    registers: [registry],
    collect() {
      this.set(status().held ? 1 : 0);
    },
  });
  new Gauge({
    name: 'pgha_vip_eligible',
    help: '1 while this node may hold the virtual IP (leader key holder, or healthy local router)',
    registers: [registry],
    collect() {
      this.set(status().eligible ? 1 : 0);
    },
  });
  new Counter({
    name: 'pgha_vip_takeovers_total',
    help: 'times this node added the virtual IP to its interface',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(status().takeovers);
    },
  });
  new Gauge({
    name: 'pgha_vip_last_change_timestamp_seconds',
    help: 'time this node last added or removed the virtual IP (0: never)',
    registers: [registry],
    collect() {
      const t = status().lastChange;
      this.set(t ? Date.parse(t) / 1000 : 0);
    },
  });
  new Gauge({
    name: 'pgha_vip_etcd_last_renewal_timestamp_seconds',
    help: 'time of the last successful etcd lease renewal',
    registers: [registry],
    collect() {
      const t = status().etcd.lastRenewal;
      this.set(t ? Date.parse(t) / 1000 : 0);
    },
  });
  new Gauge({
    name: 'pgha_vip_router_healthy',
    help: 'router mode: 1 while the local router passes its health check',
    registers: [registry],
    collect() {
      const r = status().router;
      this.set(r?.healthy ? 1 : 0);
    },
  });
  return registry;
}

export interface VipStatusServer {
  port: number;
  close(): Promise<void>;
}

/** Serves `/status`, `/metrics` and `/health` on `host:port`. */
export async function startVipStatusServer(
  status: () => VipStatus,
  registry: Registry,
  host: string,
  port: number,
): Promise<VipStatusServer> {
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
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(status(), null, 2));
      return;
    }
    if (path === '/health') {
      const s = status();
      res
        .writeHead(s.held ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ held: s.held, holder: s.holder, why: s.why }));
      return;
    }
    res.writeHead(404).end();
  });
  server.listen(port, host);
  await once(server, 'listening');
  const a = server.address();
  return {
    port: typeof a === 'object' && a ? a.port : port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

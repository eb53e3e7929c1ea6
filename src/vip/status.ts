/**
 * `pgha vip`'s HTTP side on `vip.status_listen`: `GET /status` (JSON: holder, eligibility and why,
 * deadline, takeovers), `GET /metrics` (Prometheus) and `GET /health` (200 while this node holds
 * the VIP, 503 otherwise, so a monitor can tell the holder at a glance).
 */
import { startStatusServer, type StatusServer } from '../util/status-server.js';
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

export type { StatusServer as VipStatusServer } from '../util/status-server.js';

/** Serves `pgha vip`'s `/status`, `/metrics` and `/health` (200 while this node holds the VIP). */
export function startVipStatusServer(
  status: () => VipStatus,
  registry: Registry,
  host: string,
  port: number,
): Promise<StatusServer> {
  return startStatusServer(
    {
      status,
      health: () => {
        const s = status();
        return { ok: s.held, body: { held: s.held, holder: s.holder, why: s.why } };
      },
      registry,
    },
    host,
    port,
    'vip.status_listen',
  );
}

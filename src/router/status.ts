/**
 * The router's HTTP side: `GET /status` (JSON: backends, roles, sessions, bytes, last topology
 * change), `GET /metrics` (Prometheus), and `GET /health` (200 while writes are routed, else 503,
 * so a load balancer in front of several routers can skip one that lost etcd).
 */
import { startStatusServer as serveStatus, type StatusServer } from '../util/status-server.js';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Router } from './router.js';

/** Builds a Prometheus registry whose values are read from the router at scrape time. */
export function routerMetrics(router: Router, labels: { scope: string }): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  // Values are computed on scrape (no per-packet work); counters are set from running totals.
  const setCounter = (c: Counter<string>, v: number, l: Record<string, string> = {}) => {
    c.reset();
    c.inc(l, v);
  };
  new Gauge({
    name: 'pgha_router_primary_up',
    help: '1 while new read-write connections are routed to a primary',
    registers: [registry],
    collect() {
      this.set(router.status().primary === null ? 0 : 1);
    },
  });
  new Gauge({
    name: 'pgha_router_replicas',
    help: 'replicas eligible for the read-only port',
    registers: [registry],
    collect() {
      this.set(router.status().replicas.length);
    },
  });
  new Gauge({
    name: 'pgha_router_sessions',
    help: 'open client sessions per backend and port',
    labelNames: ['backend', 'port'],
    registers: [registry],
    collect() {
      this.reset();
      for (const b of router.status().backends) {
        this.set({ backend: b.name, port: 'rw' }, b.sessions.rw);
        this.set({ backend: b.name, port: 'ro' }, b.sessions.ro);
      }
    },
  });
  new Gauge({
    name: 'pgha_router_waiting_connections',
    help: 'new connections waiting for a primary or replica',
    registers: [registry],
    collect() {
      this.set(router.status().waiting);
    },
  });
  new Counter({
    name: 'pgha_router_connections_total',
    help: 'client connections accepted, per port',
    labelNames: ['port'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ port: 'rw' }, router.stats.sessionsOpened.rw);
      this.inc({ port: 'ro' }, router.stats.sessionsOpened.ro);
    },
  });
  new Counter({
    name: 'pgha_router_bytes_total',
    help: 'bytes relayed, from clients (in) and to clients (out)',
    labelNames: ['direction'],
    registers: [registry],
    collect() {
      const b = router.status().bytes;
      this.reset();
      this.inc({ direction: 'in' }, b.fromClients);
      this.inc({ direction: 'out' }, b.toClients);
    },
  });
  new Counter({
    name: 'pgha_router_fenced_sessions_total',
    help: 'sessions closed because their server stopped being (or may no longer be) the primary',
    registers: [registry],
    collect() {
      setCounter(this, router.stats.fenced);
    },
  });
  new Counter({
    name: 'pgha_router_replica_sessions_cut_total',
    help: 'read-only sessions closed because their replica stayed unfit for reads (replica_grace)',
    registers: [registry],
    collect() {
      setCounter(this, router.stats.replicaCut);
    },
  });
  new Counter({
    name: 'pgha_router_sessions_moved_total',
    help: 'client sessions moved to another server (switchover, failover, unfit replica)',
    registers: [registry],
    collect() {
      setCounter(this, router.stats.moved);
    },
  });
  new Counter({
    name: 'pgha_router_sessions_cut_total',
    help: 'client sessions that could not move and were closed, per reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(router.stats.cut)) this.inc({ reason }, n);
    },
  });
  new Gauge({
    name: 'pgha_router_session_move_pause_seconds',
    help: 'pause a client saw during its session move: the last one and the longest',
    labelNames: ['which'],
    registers: [registry],
    collect() {
      this.reset();
      const p = router.stats.movePauseMs;
      if (p.last !== null) this.set({ which: 'last' }, p.last / 1000);
      if (p.max !== null) this.set({ which: 'max' }, p.max / 1000);
    },
  });
  new Counter({
    name: 'pgha_router_topology_changes_total',
    help: 'changes of the primary the router sends writes to',
    registers: [registry],
    collect() {
      setCounter(this, router.stats.topologyChanges);
    },
  });
  new Counter({
    name: 'pgha_router_refused_total',
    help: 'connections refused after waiting wait_timeout, per reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(router.stats.refused)) this.inc({ reason }, n);
    },
  });
  new Counter({
    name: 'pgha_router_cancel_requests_total',
    help: 'cancel requests forwarded: routed to the owning server, or broadcast (key unknown, e.g. TLS)',
    labelNames: ['how'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ how: 'routed' }, router.stats.cancels.routed);
      this.inc({ how: 'broadcast' }, router.stats.cancels.broadcast);
    },
  });
  new Gauge({
    name: 'pgha_router_etcd_last_read_timestamp_seconds',
    help: 'time of the last successful etcd read',
    registers: [registry],
    collect() {
      const t = router.status().etcd.lastGoodRead;
      this.set(t ? Date.parse(t) / 1000 : 0);
    },
  });
  return registry;
}

export type { StatusServer } from '../util/status-server.js';

/** Serves the router's `/status`, `/metrics` and `/health` (200 while writes are routed) on `host:port`. */
export function startStatusServer(
  router: Router,
  registry: Registry,
  host: string,
  port: number,
): Promise<StatusServer> {
  return serveStatus(
    {
      status: () => router.status(),
      health: () => {
        const s = router.status();
        return { ok: s.primary !== null, body: { primary: s.primary, reason: s.noPrimaryBecause ?? null } };
      },
      registry,
    },
    host,
    port,
    'router.status_listen',
  );
}

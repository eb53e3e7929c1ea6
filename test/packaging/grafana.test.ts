/**
 * packaging/grafana/pgha.json: valid JSON in Grafana's dashboard model, and every metric its queries
 * use is one the code exports — the agent's `GET /metrics` (Patroni's names, from `metricsBody`) or
 * the router's `/metrics` (`routerMetrics`). A renamed metric fails here before a dashboard goes blank.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { metricsBody } from '../../src/api/status.js';
import type { Router } from '../../src/router/router.js';
import { routerMetrics } from '../../src/router/status.js';
import { snapshot } from '../api/fixtures.js';

const FILE = join(import.meta.dirname, '..', '..', 'packaging', 'grafana', 'pgha.json');

interface Target {
  expr?: string;
  refId?: string;
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  panels?: Panel[];
}

/** Metric names the agent exports: the `# TYPE` lines of its /metrics, on a primary and a replica. */
function agentMetricNames(): Set<string> {
  const names = new Set<string>();
  for (const role of ['primary', 'replica'] as const)
    for (const m of metricsBody(snapshot(role), '0.1.0').matchAll(/^# TYPE (\S+) /gm)) names.add(m[1]!);
  return names;
}

/** Metric names the router registers (prom-client's registry, without scraping a router). */
function routerMetricNames(): Set<string> {
  // Collect callbacks read the router only on scrape; listing the registry does not scrape.
  return new Set(
    routerMetrics({} as Router, { scope: 'demo' })
      .getMetricsAsArray()
      .map((m) => m.name),
  );
}

const dashboard = JSON.parse(readFileSync(FILE, 'utf8')) as {
  title: string;
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Array<{ name: string; query?: unknown; definition?: string }> };
  annotations: { list: Array<{ expr?: string }> };
};

function allPanels(list: Panel[]): Panel[] {
  return list.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every PromQL expression in the dashboard: panel targets, annotations, template variables. */
function expressions(): string[] {
  const out: string[] = [];
  for (const p of allPanels(dashboard.panels)) for (const t of p.targets ?? []) if (t.expr) out.push(t.expr);
  for (const a of dashboard.annotations.list) if (a.expr) out.push(a.expr);
  for (const v of dashboard.templating.list) if (v.definition) out.push(v.definition);
  return out;
}

const referenced = new Set(
  expressions().flatMap((e) => [...e.matchAll(/\b(?:patroni|pgha)_[a-z_]+\b/g)].map((m) => m[0])),
);

describe('Grafana dashboard', () => {
  it('is a Grafana dashboard with unique panel ids and a scope variable', () => {
    expect(dashboard.title).toBe('pgha');
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const panels = allPanels(dashboard.panels);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect(p.title, `panel ${p.id}`).toBeTruthy();
      expect(p.gridPos!.x + p.gridPos!.w, p.title).toBeLessThanOrEqual(24);
      if (p.type !== 'row') {
        expect(p.targets?.length, p.title).toBeGreaterThan(0);
        const refs = p.targets!.map((t) => t.refId);
        expect(new Set(refs).size, p.title).toBe(refs.length);
      }
    }
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'scope']);
    for (const e of expressions().filter((x) => !x.startsWith('label_values')))
      expect(e, 'every query is limited to the chosen cluster').toContain('scope=~"$scope"');
  });

  it('uses only metric names the agent and the router export', () => {
    const known = new Set([...agentMetricNames(), ...routerMetricNames()]);
    expect(referenced.size).toBeGreaterThan(20);
    expect([...referenced].filter((n) => !known.has(n))).toEqual([]);
  });

  it('shows every router metric and the agent metrics that matter for operations', () => {
    expect([...routerMetricNames()].filter((n) => !referenced.has(n))).toEqual([]);
    const essential = [
      'patroni_primary',
      'patroni_replica',
      'patroni_postgres_running',
      'patroni_cluster_unlocked',
      'patroni_is_paused',
      'patroni_failsafe_mode_is_active',
      'patroni_xlog_location',
      'patroni_xlog_received_location',
      'patroni_xlog_replayed_location',
      'patroni_postgres_timeline',
      'patroni_dcs_last_seen',
      'patroni_pending_restart',
    ];
    expect(essential.filter((n) => !referenced.has(n))).toEqual([]);
  });
});

/**
 * What a reload of the agent's YAML may change while it runs (Patroni's SIGHUP / `POST /reload`):
 * PostgreSQL parameters, pg_hba, callbacks and tags are applied in place; anything else that
 * changed (names, addresses, directories, etcd) needs an agent restart and is only reported.
 */
import type { PghaConfig } from './types.js';

/** Applies `next` onto `current` where that is safe at run time; says what changed and what waits. */
export function applyReloadedConfig(current: PghaConfig, next: PghaConfig): string {
  const applied: string[] = [];
  const pending: string[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const live = ['parameters', 'pg_hba', 'callbacks'] as const;
  for (const k of live) {
    if (same(current.postgresql[k], next.postgresql[k])) continue;
    applied.push(`postgresql.${k}`);
  }
  // In place: the PostgreSQL controller, the callback runner and the REST API hold these objects.
  current.postgresql.parameters = next.postgresql.parameters;
  current.postgresql.pg_hba = next.postgresql.pg_hba;
  const callbacks = current.postgresql.callbacks as Record<string, string | undefined>;
  for (const k of Object.keys(callbacks)) delete callbacks[k];
  Object.assign(callbacks, next.postgresql.callbacks);
  if (!same(current.tags, next.tags)) {
    applied.push('tags');
    const tags = current.tags as Record<string, unknown>;
    for (const k of Object.keys(tags)) delete tags[k];
    Object.assign(tags, next.tags);
  }
  for (const k of Object.keys(next.postgresql) as Array<keyof PghaConfig['postgresql']>) {
    if ((live as readonly string[]).includes(k)) continue;
    if (!same(current.postgresql[k], next.postgresql[k])) pending.push(`postgresql.${k}`);
  }
  for (const k of ['name', 'scope', 'namespace', 'restapi', 'etcd', 'watchdog', 'log'] as const) {
    if (!same(current[k], next[k])) pending.push(k);
  }
  const did = applied.length ? `applied ${applied.join(', ')}` : 'no change that applies while running';
  return pending.length ? `${did}; changed but needing an agent restart: ${pending.join(', ')}` : did;
}

import { describe, expect, it } from 'vitest';
import { validateConfig } from './load.js';
import { applyReloadedConfig } from './reload.js';
import type { PghaConfig } from './types.js';

function config(over: Record<string, unknown> = {}): PghaConfig {
  const res = validateConfig({
    scope: 'demo',
    name: 'pg1',
    restapi: { listen: '127.0.0.1:8008', connect_address: '127.0.0.1:8008' },
    etcd3: { hosts: ['127.0.0.1:2379'] },
    postgresql: {
      listen: '127.0.0.1:5432',
      connect_address: '127.0.0.1:5432',
      data_dir: '/tmp/pgha-reload-test',
      bin_dir: '/usr/lib/postgresql/15/bin',
      authentication: {
        superuser: { username: 'postgres', password: 'x' },
        replication: { username: 'replicator', password: 'y' },
      },
      parameters: { work_mem: '4MB' },
    },
    ...over,
  });
  if (!res.config) throw new Error(res.errors.join('; '));
  return res.config;
}

describe('applyReloadedConfig', () => {
  it('applies parameters, pg_hba, callbacks and tags in place, and names what needs a restart', () => {
    const current = config();
    const params = current.postgresql.parameters;
    const tags = current.tags;
    const next = structuredClone(current);
    next.name = 'pg9';
    next.tags = { ...next.tags, nofailover: true };
    next.postgresql.listen = { hosts: ['127.0.0.1'], port: 5999 };
    next.postgresql.parameters = { work_mem: '8MB' };
    next.postgresql.pg_hba = ['host all all 127.0.0.1/32 md5'];
    expect(applyReloadedConfig(current, next)).toBe(
      'applied postgresql.parameters, postgresql.pg_hba, tags; changed but needing an agent restart: postgresql.listen, name',
    );
    expect(current.postgresql.parameters).toEqual({ work_mem: '8MB' });
    expect(params).not.toBe(current.postgresql.parameters);
    expect(current.tags).toBe(tags);
    expect(current.tags.nofailover).toBe(true);
    expect(current.name).toBe('pg1');
  });

  it('says so when nothing changed', () => {
    expect(applyReloadedConfig(config(), config())).toBe('no change that applies while running');
  });
});

/**
 * PostgreSQL that accepts only TLS with a client certificate (`hostssl ... clientcert=verify-ca`),
 * set up as Patroni's own acceptance suite sets it up: every connection pgha makes — its own SQL,
 * pg_basebackup, streaming replication (primary_conninfo) and pg_rewind — carries the role's
 * `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, and a role without a certificate is refused
 * with PostgreSQL's own reason. Certificates are made with openssl (test/support/tls.ts).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Credentials, PostgresqlConfig } from '../../src/config/types.js';
import { Postgres } from '../../src/postgres/postgres.js';
import { createPgTestBase, PG_OS_USER, waitFor, type PgTestBase } from '../support/postgres.js';
import { giveTo, makeCa } from '../support/tls.js';

let base: PgTestBase;
let tls: string;
const nodes: Postgres[] = [];

/** A CA, a server certificate for 127.0.0.1 and one client certificate, owned by PostgreSQL's user. */
function makeCertificates(): void {
  tls = join(base.dir, 'tls');
  mkdirSync(tls);
  makeCa(tls, ['server', 'client']);
  giveTo(PG_OS_USER, tls, ['.', 'ca.crt', 'server.crt', 'server.key', 'client.crt', 'client.key']);
}

const clientTls = (): Partial<Credentials> => ({
  sslmode: 'verify-ca',
  sslrootcert: join(tls, 'ca.crt'),
  sslcert: join(tls, 'client.crt'),
  sslkey: join(tls, 'client.key'),
});

async function tlsConfig(name: string): Promise<PostgresqlConfig> {
  const cfg = await base.pgConfig(name, {
    parameters: {
      ssl: 'on',
      ssl_cert_file: join(tls, 'server.crt'),
      ssl_key_file: join(tls, 'server.key'),
      ssl_ca_file: join(tls, 'ca.crt'),
      wal_log_hints: 'on',
    },
  });
  cfg.pg_hba = [
    'local all all trust',
    'hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca',
    'hostssl replication all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca',
  ];
  for (const role of ['superuser', 'replication', 'rewind'] as const)
    Object.assign(cfg.authentication[role] as Credentials, clientTls());
  return cfg;
}

function node(cfg: PostgresqlConfig, name: string): Postgres {
  const n = new Postgres(cfg, { name, scope: 'tls' });
  nodes.push(n);
  return n;
}

/** Whether `member`'s WAL sender on `on` streams over TLS with a client certificate. */
async function streamsOverTls(on: Postgres, member: string): Promise<boolean> {
  const rows = await on.query<{ ssl: boolean; client_dn: string | null }>(
    `SELECT s.ssl, s.client_dn FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)
      WHERE r.application_name = $1 AND r.state = 'streaming'`,
    [member],
  );
  return rows.length === 1 && rows[0]!.ssl && rows[0]!.client_dn === '/CN=client';
}

beforeAll(() => {
  base = createPgTestBase();
  makeCertificates();
});

afterAll(async () => {
  for (const n of nodes) await n.close();
  await base?.cleanup();
});

describe('PostgreSQL reachable only over TLS with a client certificate', () => {
  it('clones, streams, connects and rewinds with the role’s certificate', async () => {
    const cfgA = await tlsConfig('a');
    const cfgB = await tlsConfig('b');
    const a = node(cfgA, 'a');
    const b = node(cfgB, 'b');
    await a.initdb([]);
    await a.configure({ role: 'primary', parameters: cfgA.parameters });
    await a.start(30_000);
    await a.createUsers();
    // The agent's own connection is TLS (the server accepts nothing else over TCP).
    const [own] = await a.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    expect(own?.ssl).toBe(true);
    await a.query('CREATE TABLE t (x int); INSERT INTO t VALUES (1)');

    // pg_basebackup and then primary_conninfo as the replication role.
    await b.basebackup({ host: '127.0.0.1', port: cfgA.listen.port, member: 'a' }, []);
    await b.configure({
      role: 'replica',
      upstream: { host: '127.0.0.1', port: cfgA.listen.port, member: 'a' },
      parameters: cfgB.parameters,
    });
    await b.start(30_000);
    await waitFor('b streams from a over TLS', () => streamsOverTls(a, 'b'), 30_000);

    // Fork: b is promoted while a keeps writing; a then rewinds onto b over TLS.
    await b.promote(30_000);
    await a.query('INSERT INTO t SELECT generate_series(2, 1000)');
    await a.stop('fast', 30_000);
    await a.rewind({ host: '127.0.0.1', port: cfgB.listen.port, member: 'b' });
    await a.configure({
      role: 'replica',
      upstream: { host: '127.0.0.1', port: cfgB.listen.port, member: 'b' },
      parameters: cfgA.parameters,
    });
    await a.start(30_000);
    await waitFor('a streams from b over TLS after pg_rewind', () => streamsOverTls(b, 'a'), 30_000);
    const [count] = await a.query<{ n: string }>('SELECT count(*) AS n FROM t');
    expect(count?.n).toBe('1');
  }, 120_000);

  it('a role without a client certificate is refused, with the reason', async () => {
    const cfgA = await tlsConfig('c');
    const c = node(cfgA, 'c');
    await c.initdb([]);
    await c.configure({ role: 'primary', parameters: cfgA.parameters });
    await c.start(30_000);
    await c.createUsers();
    const cfgD = await tlsConfig('d');
    delete cfgD.authentication.replication.sslcert;
    delete cfgD.authentication.replication.sslkey;
    const d = node(cfgD, 'd');
    await expect(
      d.basebackup({ host: '127.0.0.1', port: cfgA.listen.port, member: 'c' }, []),
    ).rejects.toThrow(/pg_basebackup from c .*failed:.*certificate/s);
    // A plain client (no TLS at all) is refused by pg_hba, so TLS above was not optional.
    const plain = new pg.Client({
      host: '127.0.0.1',
      port: cfgA.listen.port,
      user: 'postgres',
      database: 'postgres',
      ssl: false,
    });
    await expect(plain.connect()).rejects.toThrow(/no pg_hba\.conf entry|no encryption/);
    await plain.end().catch(() => undefined);
  }, 90_000);
});

import { createAdaptorServer } from '@hono/node-server';
import type { Server } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import { readFileSync } from 'node:fs';
import type { Hono } from 'hono';
import type { RestApiConfig } from '../config/types.js';
import { PghaError, errorMessage } from '../util/errors.js';
import { listenOrExplain } from '../util/net.js';

/** A running REST API server on every configured listen host. */
export interface ApiServer {
  /** Bound addresses, e.g. for tests that listen on port 0. */
  readonly ports: number[];
  close(): Promise<void>;
}

/**
 * TLS options from `restapi.certfile`/`keyfile`/`cafile`/`verify_client`, as Patroni reads them;
 * null for plain HTTP. `verify_client: optional` asks for a certificate but lets the handshake go on
 * without one; the API then refuses writes (as Patroni does).
 */
export function tlsOptions(restapi: RestApiConfig): HttpsOptions | null {
  if (!restapi.certfile) return null;
  const read = (key: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new PghaError('PGHA_API_TLS', `restapi.${key}: cannot read ${path}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  };
  const cert = read('certfile', restapi.certfile);
  const opts: HttpsOptions = {
    cert,
    key: restapi.keyfile ? read('keyfile', restapi.keyfile) : cert,
  };
  if (restapi.keyfile_password) opts.passphrase = restapi.keyfile_password;
  if (restapi.cafile) opts.ca = read('cafile', restapi.cafile);
  const verify = restapi.verify_client ?? 'none';
  opts.requestCert = verify !== 'none';
  opts.rejectUnauthorized = verify === 'required';
  return opts;
}

/** Binds the API on `restapi.listen` (HTTPS when a certificate is configured). */
export async function startApiServer(app: Hono, restapi: RestApiConfig): Promise<ApiServer> {
  const listen = restapi.listen;
  const servers: Server[] = [];
  let tls: HttpsOptions | null;
  try {
    tls = tlsOptions(restapi);
  } catch (err) {
    if (err instanceof PghaError) throw err;
    throw new PghaError('PGHA_API_TLS', `restapi: ${errorMessage(err)}`, { cause: err });
  }
  try {
    for (const host of listen.hosts) {
      // HAProxy's `option httpchk` sends HTTP/1.0 without a Host header; the adapter needs a host
      // to build the request URL, else it answers 400 and every health check fails.
      const hostname = 'localhost';
      const server = (
        tls
          ? createAdaptorServer({
              fetch: app.fetch,
              hostname,
              createServer: createHttpsServer,
              serverOptions: tls,
            })
          : createAdaptorServer({ fetch: app.fetch, hostname })
      ) as Server;
      // A slow or silent client must not hold a connection open for long.
      server.requestTimeout = 10_000;
      server.headersTimeout = 5_000;
      server.keepAliveTimeout = 5_000;
      await listenOrExplain(server, host === '*' ? '0.0.0.0' : host, listen.port, 'restapi.listen');
      servers.push(server);
    }
  } catch (err) {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    throw err;
  }
  return {
    ports: servers.map((s) => {
      const a = s.address();
      return typeof a === 'object' && a ? a.port : listen.port;
    }),
    async close() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}

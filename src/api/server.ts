import { createAdaptorServer } from '@hono/node-server';
import type { Server } from 'node:http';
import { once } from 'node:events';
import type { Hono } from 'hono';
import type { ListenAddress } from '../config/types.js';
import { PghaError } from '../util/errors.js';

/** A running REST API server on every configured listen host. */
export interface ApiServer {
  close(): Promise<void>;
}

/** Binds the API on `listen`; a port already in use is reported as one clear error. */
export async function startApiServer(app: Hono, listen: ListenAddress): Promise<ApiServer> {
  const servers: Server[] = [];
  try {
    for (const host of listen.hosts) {
      const server = createAdaptorServer({ fetch: app.fetch }) as Server;
      // A slow or silent client must not hold a connection open for long.
      server.requestTimeout = 10_000;
      server.headersTimeout = 5_000;
      server.keepAliveTimeout = 5_000;
      server.listen(listen.port, host === '*' ? '0.0.0.0' : host);
      await Promise.race([
        once(server, 'listening'),
        once(server, 'error').then(([e]) => {
          throw e;
        }),
      ]);
      servers.push(server);
    }
  } catch (err) {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    const e = err as NodeJS.ErrnoException;
    throw new PghaError(
      'PGHA_API_LISTEN',
      `restapi.listen: cannot listen on ${listen.hosts.join(',')}:${listen.port}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message}`,
      { cause: err },
    );
  }
  return {
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

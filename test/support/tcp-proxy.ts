/**
 * A controllable TCP proxy for fault tests: `suspend()` cuts every connection and refuses new
 * ones (a network partition as the client sees it); `resume()` lets traffic through again.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

export interface TcpProxy {
  /** Local `127.0.0.1:port` to give clients instead of the target. */
  endpoint: string;
  port: number;
  suspend(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  let suspended = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (suspended) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    endpoint: `127.0.0.1:${port}`,
    port,
    suspend() {
      suspended = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    resume() {
      suspended = false;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * A controllable TCP proxy for fault tests: `suspend()` cuts every connection and refuses new
 * ones (a network partition as the client sees it when the far side answers with resets);
 * `stall()` is the silent kind — connections stay open and new ones are accepted, but no byte
 * moves either way until `resume()`, as when packets to a host are dropped; `resume()` lets traffic through again.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

export interface TcpProxy {
  /** Local `127.0.0.1:port` to give clients instead of the target. */
  endpoint: string;
  port: number;
  suspend(): void;
  /** Silent partition: nothing is forwarded and nothing is closed. */
  stall(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  let suspended = false;
  let stalled = false;
  const sockets = new Set<Socket>();
  /** Bytes held back while stalled, delivered on resume (as TCP retransmits after a partition heals). */
  const held: Array<{ to: Socket; data: Buffer }> = [];
  const forward = (to: Socket, data: Buffer) => {
    if (stalled) held.push({ to, data });
    else to.write(data);
  };
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
    client.on('data', (d: Buffer) => forward(upstream, d));
    upstream.on('data', (d: Buffer) => forward(client, d));
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
    stall() {
      stalled = true;
    },
    resume() {
      suspended = false;
      stalled = false;
      for (const { to, data } of held.splice(0)) if (!to.destroyed) to.write(data);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

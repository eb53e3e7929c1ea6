/**
 * A TCP server on loopback that takes connections and then says nothing (after `greeting`, when
 * given, sent once on a connection's first bytes): a client waits on it until its own deadline.
 */
import { createServer, type Socket } from 'node:net';

export interface QuietServer {
  port: number;
  /** Drops every connection and closes the listener. */
  close(): Promise<void>;
}

export async function quietServer(greeting?: Buffer): Promise<QuietServer> {
  const sockets = new Set<Socket>();
  const srv = createServer((s) => {
    sockets.add(s);
    let greeted = false;
    s.on('data', () => {
      if (greeting && !greeted) s.write(greeting);
      greeted = true;
    });
    s.on('end', () => s.end());
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr = srv.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return {
    port: addr.port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => srv.close(r));
    },
  };
}

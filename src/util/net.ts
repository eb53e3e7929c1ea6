import { createServer } from 'node:net';

/**
 * Returns a TCP port that was free on `host` a moment ago: binds port 0, reads the port the kernel
 * chose, and closes. Another process may take it before the caller binds it; on loopback in tests
 * that race is rare enough to accept.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** Several distinct free ports (kept distinct even if the kernel hands one out twice). */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort(host));
  return [...ports];
}

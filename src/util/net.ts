import { connect, createServer, type Server } from 'node:net';
import { formatHostPort } from '../config/schema.js';
import { PghaError } from './errors.js';

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

/**
 * One TCP connection attempt: `refused` only when the host answered with a reset (it is up and
 * nothing listens on the port); a timeout or any other error is `unknown`, never proof of anything.
 */
export function probePort(
  host: string,
  port: number,
  timeoutMs = 500,
): Promise<'open' | 'refused' | 'unknown'> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (r: 'open' | 'refused' | 'unknown') => {
      socket.destroy();
      resolve(r);
    };
    socket.setTimeout(timeoutMs, () => done('unknown'));
    socket.once('connect', () => done('open'));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      done(err.code === 'ECONNREFUSED' ? 'refused' : 'unknown'),
    );
  });
}

/**
 * Host and port of a member's `conn_url` (`postgres://host:port/db`) or `api_url`
 * (`http(s)://host:port/patroni`), with each scheme's default port; null when absent or unparsable.
 */
export function urlHostPort(url: string | undefined): { host: string; port: number } | null {
  if (!url) return null;
  try {
    const u = new URL(url);
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : u.protocol === 'http:' ? 80 : 5432));
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    return host && Number.isInteger(port) ? { host, port } : null;
  } catch {
    return null;
  }
}

/**
 * Starts `server` listening on `host:port`; when it cannot (the port is taken, not allowed, the
 * address is not this host's), throws one PghaError that names `setting`, the address and what to do.
 */
export async function listenOrExplain(
  server: Server,
  host: string,
  port: number,
  setting: string,
): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    // Each outcome takes the other's listener away: a later error of the running server is the
    // owner's to handle, not swallowed here.
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(listenError(setting, host, port, err));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

/** The error for a listener that could not start: the setting, the address, the cause and the fix. */
function listenError(setting: string, host: string, port: number, err: NodeJS.ErrnoException): PghaError {
  const why: Record<string, string> = {
    EADDRINUSE: 'address already in use (another process holds it: stop it, or choose another port)',
    EACCES: 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE: choose another port)',
    EADDRNOTAVAIL: 'no such address on this host (use one of its addresses, or 0.0.0.0)',
  };
  return new PghaError(
    'PGHA_LISTEN',
    `${setting}: cannot listen on ${formatHostPort(host, port)}: ${(err.code && why[err.code]) ?? err.message}`,
    { cause: err },
  );
}

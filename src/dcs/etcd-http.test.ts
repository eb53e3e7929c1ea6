/**
 * The etcd client against a member that takes connections and never answers: a request ends at
 * its deadline, also when a garbage collection runs while it waits.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { fullGc } from '../testing/gc.js';
import { EtcdClient } from './etcd-http.js';

let server: Server | null = null;
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = null;
});

async function silentMember(): Promise<string> {
  const srv = createServer((s) => {
    sockets.add(s);
    s.on('data', () => undefined);
    s.on('error', () => undefined);
  });
  server = srv;
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr = srv.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return `127.0.0.1:${addr.port}`;
}

it('ends a request with a caller signal at its deadline, a garbage collection notwithstanding', async () => {
  const client = new EtcdClient({ endpoints: [await silentMember()], requestTimeoutMs: 500 });
  try {
    const started = Date.now();
    const res = client
      .call('/kv/range', { key: 'eA==' }, { what: 'read', signal: new AbortController().signal })
      .then(
        () => 'answered',
        (e: Error) => e.message,
      );
    await new Promise((r) => setTimeout(r, 100));
    fullGc();
    const settled = await Promise.race([res, new Promise((r) => setTimeout(() => r('pending'), 4000))]);
    expect(settled).not.toBe('pending');
    expect(settled).toMatch(/no answer within/);
    expect(Date.now() - started).toBeLessThan(2500);
  } finally {
    client.close();
  }
});

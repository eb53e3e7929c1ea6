/**
 * The etcd client against a member that takes connections and never answers: a request ends at
 * its deadline, also when a garbage collection runs while it waits.
 */
import { afterEach, expect, it } from 'vitest';
import { fullGc } from '../testing/gc.js';
import { quietServer, type QuietServer } from '../testing/quiet-server.js';
import { EtcdClient } from './etcd-http.js';

let server: QuietServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function silentMember(): Promise<string> {
  server = await quietServer();
  return `127.0.0.1:${server.port}`;
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

import { createServer } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { listenOrExplain } from './net.js';

const servers: Array<ReturnType<typeof createServer>> = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

it('listens and leaves no listener of its own behind', async () => {
  const s = createServer();
  servers.push(s);
  await listenOrExplain(s, '127.0.0.1', 0, 'test.listen');
  expect(s.listening).toBe(true);
  // A later error of the running server reaches its owner's handlers, none of ours.
  expect(s.listenerCount('error')).toBe(0);
  expect(s.listenerCount('listening')).toBe(0);
});

it('names the setting, the address and what to do when the port is taken', async () => {
  const held = createServer();
  servers.push(held);
  await listenOrExplain(held, '127.0.0.1', 0, 'test.listen');
  const port = (held.address() as { port: number }).port;
  const s = createServer();
  await expect(listenOrExplain(s, '127.0.0.1', port, 'router.listen')).rejects.toThrow(
    `router.listen: cannot listen on 127.0.0.1:${port}: address already in use (another process holds it: stop it, or choose another port)`,
  );
  expect(s.listenerCount('listening')).toBe(0);
});

/**
 * Ports for test servers that bind a port chosen beforehand (etcd, PostgreSQL, Bacula's daemons,
 * the router). The kernel's port 0 hands out ports from its ephemeral range (32768–60999), where
 * an outgoing connection may take the port before the server binds it, and where two test files
 * running at once may both be handed the same port in that gap. So these come from below that
 * range, from a slice of their own per vitest worker, never twice in one process, and only when
 * they are free at the time of asking.
 */
import { createServer } from 'node:net';

const LOW = 10_000;
const SLICES = 4;
const SLICE = Math.floor((32_000 - LOW) / SLICES);
/** vitest numbers its workers from 1 (`VITEST_POOL_ID`); outside vitest (benchmarks) slice 0. */
const slice = (Math.max(1, Number(process.env.VITEST_POOL_ID ?? '1') || 1) - 1) % SLICES;
const given = new Set<number>();

/** Whether `port` can be bound on `host` right now (bound and closed again at once). */
export function canBind(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** A port free on `host` a moment ago, below the ephemeral range, not handed out before here. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 200; i++) {
    if (given.size > SLICE / 2) given.clear();
    const port = LOW + slice * SLICE + Math.floor(Math.random() * SLICE);
    if (given.has(port) || !(await canBind(port, host))) continue;
    given.add(port);
    return port;
  }
  throw new Error(`no free port in ${LOW + slice * SLICE}–${LOW + (slice + 1) * SLICE - 1} on ${host}`);
}

/** Several distinct free ports. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) ports.push(await freePort(host));
  return ports;
}

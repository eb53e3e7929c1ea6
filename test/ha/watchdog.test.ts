/**
 * The watchdog with real agents. This machine has no watchdog driver (no /dev/watchdog, no kernel
 * modules), so each node's `watchdog.device` is a plain file: the agent opens, pings and disarms
 * it exactly as it would the device, and the test reads what was written.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

let c: TestCluster;
const device = (name: string) => join(c.base.dir, `${name}.watchdog`);

beforeAll(async () => {
  c = await startCluster({
    nodes: 3,
    ttl: 10,
    loopWait: 1,
    retryTimeout: 3,
    // pg1 requires a watchdog it does not have; pg2 and pg3 require one they have.
    edit: (cfg, name) => {
      const path = join(
        String((cfg.postgresql as { data_dir: string }).data_dir),
        '..',
        '..',
        `${name}.watchdog`,
      );
      if (name !== 'pg1') writeFileSync(path, '');
      cfg.watchdog = { mode: 'required', device: path, safety_margin: 5 };
    },
  });
  // pg1 alone first: it must refuse to bootstrap the cluster without its watchdog.
  c.startAgent('pg1');
  await waitFor(
    'pg1 refusing to bootstrap',
    () =>
      Promise.resolve(
        /not bootstrapping: watchdog\.mode is required/.test(readFileSync(c.node('pg1').logPath, 'utf8')),
      ),
    20_000,
  );
  c.startAgent('pg2');
  c.startAgent('pg3');
});

afterAll(async () => {
  await c?.stop();
});

it('pings while leading, disarms on stepping down, and keeps a node without one from leading', async () => {
  const state = await c.waitHealthy(2, 90_000);
  const leader = state.leader!.name;
  expect(leader).not.toBe('pg1');
  expect(existsSync(device('pg1'))).toBe(false);
  expect(readFileSync(c.node('pg1').logPath, 'utf8')).toMatch(
    /not bootstrapping: watchdog\.mode is required and the watchdog is unusable: .*pg1\.watchdog does not exist/,
  );
  const pings = (name: string) => readFileSync(device(name), 'utf8');
  await waitFor(
    `${leader} pinging its watchdog`,
    () => Promise.resolve(/^V*1{3,}$/.test(pings(leader))),
    10_000,
  );

  const other = leader === 'pg2' ? 'pg3' : 'pg2';
  // Opened to check it while racing, perhaps, but never pinged: it never led.
  expect(pings(other)).toMatch(/^V*$/);
  const res = await fetch(`http://127.0.0.1:${c.node(leader).apiPort}/switchover`, {
    method: 'POST',
    body: JSON.stringify({ leader, candidate: other }),
  });
  expect(res.status).toBe(200);
  expect(pings(leader)).toMatch(/^V*1+V$/);
  await waitFor(
    `${other} pinging its watchdog`,
    () => Promise.resolve(/^V*1{2,}$/.test(pings(other))),
    10_000,
  );
});

/**
 * The agents ask each other over the REST API whether a member can take over (a crashed leader
 * with `primary_start_timeout: 0`). With the REST API on TLS as Patroni's acceptance suite sets it
 * up — one self-signed certificate for every member that names no host (CN=batman.patroni),
 * `verify_client: required`, and `ctl.insecure` — an agent must present `restapi.certfile` as its
 * client certificate and, with `ctl.insecure`, not check the host name, as Patroni does.
 * Otherwise no other member is reachable, and the crashed leader restarts in place instead of
 * failing over.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';
import { logLines } from '../support/ha-probes.js';
import { selfSigned } from '../support/tls.js';

let c: TestCluster;
let dir: string | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pgha-peer-tls-'));
  const { cert, key } = selfSigned(dir, 'patroni', '/CN=batman.patroni');
  c = await startCluster({
    nodes: 2,
    ttl: 10,
    loopWait: 1,
    retryTimeout: 3,
    edit: (cfg) => {
      (cfg.bootstrap as { dcs: Record<string, unknown> }).dcs.primary_start_timeout = 0;
      Object.assign(cfg.restapi as object, {
        certfile: cert,
        keyfile: key,
        cafile: cert,
        verify_client: 'required',
      });
      cfg.ctl = { insecure: true };
    },
  });
  for (const n of c.nodes) c.startAgent(n.name);
  await c.waitHealthy(1, 90_000);
});

afterAll(async () => {
  await c?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('a crashed leader reaches the replica over TLS with its client certificate and fails over to it', async () => {
  const old = (await c.waitHealthy(1, 60_000)).leader!.name;
  await c.killPostmaster(old);
  try {
    await waitFor(
      'another member to hold the leader key',
      async () => {
        const name = (await c.readCluster()).leader?.name;
        return name !== undefined && name !== old;
      },
      30_000,
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}\n${old}'s log:\n${logLines(c.node(old).logPath, /answer|take over/)}`,
      {
        cause: err,
      },
    );
  }
  expect(logLines(c.node(old).logPath, /another member can take over/)).not.toBe('');
});

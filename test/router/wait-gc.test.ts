/**
 * A connection that waits for a primary gets its refusal when `wait_timeout` runs out, also when
 * a garbage collection runs during the wait (a timeout that only a weak reference held would
 * never fire, and the client would wait for good).
 */
import { connect } from 'node:net';
import { once } from 'node:events';
import { afterEach, expect, it } from 'vitest';
import { emptyCluster } from '../../src/dcs/keys.js';
import { createLogger } from '../../src/util/log.js';
import { Router } from '../../src/router/router.js';
import { fullGc } from '../../src/testing/gc.js';
import { freePort } from '../support/net.js';

let router: Router | null = null;
afterEach(async () => {
  await router?.stop();
  router = null;
});

/** A startup packet for user postgres, database postgres (protocol 3.0). */
function startupPacket(): Buffer {
  const body = Buffer.from('user\0postgres\0database\0postgres\0\0');
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4);
  return Buffer.concat([head, body]);
}

it('refuses a connection waiting for a primary once wait_timeout passes, a GC notwithstanding', async () => {
  const port = await freePort();
  router = new Router({
    source: {
      readCluster: () => Promise.resolve({ ...emptyCluster('1'), initialize: '1' }),
      watch: () => () => Promise.resolve(),
    },
    logger: createLogger({ level: 'silent' }),
    listen: { hosts: ['127.0.0.1'], port },
    balance: 'round-robin',
    maxLagBytes: null,
    fallbackToPrimary: false,
    waitTimeoutMs: 600,
    connectTimeoutMs: 1000,
    checkIntervalMs: 200,
    verifyPrimary: false,
    dataPath: 'javascript',
  });
  await router.start();
  const s = connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await once(s, 'connect');
  const started = Date.now();
  const answer = new Promise<string>((resolve) => {
    let got = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length > 0 && got[0] === 0x45) resolve(got.toString('latin1'));
    });
    s.on('close', () => resolve(got.length > 0 ? got.toString('latin1') : 'closed without an answer'));
  });
  s.write(startupPacket());
  await new Promise((r) => setTimeout(r, 100));
  fullGc();
  const got = await Promise.race([
    answer,
    new Promise<string>((r) => setTimeout(() => r('still waiting after 5 s'), 5000)),
  ]);
  s.destroy();
  expect(got).toMatch(/57P03/);
  expect(got).toMatch(/no primary available after 600 ms/);
  expect(Date.now() - started).toBeLessThan(3000);
});

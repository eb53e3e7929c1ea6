/**
 * Directed scenarios on the model: one fault each, at a chosen moment, with what must follow.
 * They complement the random runs in model.test.ts with the paths the HA rules were written for.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { World } from './world.js';

let w: World;
afterEach(() => {
  for (const n of w.nodes) w.killAgent(n.name);
});

async function healthyWorld(opts: ConstructorParameters<typeof World>[0]): Promise<World> {
  w = new World(opts);
  for (const n of w.nodes) w.startAgent(n.name);
  for (let i = 0; i < 120; i++) {
    await w.time.advance(500);
    if (w.healthy()) return w;
  }
  throw new Error(`no healthy cluster:\n${w.report()}`);
}

function leader(): string | null {
  return w.store.read().leader?.name ?? null;
}

async function run(ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 250) {
    await w.time.advance(250);
    w.check('scenario');
  }
}

function expectClean(): void {
  if (w.violations.length) console.error(w.report());
  expect(w.violations).toEqual([]);
}

describe('model scenarios', () => {
  it('a leader cut off from etcd and its peers stops taking writes before another is promoted', async () => {
    await healthyWorld({ seed: 11 });
    const old = leader()!;
    w.node(old).etcdCut = true;
    for (const o of w.nodes) if (o.name !== old) w.cut(old, o.name, true);
    await run(30_000);
    expect(leader()).not.toBe(old);
    expect(w.node(old).server.writable(w.time.mono)).toBe(false);
    expectClean();
  });
});

/** The switchover's drain handshake with the routers: a table of states and the step they lead to. */
import { describe, expect, it } from 'vitest';
import type { DrainKey, RouterKey } from '../dcs/types.js';
import { DRAIN_MARGIN_MS, drainStep, type DrainStep } from './drain.js';

const want: DrainKey = { id: 'n2@7', from: 'n1', to: 'n2' };
const router = (id: string, drained: string | null, drainTimeoutMs = 5000): RouterKey => ({
  id,
  drained,
  drainTimeoutMs,
});

describe('drainStep', () => {
  it.each<[string, RouterKey[], DrainKey | null, number, DrainStep]>([
    [
      'no routers: nothing to wait for',
      [],
      null,
      0,
      { kind: 'proceed', why: 'no router is registered', late: [] },
    ],
    ['routers, no key yet: write it', [router('r1', null)], null, 0, { kind: 'request' }],
    [
      'key written, nobody answered yet',
      [router('r1', null), router('r2', null)],
      want,
      100,
      { kind: 'wait', pending: ['r1', 'r2'] },
    ],
    [
      'one answered an older request',
      [router('r1', 'n3@2'), router('r2', want.id)],
      want,
      100,
      { kind: 'wait', pending: ['r1'] },
    ],
    [
      'every router drained',
      [router('r1', want.id), router('r2', want.id)],
      want,
      900,
      { kind: 'proceed', why: '2 router(s) drained', late: [] },
    ],
    [
      'a router that never answers is waited for its drain_timeout plus the margin',
      [router('r1', want.id), router('r2', null, 3000)],
      want,
      5000 + DRAIN_MARGIN_MS,
      {
        kind: 'proceed',
        why: `1 router(s) did not answer within ${5000 + DRAIN_MARGIN_MS} ms`,
        late: ['r2'],
      },
    ],
    [
      'within the slowest drain_timeout: still waiting',
      [router('r1', null, 8000), router('r2', null, 1000)],
      want,
      8000,
      { kind: 'wait', pending: ['r1', 'r2'] },
    ],
    [
      "another request's key: the routers follow that one",
      [router('r1', null)],
      { id: 'n3@1', from: 'n1', to: 'n3' },
      50,
      { kind: 'proceed', why: 'another drain request (n3@1) holds the key', late: [] },
    ],
    [
      "another request's key seen before ours was written: try to write ours",
      [router('r1', null)],
      { id: 'n3@1', from: 'n1', to: 'n3' },
      0,
      { kind: 'request' },
    ],
  ])('%s', (_name, routers, current, waitedMs, step) => {
    expect(drainStep({ routers, current, want, waitedMs })).toEqual(step);
  });
});

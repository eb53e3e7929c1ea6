/** The leader's fence and its last-chance hook, on simulated time. */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { LeaseGuard, PRE_FENCE_MS } from './lease.js';
import { SimClock, SimTime } from './model/sim-clock.js';

function guard(beforeFence?: (g: { guard: LeaseGuard; time: SimTime }) => Promise<void>) {
  const time = new SimTime();
  const clock = new SimClock(time, 'n1', () => 0);
  const fenced: number[] = [];
  const calls: number[] = [];
  const ref: { guard: LeaseGuard | null } = { guard: null };
  const g = new LeaseGuard({
    clock,
    dcs: { renewLeader: () => Promise.resolve(null) },
    logger: pino({ level: 'silent' }),
    ttlS: () => 10,
    loopWaitS: () => 1,
    retryTimeoutS: () => 3,
    configuredMarginS: 5,
    paused: () => false,
    isLeader: () => true,
    progress: () => ({ lastCycleMono: null, longActionSinceMono: null }),
    fence: () => {
      fenced.push(time.mono);
      return Promise.resolve();
    },
    ...(beforeFence
      ? {
          beforeFence: () => {
            calls.push(time.mono);
            return beforeFence({ guard: ref.guard!, time });
          },
        }
      : {}),
  });
  ref.guard = g;
  return { g, time, fenced, calls };
}

describe('LeaseGuard', () => {
  it('fences at send time + ttl − margin when nothing renews', async () => {
    const { g, time, fenced } = guard();
    g.arm(0);
    await time.advance(20_000);
    expect(fenced).toEqual([5000]);
  });

  it('asks beforeFence PRE_FENCE_MS ahead; a re-arm from there keeps PostgreSQL', async () => {
    const { g, time, fenced, calls } = guard(({ guard: gg, time: t }) => {
      gg.arm(t.mono);
      return Promise.resolve();
    });
    g.arm(0);
    await time.advance(4900);
    expect(calls).toEqual([5000 - PRE_FENCE_MS]);
    expect(fenced).toEqual([]);
    expect(g.deadline()).toBe(5000 - PRE_FENCE_MS + 5000);
  });

  it('fences on time when beforeFence does not re-arm', async () => {
    const { g, time, fenced, calls } = guard(() => Promise.resolve());
    g.arm(0);
    await time.advance(20_000);
    expect(calls).toEqual([5000 - PRE_FENCE_MS]);
    expect(fenced).toEqual([5000]);
  });

  it('does not ask beforeFence when a renewal moved the fence, nor after a disarm', async () => {
    const { g, time, fenced, calls } = guard(() => Promise.resolve());
    g.arm(0);
    await time.advance(1000);
    g.arm(1000);
    await time.advance(1000);
    g.disarm();
    await time.advance(20_000);
    expect(calls).toEqual([]);
    expect(fenced).toEqual([]);
  });
});

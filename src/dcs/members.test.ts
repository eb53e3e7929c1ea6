import { describe, expect, it } from 'vitest';
import { attemptTimeoutMs, endpointHost, isLoopbackHost, MemberPool } from './members.js';

const A = '10.0.0.1:2379';
const B = '10.0.0.2:2379';
const C = '10.0.0.3:2379';

describe('MemberPool order', () => {
  const cases: Array<{
    name: string;
    local?: string[];
    steps: Array<['ok' | 'fail', string, number?]>;
    order: string[];
  }> = [
    { name: 'configured order at first', steps: [], order: [A, B, C] },
    { name: 'a member on this host first', local: [C], steps: [], order: [C, A, B] },
    { name: 'the member that answered last first', steps: [['ok', B]], order: [B, A, C] },
    { name: 'a failed member last', steps: [['fail', A, 0]], order: [B, C, A] },
    {
      name: 'the preferred member that fails loses its place',
      steps: [
        ['ok', B],
        ['fail', B, 0],
      ],
      order: [A, C, B],
    },
    {
      name: 'a failed local member goes after the trusted ones',
      local: [A],
      steps: [['fail', A, 0]],
      order: [B, C, A],
    },
    {
      name: 'suspects: fewer failures first, then the one failing longest',
      steps: [
        ['fail', A, 10],
        ['fail', A, 20],
        ['fail', C, 30],
        ['fail', B, 5],
      ],
      order: [B, C, A],
    },
    {
      name: 'a suspect that answers is trusted again, and preferred',
      steps: [
        ['fail', A, 0],
        ['ok', A],
      ],
      order: [A, B, C],
    },
    {
      name: 'every member failed: all are still tried',
      steps: [
        ['fail', C, 1],
        ['fail', B, 2],
        ['fail', A, 3],
      ],
      order: [C, B, A],
    },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const local = new Set(tc.local ?? []);
      const pool = new MemberPool([A, B, C], { isLocal: (e) => local.has(e) });
      for (const [kind, e, at] of tc.steps) {
        if (kind === 'ok') pool.succeeded(e);
        else pool.failed(e, 'timed out', at ?? 0);
      }
      expect(pool.order()).toEqual(tc.order);
      expect(pool.current()).toBe(tc.order[0]);
    });
  }

  it('a probe that succeeds trusts a member again without making it preferred', () => {
    const pool = new MemberPool([A, B, C]);
    pool.succeeded(C);
    pool.failed(A, 'timed out', 0);
    pool.succeeded(A, { sticky: false });
    expect(pool.order()).toEqual([C, A, B]);
    expect(pool.isSuspect(A)).toBe(false);
  });

  it('ignores duplicate endpoints and refuses an empty list', () => {
    expect(new MemberPool([A, A, B]).order()).toEqual([A, B]);
    expect(() => new MemberPool([])).toThrow(/no endpoints/);
  });
});

describe('MemberPool probes', () => {
  it('probes a suspect with a growing pause, up to the maximum', () => {
    const pool = new MemberPool([A, B], { probeMinMs: 500, probeMaxMs: 2000 });
    expect(pool.nextProbeAt()).toBeNull();
    pool.failed(A, 'timed out', 1000);
    expect(pool.nextProbeAt()).toBe(1500);
    expect(pool.probesDue(1499)).toEqual([]);
    expect(pool.probesDue(1500)).toEqual([A]);
    pool.failed(A, 'still down', 1500);
    expect(pool.nextProbeAt()).toBe(2500);
    pool.failed(A, 'still down', 2500);
    expect(pool.nextProbeAt()).toBe(4500);
    pool.failed(A, 'still down', 4500);
    expect(pool.nextProbeAt()).toBe(6500); // capped at 2000 ms
    expect(pool.states()[0]).toMatchObject({ failures: 4, suspectSince: 1000, lastError: 'still down' });
    pool.succeeded(A, { sticky: false });
    expect(pool.nextProbeAt()).toBeNull();
    expect(pool.states()[0]).toMatchObject({ failures: 0, suspectSince: null, lastError: null });
  });
});

describe('attemptTimeoutMs', () => {
  const cases: Array<[number, number, number]> = [
    [3000, 3, 1000], // Patroni's split of retry_timeout among the hosts
    [10_000, 3, 3333],
    [10_000, 1, 10_000],
    [2000, 3, 1000], // at least a second
    [600, 3, 600], // never more than the whole deadline
    [5000, 0, 5000],
  ];
  for (const [deadline, members, want] of cases) {
    it(`${deadline} ms over ${members} members: ${want} ms`, () => {
      expect(attemptTimeoutMs(deadline, members)).toBe(want);
    });
  }
});

describe('endpoint hosts', () => {
  it('splits host and port, IPv6 included', () => {
    expect(endpointHost('10.0.0.1:2379')).toBe('10.0.0.1');
    expect(endpointHost('[fd00::1]:2379')).toBe('fd00::1');
    expect(endpointHost('etcd.example:2379')).toBe('etcd.example');
    expect(endpointHost('fd00::1')).toBe('fd00::1');
  });
  it('knows loopback', () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('127.1.2.3')).toBe(true);
    expect(isLoopbackHost('::1')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('10.0.0.1')).toBe(false);
  });
});

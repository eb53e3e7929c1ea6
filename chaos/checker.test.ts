import { describe, expect, it } from 'vitest';
import {
  availability,
  check,
  formatSummary,
  healthyAgainAt,
  isHealthy,
  lostRows,
  twoWritableMoments,
  writableSpans,
  type ChaosData,
  type HealthSample,
  type ProbeRecord,
  type WriteRecord,
} from './checker.js';

const NODES = ['pg1', 'pg2', 'pg3'];
const T0 = 1_000_000;

function healthy(at: number, leader = 'pg1', over: Partial<HealthSample> = {}): HealthSample {
  return {
    at,
    leader,
    members: NODES.map((name) =>
      name === leader
        ? { name, role: 'primary', state: 'running', timeline: 1 }
        : { name, role: 'replica', state: 'streaming', timeline: 1 },
    ),
    sync: [NODES.find((n) => n !== leader)!],
    etcdUp: 3,
    ...over,
  };
}

function ack(id: number, at: number, node = 'pg1', timeline = 1): WriteRecord {
  return { id, sentAt: at - 2, doneAt: at, outcome: 'ack', node, timeline, serverAt: at - 1 };
}

function probe(node: string, at: number, outcome: ProbeRecord['outcome'] = 'ok', timeline = 1): ProbeRecord {
  return outcome === 'ok' || outcome === 'local'
    ? { node, sentAt: at, doneAt: at + 1, outcome, serverAt: at, timeline }
    : { node, sentAt: at, doneAt: at + 1, outcome };
}

function baseData(over: Partial<ChaosData> = {}): ChaosData {
  const writes = Array.from({ length: 100 }, (_, i) => ack(i + 1, T0 + i * 100));
  return {
    mode: 'on',
    nodes: NODES,
    t0: T0,
    writerStart: T0,
    writerEnd: T0 + 10_000,
    writes,
    probes: [],
    samples: Array.from({ length: 21 }, (_, i) => healthy(T0 + i * 500)),
    faults: [],
    final: {
      leader: 'pg1',
      source: 'pg1',
      healthy: true,
      ids: writes.map((w) => w.id),
      replicas: { pg2: writes.map((w) => w.id) },
    },
    ...over,
  };
}

describe('isHealthy', () => {
  it('needs a running primary holding the key, every other member streaming and every etcd member up', () => {
    expect(isHealthy(healthy(0), NODES, 'on')).toBe(true);
    expect(isHealthy(healthy(0, 'pg1', { etcdUp: 2 }), NODES, 'on')).toBe(false);
    expect(isHealthy(healthy(0, 'pg1', { error: 'etcd down' }), NODES, 'on')).toBe(false);
    const s = healthy(0);
    s.members[2]!.state = 'starting';
    expect(isHealthy(s, NODES, 'on')).toBe(false);
  });

  it('in synchronous modes also needs a streaming member in the sync key', () => {
    expect(isHealthy(healthy(0, 'pg1', { sync: [] }), NODES, 'on')).toBe(false);
    expect(isHealthy(healthy(0, 'pg1', { sync: [] }), NODES, 'async')).toBe(true);
    expect(isHealthy(healthy(0, 'pg1', { sync: ['pg1'] }), NODES, 'quorum')).toBe(false);
  });
});

describe('healthyAgainAt', () => {
  it('is the start of the first healthy stretch after `from` that lasts `stableMs`', () => {
    const samples = [
      healthy(0),
      healthy(500, 'pg1', { leader: null }),
      healthy(1000),
      healthy(1500, 'pg1', { etcdUp: 2 }),
      healthy(2000, 'pg2'),
      healthy(2500, 'pg2'),
      healthy(3000, 'pg2'),
      healthy(3500, 'pg2'),
    ];
    expect(healthyAgainAt(samples, 100, 1000, NODES, 'on')).toBe(2000);
    expect(healthyAgainAt(samples, 100, 2000, NODES, 'on')).toBeNull();
    // A healthy sample before `from` does not count.
    expect(healthyAgainAt(samples.slice(0, 2), 0, 0, NODES, 'on')).toBe(0);
    expect(healthyAgainAt(samples.slice(0, 2), 1, 0, NODES, 'on')).toBeNull();
  });
});

describe('two writable primaries', () => {
  it('finds none when one node stops accepting writes before the next one starts', () => {
    const probes = [
      probe('pg1', 0),
      probe('pg1', 200),
      probe('pg2', 100, 'refused'),
      probe('pg1', 400, 'down'),
      probe('pg2', 500),
      probe('pg2', 700, 'ok', 2),
    ];
    expect(twoWritableMoments(writableSpans(probes, []), 0)).toEqual([]);
  });

  it('finds overlapping spans of consecutive accepted probes on two nodes', () => {
    const probes = [
      probe('pg1', 0),
      probe('pg1', 200),
      probe('pg1', 400),
      probe('pg1', 600),
      probe('pg2', 300, 'ok', 2),
      probe('pg2', 500, 'ok', 2),
      probe('pg2', 700, 'ok', 2),
    ];
    const m = twoWritableMoments(writableSpans(probes, []), 0, () => 3);
    expect(m).toHaveLength(1);
    expect(m[0]).toMatchObject({ fromMs: 300, toMs: 600, nodes: ['pg1', 'pg2'], fault: 3, sources: 'probe' });
    expect(m[0]!.detail).toContain('pg1@1');
    expect(m[0]!.detail).toContain('pg2@2');
  });

  it('does not count commits that came with the sync-cancel warning', () => {
    const probes = [
      probe('pg1', 0),
      probe('pg1', 200, 'local'),
      probe('pg1', 400, 'local'),
      probe('pg2', 300, 'ok', 2),
    ];
    expect(twoWritableMoments(writableSpans(probes, []), 0)).toEqual([]);
  });

  it("counts a write acknowledged through the router by one node inside another node's writable span", () => {
    const probes = [probe('pg2', 1000, 'ok', 2), probe('pg2', 1200, 'ok', 2)];
    const writes = [ack(1, 1101, 'pg1', 1), ack(2, 1301, 'pg1', 1)];
    const m = twoWritableMoments(writableSpans(probes, writes), 0);
    expect(m).toHaveLength(1);
    expect(m[0]).toMatchObject({ fromMs: 1100, toMs: 1100, sources: 'probe+write' });
  });

  it('merges touching overlaps of the same pair into one moment', () => {
    const probes = [probe('pg2', 0), probe('pg2', 200), probe('pg2', 400)];
    const writes = [ack(1, 101, 'pg1'), ack(2, 151, 'pg1'), ack(3, 301, 'pg1')];
    expect(twoWritableMoments(writableSpans(probes, writes), 0)).toHaveLength(1);
  });
});

describe('lostRows', () => {
  it('lists acknowledged ids the final leader lacks; unacknowledged outcomes are free either way', () => {
    const writes: WriteRecord[] = [
      ack(1, 10),
      ack(2, 20),
      { id: 3, sentAt: 30, doneAt: 31, outcome: 'error', error: 'connection reset' },
      { id: 4, sentAt: 40, doneAt: 41, outcome: 'error', error: 'timeout' },
      { id: 5, sentAt: 50, doneAt: 51, outcome: 'local', node: 'pg1', serverAt: 50 },
    ];
    expect(lostRows(writes, [1, 3])).toEqual({ lost: [2], localMissing: [5], committedUnacknowledged: [3] });
  });
});

describe('availability', () => {
  it('counts every gap over the threshold, including before the first and after the last write', () => {
    const writes = [ack(1, 100), ack(2, 200), ack(3, 2200), ack(4, 2300)];
    const a = availability(writes, 0, 5000, 1000);
    expect(a.outages).toBe(2);
    expect(a.unavailableMs).toBe(2000 + 2700);
    expect(a.fraction).toBeCloseTo(1 - 4700 / 5000);
    expect(a.longestMs).toBe(2700);
    expect(a.longestAt).toBe(2300);
  });
});

describe('check', () => {
  it('passes a clean run', () => {
    const r = check(baseData());
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.lostRows.count).toBe(0);
    expect(r.availability.fraction).toBeCloseTo(1 - 0 / 10_000, 1);
    expect(formatSummary(r)).toContain('PASSED');
  });

  it('fails on a lost acknowledged row in synchronous mode, only warns in asynchronous mode', () => {
    const data = baseData();
    data.final!.ids = data.final!.ids!.filter((id) => id !== 42);
    data.final!.replicas = {};
    const sync = check(data);
    expect(sync.ok).toBe(false);
    expect(sync.lostRows).toMatchObject({ count: 1, ids: [42] });
    expect(sync.failures.join()).toContain('1 acknowledged rows lost');
    const async = check({ ...data, mode: 'async' });
    expect(async.ok).toBe(true);
    expect(async.warnings.join()).toContain('asynchronous');
  });

  it('fails on a replica that differs after catching up, on two writable primaries, and on a run that never ended', () => {
    const data = baseData();
    data.final!.replicas = { pg2: data.final!.ids!.slice(1), pg3: null };
    data.probes = [probe('pg2', T0 + 500, 'ok', 2), probe('pg2', T0 + 700, 'ok', 2)];
    data.interrupted = 'interrupted (SIGINT/SIGTERM)';
    const r = check(data);
    expect(r.replicas).toEqual({ pg2: { missing: 1, extra: 0 }, pg3: null });
    expect(r.twoWritable.count).toBe(1);
    expect(r.failures).toHaveLength(4);
  });

  it('measures each fault: first write after it, the outage it caused, and when the cluster was healthy again', () => {
    // Writes every 100 ms; a fault at +3000 stops them until +5000, on pg2 from then on.
    const writes = [
      ...Array.from({ length: 30 }, (_, i) => ack(i + 1, T0 + i * 100 + 50)),
      ...Array.from({ length: 50 }, (_, i) => ack(31 + i, T0 + 5000 + i * 100, 'pg2', 2)),
    ];
    const samples = [
      ...Array.from({ length: 7 }, (_, i) => healthy(T0 + i * 500)),
      healthy(T0 + 3500, 'pg1', { leader: null }),
      healthy(T0 + 4000, 'pg1', { leader: null }),
      healthy(T0 + 4500, 'pg2', { sync: [] }),
      ...Array.from({ length: 12 }, (_, i) => healthy(T0 + 5000 + i * 500, 'pg2')),
    ].sort((a, b) => a.at - b.at);
    const data = baseData({
      writes,
      samples,
      faults: [
        {
          n: 1,
          kind: 'kill-both',
          target: 'pg1',
          detail: 'SIGKILL agent and postmaster of leader pg1',
          injectedAt: T0 + 3000,
          restoredAt: T0 + 4000,
          leaderBefore: 'pg1',
        },
      ],
      final: { leader: 'pg2', source: 'pg2', healthy: true, ids: writes.map((w) => w.id), replicas: {} },
    });
    const r = check(data);
    expect(r.ok).toBe(true);
    const f = r.faults[0]!;
    expect(f).toMatchObject({
      leaderBefore: 'pg1',
      leaderAfter: 'pg2',
      firstAckMs: 2000,
      writesBackMs: 2000,
      firstAckNewLeaderMs: 2000,
      healthyMs: 2000,
      recovered: true,
      lostRows: 0,
    });
    expect(f.longestGapMs).toBe(5000 - 2950);
    expect(r.leaders.map((l) => l.leader)).toEqual(['pg1', null, 'pg2']);
    expect(formatSummary(r)).toMatch(/kill-both\s+pg1\s+pg1→pg2/);
  });

  it('flags a fault after which the cluster never became healthy, and an etcd fault that moved the leader', () => {
    const data = baseData({
      samples: [healthy(T0), healthy(T0 + 500, 'pg2'), healthy(T0 + 3000, 'pg2')],
      faults: [
        {
          n: 1,
          kind: 'kill-etcd-leader',
          target: 'pg3',
          detail: '',
          injectedAt: T0 + 100,
          restoredAt: T0 + 200,
          leaderBefore: 'pg1',
        },
        {
          n: 2,
          kind: 'partition-primary',
          target: 'pg2',
          detail: '',
          injectedAt: T0 + 4000,
          restoredAt: T0 + 5000,
          leaderBefore: 'pg2',
        },
      ],
    });
    const r = check(data);
    expect(r.faults.map((f) => f.recovered)).toEqual([true, false]);
    expect(r.failures.join()).toContain(
      'fault 2 (partition-primary on pg2): the cluster did not become healthy again',
    );
    expect(r.warnings.join()).toContain('moved the leader from pg1 to pg2');
  });
});

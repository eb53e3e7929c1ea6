import { describe, expect, it } from 'vitest';
import type { ClusterState, Member } from '../dcs/types.js';
import { emptyCluster } from '../dcs/keys.js';
import { renderDsn, roleFor } from './dsn.js';
import { renderMembers } from './members.js';
import { parseScheduled } from './schedule.js';
import { formatConfigForEditing, formatOutput, pyJson, pyRound, timestamp } from './table.js';

function member(name: string, port: number, data: Record<string, unknown> = {}): Member {
  return {
    name,
    modRevision: '1',
    lease: '0',
    data: {
      conn_url: `postgres://127.0.0.1:${port}/postgres`,
      api_url: `http://127.0.0.1:${port + 1000}/patroni`,
      state: 'running',
      role: 'replica',
      timeline: 1,
      ...data,
    },
  };
}

function cluster(over: Partial<ClusterState> = {}): ClusterState {
  return {
    ...emptyCluster('10'),
    initialize: '7350000000000000001',
    config: { value: { ttl: 30, loop_wait: 10 }, modRevision: '5' },
    leader: { name: 'pg1', modRevision: '7', lease: '1' },
    members: [
      member('pg2', 5433, { state: 'streaming', xlog_location: 50331648 }),
      member('pg1', 5432, { role: 'primary', xlog_location: 50331648 }),
      member('pg3', 5434, { state: 'streaming', xlog_location: 50331648 - 3 * 1048576 }),
    ],
    status: { optime: 50331648 },
    ...over,
  };
}

// Every expected text below was printed by Debian's patronictl 3.0.2 (print_output/output_members)
// for the same rows, except the title: 3.0.2 leaves out the system identifier, later versions show it.
describe('list output', () => {
  it('draws the pretty table with the title in the border, ports and right-aligned numbers', () => {
    expect(renderMembers('demo', cluster(), 'pretty')).toBe(
      [
        '+ Cluster: demo (7350000000000000001) ----------+----+-----------+',
        '| Member | Host           | Role    | State     | TL | Lag in MB |',
        '+--------+----------------+---------+-----------+----+-----------+',
        '| pg1    | 127.0.0.1:5432 | Leader  | running   |  1 |           |',
        '| pg2    | 127.0.0.1:5433 | Replica | streaming |  1 |         0 |',
        '| pg3    | 127.0.0.1:5434 | Replica | streaming |  1 |         3 |',
        '+--------+----------------+---------+-----------+----+-----------+',
      ].join('\n'),
    );
  });

  it('writes tags as YAML with a rule between rows, and the maintenance footer', () => {
    const c = cluster({
      config: { value: { pause: true }, modRevision: '5' },
      members: [
        member('pg1', 5432, { role: 'primary', tags: { nofailover: false, a: 'x' } }),
        member('pg2', 5433, { state: 'streaming', xlog_location: 50331648 }),
      ],
    });
    expect(renderMembers('demo', c, 'pretty')).toBe(
      [
        '+ Cluster: demo (7350000000000000001) ----------+----+-----------+-------------------+',
        '| Member | Host           | Role    | State     | TL | Lag in MB | Tags              |',
        '+--------+----------------+---------+-----------+----+-----------+-------------------+',
        '| pg1    | 127.0.0.1:5432 | Leader  | running   |  1 |           | a: x              |',
        '|        |                |         |           |    |           | nofailover: false |',
        '+--------+----------------+---------+-----------+----+-----------+-------------------+',
        '| pg2    | 127.0.0.1:5433 | Replica | streaming |  1 |         0 |                   |',
        '+--------+----------------+---------+-----------+----+-----------+-------------------+',
        ' Maintenance mode: on',
      ].join('\n'),
    );
    expect(renderMembers('demo', c, 'tsv').split('\n')[1]).toBe(
      'demo\tpg1\t127.0.0.1:5432\tLeader\trunning\t1\t\t{a: x, nofailover: false}',
    );
  });

  it('prints json and yaml as Python does, leaving empty cells out', () => {
    const c = cluster({
      members: [member('pg1', 5432, { role: 'primary' }), member('pg2', 5433, { state: 'streaming' })],
    });
    expect(renderMembers('demo', c, 'json')).toBe(
      '[{"Cluster": "demo", "Member": "pg1", "Host": "127.0.0.1:5432", "Role": "Leader", "State": "running", "TL": 1}, ' +
        '{"Cluster": "demo", "Member": "pg2", "Host": "127.0.0.1:5433", "Role": "Replica", "State": "streaming", "TL": 1, "Lag in MB": "unknown"}]',
    );
    expect(renderMembers('demo', c, 'yaml')).toBe(
      [
        '- Cluster: demo',
        '  Host: 127.0.0.1:5432',
        '  Member: pg1',
        '  Role: Leader',
        '  State: running',
        '  TL: 1',
        '- Cluster: demo',
        '  Host: 127.0.0.1:5433',
        '  Lag in MB: unknown',
        '  Member: pg2',
        '  Role: Replica',
        '  State: streaming',
        '  TL: 1',
        '',
      ].join('\n'),
    );
  });

  it('indents cascading replicas in the topology and shows a scheduled switchover', () => {
    const c = cluster({
      members: [
        member('pg1', 5432, { role: 'primary' }),
        member('pg2', 5433, { state: 'streaming', xlog_location: 50331648 }),
        member('pg3', 5434, { state: 'streaming', xlog_location: 50331648, tags: { replicatefrom: 'pg2' } }),
      ],
      failover: { leader: 'pg1', member: 'pg2', scheduled_at: '2030-01-01T10:00:00+00:00', modRevision: '9' },
    });
    const out = renderMembers('demo', c, 'topology').split('\n');
    expect(out.slice(3, 6)).toEqual([
      '| pg1     | 127.0.0.1:5432 | Leader  | running   |  1 |           |                      |',
      '| + pg2   | 127.0.0.1:5433 | Replica | streaming |  1 |         0 |                      |',
      '|   + pg3 | 127.0.0.1:5434 | Replica | streaming |  1 |         0 | {replicatefrom: pg2} |',
    ]);
    expect(out.slice(-3)).toEqual([
      ' Switchover scheduled at: 2030-01-01T10:00:00+00:00',
      '                    from: pg1',
      '                      to: pg2',
    ]);
  });

  it('marks the uninitialised cluster and sync standbys', () => {
    const c = cluster({ initialize: null, sync: { leader: 'pg1', sync_standby: 'pg2', modRevision: '3' } });
    const out = renderMembers('demo', c, 'pretty');
    expect(out.split('\n')[0]).toMatch(/^\+ Cluster: demo \(uninitialized\) -/);
    expect(out).toContain('| pg2    | 127.0.0.1:5433 | Sync Standby |');
  });
});

describe('other output', () => {
  it('right-aligns the history numbers, header included', () => {
    const out = formatOutput(
      ['TL', 'LSN', 'Reason', 'Timestamp', 'New Leader'],
      [
        [1, 25165824, 'no recovery target specified', '2024-01-01T10:00:00.123456+00:00', 'pg1'],
        [12, 3, 'x', '', ''],
      ],
      'pretty',
      { align: { TL: 'r', LSN: 'r' } },
    );
    expect(out.split('\n').slice(0, 4)).toEqual([
      '+----+----------+------------------------------+----------------------------------+------------+',
      '| TL |      LSN | Reason                       | Timestamp                        | New Leader |',
      '+----+----------+------------------------------+----------------------------------+------------+',
      '|  1 | 25165824 | no recovery target specified | 2024-01-01T10:00:00.123456+00:00 | pg1        |',
    ]);
  });

  it("formats configuration as PyYAML's safe_dump", () => {
    expect(
      formatConfigForEditing({
        b: { z: 1, a: [1, 'on'] },
        a: '2024-01-01T10:00:00+00:00',
        pause: true,
        x: null,
        s: 'y',
        e: {},
      }),
    ).toBe(
      "a: '2024-01-01T10:00:00+00:00'\nb:\n  a:\n  - 1\n  - 'on'\n  z: 1\ne: {}\npause: true\ns: y\nx: null\n",
    );
  });

  it('writes json with Python separators and escapes', () => {
    expect(pyJson({ a: [1, 'é', null, true] })).toBe('{"a": [1, "\\u00e9", null, true]}');
  });

  it('rounds halves to even like Python and prints timestamps like patronictl', () => {
    expect([0.5, 1.5, 2.5, 2.6].map(pyRound)).toEqual([0, 2, 2, 3]);
    const d = new Date(2024, 0, 2, 3, 4, 5, 678);
    expect(timestamp(6, d)).toBe('2024-01-02 03:04:05.67800');
    expect(timestamp(0, d)).toBe('2024-01-02 03:04:05');
  });
});

describe('dsn', () => {
  it('prints host and port from conn_url', () => {
    expect(renderDsn(member('pg1', 5432))).toBe('host=127.0.0.1 port=5432');
    expect(renderDsn({ ...member('x', 1), data: { conn_url: 'postgres://db.example:6000/postgres' } })).toBe(
      'host=db.example port=6000',
    );
  });

  it('refuses --role with --member, defaults to the leader', () => {
    expect(() => roleFor('replica', 'pg1')).toThrow('--role and --member are mutually exclusive options');
    expect(roleFor(undefined, 'pg1')).toBe('any');
    expect(roleFor(undefined, undefined)).toBe('leader');
    expect(() => roleFor('boss', undefined)).toThrow(/--role: "boss" is not one of/);
  });
});

describe('--scheduled', () => {
  it('takes now as immediately and keeps the instant of an ISO time', () => {
    expect(parseScheduled('now')).toBeUndefined();
    expect(parseScheduled(undefined)).toBeUndefined();
    expect(new Date(parseScheduled('2030-05-01T10:00+02:00')!).toISOString()).toBe(
      '2030-05-01T08:00:00.000Z',
    );
    expect(new Date(parseScheduled('2030-05-01 10:00')!).getHours()).toBe(10); // local time
    const now = new Date(2030, 4, 1, 9, 30);
    const local = (iso: string) => {
      const d = new Date(iso);
      return [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes()];
    };
    // As dateutil: a time alone is today's, a date without a year this year's.
    expect(local(parseScheduled('22:00', now)!)).toEqual([2030, 5, 1, 22, 0]);
    expect(local(parseScheduled('June 3 22:15', now)!)).toEqual([2030, 6, 3, 22, 15]);
    expect(local(parseScheduled('jun 3, 22:15', now)!)).toEqual([2030, 6, 3, 22, 15]);
    expect(local(parseScheduled('February 28', now)!)).toEqual([2030, 2, 28, 0, 0]);
    expect(() => parseScheduled('25:00', now)).toThrow(/Unable to parse/);
    // Date would read these as dates; dateutil refuses them, and so does pgha.
    for (const bad of ['next week 3', 'a 5', 'Feb 30 10:00', 'Junx 1'])
      expect(() => parseScheduled(bad, now), bad).toThrow(/Unable to parse/);
    expect(() => parseScheduled('tomorrow-ish')).toThrow(
      /Unable to parse scheduled timestamp \(tomorrow-ish\)/,
    );
  });
});

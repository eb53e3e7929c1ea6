import { describe, expect, it } from 'vitest';
import type { RestApiConfig } from '../config/types.js';
import { cluster, leaderIs, member } from '../ha/testing/fixtures.js';
import {
  checkClockSkew,
  checkDebianStartConf,
  checkEtcdMembership,
  checkLogDir,
  checkReplicaLag,
  checkRestAuthentication,
  checkStreaming,
  formatFinding,
} from './checks.js';

const voters = (n: number, learners = 0) => [
  ...Array.from({ length: n }, (_, i) => ({ name: `db${i + 1}`, isLearner: false })),
  ...Array.from({ length: learners }, (_, i) => ({ name: `l${i + 1}`, isLearner: true })),
];

describe('checkEtcdMembership', () => {
  const cases: Array<{
    name: string;
    members: number;
    learners?: number;
    answering?: number;
    want: RegExp[];
  }> = [
    { name: 'one member', members: 1, want: [/single member \(db1\)/] },
    { name: 'two members', members: 2, want: [/2 members \(db1, db2\).*less available than one/] },
    { name: 'three members', members: 3, want: [] },
    { name: 'three voters and a learner', members: 3, learners: 1, want: [] },
    { name: 'two voters and a learner', members: 2, learners: 1, want: [/2 members/] },
    { name: 'four members', members: 4, want: [/4 members .* quorum is 3/] },
    { name: 'five members', members: 5, want: [] },
    { name: 'three, all answer', members: 3, answering: 3, want: [] },
    { name: 'three, one down', members: 3, answering: 2, want: [/1 of 3 etcd members does not answer/] },
    { name: 'three, two down', members: 3, answering: 1, want: [/only 1 of 3 .* fewer than a quorum of 2/] },
    { name: 'five, one down', members: 5, answering: 4, want: [] },
  ];
  for (const c of cases)
    it(c.name, () => {
      const got = checkEtcdMembership(voters(c.members, c.learners), c.answering);
      expect(got).toHaveLength(c.want.length);
      got.forEach((f, i) => {
        expect(f.check).toBe('etcd-quorum');
        expect(f.problem).toMatch(c.want[i]!);
      });
    });

  it('names the fix: a third member, on the Director for the seed', () => {
    const [f] = checkEtcdMembership(voters(2));
    expect(formatFinding(f!)).toMatch(/Fix: add a third etcd member .*docs\/bacula\.md/);
  });
});

describe('checkRestAuthentication', () => {
  const base: RestApiConfig = {
    listen: { hosts: ['0.0.0.0'], port: 8008 },
    connect_address: '10.0.0.1:8008',
  };
  const cases: Array<{ name: string; over: Partial<RestApiConfig>; open: boolean }> = [
    { name: 'wildcard, nothing set', over: {}, open: true },
    { name: 'empty host (all addresses)', over: { listen: { hosts: [''], port: 8008 } }, open: true },
    { name: 'a LAN address', over: { listen: { hosts: ['192.168.1.151'], port: 8008 } }, open: true },
    { name: 'IPv6 wildcard', over: { listen: { hosts: ['::'], port: 8008 } }, open: true },
    { name: 'loopback only', over: { listen: { hosts: ['127.0.0.1'], port: 8008 } }, open: false },
    {
      name: 'loopback v4 and v6',
      over: { listen: { hosts: ['127.0.0.1', '::1'], port: 8008 } },
      open: false,
    },
    { name: 'localhost', over: { listen: { hosts: ['localhost'], port: 8008 } }, open: false },
    {
      name: 'loopback and a LAN address',
      over: { listen: { hosts: ['127.0.0.1', '10.0.0.1'], port: 8008 } },
      open: true,
    },
    { name: 'authentication', over: { authentication: { username: 'u', password: 'p' } }, open: false },
    { name: 'allowlist', over: { allowlist: ['10.0.0.0/24'] }, open: false },
    { name: 'empty allowlist', over: { allowlist: [] }, open: true },
    { name: 'members allowlist', over: { allowlist_include_members: true }, open: false },
    {
      name: 'client certificates required',
      over: { certfile: 'c.pem', cafile: 'ca.pem', verify_client: 'required' },
      open: false,
    },
    { name: 'TLS without client certificates', over: { certfile: 'c.pem', cafile: 'ca.pem' }, open: true },
  ];
  for (const c of cases)
    it(c.name, () => {
      const got = checkRestAuthentication({ ...base, ...c.over });
      expect(got.length > 0).toBe(c.open);
      if (c.open) expect(got[0]!.problem).toMatch(/without authentication or allowlist/);
    });
});

describe('checkReplicaLag', () => {
  const c = (over: Parameters<typeof cluster>[0]) =>
    cluster({
      leader: leaderIs('a'),
      members: [
        member('a', { role: 'master', state: 'running', xlog_location: 5000 }),
        member('b', { role: 'replica', state: 'running', replay_lsn: 4990 }),
        member('c', { role: 'replica', state: 'running', replay_lsn: 1000 }),
      ],
      ...over,
    });
  it('flags only the replica beyond maximum_lag_on_failover', () => {
    const got = checkReplicaLag(c({}), 1000);
    expect(got.map((f) => f.problem)).toEqual([expect.stringMatching(/^replica c is 4000 bytes behind/)]);
  });
  it("uses the status key's optime when there is one", () => {
    expect(checkReplicaLag(c({ status: { optime: 6000 } }), 1000)).toHaveLength(2);
  });
  it('nothing without a leader position', () => {
    expect(checkReplicaLag(c({ leader: null }), 0)).toEqual([]);
  });
});

describe('checkStreaming', () => {
  const c = cluster({
    leader: leaderIs('a'),
    members: [
      member('a', { role: 'master', state: 'running' }),
      member('b', { role: 'replica', state: 'running' }),
      member('c', { role: 'replica', state: 'running' }),
      member('d', { role: 'replica', state: 'stopped' }),
    ],
  });
  it('flags running replicas the leader does not stream to', () => {
    const got = checkStreaming(c, [{ application_name: 'b', state: 'streaming' }]);
    expect(got.map((f) => f.problem)).toEqual([expect.stringMatching(/^replica c runs but does not stream/)]);
  });
  it("nothing when the leader's replication is unknown", () => {
    expect(checkStreaming(c, null)).toEqual([]);
  });
});

describe('checkClockSkew', () => {
  it('flags members whose clocks differ beyond the limit and the samples’ error', () => {
    const got = checkClockSkew([
      { member: 'a', offsetMs: 0, errorMs: 600 },
      { member: 'b', offsetMs: 5000, errorMs: 600 },
    ]);
    expect(got[0]?.problem).toMatch(/clocks of b and a differ by at least 3\.8 s/);
  });
  it('tolerates what the samples cannot tell apart', () => {
    expect(
      checkClockSkew([
        { member: 'a', offsetMs: -900, errorMs: 600 },
        { member: 'b', offsetMs: 1500, errorMs: 600 },
      ]),
    ).toEqual([]);
  });
});

describe('checkDebianStartConf', () => {
  const dir = '/var/lib/postgresql/15/main';
  it('flags start.conf saying auto', () => {
    const [f] = checkDebianStartConf(dir, '# comment\nauto\n');
    expect(f?.fix).toMatch(/echo manual > \/etc\/postgresql\/15\/main\/start\.conf/);
  });
  it('manual, disabled, no file, or another layout: nothing', () => {
    expect(checkDebianStartConf(dir, 'manual\n')).toEqual([]);
    expect(checkDebianStartConf(dir, 'disabled')).toEqual([]);
    expect(checkDebianStartConf(dir, null)).toEqual([]);
    expect(checkDebianStartConf('/srv/pg', 'auto')).toEqual([]);
  });
});

describe('checkLogDir', () => {
  it('flags a log directory the agent cannot write', () => {
    expect(checkLogDir('/var/log/pgha', false, 'EACCES')[0]?.problem).toMatch(
      /cannot write its log to \/var\/log\/pgha \(EACCES\)/,
    );
    expect(checkLogDir('/var/log/pgha', true)).toEqual([]);
    expect(checkLogDir(undefined, false)).toEqual([]);
  });
});

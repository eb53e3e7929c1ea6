import { describe, expect, it } from 'vitest';
import { isStreamingMember, shownState } from '../dcs/types.js';
import { memberData, type MemberFacts } from './member.js';
import { primaryStatus, status } from './testing/fixtures.js';

const facts = (over: Partial<MemberFacts> = {}): MemberFacts => ({
  running: true,
  busyState: null,
  previousState: 'running',
  status: status(),
  role: 'replica',
  diverged: null,
  connUrl: 'postgres://127.0.0.1:5433/postgres',
  apiUrl: 'http://127.0.0.1:8009/patroni',
  version: '3.0.2',
  tags: {},
  pause: false,
  scheduledRestart: null,
  ...over,
});

describe('the member key reads as Patroni writes it', () => {
  const cases: Array<[string, Partial<MemberFacts>, Record<string, unknown>, string]> = [
    [
      'primary',
      { role: 'primary', status: primaryStatus() },
      { state: 'running', role: 'master' },
      'running',
    ],
    [
      'streaming replica',
      {},
      { state: 'running', role: 'replica', replication_state: 'streaming' },
      'streaming',
    ],
    [
      'replica without a WAL receiver',
      { status: status({ replicationState: undefined }) },
      { state: 'running', role: 'replica' },
      'running',
    ],
    [
      'replica restoring from the archive',
      { status: status({ replicationState: 'in archive recovery' }) },
      { state: 'running', replication_state: 'in archive recovery' },
      'in archive recovery',
    ],
    [
      'diverged replica',
      { diverged: 'timeline 2 forked at 0/3000000' },
      { state: 'running', replication_state: 'diverged' },
      'diverged',
    ],
    ['stopped', { running: false, status: null }, { state: 'stopped', role: 'replica' }, 'stopped'],
    ['crashed', { running: false, status: null, previousState: 'crashed' }, { state: 'crashed' }, 'crashed'],
    ['starting', { status: null }, { state: 'starting' }, 'starting'],
    [
      'busy',
      { busyState: 'creating replica', status: null },
      { state: 'creating replica' },
      'creating replica',
    ],
  ];
  it.each(cases)('%s', (_name, over, expected, shown) => {
    const data = memberData(facts(over));
    expect(data).toMatchObject(expected);
    expect(shownState(data, data.role === 'master')).toBe(shown);
  });

  it('only a member streaming from its upstream counts as streaming, old and new spellings alike', () => {
    expect(isStreamingMember(memberData(facts()))).toBe(true);
    expect(isStreamingMember({ state: 'streaming' })).toBe(true);
    expect(isStreamingMember(memberData(facts({ diverged: 'forked' })))).toBe(false);
    expect(isStreamingMember(memberData(facts({ status: status({ replicationState: undefined }) })))).toBe(
      false,
    );
    expect(isStreamingMember(memberData(facts({ role: 'primary', status: primaryStatus() })))).toBe(false);
  });
});

/** The recorded state of a session: what replays, what cannot move, and what the server says. */
import { describe, expect, it } from 'vitest';
import { parseMessage } from './protocol.js';
import { SessionRecord, parseIntrospection, splitStatements } from './session-state.js';

const q = (r: SessionRecord, sql: string) => r.clientMessage('Q', Buffer.from(sql + '\0'), false);

describe('splitStatements', () => {
  it('splits at semicolons outside quotes, comments and dollar quotes', () => {
    expect(splitStatements("set a = 1; select 'x;y'; -- c;\nselect $f$ ; $f$; /* ; */ select 2;")).toEqual([
      'set a = 1',
      "select 'x;y'",
      '-- c;\nselect $f$ ; $f$',
      '/* ; */ select 2',
    ]);
  });
});

describe('SessionRecord', () => {
  it("records Bacula's settings for replay, last value wins, in order", () => {
    const r = new SessionRecord();
    q(r, "SET datestyle TO 'ISO, YMD'");
    q(r, 'SET cursor_tuple_fraction=1');
    q(r, 'SET standard_conforming_strings=on');
    q(r, 'SET cursor_tuple_fraction=0.5');
    q(r, 'SET LOCAL work_mem = 1000');
    q(r, 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE');
    expect(r.replay().queries).toEqual([
      "SET datestyle TO 'ISO, YMD'",
      'SET standard_conforming_strings=on',
      'SET cursor_tuple_fraction=0.5',
    ]);
    q(r, 'RESET datestyle');
    q(r, 'set time zone utc; set search_path to a, b');
    expect([...r.settings.keys()]).toEqual([
      'standard_conforming_strings',
      'cursor_tuple_fraction',
      'timezone',
      'search_path',
    ]);
    q(r, "SELECT pg_catalog.set_config('search_path', '', false)");
    expect(r.settings.get('search_path')).toBe("SELECT pg_catalog.set_config('search_path', '', false)");
    q(r, 'RESET ALL');
    expect(r.replay().queries).toEqual([]);
    expect(r.unmovable()).toBeNull();
  });

  it('records prepared statements, SQL and protocol ones', () => {
    const r = new SessionRecord();
    q(r, 'PREPARE q1 (int) AS SELECT $1');
    const p = parseMessage('s2', 'select $1::text', [25]);
    r.clientMessage('P', p.subarray(5), false);
    expect(r.replay()).toEqual({
      queries: ['PREPARE q1 (int) AS SELECT $1'],
      parses: [{ name: 's2', query: 'select $1::text', types: [25] }],
    });
    q(r, 'DEALLOCATE q1');
    r.clientMessage('C', Buffer.from('Ss2\0'), false);
    expect(r.replay()).toEqual({ queries: [], parses: [] });
  });

  it.each([
    ['CREATE TEMP TABLE t (a int)', 'temporary tables'],
    ['create global temporary table t (a int)', 'temporary tables'],
    ['LISTEN jobs', 'LISTEN'],
    ['SELECT pg_advisory_lock(42)', 'session advisory locks'],
    ['select pg_try_advisory_lock_shared(1, 2)', 'session advisory locks'],
    ['DECLARE c CURSOR WITH HOLD FOR SELECT 1', 'WITH HOLD cursors'],
    ['select set_config(name, setting, false) from pg_settings', 'set_config with computed arguments'],
  ])('%s cannot move: %s', (sql, reason) => {
    const r = new SessionRecord();
    q(r, sql);
    expect(r.unmovable()).toBe(reason);
  });

  it('forgets what was undone', () => {
    const r = new SessionRecord();
    q(r, 'LISTEN a; UNLISTEN a; SELECT pg_advisory_xact_lock(1)');
    q(r, 'DECLARE c CURSOR WITH HOLD FOR SELECT 1; CLOSE c');
    expect(r.unmovable()).toBeNull();
    q(r, 'SELECT pg_advisory_lock(1); CREATE TEMP TABLE t (); LISTEN x');
    q(r, 'DISCARD ALL');
    expect(r.unmovable()).toBeNull();
  });

  it('cannot trust a state-changing statement longer than it could read', () => {
    const r = new SessionRecord();
    r.clientMessage('Q', Buffer.from('SET application_name = ' + 'x'.repeat(100)), true);
    expect(r.unmovable()).toMatch(/longer than/);
  });

  it('takes the state read from the server over the recorded one', () => {
    const r = new SessionRecord();
    q(r, 'CREATE TEMP TABLE t ()');
    r.fromIntrospection(
      parseIntrospection([
        [
          ['DateStyle', 'ISO, YMD'],
          ['search_path', '"$user", public'],
        ],
        [
          ['q1', 'PREPARE q1 AS SELECT 1', 't', '{}'],
          ['s2', 'select $1', 'f', '{23}'],
        ],
        [['0', '0', '0', '0']],
      ]),
    );
    expect(r.unmovable()).toBeNull();
    expect(r.replay()).toEqual({
      queries: [
        "SELECT pg_catalog.set_config('DateStyle', 'ISO, YMD', false)",
        "SELECT pg_catalog.set_config('search_path', '\"$user\", public', false)",
        'PREPARE q1 AS SELECT 1',
      ],
      parses: [{ name: 's2', query: 'select $1', types: [23] }],
    });
    r.fromIntrospection(parseIntrospection([[], [], [['0', '1', '0', '0']]]));
    expect(r.unmovable()).toBe('LISTEN');
  });
});

/**
 * The JavaScript tracker (the twin of native/relay.c's): message boundaries, transaction status,
 * sync points, COPY, the reports of state-changing statements, and a shutdown FATAL kept back —
 * however the bytes are cut.
 */
import { describe, expect, it } from 'vitest';
import {
  errorResponse,
  message,
  parameterStatus,
  parseMessage,
  queryMessage,
  readyForQuery,
  syncMessage,
} from './protocol.js';
import { WireTracker, sqlMatters } from './tracker.js';

const cs = (s: string) => Buffer.from(s + '\0');

function tracker() {
  const reports: Array<[string, string]> = [];
  const params: string[] = [];
  const t = new WireTracker({
    client: (type, body) => reports.push([type, body.toString('latin1').replace(/\0/g, '|')]),
    server: (_type, body) => params.push(body.toString().replace(/\0/g, '=').slice(0, -1)),
  });
  return { t, reports, params };
}

/** Feeds `buf` to `fn` in pieces of `size` bytes; returns what came out. */
function inPieces(buf: Buffer, size: number, fn: (b: Buffer) => Buffer[] | void): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) {
    const r = fn(buf.subarray(i, i + size));
    if (r) out.push(...r);
  }
  return Buffer.concat(out);
}

const ROWS = Buffer.concat([
  message('T', Buffer.from([0, 0])),
  message('D', Buffer.from([0, 0])),
  message('C', cs('SELECT 1')),
]);

describe('sqlMatters', () => {
  it.each([
    ['SET datestyle TO iso', true],
    ['  /* c */ -- x\n set x = 1', true],
    ['select 1', false],
    ["select 'a;b'", false],
    ['select 1; select 2', true],
    ['select 1;  ', false],
    ['SELECT pg_advisory_lock(1)', true],
    ["select 'advisory'", false],
    ["SELECT pg_catalog.set_config('search_path', '', false)", true],
    ['CREATE TEMP TABLE t (a int)', true],
    ['LISTEN ch', true],
    ['DECLARE c CURSOR WITH HOLD FOR SELECT 1', true],
    ['INSERT INTO t VALUES (1)', false],
    ['(select 1)', false],
  ])('%s → %s', (sql, want) => expect(sqlMatters(Buffer.from(sql))).toBe(want));
});

describe('WireTracker', () => {
  it('follows sync points and the transaction status through split reads', () => {
    for (const size of [1, 2, 3, 7, 1000]) {
      const { t, reports } = tracker();
      const q = Buffer.concat([queryMessage('BEGIN'), queryMessage('SET x = 1')]);
      inPieces(q, size, (b) => t.client(b));
      expect(t.pendingSync).toBe(2);
      expect(reports).toEqual([['Q', 'SET x = 1|']]);
      const answer = Buffer.concat([
        message('C', cs('BEGIN')),
        readyForQuery('T'),
        message('C', cs('SET')),
        readyForQuery('T'),
      ]);
      const out = inPieces(answer, size, (b) => t.server(b).out);
      expect(out).toEqual(answer);
      expect(t.pendingSync).toBe(0);
      expect(t.status).toBe('T');
      expect(t.idleBoundary()).toBe(false);
      t.client(queryMessage('COMMIT'));
      t.server(Buffer.concat([message('C', cs('COMMIT')), readyForQuery('I')]));
      expect(t.idleBoundary()).toBe(true);
    }
  });

  it('counts an extended-protocol batch until its Sync is answered; reports named statements', () => {
    const { t, reports } = tracker();
    t.client(
      Buffer.concat([
        parseMessage('s1', 'select $1', [23]),
        message('B', Buffer.alloc(8)),
        message('E', Buffer.alloc(5)),
      ]),
    );
    expect(t.unsynced).toBe(true);
    expect(t.idleBoundary()).toBe(false);
    t.client(syncMessage());
    expect(t.state(false)).toMatchObject({ pendingSync: 1, unsynced: false });
    t.server(Buffer.concat([message('1', Buffer.alloc(0)), ROWS, readyForQuery('I')]));
    expect(t.idleBoundary()).toBe(true);
    expect(reports.map((r) => r[0])).toEqual(['P']);
    t.client(message('C', Buffer.from('Ss1\0')));
    expect(reports.map((r) => r[0])).toEqual(['P', 'C']);
  });

  it('knows a COPY is under way until ReadyForQuery', () => {
    const { t } = tracker();
    t.client(queryMessage('COPY t FROM STDIN'));
    t.server(message('G', Buffer.from([0, 0, 0])));
    expect(t.copy).toBe(true);
    t.client(Buffer.concat([message('d', Buffer.from('1\n')), message('c', Buffer.alloc(0))]));
    t.server(Buffer.concat([message('C', cs('COPY 1')), readyForQuery('I')]));
    expect(t.copy).toBe(false);
    expect(t.idleBoundary()).toBe(true);
  });

  it('keeps a shutdown FATAL back from the client, however it is cut, and passes other errors', () => {
    const fatal = errorResponse('57P01', 'terminating connection due to administrator command');
    for (const size of [1, 4, 5, 6, 100]) {
      const { t } = tracker();
      const stream = Buffer.concat([ROWS, readyForQuery('I'), fatal]);
      let lost: Buffer | null = null;
      const out = inPieces(stream, size, (b) => {
        const r = t.server(b);
        if (r.lost) lost = r.lost.kept;
        return r.out;
      });
      expect(out).toEqual(Buffer.concat([ROWS, readyForQuery('I')]));
      expect(lost).toEqual(fatal);
    }
    const { t } = tracker();
    const err = errorResponse('42P01', 'relation "x" does not exist', 'ERROR');
    const r = t.server(Buffer.concat([err, readyForQuery('I')]));
    expect(r.lost).toBeNull();
    expect(Buffer.concat(r.out)).toEqual(Buffer.concat([err, readyForQuery('I')]));
    const idle = errorResponse('57P05', 'terminating connection due to idle-session timeout');
    expect(t.server(idle).lost).toBeNull();
    expect(t.fatal).toBe(true);
  });

  it('reports ParameterStatus', () => {
    const { t, params } = tracker();
    t.server(parameterStatus('DateStyle', 'ISO, YMD'));
    expect(params).toEqual(['DateStyle=ISO, YMD']);
  });

  it('gives up on a length that cannot be', () => {
    const { t } = tracker();
    t.client(Buffer.from([0x51, 0, 0, 0, 1]));
    expect(t.broken).toBe(true);
    expect(t.state(false).broken).toBe(true);
  });
});

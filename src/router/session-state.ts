/**
 * What a client session carries beyond its transactions, as the router records it, so it can be
 * rebuilt on another server: its startup parameters, `SET` values, named prepared statements, and
 * the state that cannot move (temporary tables, `LISTEN`, session advisory locks, `WITH HOLD`
 * cursors). Pure: fed with the client statements the data path reports (tracker.ts, relay.c) and,
 * on a switchover, with the exact state read from the old server (`INTROSPECTION`).
 *
 * The statements reported are the rare ones that may change session state (their first keyword,
 * a second statement after `;`, an advisory lock or set_config call); everything else never
 * reaches here. Recorded state is a best effort where the client changes state in ways no
 * statement shows (a function that calls set_config, say); a switchover reads the real state
 * instead, and a failover replays what was recorded.
 */
import { CAPTURE_MAX } from './tracker.js';

/** A named prepared statement to recreate. */
export type PreparedStatement =
  /** PREPARE name AS ... (SQL): replayed as that statement. */
  | { kind: 'sql'; text: string }
  /** A named Parse message (protocol): replayed as one. */
  | { kind: 'protocol'; query: string; types: number[] };

/** The statements of a simple Query, split at `;` outside quotes, comments and dollar quotes. */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      const close = sql.indexOf(c, i + 1);
      i = close < 0 ? n : close + 1;
      continue;
    }
    if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? n : nl + 1;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
      continue;
    }
    if (c === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (m) {
        const end = sql.indexOf(m[0], i + m[0].length);
        i = end < 0 ? n : end + m[0].length;
        continue;
      }
    }
    if (c === ';') {
      const s = sql.slice(start, i).trim();
      if (s) out.push(s);
      start = i + 1;
    }
    i++;
  }
  const s = sql.slice(start).trim();
  if (s) out.push(s);
  return out;
}

/** The text without leading comments and whitespace. */
function stripLeading(sql: string): string {
  let s = sql;
  for (;;) {
    const t = s.replace(/^[\s(]+/, '');
    if (t.startsWith('--')) {
      const nl = t.indexOf('\n');
      s = nl < 0 ? '' : t.slice(nl + 1);
      continue;
    }
    if (t.startsWith('/*')) {
      const end = t.indexOf('*/');
      s = end < 0 ? '' : t.slice(end + 2);
      continue;
    }
    return t;
  }
}

/** An identifier as PostgreSQL folds it: unquoted lower-cased, quoted kept. */
function ident(raw: string): string {
  return raw.startsWith('"') ? raw.slice(1, -1).replaceAll('""', '"') : raw.toLowerCase();
}

const IDENT = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$.]*)`;

/** The recorded state of one client session. */
export class SessionRecord {
  /** `SET` statements (and set_config calls, LOAD) to replay, by parameter, in order. */
  readonly settings = new Map<string, string>();
  readonly prepared = new Map<string, PreparedStatement>();
  /** ParameterStatus values the client was told. */
  readonly serverParams = new Map<string, string>();
  private temp = false;
  private readonly listening = new Set<string>();
  private advisory = false;
  private readonly holdCursors = new Set<string>();
  /** Why the recorded state cannot be trusted (a statement too long to read, say); null when it can. */
  unknown: string | null = null;

  /** What stops the session from moving with this state, or null. */
  unmovable(): string | null {
    if (this.temp) return 'temporary tables';
    if (this.listening.size > 0) return 'LISTEN';
    if (this.advisory) return 'session advisory locks';
    if (this.holdCursors.size > 0) return 'WITH HOLD cursors';
    return this.unknown;
  }

  /** A client message the data path reported: Query (`Q`), Parse (`P`) or Close (`C`), body only. */
  clientMessage(type: string, body: Buffer, truncated: boolean): void {
    if (type === 'C') {
      if (body[0] === 0x53) this.prepared.delete(body.toString('utf8', 1, Math.max(1, body.indexOf(0, 1))));
      return;
    }
    let sql: string;
    if (type === 'P') {
      const nameEnd = body.indexOf(0);
      const queryEnd = body.indexOf(0, nameEnd + 1);
      if (nameEnd < 0 || queryEnd < 0) {
        if (truncated) this.unknown = `a Parse message longer than ${CAPTURE_MAX} bytes`;
        return;
      }
      const name = body.toString('utf8', 0, nameEnd);
      sql = body.toString('utf8', nameEnd + 1, queryEnd);
      if (name !== '') {
        const types: number[] = [];
        let pos = queryEnd + 1;
        const count = pos + 2 <= body.length ? body.readInt16BE(pos) : 0;
        pos += 2;
        for (let i = 0; i < count && pos + 4 <= body.length; i++, pos += 4)
          types.push(body.readUInt32BE(pos));
        this.prepared.set(name, { kind: 'protocol', query: sql, types });
      }
    } else if (type === 'Q') {
      const end = body.indexOf(0);
      sql = body.toString('utf8', 0, end < 0 ? body.length : end);
      if (truncated && end < 0) {
        this.unknown = `a statement longer than ${CAPTURE_MAX} bytes that may change session state`;
        return;
      }
    } else {
      return;
    }
    for (const stmt of splitStatements(sql)) this.statement(stmt);
  }

  /** One statement that ran (or will run) in the session. */
  statement(text: string): void {
    const s = stripLeading(text);
    const word = /^[A-Za-z]+/.exec(s)?.[0].toUpperCase() ?? '';
    switch (word) {
      case 'SET':
        return this.set(s);
      case 'RESET':
        return this.reset(s);
      case 'PREPARE': {
        const m = new RegExp(`^PREPARE\\s+(${IDENT})`, 'i').exec(s);
        if (m) this.prepared.set(ident(m[1]!), { kind: 'sql', text: s });
        return;
      }
      case 'DEALLOCATE': {
        const m = new RegExp(`^DEALLOCATE\\s+(?:PREPARE\\s+)?(${IDENT})`, 'i').exec(s);
        if (!m) return;
        if (m[1]!.toUpperCase() === 'ALL') this.prepared.clear();
        else this.prepared.delete(ident(m[1]!));
        return;
      }
      case 'LISTEN': {
        const m = new RegExp(`^LISTEN\\s+(${IDENT})`, 'i').exec(s);
        if (m) this.listening.add(ident(m[1]!));
        return;
      }
      case 'UNLISTEN': {
        const m = new RegExp(`^UNLISTEN\\s+(\\*|${IDENT})`, 'i').exec(s);
        if (!m) return;
        if (m[1] === '*') this.listening.clear();
        else this.listening.delete(ident(m[1]!));
        return;
      }
      case 'CREATE':
        if (/^CREATE\s+(?:OR\s+REPLACE\s+)?(?:(?:GLOBAL|LOCAL)\s+)?(?:TEMP|TEMPORARY)\b/i.test(s))
          this.temp = true;
        return;
      case 'DECLARE': {
        const m = new RegExp(`^DECLARE\\s+(${IDENT})`, 'i').exec(s);
        const head = s.replace(/\bFOR\b[\s\S]*$/i, '');
        if (m && /\bWITH\s+HOLD\b/i.test(head)) this.holdCursors.add(ident(m[1]!));
        return;
      }
      case 'CLOSE': {
        const m = new RegExp(`^CLOSE\\s+(${IDENT})`, 'i').exec(s);
        if (!m) return;
        if (m[1]!.toUpperCase() === 'ALL') this.holdCursors.clear();
        else this.holdCursors.delete(ident(m[1]!));
        return;
      }
      case 'DISCARD': {
        const what = /^DISCARD\s+(\w+)/i.exec(s)?.[1]?.toUpperCase();
        if (what === 'ALL') {
          this.settings.clear();
          this.prepared.clear();
          this.listening.clear();
          this.holdCursors.clear();
          this.temp = false;
          this.advisory = false;
        } else if (what === 'TEMP' || what === 'TEMPORARY') this.temp = false;
        return;
      }
      case 'LOAD':
        this.remember(`load ${s}`, s);
        return;
      case 'DO':
        if (/\bCREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:TEMP|TEMPORARY)\b/i.test(s)) this.temp = true;
        if (/\bLISTEN\b/i.test(s)) this.listening.add('(in a DO block)');
        if (/\bset_config\s*\(/i.test(s)) this.unknown = 'set_config in a DO block';
        break;
      default:
        break;
    }
    this.functionCalls(s);
  }

  /** Advisory locks and set_config calls anywhere in a statement. */
  private functionCalls(s: string): void {
    if (/\bpg_(?:try_)?advisory_lock(?:_shared)?\s*\(/i.test(s)) this.advisory = true;
    if (/\bpg_advisory_unlock_all\s*\(/i.test(s)) this.advisory = false;
    const calls = [...s.matchAll(/\bset_config\s*\(/gi)];
    for (const call of calls) {
      const m = /^set_config\s*\(\s*'((?:[^']|'')*)'\s*,\s*'((?:[^']|'')*)'\s*,\s*(true|false)\s*\)/i.exec(
        s.slice(call.index),
      );
      if (!m) {
        this.unknown = 'set_config with computed arguments';
        continue;
      }
      if (m[3]!.toLowerCase() === 'true') continue; // local to the transaction
      const name = m[1]!.replaceAll("''", "'").toLowerCase();
      this.remember(name, `SELECT pg_catalog.set_config('${m[1]!}', '${m[2]!}', false)`);
    }
  }

  private remember(key: string, statement: string): void {
    this.settings.delete(key); // keeps the replay in the order the client set things
    this.settings.set(key, statement);
  }

  private set(s: string): void {
    const rest = s.replace(/^SET\s+/i, '');
    if (/^LOCAL\b/i.test(rest)) return; // ends with the transaction
    const body = rest.replace(/^SESSION\s+(?!AUTHORIZATION\b|CHARACTERISTICS\b)/i, '');
    if (/^(TRANSACTION|CONSTRAINTS)\b/i.test(body)) return; // this transaction only
    let key: string;
    if (/^TIME\s+ZONE\b/i.test(body)) key = 'timezone';
    else if (/^SCHEMA\b/i.test(body)) key = 'search_path';
    else if (/^NAMES\b/i.test(body)) key = 'client_encoding';
    else if (/^ROLE\b/i.test(body)) key = 'role';
    else if (/^SESSION\s+AUTHORIZATION\b/i.test(body)) key = 'session_authorization';
    else if (/^SESSION\s+CHARACTERISTICS\b/i.test(body)) key = 'session characteristics';
    else {
      const m = new RegExp(`^(${IDENT})`).exec(body);
      if (!m) return;
      key = ident(m[1]!);
    }
    this.remember(key, s);
  }

  private reset(s: string): void {
    const body = s.replace(/^RESET\s+/i, '');
    if (/^ALL\b/i.test(body)) {
      this.settings.clear();
      return;
    }
    let key: string;
    if (/^TIME\s+ZONE\b/i.test(body)) key = 'timezone';
    else if (/^SESSION\s+AUTHORIZATION\b/i.test(body)) key = 'session_authorization';
    else key = ident(new RegExp(`^(${IDENT})`).exec(body)?.[1] ?? '');
    this.settings.delete(key);
  }

  /** ParameterStatus the client received. */
  serverParam(name: string, value: string): void {
    this.serverParams.set(name, value);
  }

  /**
   * Replaces the recorded state with the state read from the server (`INTROSPECTION`'s rows):
   * exact where recording guesses.
   */
  fromIntrospection(seen: Introspected): void {
    this.settings.clear();
    for (const [name, value] of seen.settings)
      this.settings.set(name, `SELECT pg_catalog.set_config(${literal(name)}, ${literal(value)}, false)`);
    this.prepared.clear();
    for (const p of seen.prepared) this.prepared.set(p.name, p.statement);
    this.temp = seen.temp;
    this.listening.clear();
    if (seen.listen) this.listening.add('(read from the server)');
    this.advisory = seen.advisory;
    this.holdCursors.clear();
    if (seen.holdCursors) this.holdCursors.add('(read from the server)');
    this.unknown = null;
  }

  /** The statements that rebuild the session on a new server, in order; protocol Parses last. */
  replay(): { queries: string[]; parses: Array<{ name: string; query: string; types: number[] }> } {
    const queries = [...this.settings.values()];
    const parses: Array<{ name: string; query: string; types: number[] }> = [];
    for (const [name, p] of this.prepared) {
      if (p.kind === 'sql') queries.push(p.text);
      else parses.push({ name, query: p.query, types: p.types });
    }
    return { queries, parses };
  }
}

/** A SQL string literal. */
export function literal(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/** What `INTROSPECTION` read from a session's own server. */
export interface Introspected {
  /** Parameters the session SET (source `session`), with their values. */
  settings: Array<[string, string]>;
  prepared: Array<{ name: string; statement: PreparedStatement }>;
  temp: boolean;
  listen: boolean;
  advisory: boolean;
  holdCursors: boolean;
}

/**
 * Run on an idle session's own server connection before it moves: its settings, prepared
 * statements, and whatever cannot move. Three result sets, schema-qualified so a client's
 * search_path cannot change what they mean.
 */
export const INTROSPECTION = [
  "SELECT name, pg_catalog.current_setting(name) FROM pg_catalog.pg_settings WHERE source = 'session' ORDER BY name",
  'SELECT name, statement, from_sql, parameter_types::pg_catalog.oid[]::pg_catalog.text FROM pg_catalog.pg_prepared_statements',
  'SELECT (SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema()), ' +
    '(SELECT count(*) FROM pg_catalog.pg_listening_channels()), ' +
    "(SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()), " +
    '(SELECT count(*) FROM pg_catalog.pg_cursors WHERE is_holdable)',
].join('; ');

/** Reads `INTROSPECTION`'s three result sets (rows of text columns). */
export function parseIntrospection(results: Array<Array<Array<string | null>>>): Introspected {
  const [settings = [], prepared = [], counts = []] = results;
  const n = (v: string | null | undefined) => Number(v ?? 0) > 0;
  const row = counts[0] ?? [];
  return {
    settings: settings
      // role and session_authorization come back through their own SET forms; the rest as values.
      .filter((r) => r[0] !== null && r[1] !== null)
      .map((r) => [r[0]!, r[1]!] as [string, string]),
    prepared: prepared
      .filter((r) => r[0] !== null && r[1] !== null)
      .map((r) => ({
        name: r[0]!,
        statement:
          r[2] === 't'
            ? ({ kind: 'sql', text: r[1]! } as const)
            : ({
                kind: 'protocol',
                query: r[1]!,
                types: (r[3] ?? '{}')
                  .replace(/[{}]/g, '')
                  .split(',')
                  .filter((x) => x !== '')
                  .map(Number),
              } as const),
      })),
    temp: n(row[0]),
    listen: n(row[1]),
    advisory: n(row[2]),
    holdCursors: n(row[3]),
  };
}

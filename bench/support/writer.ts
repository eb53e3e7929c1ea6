/**
 * The client side of the benchmarks: one connection that inserts one row per iteration
 * (autocommit), reconnects after any error, and records every acknowledged id with the time the
 * server's acknowledgement arrived. From that record: the longest gap between consecutive
 * acknowledged writes around an event, and which acknowledged ids the final primary lacks.
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { sleep } from './util.js';

export interface Target {
  host: string;
  port: number;
}

export interface WriterOptions {
  /**
   * Where to connect. One target: a proxy or router, used as it is. Several: libpq-style multi-host
   * (`target_session_attrs=read-write`): try each in turn, keep the first that is not in recovery.
   */
  targets: Target[];
  user: string;
  password: string;
  database?: string;
  /** Pause between writes in ms; 0 writes as fast as the round trip allows. */
  intervalMs: number;
  /** Pause after an error before reconnecting. */
  backoffMs?: number;
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
}

export interface Ack {
  id: number;
  /** performance.now() when the acknowledgement arrived. */
  at: number;
  /** inet_server_port() of the connection: tells which node took the write. */
  serverPort: number;
}

export const BENCH_TABLE_SQL =
  'CREATE TABLE IF NOT EXISTS bench_writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now())';
// Each write says which server took it: a router may move the session to another server without
// the client reconnecting, so the port seen at connect time is not enough.
const INSERT_SQL = 'INSERT INTO bench_writes(id) VALUES ($1) RETURNING inet_server_port() AS port';

export class Writer {
  readonly acks: Ack[] = [];
  readonly errors: { at: number; message: string }[] = [];
  private stopped = false;
  private loop: Promise<void> | null = null;
  private client: pg.Client | null = null;
  private nextId = 1;
  private preferred = 0;

  constructor(private readonly opts: WriterOptions) {}

  start(): void {
    if (this.loop) throw new Error('writer already started');
    this.loop = this.run();
  }

  /** Stops after the write in flight and closes the connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.drop();
  }

  /** Resolves once `count` more writes were acknowledged (or rejects after `timeoutMs`). */
  async waitForAcks(count: number, timeoutMs: number): Promise<void> {
    const target = this.acks.length + count;
    const deadline = Date.now() + timeoutMs;
    while (this.acks.length < target) {
      if (Date.now() > deadline) {
        const last = this.errors.at(-1)?.message ?? 'no error';
        throw new Error(
          `writer: ${count} writes not acknowledged within ${timeoutMs} ms (last error: ${last})`,
        );
      }
      await sleep(20);
    }
  }

  private async run(): Promise<void> {
    const backoff = this.opts.backoffMs ?? 30;
    let due = performance.now();
    while (!this.stopped) {
      try {
        this.client ??= await this.connect();
        const id = this.nextId++;
        const r = await this.client.query<{ port: number }>(INSERT_SQL, [id]);
        this.acks.push({ id, at: performance.now(), serverPort: r.rows[0]?.port ?? this.serverPort });
      } catch (e) {
        this.errors.push({ at: performance.now(), message: e instanceof Error ? e.message : String(e) });
        await this.drop();
        await sleep(backoff);
        due = performance.now();
        continue;
      }
      if (this.opts.intervalMs > 0) {
        due = Math.max(due + this.opts.intervalMs, performance.now());
        await sleep(due - performance.now());
      }
    }
  }

  private serverPort = 0;

  private async connect(): Promise<pg.Client> {
    const { targets } = this.opts;
    const multi = targets.length > 1;
    let lastError: unknown = null;
    for (let k = 0; k < targets.length; k++) {
      const i = (this.preferred + k) % targets.length;
      const t = targets[i]!;
      const client = new pg.Client({
        host: t.host,
        port: t.port,
        user: this.opts.user,
        password: this.opts.password,
        database: this.opts.database ?? 'postgres',
        connectionTimeoutMillis: this.opts.connectTimeoutMs ?? 2000,
        query_timeout: this.opts.queryTimeoutMs ?? 5000,
      });
      client.on('error', () => undefined);
      try {
        await client.connect();
        const r = await client.query<{ port: number; ro: boolean }>(
          'SELECT inet_server_port() AS port, pg_is_in_recovery() AS ro',
        );
        const row = r.rows[0]!;
        if (multi && row.ro) throw new Error(`${t.host}:${t.port} is in recovery`);
        this.serverPort = row.port;
        this.preferred = i;
        return client;
      } catch (e) {
        lastError = e;
        await client.end().catch(() => undefined);
      }
    }
    throw lastError instanceof Error ? lastError : new Error('no target accepted the connection');
  }

  private async drop(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (c) await c.end().catch(() => undefined);
  }
}

export interface GapReport {
  /** Longest time between two consecutive acknowledged writes ending after the event, ms. */
  longestGapMs: number;
  /** From the event to the last acknowledged write on `oldPrimaryPort` (negative: none after it), ms. */
  eventToLastOldPrimaryWriteMs: number | null;
  /** From the event to the first acknowledged write on `newPrimaryPort`, ms. */
  eventToFirstNewPrimaryWriteMs: number | null;
  /** Median time between acknowledged writes before the event (the writer's resolution), ms. */
  baselineIntervalMs: number;
  acked: number;
  errors: number;
}

/** Analyses the acknowledgements around an event at `eventAt` (performance.now()). */
export function analyse(
  writer: Writer,
  eventAt: number,
  oldPrimaryPort: number,
  newPrimaryPort: number,
): GapReport {
  const acks = writer.acks;
  let longest = 0;
  for (let i = 1; i < acks.length; i++) {
    if (acks[i]!.at < eventAt) continue;
    longest = Math.max(longest, acks[i]!.at - acks[i - 1]!.at);
  }
  const first = acks.find((a) => a.at >= eventAt && a.serverPort === newPrimaryPort);
  const lastOld = acks.findLast((a) => a.serverPort === oldPrimaryPort);
  const before = acks.filter((a) => a.at < eventAt);
  const intervals = before.slice(1).map((a, i) => a.at - before[i]!.at);
  intervals.sort((a, b) => a - b);
  return {
    longestGapMs: longest,
    eventToLastOldPrimaryWriteMs: lastOld ? lastOld.at - eventAt : null,
    eventToFirstNewPrimaryWriteMs: first ? first.at - eventAt : null,
    baselineIntervalMs: intervals[Math.floor(intervals.length / 2)] ?? 0,
    acked: acks.length,
    errors: writer.errors.filter((e) => e.at >= eventAt).length,
  };
}

/** Acknowledged ids missing on the node at `target` (which must be the final primary). */
export async function lostAcks(
  writer: Writer,
  target: Target,
  user: string,
  password: string,
): Promise<number[]> {
  const client = new pg.Client({
    ...target,
    user,
    password,
    database: 'postgres',
    connectionTimeoutMillis: 5000,
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const ids = writer.acks.map((a) => a.id);
    const r = await client.query<{ id: string }>('SELECT id FROM bench_writes WHERE id = ANY($1::bigint[])', [
      ids,
    ]);
    const present = new Set(r.rows.map((row) => Number(row.id)));
    return ids.filter((id) => !present.has(id));
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Runs one statement on `target` (creates the bench table before the writer starts). */
export async function execOn(target: Target, user: string, password: string, sql: string): Promise<void> {
  const client = new pg.Client({
    ...target,
    user,
    password,
    database: 'postgres',
    connectionTimeoutMillis: 5000,
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

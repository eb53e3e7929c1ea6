/**
 * What runs against the cluster during a chaos run, all inside the runner process:
 *
 * - `RouterWriter`: one client through the router, inserting one numbered row at a time
 *   (autocommit), reconnecting after any error, recording every attempt and its outcome.
 * - `WriteSampler`: a tiny write straight on every node's PostgreSQL every ~200 ms, to see which
 *   nodes accept writes at each moment, whatever the router does.
 * - `HealthMonitor`: the cluster as etcd shows it, and each etcd member's health, twice a second.
 *
 * The writer never cancels a write: PostgreSQL answers a cancelled wait for synchronous replication
 * with a warning and a *successful* commit, so a cancel would turn an unreplicated commit into an
 * acknowledgement (`statement_timeout` does not apply to that wait). It abandons a write only by
 * closing the connection after a client-side timeout, and the write then counts as unknown. The
 * sampler does cancel a probe stuck for its timeout (so probes never pile up on a primary whose
 * synchronous standby is gone), and classes a commit that came back with that warning as `local`.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import pg from 'pg';
import type { NetCluster } from '../test/support/netns-cluster.js';
import { NET_PORTS } from '../test/support/netns-cluster.js';
import type { HealthSample, ProbeRecord, WriteRecord } from './checker.js';
import { shownState } from '../src/dcs/types.js';

export const WRITES_TABLE = 'chaos_writes';
export const PROBES_TABLE = 'chaos_probes';

/** The tables the run writes into (created on the leader before the workload starts). */
export const SCHEMA_SQL = [
  `CREATE TABLE IF NOT EXISTS ${WRITES_TABLE} (id bigint PRIMARY KEY, node text, written_at timestamptz)`,
  `CREATE TABLE IF NOT EXISTS ${PROBES_TABLE} (n bigserial PRIMARY KEY, node text, written_at timestamptz)`,
];

const SYNC_CANCELLED = /cancel+ing (the )?wait for synchronous replication/i;

export interface Credentials {
  user: string;
  password: string;
  database: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** `p`, or a rejection after `ms` (the timer is cleared either way). */
async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Ends a client without waiting long for a peer that may never answer. */
async function closeClient(c: pg.Client): Promise<void> {
  await withTimeout(c.end(), 1500, 'closing').catch(() => undefined);
  (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/** Sends a CancelRequest for `c`'s session, as libpq does (a fresh connection, 16 bytes). */
async function cancelQuery(c: pg.Client, host: string, port: number): Promise<void> {
  const { processID, secretKey } = c as unknown as { processID: number | null; secretKey: number | null };
  if (processID === null || secretKey === null) return;
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(80877102, 4);
  packet.writeInt32BE(processID, 8);
  packet.writeInt32BE(secretKey, 12);
  const s = connect(port, host);
  s.on('error', () => undefined);
  s.setTimeout(1000, () => s.destroy());
  s.end(packet);
  s.resume();
  // once() rejects on 'error' (a reset from a server going away): the cancel is best effort.
  await once(s, 'close').catch(() => undefined);
}

/** The timeline in the first 8 hex digits of a WAL file name. */
function timelineOf(walFile: string | undefined): number | undefined {
  const tl = walFile ? Number.parseInt(walFile.slice(0, 8), 16) : Number.NaN;
  return Number.isFinite(tl) ? tl : undefined;
}

export interface WriterOptions extends Credentials {
  host: string;
  port: number;
  /** Pause between writes. */
  intervalMs: number;
  /** The router makes new connections wait for a primary; give it time. */
  connectTimeoutMs: number;
  /** Client-side: a write unanswered this long is abandoned (its outcome stays unknown). */
  queryTimeoutMs: number;
  /** Maps `inet_server_addr()` to a node name. */
  nodeOf(address: string): string;
}

/** One sequential client writing numbered rows through the router. */
export class RouterWriter {
  readonly writes: WriteRecord[] = [];
  connectErrors = 0;
  lastError = '';
  private stopped = false;
  private loop: Promise<void> | null = null;
  private client: pg.Client | null = null;
  private nextId = 1;
  private syncCancelled = false;

  constructor(private readonly opts: WriterOptions) {}

  /** Starts writing in the background. */
  start(): void {
    this.loop ??= this.run();
  }

  /** Stops after the write in flight and closes the connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    if (this.client) await closeClient(this.client);
    this.client = null;
  }

  /** The time of the last acknowledged write (0 before the first). */
  lastAckAt(): number {
    return this.writes.findLast((w) => w.outcome === 'ack')?.doneAt ?? 0;
  }

  private async connect(): Promise<pg.Client> {
    const c = new pg.Client({
      host: this.opts.host,
      port: this.opts.port,
      user: this.opts.user,
      password: this.opts.password,
      database: this.opts.database,
      connectionTimeoutMillis: this.opts.connectTimeoutMs,
      query_timeout: this.opts.queryTimeoutMs,
    });
    c.on('error', () => undefined);
    c.on('notice', (n: { message?: string }) => {
      if (SYNC_CANCELLED.test(n.message ?? '')) this.syncCancelled = true;
    });
    try {
      await c.connect();
    } catch (err) {
      await closeClient(c);
      throw err;
    }
    return c;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (!this.client) {
        try {
          this.client = await this.connect();
        } catch (err) {
          this.connectErrors++;
          this.lastError = err instanceof Error ? err.message : String(err);
          await sleep(100);
          continue;
        }
      }
      const id = this.nextId++;
      const sentAt = Date.now();
      this.syncCancelled = false;
      try {
        const r = await this.client.query<{ addr: string; at: number; wal: string }>(
          `INSERT INTO ${WRITES_TABLE} (id, node, written_at) VALUES ($1, inet_server_addr()::text, clock_timestamp())
           RETURNING host(inet_server_addr()) AS addr, extract(epoch FROM written_at)::float8 * 1000 AS at,
                     pg_walfile_name(pg_current_wal_lsn()) AS wal`,
          [id],
        );
        const row = r.rows[0]!;
        this.writes.push({
          id,
          sentAt,
          doneAt: Date.now(),
          outcome: this.syncCancelled ? 'local' : 'ack',
          node: this.opts.nodeOf(row.addr),
          serverAt: Number(row.at),
          timeline: timelineOf(row.wal),
        });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.writes.push({ id, sentAt, doneAt: Date.now(), outcome: 'error', error: message });
        this.lastError = message;
        const c = this.client;
        this.client = null;
        await closeClient(c);
        await sleep(50);
        continue;
      }
      await sleep(this.opts.intervalMs);
    }
  }
}

export interface SamplerTarget {
  node: string;
  host: string;
  port: number;
}

export interface SamplerOptions extends Credentials {
  intervalMs: number;
  /** Connect and statement timeout of a probe. */
  timeoutMs: number;
}

/** A tiny direct write on every node, every `intervalMs`. */
export class WriteSampler {
  readonly probes: ProbeRecord[] = [];
  private stopped = false;
  private loops: Promise<void>[] = [];
  private readonly clients = new Map<string, pg.Client>();

  constructor(
    private readonly targets: SamplerTarget[],
    private readonly opts: SamplerOptions,
  ) {}

  /** Starts one probe loop per node. */
  start(): void {
    if (this.loops.length === 0) this.loops = this.targets.map((t) => this.run(t));
  }

  /** Stops the loops and closes their connections. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    await Promise.all([...this.clients.values()].map((c) => closeClient(c)));
    this.clients.clear();
  }

  private async run(t: SamplerTarget): Promise<void> {
    while (!this.stopped) {
      const started = Date.now();
      this.probes.push(await this.probe(t));
      await sleep(this.opts.intervalMs - (Date.now() - started));
    }
  }

  private async probe(t: SamplerTarget): Promise<ProbeRecord> {
    const sentAt = Date.now();
    let c = this.clients.get(t.node);
    let cancelled = false;
    try {
      if (!c) {
        const fresh = new pg.Client({
          host: t.host,
          port: t.port,
          user: this.opts.user,
          password: this.opts.password,
          database: this.opts.database,
          connectionTimeoutMillis: this.opts.timeoutMs,
          statement_timeout: this.opts.timeoutMs,
          query_timeout: this.opts.timeoutMs * 3,
          application_name: 'pgha-chaos-sampler',
        });
        fresh.on('error', () => undefined);
        try {
          await fresh.connect();
        } catch (err) {
          await closeClient(fresh);
          throw err;
        }
        c = fresh;
        this.clients.set(t.node, c);
      }
      const onNotice = (n: { message?: string }) => {
        if (SYNC_CANCELLED.test(n.message ?? '')) cancelled = true;
      };
      c.on('notice', onNotice);
      const client = c;
      // A commit waiting for a synchronous standby ignores statement_timeout: cancel it by hand.
      const canceller = setTimeout(() => void cancelQuery(client, t.host, t.port), this.opts.timeoutMs);
      try {
        const r = await c.query<{ at: number; wal: string }>(
          `INSERT INTO ${PROBES_TABLE} (node, written_at) VALUES ($1, clock_timestamp())
           RETURNING extract(epoch FROM written_at)::float8 * 1000 AS at, pg_walfile_name(pg_current_wal_lsn()) AS wal`,
          [t.node],
        );
        const row = r.rows[0]!;
        return {
          node: t.node,
          sentAt,
          doneAt: Date.now(),
          outcome: cancelled ? 'local' : 'ok',
          serverAt: Number(row.at),
          timeline: timelineOf(row.wal),
        };
      } finally {
        clearTimeout(canceller);
        c.removeListener('notice', onNotice);
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      // An SQL error from a live server (read-only, shutting down) keeps the session; anything else drops it.
      const sqlState = (err as { code?: unknown }).code;
      const refused = typeof sqlState === 'string' && /^[0-9A-Z]{5}$/.test(sqlState);
      if (c && (!refused || sqlState === '57P01' || sqlState === '57P02' || sqlState === '57P03')) {
        this.clients.delete(t.node);
        await closeClient(c);
      }
      return {
        node: t.node,
        sentAt,
        doneAt: Date.now(),
        outcome: refused ? 'refused' : 'down',
        error: message,
      };
    }
  }
}

/** Samples the cluster (etcd's view) and every etcd member's health. */
export class HealthMonitor {
  readonly samples: HealthSample[] = [];
  private stopped = false;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly cluster: NetCluster,
    private readonly intervalMs: number,
  ) {}

  /** Starts sampling in the background. */
  start(): void {
    this.loop ??= this.run();
  }

  /** Stops sampling. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** The latest sample, if any. */
  latest(): HealthSample | undefined {
    return this.samples.at(-1);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const started = Date.now();
      this.samples.push(await this.sample());
      await sleep(this.intervalMs - (Date.now() - started));
    }
  }

  /** One sample: etcd's view of the cluster plus how many etcd members say they are healthy. */
  async sample(): Promise<HealthSample> {
    const at = Date.now();
    const [state, up] = await Promise.all([
      withTimeout(this.cluster.readCluster(), 4000, 'reading the cluster from etcd').catch((err: unknown) =>
        err instanceof Error ? err : new Error(String(err)),
      ),
      Promise.all(
        this.cluster.nodes.map(async (n) => {
          try {
            const res = await fetch(`http://${n.address}:${NET_PORTS.etcd}/health`, {
              signal: AbortSignal.timeout(1000),
            });
            return ((await res.json()) as { health?: string }).health === 'true' ? 1 : 0;
          } catch {
            return 0;
          }
        }),
      ),
    ]);
    const etcdUp = up.reduce<number>((a, b) => a + b, 0);
    if (state instanceof Error)
      return { at, error: state.message, leader: null, members: [], sync: [], etcdUp };
    return {
      at,
      leader: state.leader?.name ?? null,
      members: state.members.map((m) => ({
        name: m.name,
        ...(typeof m.data.role === 'string'
          ? { role: m.data.role === 'master' ? 'primary' : m.data.role }
          : {}),
        ...(typeof m.data.state === 'string'
          ? { state: shownState(m.data, m.name === state.leader?.name) }
          : {}),
        ...(typeof m.data.timeline === 'number' ? { timeline: m.data.timeline } : {}),
      })),
      sync: (state.sync?.sync_standby ?? '').split(',').filter((x) => x !== ''),
      etcdUp,
    };
  }
}

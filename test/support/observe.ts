/**
 * Observers for data-safety tests: they watch, from outside, what each node's PostgreSQL says about
 * itself while a fault plays out, so a test can assert on what happened in between and not only on
 * the final state.
 *
 * ```ts
 * const roles = new RoleSampler({ pg2: () => c.connection('pg2') });
 * roles.start();
 * ...                                     // the fault
 * await roles.stop();
 * expect(roles.writableSightings()).toEqual([]);   // pg2 never answered pg_is_in_recovery() = false
 * ```
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';

export interface PgConnection {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/** One time a node answered `pg_is_in_recovery() = false`: it ran as a writable primary then. */
export interface WritableSighting {
  node: string;
  at: string;
}

/**
 * Polls `SELECT pg_is_in_recovery()` on every node given, every `everyMs`, over one connection per
 * node that is re-opened after any error (a node that is down is simply not sampled meanwhile).
 */
export class RoleSampler {
  private readonly sightings: WritableSighting[] = [];
  private readonly answered = new Map<string, number>();
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly nodes: Record<string, () => PgConnection>,
    private readonly everyMs = 100,
  ) {}

  start(): void {
    if (this.running) throw new Error('sampler already started');
    this.running = true;
    this.loops = Object.entries(this.nodes).map(([name, conn]) => this.poll(name, conn));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  /** Every sample in which a node ran as a writable primary. */
  writableSightings(): WritableSighting[] {
    return [...this.sightings];
  }

  /** How many samples a node answered (to tell "never writable" from "never reachable"). */
  answers(node: string): number {
    return this.answered.get(node) ?? 0;
  }

  private async poll(name: string, conn: () => PgConnection): Promise<void> {
    let client: pg.Client | null = null;
    while (this.running) {
      try {
        if (!client) {
          client = new pg.Client({ ...conn(), connectionTimeoutMillis: 1000, query_timeout: 2000 });
          client.on('error', () => undefined);
          await client.connect();
        }
        const r = await client.query<{ ro: boolean }>('SELECT pg_is_in_recovery() AS ro');
        this.answered.set(name, (this.answered.get(name) ?? 0) + 1);
        if (r.rows[0]?.ro === false) this.sightings.push({ node: name, at: new Date().toISOString() });
      } catch {
        await client?.end().catch(() => undefined);
        client = null;
      }
      await new Promise((r) => setTimeout(r, this.everyMs));
    }
    await client?.end().catch(() => undefined);
  }
}

/**
 * How many times PostgreSQL's own server log says it opened for writes: the postmaster logs
 * "database system is ready to accept connections" when it starts (or finishes a promotion) as a
 * primary, and "... ready to accept read-only connections" as a standby.
 */
export function primaryStartsInServerLog(logFile: string): number {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return 0;
  }
  return text.split('\n').filter((l) => l.includes('database system is ready to accept connections')).length;
}

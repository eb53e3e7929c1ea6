/**
 * The client of the VIP test, run inside the lab's client namespace (`node --import tsx writer.ts
 * <host> <port> <table> <interval ms>`): inserts a numbered row every interval through
 * `host:port`, reconnects after any error, and prints one JSON line per event:
 * `{"t":ms,"connected":node}`, `{"t":ms,"ok":n,"node":node}`, `{"t":ms,"err":message}`.
 * `node` is the name in the server's data directory path (`.../pg2/data` → `pg2`). Stops on SIGTERM.
 */
import pg from 'pg';
import { NET_PASSWORD } from '../support/netns-cluster.js';

const [host, portText, table, intervalText] = process.argv.slice(2);
if (!host || !portText || !table || !/^[a-z_]+$/.test(table)) {
  console.error('usage: writer.ts <host> <port> <table> [interval ms]');
  process.exit(2);
}
const intervalMs = Number(intervalText ?? 50);
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
});

const emit = (o: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nodeOf = (dataDir: string) => /\/([^/]+)\/data\/?$/.exec(dataDir)?.[1] ?? dataDir;

let n = 0;
while (!stopping) {
  const c = new pg.Client({
    host,
    port: Number(portText),
    user: 'postgres',
    password: NET_PASSWORD,
    database: 'postgres',
    connectionTimeoutMillis: 2000,
    query_timeout: 3000,
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const r = await c.query<{ d: string }>(`SELECT current_setting('data_directory') AS d`);
    emit({ connected: nodeOf(r.rows[0]!.d) });
    while (!stopping) {
      const k = ++n;
      const res = await c.query<{ d: string }>(
        `INSERT INTO ${table}(n) VALUES ($1) RETURNING current_setting('data_directory') AS d`,
        [k],
      );
      emit({ ok: k, node: nodeOf(res.rows[0]!.d) });
      await sleep(intervalMs);
    }
  } catch (err) {
    emit({ err: err instanceof Error ? err.message : String(err) });
    await sleep(100);
  } finally {
    await c.end().catch(() => undefined);
  }
}
process.exit(0);

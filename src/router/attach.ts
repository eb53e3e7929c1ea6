/**
 * Opens a server connection for an existing client session: the client's own StartupMessage,
 * authentication as that client without its password (scram.ts), then the session's recorded state
 * replayed (session-state.ts). The router talks here as a client would; nothing of this reaches the
 * client, which gets only the ParameterStatus values that changed (and, after a failover, the error
 * of the statement it had in flight).
 */
import { connect, type Socket } from 'node:net';
import {
  MessageReader,
  parseErrorFields,
  parseMessage,
  passwordMessage,
  queryMessage,
  saslInitialResponse,
  saslResponse,
  syncMessage,
  type BackendKey,
  type Message,
} from './protocol.js';
import { ScramClient, md5Response, md5Stored } from './scram.js';
import type { Backend } from './topology.js';

/** How the router proves a session's identity to another server. */
export type Credentials =
  /** The server asked for nothing (trust). */
  | { kind: 'none' }
  | { kind: 'password'; password: string }
  /** The MD5 hash pg_authid stores. */
  | { kind: 'md5'; stored: string }
  | { kind: 'scram'; clientKey: Buffer; serverKey: Buffer | null };

/** A failed attach: `retry` when another try (or another server) may work. */
export class AttachError extends Error {
  constructor(
    message: string,
    readonly retry: boolean,
  ) {
    super(message);
    this.name = 'AttachError';
  }
}

export interface AttachOptions {
  backend: Backend;
  /** The client's StartupMessage, as it sent it. */
  startup: Buffer;
  user: string;
  credentials: Credentials;
  /** Recorded state to rebuild (session-state.ts `replay()`). */
  replay: { queries: string[]; parses: Array<{ name: string; query: string; types: number[] }> };
  /** Leave the new session inside a failed transaction (the client's transaction was lost). */
  abortTransaction: boolean;
  connectTimeoutMs: number;
  signal: AbortSignal;
}

export interface Attached {
  socket: Socket;
  key: BackendKey | null;
  /** Every ParameterStatus the new server sent, last value per name. */
  params: Map<string, string>;
  /** Transaction status after the replay. */
  status: string;
  /** Bytes the server sent after its last ReadyForQuery (for the client). */
  rest: Buffer;
}

/** A conversation with a server, one message at a time. */
class Conversation {
  private readonly reader = new MessageReader();
  private waiting: (() => void) | null = null;
  private failure: Error | null = null;

  constructor(
    readonly socket: Socket,
    signal: AbortSignal,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      this.wake();
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      this.wake();
    };
    socket.on('close', () => fail(new AttachError('the server closed the connection', true)));
    socket.on('error', (err) => fail(new AttachError(err.message, true)));
    signal.addEventListener('abort', () => fail(new AttachError('gave up waiting', false)), { once: true });
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }

  async next(): Promise<Message> {
    for (;;) {
      let m: Message | null;
      try {
        m = this.reader.next();
      } catch (err) {
        throw new AttachError((err as Error).message, false);
      }
      if (m) return m;
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  /** Stops listening; returns what was read beyond the messages taken. */
  finish(): Buffer {
    this.socket.pause();
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
    this.socket.removeAllListeners('error');
    this.socket.on('error', () => undefined);
    return this.reader.takeRest();
  }
}

function errorText(body: Buffer): { code: string; message: string } {
  const f = parseErrorFields(body);
  return { code: f.C ?? '?', message: f.M ?? 'error' };
}

async function dial(b: Backend, timeoutMs: number, signal: AbortSignal): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const s = connect({ host: b.host, port: b.port, noDelay: true });
    const done = (err: Error | null) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      s.removeListener('error', onError);
      if (err) {
        s.destroy();
        reject(err);
      } else resolve(s);
    };
    const onError = (err: Error) => done(new AttachError(`connect to ${b.name}: ${err.message}`, true));
    const onAbort = () => done(new AttachError('gave up waiting', false));
    const timer = setTimeout(
      () => done(new AttachError(`connect to ${b.name} timed out after ${timeoutMs} ms`, true)),
      timeoutMs,
    );
    s.once('error', onError);
    s.once('connect', () => done(null));
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Authenticates and reads up to the first ReadyForQuery. */
async function startup(
  c: Conversation,
  o: AttachOptions,
  params: Map<string, string>,
): Promise<{ key: BackendKey | null; status: string }> {
  c.socket.write(o.startup);
  let scram: ScramClient | null = null;
  let key: BackendKey | null = null;
  const cred = o.credentials;
  const refuse = (what: string) => {
    throw new AttachError(
      `${o.backend.name} asks for ${what}, which the router cannot answer for ${o.user}`,
      false,
    );
  };
  for (;;) {
    const m = await c.next();
    switch (m.type) {
      case 'R': {
        const code = m.body.readInt32BE(0);
        const data = m.body.subarray(4);
        if (code === 0) break;
        if (code === 3) {
          if (cred.kind !== 'password') refuse('a cleartext password');
          c.socket.write(passwordMessage((cred as { password: string }).password));
        } else if (code === 5) {
          const stored =
            cred.kind === 'md5'
              ? cred.stored
              : cred.kind === 'password'
                ? md5Stored(cred.password, o.user)
                : null;
          if (stored === null) refuse('an MD5 password');
          c.socket.write(passwordMessage(md5Response(stored!, data.subarray(0, 4))));
        } else if (code === 10) {
          const mechanisms = data.toString('utf8').split('\0');
          if (cred.kind !== 'scram' || !mechanisms.includes('SCRAM-SHA-256')) refuse('SCRAM-SHA-256');
          const k = cred as { clientKey: Buffer; serverKey: Buffer | null };
          scram = new ScramClient(k.clientKey, k.serverKey);
          c.socket.write(saslInitialResponse(scram.mechanism, scram.clientFirst()));
        } else if (code === 11) {
          if (!scram) throw new AttachError('SASL continue without SASL', false);
          try {
            c.socket.write(saslResponse(scram.clientFinal(data)));
          } catch (err) {
            throw new AttachError((err as Error).message, false);
          }
        } else if (code === 12) {
          if (!scram?.verifyServerFinal(data))
            throw new AttachError(`${o.backend.name} did not prove it knows the verifier (SCRAM)`, false);
        } else {
          refuse(`authentication method ${code}`);
        }
        break;
      }
      case 'S': {
        const nul = m.body.indexOf(0);
        params.set(m.body.toString('utf8', 0, nul), m.body.toString('utf8', nul + 1, m.body.length - 1));
        break;
      }
      case 'K':
        key = { pid: m.body.readInt32BE(0), secret: Buffer.from(m.body.subarray(4)) };
        break;
      case 'Z':
        return { key, status: String.fromCharCode(m.body[0] ?? 0x49) };
      case 'E': {
        const e = errorText(m.body);
        // Starting up or shutting down (a switchover in progress): another try may work.
        throw new AttachError(
          `${o.backend.name}: ${e.message} (${e.code})`,
          e.code === '57P03' || e.code.startsWith('08'),
        );
      }
      default:
        break; // notices, NegotiateProtocolVersion
    }
  }
}

/** Sends `msgs` and reads to the ReadyForQuery; the first error fails with `what`. */
async function exchange(
  c: Conversation,
  msgs: Buffer[],
  what: string,
  params: Map<string, string>,
  expectError = false,
): Promise<string> {
  c.socket.write(msgs.length === 1 ? msgs[0]! : Buffer.concat(msgs));
  let error: string | null = null;
  for (;;) {
    const m = await c.next();
    if (m.type === 'E' && error === null) {
      const e = errorText(m.body);
      error = `${e.message} (${e.code})`;
    } else if (m.type === 'S') {
      const nul = m.body.indexOf(0);
      params.set(m.body.toString('utf8', 0, nul), m.body.toString('utf8', nul + 1, m.body.length - 1));
    } else if (m.type === 'Z') {
      if (error !== null && !expectError) throw new AttachError(`${what} failed: ${error}`, false);
      return String.fromCharCode(m.body[0] ?? 0x49);
    }
  }
}

/**
 * A new server connection carrying the session: authenticated, its state replayed. Throws
 * `AttachError` (with `retry` when the server was not ready or not reachable).
 */
export async function attachServer(o: AttachOptions): Promise<Attached> {
  const socket = await dial(o.backend, o.connectTimeoutMs, o.signal);
  const c = new Conversation(socket, o.signal);
  try {
    const params = new Map<string, string>();
    const first = await startup(c, o, params);
    let status = first.status;
    if (o.replay.queries.length > 0)
      status = await exchange(
        c,
        [queryMessage(o.replay.queries.join('; '))],
        'replaying the session settings',
        params,
      );
    if (o.replay.parses.length > 0)
      status = await exchange(
        c,
        [...o.replay.parses.map((p) => parseMessage(p.name, p.query, p.types)), syncMessage()],
        'preparing the statements again',
        params,
      );
    if (o.abortTransaction) {
      // The client's transaction died with its server: it goes on in a failed transaction, as it
      // would have after an error, so only ROLLBACK (or COMMIT, answered ROLLBACK) ends it.
      await exchange(c, [queryMessage('BEGIN')], 'opening a transaction', params);
      status = await exchange(c, [queryMessage('SELECT 1/0')], 'failing it', params, true);
    }
    const rest = c.finish();
    return { socket, key: first.key, params, status, rest };
  } catch (err) {
    c.finish();
    socket.destroy();
    if (err instanceof AttachError) throw err;
    throw new AttachError((err as Error).message, true);
  }
}

/**
 * Whether a server accepts new sessions (anything but 57P03 or a refused connection): tells a
 * FATAL "terminating connection due to administrator command" of a shutdown (move the session) from
 * one of pg_terminate_backend (the session ends).
 */
export async function acceptsConnections(b: Backend, timeoutMs: number): Promise<boolean> {
  const signal = AbortSignal.timeout(timeoutMs);
  let socket: Socket;
  try {
    socket = await dial(b, timeoutMs, signal);
  } catch {
    return false;
  }
  const c = new Conversation(socket, signal);
  try {
    const probe = Buffer.from('\0\0\0\0\0\x03\0\0user\0pgha_router_probe\0database\0postgres\0\0', 'latin1');
    probe.writeInt32BE(probe.length, 0);
    socket.write(probe);
    const m = await c.next();
    return !(m.type === 'E' && parseErrorFields(m.body).C === '57P03');
  } catch {
    return false;
  } finally {
    c.finish();
    socket.destroy();
  }
}

/**
 * Runs a simple query on a connection the router holds (an idle session's own server, taken from
 * the data path): the rows of each result set as text, or the first error. The socket stays open
 * and paused for the caller.
 */
export async function simpleQuery(
  socket: Socket,
  sql: string,
  timeoutMs: number,
): Promise<Array<Array<Array<string | null>>>> {
  const c = new Conversation(socket, AbortSignal.timeout(timeoutMs));
  socket.resume();
  try {
    socket.write(queryMessage(sql));
    const results: Array<Array<Array<string | null>>> = [];
    let rows: Array<Array<string | null>> | null = null;
    let error: string | null = null;
    for (;;) {
      const m = await c.next();
      if (m.type === 'T') {
        rows = [];
        results.push(rows);
      } else if (m.type === 'D' && rows) {
        const n = m.body.readInt16BE(0);
        const row: Array<string | null> = [];
        let pos = 2;
        for (let i = 0; i < n; i++) {
          const len = m.body.readInt32BE(pos);
          pos += 4;
          if (len < 0) row.push(null);
          else {
            row.push(m.body.toString('utf8', pos, pos + len));
            pos += len;
          }
        }
        rows.push(row);
      } else if (m.type === 'E' && error === null) {
        const e = errorText(m.body);
        error = `${e.message} (${e.code})`;
      } else if (m.type === 'Z') {
        if (error !== null) throw new Error(error);
        return results;
      }
    }
  } finally {
    c.finish();
  }
}

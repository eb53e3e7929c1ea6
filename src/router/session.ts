/**
 * One client connection through the router: the startup phase, parsed; then the two sockets are
 * relayed with no per-message parsing: by the native relay thread (native.ts) when the router has
 * it, else in JavaScript, each chunk written through as it is read. Server sockets read into one
 * shared buffer (`onread`), so the hot direction allocates nothing per read but the copy it writes.
 *
 *   client ── SSLRequest / GSSENCRequest ──▶ backend, its one-byte answer back (`S`/`G`: from here the
 *             session is TLS/GSS end to end and copied blindly)
 *          ── StartupMessage ──▶ backend; client→backend is spliced from here on
 *   backend ── R… S… K (cancel key, remembered) … Z ──▶ client; backend→client is spliced from `Z` on
 *
 * At that point (or right after an encryption answer of `S`/`G`), a native session stops both
 * sockets, lets Node write out what it still holds for them, and gives their descriptors to the
 * relay with whatever the client sent meanwhile; from then on JavaScript only closes it (the fence).
 */
import { connect, type Socket } from 'node:net';
import {
  BackendStartupReader,
  FrontendStartupReader,
  backendKeyId,
  errorResponse,
  parseErrorFields,
  type FrontendPacket,
} from './protocol.js';
import type { NativeRelay } from './native.js';
import { splice } from './splice.js';
import type { Backend } from './topology.js';

/** Which listener a session came in on. */
export type PortKind = 'rw' | 'ro';

/** What the router needs from its owner to run one session. */
export interface SessionHost {
  /** Waits for a backend for this port; rejects with a `RouterRefusal` when none comes in time. */
  pick(port: PortKind, signal: AbortSignal): Promise<{ backend: Backend; role: 'primary' | 'replica' }>;
  /** Tells the router a backend refused the TCP connection (so it may re-read the topology). */
  connectFailed(backend: Backend, err: Error): void;
  register(session: Session): void;
  /** The session learned its cancel key. */
  keyLearned(session: Session, keyId: string): void;
  unregister(session: Session): void;
  cancel(packet: Extract<FrontendPacket, { kind: 'cancel' }>): void;
  connectTimeoutMs: number;
  /** How long the client may take to send its first packet. */
  startupTimeoutMs: number;
  /** Whole-session wait for a backend (pick + connect retries). */
  waitTimeoutMs: number;
  /** The native relay that takes sessions after their startup phase; null: relay in JavaScript. */
  relay: NativeRelay | null;
  debug(msg: string, details?: Record<string, unknown>): void;
}

/** A refusal with a SQLSTATE the client sees in an ErrorResponse. */
export class RouterRefusal extends Error {
  constructor(
    readonly sqlstate: string,
    message: string,
    readonly reason: string,
  ) {
    super(message);
    this.name = 'RouterRefusal';
  }
}

let nextId = 1;

/** True when `msg` is an ErrorResponse with SQLSTATE 57P03 (shutting down, starting up, ...). */
function isCannotConnectNow(msg: Buffer): boolean {
  if (msg.length < 5 || msg[0] !== 0x45) return false;
  return parseErrorFields(msg.subarray(5, msg.readInt32BE(1) + 1)).C === '57P03';
}

/**
 * Every server socket reads into this one buffer: reads are handled synchronously, one at a time,
 * and whatever outlives the callback is copied out of it first.
 */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** How long a hand-off to the native relay waits for Node to write out what it holds. */
const HANDOFF_FLUSH_MS = 2000;

export class Session {
  readonly id = nextId++;
  readonly startedAt = Date.now();
  backend: Backend | null = null;
  role: 'primary' | 'replica' | null = null;
  server: Socket | null = null;
  keyId: string | null = null;
  /** `startup` until spliced; `tls` when encrypted end to end (no cancel key seen). */
  phase: 'startup' | 'spliced' | 'tls' = 'startup';
  /** Where the bytes go after the startup phase. */
  dataPath: 'native' | 'javascript' | null = null;
  /** The client's address, kept for the status after its socket moves to the native relay. */
  readonly clientAddress: string;
  private closed = false;
  /** The whole session waits at most this long (ms since epoch) for a server that takes it. */
  private readonly deadline: number;
  private readonly abort = new AbortController();
  /** Where server bytes go now; they wait in `serverPending` while it is null. */
  private serverSink: ((view: Buffer) => boolean) | null = null;
  private readonly serverPending: Buffer[] = [];
  /** Resolves the startup reader's pending wait (more client bytes, or close). */
  private wake: (() => void) | null = null;
  /** Stops the JavaScript client → server copy (before a hand-off). */
  private unsplice: (() => void) | null = null;
  /** The native relay's session, once handed off. */
  private native: { relay: NativeRelay; handle: number } | null = null;
  /** Bytes the relay wrote [to the server, to the client], less those Node had already counted. */
  private relayed: [number, number] = [0, 0];
  private handedToServer = 0;

  constructor(
    readonly port: PortKind,
    readonly client: Socket,
    private readonly host: SessionHost,
  ) {
    this.deadline = Date.now() + host.waitTimeoutMs;
    this.clientAddress = `${client.remoteAddress ?? '?'}:${client.remotePort ?? '?'}`;
  }

  /** Bytes read from the client / written to it. */
  get bytesFromClient(): number {
    return this.client.bytesRead + this.relayedBytes()[0];
  }
  get bytesToClient(): number {
    return this.client.bytesWritten + this.relayedBytes()[1];
  }

  private relayedBytes(): [number, number] {
    const n = this.native;
    if (n) this.noteRelayed(n.relay.bytes(n.handle));
    return this.relayed;
  }

  /** Keeps the relay's byte counts [to the server, to the client], less what Node had counted. */
  private noteRelayed(b: [number, number] | null): void {
    if (b) this.relayed = [Math.max(0, b[0] - this.handedToServer), b[1]];
  }

  /** Closes both sockets at once (the fence, router shutdown, or either side going away). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.wakeReader();
    const n = this.native;
    if (n) {
      this.noteRelayed(n.relay.close(this.id, n.handle));
      this.native = null;
    }
    this.client.destroy();
    this.server?.destroy();
    this.host.unregister(this);
  }

  private wakeReader(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Runs the session; never rejects (failures close it). */
  async run(): Promise<void> {
    const client = this.client;
    client.setNoDelay(true);
    client.on('error', (err) =>
      this.host.debug('client socket error', { session: this.id, err: err.message }),
    );
    client.on('close', () => this.close());
    this.host.register(this);
    try {
      await this.startup();
    } catch (err) {
      if (this.closed) return;
      if (err instanceof RouterRefusal) {
        this.host.debug('refused a client', { session: this.id, port: this.port, reason: err.reason });
        client.end(errorResponse(err.sqlstate, err.message));
        client.once('finish', () => this.close());
        setTimeout(() => this.close(), 1000).unref();
        return;
      }
      this.host.debug('session ended during startup', { session: this.id, err: (err as Error).message });
      this.close();
    }
  }

  private async startup(): Promise<void> {
    const client = this.client;
    const reader = new FrontendStartupReader();
    const onData = (chunk: Buffer) => {
      reader.push(chunk);
      this.wakeReader();
    };
    client.on('data', onData);
    const startupTimer = setTimeout(() => {
      this.host.debug('client sent no startup packet in time', { session: this.id });
      this.close();
    }, this.host.startupTimeoutMs);
    startupTimer.unref();

    const nextPacket = async (): Promise<FrontendPacket> => {
      for (;;) {
        const p = reader.next();
        if (p) return p;
        if (this.closed) throw new Error('closed');
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
      }
    };

    try {
      let pkt = await nextPacket();
      if (pkt.kind === 'invalid') {
        this.host.debug('invalid startup packet', { session: this.id, reason: pkt.reason });
        this.close();
        return;
      }
      if (pkt.kind === 'cancel') {
        this.host.cancel(pkt);
        this.close();
        return;
      }
      let server = await this.connectBackend();
      /** Encryption requests answered N, to replay on another server if this one refuses the session. */
      const negotiated: Array<{ raw: Buffer; answer: number }> = [];
      let startupRaw: Buffer | null = null;
      for (;;) {
        if (pkt.kind === 'ssl' || pkt.kind === 'gssenc') {
          server.write(pkt.raw);
          const answer = await this.readServerByte(server);
          negotiated.push({ raw: pkt.raw, answer });
          client.write(Buffer.from([answer]));
          if (answer === 0x53 /* S */ || answer === 0x47 /* G */) {
            this.phase = 'tls';
            break;
          }
          if (answer !== 0x4e /* N */) {
            // An old server's ErrorResponse: let the rest flow as it is.
            this.phase = 'spliced';
            break;
          }
          pkt = await nextPacket();
          if (pkt.kind === 'invalid' || pkt.kind === 'cancel') {
            this.host.debug('unexpected packet after an encryption request', {
              session: this.id,
              kind: pkt.kind,
            });
            this.close();
            return;
          }
          continue;
        }
        if (pkt.kind === 'direct-tls') {
          this.phase = 'tls';
          break;
        }
        if (pkt.kind === 'startup') {
          server.write(pkt.raw);
          startupRaw = pkt.raw;
          break;
        }
        this.close();
        return;
      }
      clearTimeout(startupTimer);
      let first: Buffer | null = null;
      if (startupRaw !== null) {
        // A server that is shutting down or starting up (a switchover in progress) refuses with
        // 57P03 before anything reached the client: try again, so the client sees a pause, not an error.
        for (;;) {
          first = await this.firstServerMessage(server);
          if (!isCannotConnectNow(first) || Date.now() >= this.deadline) break;
          this.host.connectFailed(
            this.backend!,
            new Error('the database system cannot accept connections now'),
          );
          this.dropServer();
          await new Promise((r) => setTimeout(r, 100));
          server = await this.connectBackend();
          for (const n of negotiated) {
            server.write(n.raw);
            if ((await this.readServerByte(server)) !== n.answer)
              throw new RouterRefusal(
                '08006',
                'pgha router: the new server answered the encryption request differently',
                'encryption answer changed',
              );
          }
          server.write(startupRaw);
        }
      }
      // Client → server: everything from here on is copied as it is.
      client.removeListener('data', onData);
      const rest = reader.takeRest();
      if (rest.length > 0) server.write(rest);
      this.unsplice = splice(client, server);
      if (this.phase === 'tls' || this.phase === 'spliced') {
        this.startupDone(server);
        return;
      }
      this.watchBackendStartup(server, first!);
    } finally {
      clearTimeout(startupTimer);
    }
  }

  /**
   * Server → client. The server socket reads into one buffer shared by every session (`onread`), so
   * a read allocates nothing; each consumer below copies what it keeps before returning.
   */
  private onServerRead(view: Buffer): boolean {
    if (this.serverSink) return this.serverSink(view);
    this.serverPending.push(Buffer.from(view));
    return true;
  }

  /** Routes server bytes to `sink` from now on, first replaying what arrived while nobody listened. */
  private setServerSink(sink: ((view: Buffer) => boolean) | null): void {
    this.serverSink = sink;
    if (!sink) return;
    while (this.serverPending.length > 0 && this.serverSink === sink) sink(this.serverPending.shift()!);
  }

  /** The startup phase is over: the native relay takes the session, or JavaScript relays it. */
  private startupDone(server: Socket): void {
    if (this.host.relay) {
      this.handOff(this.host.relay, server);
      return;
    }
    this.dataPath = 'javascript';
    this.relayServer(server);
  }

  /**
   * Moves the session to the native relay: both sockets stop reading, Node writes out what it still
   * holds for them, then the relay takes duplicates of their descriptors, with what the client sent
   * meanwhile, and Node's sockets are closed (the duplicates keep the connections open). A session
   * that cannot be handed over in time (a client that does not read) stays in JavaScript.
   */
  private handOff(relay: NativeRelay, server: Socket): void {
    const client = this.client;
    this.unsplice?.();
    this.unsplice = null;
    client.pause();
    server.pause();
    this.setServerSink(null); // anything read meanwhile waits in serverPending
    const started = Date.now();
    const attempt = (): void => {
      if (this.closed) return;
      const healthy =
        !client.destroyed && !server.destroyed && !client.readableEnded && !server.readableEnded;
      const flushed = client.writableLength === 0 && server.writableLength === 0;
      if (healthy && !flushed && Date.now() - started < HANDOFF_FLUSH_MS) {
        setTimeout(attempt, 1);
        return;
      }
      if (!healthy || !flushed)
        return this.stayInJavaScript(server, healthy ? 'writes pending' : 'half closed');
      const held: Buffer[] = [];
      for (let b = client.read() as Buffer | null; b !== null; b = client.read() as Buffer | null)
        held.push(b);
      const toServer = held.length > 0 ? Buffer.concat(held) : null;
      const toClient = this.serverPending.length > 0 ? Buffer.concat(this.serverPending) : null;
      try {
        const handle = relay.add(this.id, client, server, toServer, toClient, (fromC, toC) => {
          this.noteRelayed([fromC, toC]);
          this.native = null;
          this.close();
        });
        this.native = { relay, handle };
      } catch (err) {
        // Whatever was read stays ours to write: put it back in front.
        if (toServer) client.unshift(toServer);
        return this.stayInJavaScript(server, (err as Error).message);
      }
      this.handedToServer = toServer?.length ?? 0;
      this.serverPending.length = 0;
      this.dataPath = 'native';
      for (const s of [client, server]) {
        s.removeAllListeners('close');
        s.removeAllListeners('end');
        s.removeAllListeners('drain');
        s.destroy();
      }
    };
    setImmediate(attempt);
  }

  /** Goes on relaying a session in JavaScript after a hand-off that could not be made. */
  private stayInJavaScript(server: Socket, why: string): void {
    this.host.debug('session stays in the JavaScript data path', { session: this.id, why });
    this.dataPath = 'javascript';
    this.unsplice = splice(this.client, server);
    this.relayServer(server);
    server.resume();
  }

  /** Relays server bytes to the client as they come, pausing the server while the client is slow. */
  private relayServer(server: Socket): void {
    const client = this.client;
    client.on('drain', () => server.resume());
    server.on('end', () => client.end());
    this.setServerSink((view) => client.write(Buffer.from(view)));
  }

  /** Collects the server's bytes until its first message is complete (or it closes: then what came). */
  private async firstServerMessage(server: Socket): Promise<Buffer> {
    return new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => {
        server.removeListener('close', done);
        this.setServerSink(null);
        resolve(Buffer.concat(chunks));
      };
      server.once('close', done);
      this.setServerSink((view) => {
        chunks.push(Buffer.from(view));
        size += view.length;
        const head = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        if (size >= 5 && size >= head.readInt32BE(1) + 1) done();
        return true;
      });
    });
  }

  /** Forgets the current server (it refused the session) without closing the client. */
  private dropServer(): void {
    const s = this.server;
    this.server = null;
    this.setServerSink(null);
    this.serverPending.length = 0;
    s?.destroy();
  }

  /** Follows the server's startup messages to catch BackendKeyData, then relays blindly. */
  private watchBackendStartup(server: Socket, first: Buffer): void {
    const reader = new BackendStartupReader();
    this.serverPending.unshift(first);
    this.setServerSink((view) => {
      const chunk = Buffer.from(view);
      const more = this.client.write(chunk);
      reader.push(chunk);
      for (let ev = reader.next(); ev; ev = reader.next()) {
        if (ev.kind === 'key') {
          this.keyId = backendKeyId(ev.key);
          this.host.keyLearned(this, this.keyId);
          continue;
        }
        // ready, error or invalid: nothing more to learn; copy the rest blindly.
        this.phase = 'spliced';
        this.startupDone(server);
        break;
      }
      return more;
    });
  }

  private async readServerByte(server: Socket): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const onClose = () => {
        this.setServerSink(null);
        reject(new Error('server closed during encryption negotiation'));
      };
      server.once('close', onClose);
      this.setServerSink((view) => {
        server.removeListener('close', onClose);
        // Anything after the one-byte answer belongs to the next phase: keep it for the next sink.
        this.setServerSink(null);
        if (view.length > 1) this.serverPending.push(Buffer.from(view.subarray(1)));
        resolve(view[0]!);
        return true;
      });
    });
  }

  /**
   * Picks a backend and connects, retrying (a fresh pick each time) while the wait budget lasts: a
   * primary that just died refuses connections until the topology moves on.
   */
  private async connectBackend(): Promise<Socket> {
    const deadline = AbortSignal.timeout(Math.max(1, this.deadline - Date.now()));
    const signal = AbortSignal.any([deadline, this.abort.signal]);
    let lastErr: Error | null = null;
    for (;;) {
      let picked: { backend: Backend; role: 'primary' | 'replica' };
      try {
        picked = await this.host.pick(this.port, signal);
      } catch (err) {
        if (lastErr && err instanceof RouterRefusal) {
          throw new RouterRefusal(
            '08006',
            `${err.message}; last connection error: ${lastErr.message}`,
            err.reason,
          );
        }
        throw err;
      }
      if (this.closed) throw new Error('closed');
      try {
        const server = await this.dial(picked.backend);
        if (this.closed) {
          server.destroy();
          throw new Error('closed');
        }
        this.server = server;
        this.backend = picked.backend;
        this.role = picked.role;
        server.on('close', () => {
          if (this.server === server) this.close();
        });
        server.on('error', (err) =>
          this.host.debug('server socket error', { session: this.id, err: err.message }),
        );
        this.host.register(this); // re-registers with its backend now known
        return server;
      } catch (err) {
        lastErr = err as Error;
        this.host.connectFailed(picked.backend, lastErr);
        if (signal.aborted)
          throw new RouterRefusal('08006', `could not connect to ${picked.backend.name}`, lastErr.message);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async dial(b: Backend): Promise<Socket> {
    return new Promise<Socket>((resolve, reject) => {
      const s = connect({
        host: b.host,
        port: b.port,
        noDelay: true,
        onread: {
          buffer: SHARED_READ_BUFFER,
          callback: (n, buf) => this.onServerRead(buf.subarray(0, n) as Buffer),
        },
      });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${b.host}:${b.port} timed out after ${this.host.connectTimeoutMs} ms`));
      }, this.host.connectTimeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeListener('error', onError);
        resolve(s);
      });
      const onError = (err: Error) => {
        clearTimeout(timer);
        s.destroy();
        reject(err);
      };
      s.once('error', onError);
    });
  }
}

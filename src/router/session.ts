/**
 * One client connection through the router.
 *
 * Startup phase, parsed in JavaScript:
 *   client ── SSLRequest / GSSENCRequest ──▶ backend, its one-byte answer back (`S`/`G`: from here the
 *             session is TLS/GSS end to end and copied blindly) — or, with `router.tls`, the router
 *             answers `S` itself and terminates TLS, so the session stays readable (and movable)
 *          ── StartupMessage ──▶ backend; then the authentication messages both ways, read as they
 *             pass (the SCRAM exchange, an MD5 salt, a cleartext password) and forwarded unchanged
 *   backend ── R… S… K (cancel key, remembered) … Z ──▶ client
 *
 * Then the data path (link.ts): the native relay thread or JavaScript, following message
 * boundaries and transaction status for plaintext sessions (tracker.ts), and reporting the rare
 * statements that change session state (recorded in session-state.ts).
 *
 * Moving a session to another server (the router decides when): on a switchover it is held at
 * its next idle boundary (drain), its state read from the old server, then re-attached to the new
 * primary; when its server goes away (failover, fence) it is stopped where it stands and
 * re-attached, with a clean error for a statement that was in flight. Re-attaching opens a
 * server connection as the client (attach.ts: SCRAM pass-through, MD5, cleartext), replays the
 * startup parameters, settings and prepared statements, maps the client's cancel key to the new
 * backend, and tells the client only the ParameterStatus values that changed. What cannot move
 * (temporary tables, LISTEN, session advisory locks, WITH HOLD cursors, an unfinished COPY, TLS
 * end to end, an authentication the router cannot repeat) is cut, with the reason logged.
 */
import { connect, type Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import { AttachError, acceptsConnections, attachServer, simpleQuery, type Credentials } from './attach.js';
import { JsLink, NativeLink, type Link, type LinkListener } from './link.js';
import type { NativeRelay } from './native.js';
import {
  BackendStartupReader,
  FrontendStartupReader,
  MessageReader,
  backendKeyId,
  errorResponse,
  parameterStatus,
  parseErrorFields,
  readyForQuery,
  type BackendKey,
  type FrontendPacket,
} from './protocol.js';
import type { RoleSecrets } from './role-secrets.js';
import { ScramObserver, parseScramSecret, recoverClientKey } from './scram.js';
import { INTROSPECTION, SessionRecord, parseIntrospection } from './session-state.js';
import { splice } from './splice.js';
import type { Backend } from './topology.js';
import type { LinkState } from './tracker.js';
import { deadline } from '../util/abort.js';

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
  /** Whole-session wait for a backend (pick + connect retries); also the longest a move waits. */
  waitTimeoutMs: number;
  /** The native relay that takes sessions after their startup phase; null: relay in JavaScript. */
  relay: NativeRelay | null;
  /** `router.tls`: the router terminates TLS with this; null: TLS passes through end to end. */
  tls: SecureContext | null;
  /** Verifiers of roles, for authenticating as a client (null: sessions cannot move). */
  secrets: RoleSecrets | null;
  /** Members to read verifiers from, the session's own first. */
  members(first: Backend | null): Backend[];
  /**
   * Whether `backend`, in `role`, is where this port's sessions go now. Asked once a session is
   * connected to a server it picked, before it sends it anything (a new session: after the TCP
   * connect; a moving one: after its re-authentication, before its link resumes), because the pick
   * came before the connection and the router's fence only reaches sessions registered on a
   * server; and of a FATAL from its server (which may then be deliberate).
   */
  serves(backend: Backend, role: 'primary' | 'replica'): boolean;
  /**
   * The session's startup is over and its data path is up, no client byte has gone through it yet:
   * from now on it can be held or moved. A drain that began while it was still starting
   * (authenticating, being handed to the relay) holds it here, and a fence that came meanwhile
   * moves it.
   */
  relaying(session: Session): void;
  /** Whether a switchover's drain holds new transactions on the session's server now. */
  draining(session: Session): boolean;
  /** A session stopped at an idle boundary because the router asked (drain). */
  held(session: Session): void;
  moved(session: Session, info: { from: string | null; to: string; ms: number; why: string }): void;
  /** A session that could not move and was closed. */
  cut(session: Session, reason: string, why: string): void;
  debug(msg: string, details?: Record<string, unknown>): void;
  warn(msg: string, details?: Record<string, unknown>): void;
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
/** How long reading a held session's state from its server may take. */
const INTROSPECT_TIMEOUT_MS = 5000;

/** How the client authenticated, as seen passing by. */
type SeenAuth =
  | { method: 'none' }
  | { method: 'password'; password: string | null }
  | { method: 'md5' }
  | { method: 'scram'; observer: ScramObserver }
  | { method: 'other'; what: string };

/** Where a session is in its life. */
export type SessionPhase =
  | 'startup'
  /** Relayed, tracked: the router can move it. */
  | 'relayed'
  /** TLS or GSS end to end: copied blindly, cannot move. */
  | 'tls'
  /** Waiting for its next idle boundary. */
  | 'holding'
  /** Stopped at an idle boundary, its server connection parked. */
  | 'held'
  /** Being re-attached to another server. */
  | 'moving';

export class Session {
  readonly id = nextId++;
  readonly startedAt = Date.now();
  backend: Backend | null = null;
  role: 'primary' | 'replica' | null = null;
  server: Socket | null = null;
  /** The cancel key the client knows (from its first server); the router maps it to `serverKey`. */
  keyId: string | null = null;
  /** The current server's cancel key. */
  serverKey: BackendKey | null = null;
  phase: SessionPhase = 'startup';
  /** Where the bytes go after the startup phase. */
  dataPath: 'native' | 'javascript' | null = null;
  /** The client's address, kept for the status after its socket moves to the native relay. */
  readonly clientAddress: string;
  /** Times the session moved to another server. */
  moves = 0;
  /** The client's startup parameters (user, database, ...). */
  params: Record<string, string> = {};
  /** The router terminated the client's TLS. */
  tlsTerminated = false;
  readonly record = new SessionRecord();
  private client: Socket;
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
  private link: Link | null = null;
  private startupRaw: Buffer | null = null;
  private seenAuth: SeenAuth = { method: 'none' };
  private credentials: Promise<Credentials> | null = null;
  /** A held session's old server connection, kept until it moves or goes on. */
  private parked: Socket | null = null;
  /** Why the router asked for a hold: its own drain, or a move once idle. */
  private holdFor: 'drain' | { why: string; timer: NodeJS.Timeout } | null = null;
  /** The link state when the session stopped (held or paused). */
  private stoppedState: LinkState | null = null;
  /** When the session stopped at an idle boundary (held): its client's statements wait from then. */
  private heldSince: number | null = null;
  private lastBytes: [number, number] = [0, 0];
  /** Whether a link ever took the sockets (see {@link bytes}). */
  private linked = false;

  constructor(
    readonly port: PortKind,
    client: Socket,
    private readonly host: SessionHost,
  ) {
    this.client = client;
    this.deadline = Date.now() + host.waitTimeoutMs;
    this.clientAddress = `${client.remoteAddress ?? '?'}:${client.remotePort ?? '?'}`;
  }

  /** Bytes read from the client / written to it. */
  get bytesFromClient(): number {
    return this.bytes()[0];
  }
  get bytesToClient(): number {
    return this.bytes()[1];
  }

  /**
   * Until a link takes the sockets, Node's own counts; from then on the link's plus what came
   * before it (`lastBytes`), which also keeps the link's counts once it is gone: the client socket's
   * counts stop at the hand-over (the native relay reads a copy of its descriptor).
   */
  private bytes(): [number, number] {
    if (this.link) {
      const b = this.link.bytes();
      return [b[0] + this.lastBytes[0], b[1] + this.lastBytes[1]];
    }
    return this.linked ? this.lastBytes : [this.client.bytesRead, this.client.bytesWritten];
  }

  get user(): string {
    return this.params.user ?? '';
  }

  get database(): string {
    return this.params.database ?? this.user;
  }

  /** Closes both sockets at once (the fence, router shutdown, or either side going away). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.wakeReader();
    if (this.holdFor !== null && this.holdFor !== 'drain') clearTimeout(this.holdFor.timer);
    const l = this.link;
    if (l) {
      const b = l.bytes();
      this.lastBytes = [this.lastBytes[0] + b[0], this.lastBytes[1] + b[1]];
      l.close();
      this.link = null;
    }
    this.parked?.destroy();
    this.parked = null;
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
    client.on('close', () => {
      if (this.link === null || this.phase === 'startup') this.close();
    });
    this.host.register(this);
    try {
      await this.startup();
    } catch (err) {
      if (this.closed) return;
      if (err instanceof RouterRefusal) {
        this.host.debug('refused a client', { session: this.id, port: this.port, reason: err.reason });
        this.client.end(errorResponse(err.sqlstate, err.message));
        this.client.once('finish', () => this.close());
        setTimeout(() => this.close(), 1000).unref();
        return;
      }
      this.host.debug('session ended during startup', { session: this.id, err: (err as Error).message });
      this.close();
    }
  }

  // ---- startup ----------------------------------------------------------------------------------

  private async startup(): Promise<void> {
    let reader = new FrontendStartupReader();
    const onData = (chunk: Buffer) => {
      reader.push(chunk);
      this.wakeReader();
    };
    this.client.on('data', onData);
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
      if (this.host.tls) {
        // The router terminates TLS: encryption is negotiated here, never with the server.
        while (pkt.kind === 'ssl' || pkt.kind === 'gssenc') {
          if (pkt.kind === 'gssenc') {
            this.client.write(Buffer.from('N'));
            pkt = await nextPacket();
            continue;
          }
          this.client.removeListener('data', onData);
          await this.startTls(this.host.tls, reader.takeRest());
          reader = new FrontendStartupReader();
          this.client.on('data', onData);
          pkt = await nextPacket();
        }
        if (pkt.kind === 'direct-tls') {
          this.host.debug('direct TLS is not supported when the router terminates TLS', { session: this.id });
          this.close();
          return;
        }
        if (pkt.kind === 'cancel') {
          // A client that encrypts its cancel requests too (libpq 17's PQcancelCreate) sends it here.
          this.host.cancel(pkt);
          this.close();
          return;
        }
        if (pkt.kind !== 'startup') {
          this.close();
          return;
        }
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
          this.client.write(Buffer.from([answer]));
          if (answer === 0x53 /* S */ || answer === 0x47 /* G */) {
            this.phase = 'tls';
            break;
          }
          if (answer !== 0x4e /* N */) {
            // An old server's ErrorResponse: let the rest flow as it is.
            this.phase = 'tls';
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
          this.startupRaw = Buffer.from(pkt.raw);
          this.params = pkt.params;
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
      this.client.removeListener('data', onData);
      const rest = reader.takeRest();
      if (this.phase === 'tls') {
        // Client → server: everything from here on is copied as it is.
        if (rest.length > 0) server.write(rest);
        this.unsplice = splice(this.client, server);
        this.startupDone(server, null);
        return;
      }
      this.watchAuthentication(server, first!, rest);
    } finally {
      clearTimeout(startupTimer);
    }
  }

  /** Answers an SSLRequest with `S` and terminates TLS on the client's socket (`router.tls`). */
  private async startTls(context: SecureContext, early: Buffer): Promise<void> {
    const raw = this.client;
    // libpq waits for the answer before its ClientHello; bytes before it are not TLS.
    if (early.length > 0) throw new Error('bytes after SSLRequest before the answer');
    raw.write(Buffer.from('S'));
    const tls = new TLSSocket(raw, { isServer: true, secureContext: context });
    await new Promise<void>((resolve, reject) => {
      tls.once('secure', resolve);
      tls.once('error', reject);
      tls.once('close', () => reject(new Error('client closed during the TLS handshake')));
    });
    tls.removeAllListeners('error');
    tls.removeAllListeners('close');
    tls.on('error', (err: Error) =>
      this.host.debug('client TLS error', { session: this.id, err: err.message }),
    );
    tls.on('close', () => {
      if (this.link === null || this.phase === 'startup') this.close();
    });
    tls.setNoDelay(true);
    this.client = tls;
    this.tlsTerminated = true;
  }

  /**
   * Follows the authentication both ways: server messages through BackendStartupReader (to the
   * client as they come), client messages framed and forwarded one by one until the server says
   * AuthenticationOk (later ones wait for the data path). Ends at the server's ReadyForQuery.
   */
  private watchAuthentication(server: Socket, first: Buffer, early: Buffer): void {
    const fromServer = new BackendStartupReader();
    const fromClient = new MessageReader(1 << 20);
    let authenticated = false;
    // What the client sent ahead of the end of its startup: complete messages other than its
    // authentication (`kept`, in order), then whole chunks once it is authenticated (`held`). They
    // reach the server when the session's data path is up, so a drain can hold them.
    const kept: Buffer[] = [];
    const held: Buffer[] = [];
    const onClient = (chunk: Buffer) => {
      if (authenticated) {
        held.push(Buffer.from(chunk));
        return;
      }
      fromClient.push(chunk);
      try {
        for (let m = fromClient.next(); m; m = fromClient.next()) {
          if (m.type === 'p' && kept.length === 0) {
            this.clientAuthMessage(m.body);
            server.write(m.raw);
          } else kept.push(Buffer.from(m.raw));
        }
      } catch {
        // Not PostgreSQL's framing: let the server say so.
        server.write(fromClient.takeRest());
      }
    };
    this.client.on('data', onClient);
    if (early.length > 0) onClient(early);
    this.serverPending.unshift(first);
    this.setServerSink((view) => {
      const chunk = Buffer.from(view);
      const more = this.client.write(chunk);
      fromServer.push(chunk);
      for (let ev = fromServer.next(); ev; ev = fromServer.next()) {
        switch (ev.kind) {
          case 'auth':
            this.serverAuthMessage(ev.code, ev.data);
            if (ev.code === 0) authenticated = true;
            continue;
          case 'param':
            this.record.serverParam(ev.name, ev.value);
            continue;
          case 'key':
            this.serverKey = ev.key;
            this.keyId = backendKeyId(ev.key);
            this.host.keyLearned(this, this.keyId);
            continue;
          case 'ready': {
            this.client.removeListener('data', onClient);
            const rest = [...kept, fromClient.takeRest(), ...held];
            const toServer = Buffer.concat(rest);
            this.phase = 'relayed';
            this.startupDone(server, toServer.length > 0 ? toServer : null);
            this.resolveCredentials();
            return more;
          }
          default:
            // error or invalid: the server closes; pass the rest on as it is.
            this.client.removeListener('data', onClient);
            this.unsplice = splice(this.client, server);
            this.phase = 'tls';
            this.startupDone(server, null);
            return more;
        }
      }
      return more;
    });
  }

  private serverAuthMessage(code: number, data: Buffer): void {
    switch (code) {
      case 0:
        return;
      case 3:
        this.seenAuth = { method: 'password', password: null };
        return;
      case 5:
        this.seenAuth = { method: 'md5' };
        return;
      case 10:
        this.seenAuth = { method: 'scram', observer: new ScramObserver() };
        return;
      case 11:
        if (this.seenAuth.method === 'scram') this.seenAuth.observer.serverContinue(data);
        return;
      case 12:
        return;
      default:
        this.seenAuth = { method: 'other', what: `authentication request ${code}` };
    }
  }

  private clientAuthMessage(body: Buffer): void {
    const a = this.seenAuth;
    if (a.method === 'scram') a.observer.clientMessage(body);
    else if (a.method === 'password') {
      const end = body.indexOf(0);
      a.password = body.toString('utf8', 0, end < 0 ? body.length : end);
    }
  }

  /** Works out, in the background, how the router can authenticate as this client elsewhere. */
  private resolveCredentials(): void {
    const p = this.readCredentials();
    p.catch((err: unknown) =>
      this.host.debug('this session cannot move', { session: this.id, why: (err as Error).message }),
    );
    this.credentials = p;
  }

  private async readCredentials(): Promise<Credentials> {
    const a = this.seenAuth;
    if (this.params.replication !== undefined) throw new Error('a replication connection');
    switch (a.method) {
      case 'none':
        return { kind: 'none' };
      case 'password':
        if (a.password === null) throw new Error('no password seen');
        return { kind: 'password', password: a.password };
      case 'other':
        throw new Error(`it authenticated with ${a.what}, which the router cannot repeat`);
      default:
        break;
    }
    const secrets = this.host.secrets;
    if (!secrets?.available)
      throw new Error(
        'no superuser credentials to read role verifiers with (postgresql.authentication.superuser)',
      );
    const members = this.host.members(this.backend);
    for (const fresh of [false, true]) {
      const stored = await secrets.get(this.user, members, fresh);
      if (stored === null) throw new Error(`role ${this.user} has no password in pg_authid`);
      if (a.method === 'md5') {
        if (stored.startsWith('md5')) return { kind: 'md5', stored };
        continue;
      }
      const secret = parseScramSecret(stored);
      const t = a.observer.transcript();
      if (!t) throw new Error('the SCRAM exchange was not complete');
      if (!secret) continue;
      const clientKey = recoverClientKey(t, secret.storedKey);
      if (clientKey) return { kind: 'scram', clientKey, serverKey: secret.serverKey };
    }
    throw new Error(`the verifier of role ${this.user} in pg_authid does not match its authentication`);
  }

  /**
   * Server → client during startup. The server socket reads into one buffer shared by every
   * session (`onread`), so a read allocates nothing; each consumer below copies what it keeps.
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

  private linkListener(): LinkListener {
    return {
      ended: (reason) => {
        this.host.debug('session ended', { session: this.id, reason });
        this.close();
      },
      held: (state) => this.onHeld(state),
      lost: (state, reason, kept) => void this.onLost(state, reason, kept),
      client: (type, body, truncated) => this.record.clientMessage(type, body, truncated),
      server: (type, body) => {
        if (type !== 'S') return;
        const nul = body.indexOf(0);
        if (nul > 0)
          this.record.serverParam(
            body.toString('utf8', 0, nul),
            body.toString('utf8', nul + 1, body.length - 1),
          );
      },
    };
  }

  /** The startup phase is over: the native relay takes the session, or JavaScript relays it. */
  private startupDone(server: Socket, toServer: Buffer | null): void {
    const track = this.phase === 'relayed';
    // A drain holds its server: the JavaScript link can hold it before its first byte moves (the
    // relay thread would start copying before the hold could reach it).
    const drained = track && this.host.draining(this);
    if (this.host.relay && !this.tlsTerminated && !drained) {
      this.handOff(this.host.relay, server, toServer, track);
      return;
    }
    this.relayInJavaScript(server, toServer, track);
  }

  private relayInJavaScript(server: Socket, toServer: Buffer | null, track: boolean): void {
    this.unsplice?.();
    this.unsplice = null;
    this.dataPath = 'javascript';
    this.lastBytes = [this.client.bytesRead - (toServer?.length ?? 0), this.client.bytesWritten];
    const link = new JsLink(this.client, server, track, this.linkListener());
    this.link = link;
    this.linked = true;
    // Before any client byte moves: a hold asked for now stops ahead of the first statement.
    this.host.relaying(this);
    // The socket reads into the shared buffer (`onread`), which emits no 'data': from here on its
    // bytes are copied out and emitted as 'data', so they reach whoever holds the socket now (the
    // link; while the session is held, the router reading its state) and never a former holder.
    this.setServerSink((view) => {
      server.emit('data', Buffer.from(view));
      return true;
    });
    if (toServer) this.client.unshift(toServer);
    this.client.resume();
    server.resume();
  }

  /**
   * Moves the session to the native relay: both sockets stop reading, Node writes out what it still
   * holds for them, then the relay takes duplicates of their descriptors, with what the client sent
   * meanwhile, and Node's sockets are closed (the duplicates keep the connections open). A session
   * that cannot be handed over in time (a client that does not read) stays in JavaScript.
   */
  private handOff(relay: NativeRelay, server: Socket, early: Buffer | null, track: boolean): void {
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
        return this.stayInJavaScript(server, early, track, healthy ? 'writes pending' : 'half closed');
      const held: Buffer[] = early ? [early] : [];
      for (let b = client.read() as Buffer | null; b !== null; b = client.read() as Buffer | null)
        held.push(b);
      const toServer = held.length > 0 ? Buffer.concat(held) : null;
      const toClient = this.serverPending.length > 0 ? Buffer.concat(this.serverPending) : null;
      const link = new NativeLink(relay, this.id);
      try {
        link.start(client, server, toServer, toClient, track, this.linkListener());
      } catch (err) {
        // Whatever was read stays ours to write: put it back in front.
        if (toServer) client.unshift(toServer);
        return this.stayInJavaScript(server, null, track, (err as Error).message);
      }
      this.link = link;
      this.linked = true;
      this.serverPending.length = 0;
      this.dataPath = 'native';
      this.lastBytes = [client.bytesRead - (toServer?.length ?? 0), client.bytesWritten];
      for (const s of [client, server]) {
        s.removeAllListeners('close');
        s.removeAllListeners('end');
        s.removeAllListeners('drain');
        s.removeAllListeners('data');
        s.on('error', () => undefined);
        s.destroy();
      }
      this.server = null;
      this.host.relaying(this);
    };
    setImmediate(attempt);
  }

  /** Goes on relaying a session in JavaScript after a hand-off that could not be made. */
  private stayInJavaScript(server: Socket, early: Buffer | null, track: boolean, why: string): void {
    this.host.debug('session stays in the JavaScript data path', { session: this.id, why });
    this.relayInJavaScript(server, early, track);
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
    const limit = deadline(Math.max(1, this.deadline - Date.now()), this.abort.signal);
    const signal = limit.signal;
    let lastErr: Error | null = null;
    try {
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
          if (!this.host.serves(picked.backend, picked.role)) {
            // The router moved on while this connected: nothing was sent yet; pick again.
            server.destroy();
            continue;
          }
          this.server = server;
          this.backend = picked.backend;
          this.role = picked.role;
          server.on('close', () => {
            if (this.server === server && this.link === null) this.close();
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
    } finally {
      limit.clear();
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

  // ---- moving -----------------------------------------------------------------------------------

  /** Why this session cannot move whatever its state, or null. */
  private fixedReason(): string | null {
    if (this.phase === 'tls' && !this.tlsTerminated)
      return 'encrypted end to end (the router does not terminate TLS)';
    if (this.params.replication !== undefined) return 'a replication connection';
    const a = this.seenAuth;
    if (a.method === 'other') return `authenticated with ${a.what}, which the router cannot repeat`;
    return null;
  }

  /** Why the session cannot move from where it stopped, or null. */
  private stateReason(state: LinkState | null): string | null {
    if (state === null) return 'its data path ended';
    if (state.broken) return 'its message stream could not be followed';
    if (state.copy) return 'unfinished COPY';
    if (!state.serverBoundary) return 'a server message was half passed on to the client';
    if (!state.clientBoundary) return 'the client was half way through sending a message';
    if (state.unsynced && state.pendingSync === 0)
      return 'extended-protocol messages not yet followed by Sync';
    return this.record.unmovable();
  }

  /**
   * Asks the session to stop at its next idle boundary for a drain; false when it cannot be held
   * (still starting, encrypted end to end, already stopped).
   */
  holdForDrain(): boolean {
    if (this.phase !== 'relayed' || !this.link?.hold()) return false;
    this.phase = 'holding';
    this.holdFor = 'drain';
    return true;
  }

  /**
   * Moves the session once it is idle (its server stays up: a promoted or unfit replica); cut when
   * it is not idle within `timeoutMs`.
   */
  moveWhenIdle(why: string, timeoutMs: number): void {
    if (this.phase === 'tls' || this.phase === 'startup') {
      this.cut(this.fixedReason() ?? 'still starting', why);
      return;
    }
    if (this.phase !== 'relayed' || !this.link?.hold()) return;
    this.phase = 'holding';
    const timer = setTimeout(() => {
      if (this.phase !== 'holding') return;
      const state = this.link?.pause() ?? null;
      this.cut(this.busyReason(state, timeoutMs), why, state);
    }, timeoutMs);
    timer.unref();
    this.holdFor = { why, timer };
  }

  /** Why a session that did not reach an idle boundary in time is cut. */
  busyReason(state: LinkState | null, timeoutMs: number): string {
    if (state?.copy) return 'unfinished COPY';
    if (state && state.status !== 'I') return `open transaction past the drain timeout (${timeoutMs} ms)`;
    return `statement still running past the drain timeout (${timeoutMs} ms)`;
  }

  /** A drain ended before this session reached its idle boundary: it goes on as it was. */
  cancelHold(): void {
    if (this.phase !== 'holding') return;
    this.holdFor = null;
    if (this.link?.release()) this.phase = 'relayed';
  }

  /** Where a session being drained stands: stopped (held), or not yet. */
  get isHeld(): boolean {
    return this.phase === 'held';
  }

  /** Stops a session that did not reach an idle boundary in time; returns its state. */
  pauseNow(): LinkState | null {
    return this.link?.pause() ?? null;
  }

  private onHeld(state: LinkState): void {
    if (this.closed) return;
    this.phase = 'held';
    this.stoppedState = state;
    this.heldSince = Date.now();
    const h = this.holdFor;
    if (h === 'drain') {
      this.host.held(this);
      return;
    }
    if (h !== null) clearTimeout(h.timer);
    this.holdFor = null;
    void this.moveHeld(h?.why ?? 'moved');
  }

  /**
   * Reads a held session's real state from its server (which stays parked) and says why it cannot
   * move, or null. When the read fails, the recorded state stands.
   */
  async introspect(): Promise<string | null> {
    const fixed = this.fixedReason();
    if (fixed) return fixed;
    if (this.phase !== 'held') return 'not held';
    const s = this.parked ?? this.link?.takeServer() ?? null;
    this.parked = s;
    if (s) {
      try {
        this.record.fromIntrospection(
          parseIntrospection(await simpleQuery(s, INTROSPECTION, INTROSPECT_TIMEOUT_MS)),
        );
      } catch (err) {
        this.host.debug('could not read the session state from its server; using the recorded state', {
          session: this.id,
          err: (err as Error).message,
        });
      }
    }
    return this.stateReason(this.stoppedState);
  }

  /** A held session goes on where it is (the drain ended without a new primary). */
  resumeInPlace(): void {
    if (this.phase !== 'held' || !this.link) return;
    const parked = this.parked;
    this.parked = null;
    this.holdFor = null;
    const ok =
      parked && !parked.destroyed && !parked.readableEnded
        ? this.link.attach(parked, null, 'I')
        : this.link.release();
    if (ok) {
      this.phase = 'relayed';
      this.heldSince = null;
      return;
    }
    void this.moveHeld('its server went away while it was held');
  }

  /** A held (idle) session moves to a server picked for its port. */
  async moveHeld(why: string): Promise<void> {
    if (this.phase !== 'held') return;
    this.holdFor = null;
    await this.relocate(this.stoppedState ?? this.link?.pause() ?? null, why);
  }

  /** The session's server is no longer where it belongs (the fence): stop now and move. */
  fence(why: string): void {
    if (this.closed) return;
    if (this.phase === 'startup') {
      this.close();
      return;
    }
    if (this.phase === 'moving') return;
    if (this.phase === 'tls') {
      this.cut(this.fixedReason() ?? 'encrypted end to end', why);
      return;
    }
    if (this.holdFor !== null && this.holdFor !== 'drain') clearTimeout(this.holdFor.timer);
    this.holdFor = null;
    const state = this.phase === 'held' ? this.stoppedState : (this.link?.pause() ?? null);
    void this.relocate(state, why);
  }

  private async onLost(state: LinkState, reason: string, kept: Buffer | null): Promise<void> {
    if (this.closed || this.phase === 'moving') return;
    const fatal = kept ? parseErrorFields(kept.subarray(5)) : null;
    const why = fatal?.M ? `${reason}: ${fatal.M}` : reason;
    const cannot = this.fixedReason() ?? (this.credentials === null ? 'no credentials' : null);
    if (kept && (cannot || (await this.deliberate(fatal)))) {
      // The client gets what its server said, as it would have without the router.
      this.host.debug('passing a FATAL on and ending the session', { session: this.id, why });
      this.finishWith(kept);
      return;
    }
    await this.relocate(state, why);
  }

  /**
   * Whether a FATAL "terminating connection due to administrator command" ended this one session
   * (pg_terminate_backend) rather than its server (a fast shutdown says the same): the server
   * still takes connections.
   */
  private async deliberate(fatal: Record<string, string> | null): Promise<boolean> {
    if (fatal?.C !== '57P01' || !/administrator command/.test(fatal.M ?? '') || !this.backend) return false;
    if (!this.role || !this.host.serves(this.backend, this.role)) return false;
    return acceptsConnections(this.backend, this.host.connectTimeoutMs);
  }

  /** Writes `bytes` to the client (it stands between two messages) and ends the session. */
  private finishWith(bytes: Buffer): void {
    const link = this.link;
    if (link) {
      const b = link.bytes();
      this.lastBytes = [this.lastBytes[0] + b[0], this.lastBytes[1] + b[1]];
      this.link = null;
      link.finish(bytes);
    }
    this.close();
  }

  /**
   * Re-attaches the session to a server picked for its port, from where it stopped: an idle
   * session sees a pause; one with statements in flight gets an error for each (their outcome on
   * the old server is unknown), and one inside a transaction goes on in a failed transaction.
   */
  private async relocate(state: LinkState | null, why: string): Promise<void> {
    if (this.closed || !this.link) return;
    // The pause runs from the stop: the hold of a drain, else now (its server was lost).
    const started = this.heldSince ?? Date.now();
    this.heldSince = null;
    const from = this.backend?.name ?? null;
    this.phase = 'moving';
    const reason = this.fixedReason() ?? this.stateReason(state);
    if (reason !== null || state === null) return this.cut(reason ?? 'its data path ended', why, state);
    this.stoppedState = state;
    // The old server connection is done with: closing it ends any transaction still open there.
    this.parked?.destroy();
    this.parked = null;
    this.link.takeServer()?.destroy();

    let credentials: Credentials;
    try {
      if (this.credentials === null) throw new Error('its authentication was not seen');
      credentials = await this.credentials;
    } catch (err) {
      return this.cut(`cannot authenticate as ${this.user}: ${(err as Error).message}`, why);
    }
    const inFlight = state.pendingSync;
    const inTransaction = state.status !== 'I';
    const limit = deadline(Math.max(1000, this.host.waitTimeoutMs), this.abort.signal);
    const budget = limit.signal;
    try {
      for (;;) {
        let picked: { backend: Backend; role: 'primary' | 'replica' };
        try {
          picked = await this.host.pick(this.port, budget);
        } catch (err) {
          return this.cut(err instanceof RouterRefusal ? err.reason : (err as Error).message, why);
        }
        if (this.closed) return;
        try {
          const attached = await attachServer({
            backend: picked.backend,
            startup: this.startupRaw!,
            user: this.user,
            credentials,
            replay: this.record.replay(),
            abortTransaction: inTransaction,
            connectTimeoutMs: this.host.connectTimeoutMs,
            signal: budget,
          });
          if (this.closed || !this.link) {
            attached.socket.destroy();
            return;
          }
          if (!this.host.serves(picked.backend, picked.role)) {
            // The router moved on while this attached: none of the client's statements went there.
            attached.socket.destroy();
            continue;
          }
          const toClient = this.clientCatchUp(attached.params, inFlight, inTransaction);
          if (attached.rest.length > 0) toClient.push(attached.rest);
          const ok = this.link.attach(
            attached.socket,
            toClient.length > 0 ? Buffer.concat(toClient) : null,
            attached.status,
          );
          if (!ok) return this.cut('its data path ended while it moved', why);
          this.backend = picked.backend;
          this.role = picked.role;
          this.serverKey = attached.key;
          this.phase = 'relayed';
          this.stoppedState = null;
          this.moves++;
          this.host.register(this);
          this.host.moved(this, { from, to: picked.backend.name, ms: Date.now() - started, why });
          return;
        } catch (err) {
          const e = err as AttachError;
          if (!(e instanceof AttachError) || !e.retry || budget.aborted)
            return this.cut(`could not re-attach to ${picked.backend.name}: ${e.message}`, why);
          this.host.connectFailed(picked.backend, e);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } finally {
      limit.clear();
    }
  }

  /**
   * What the client is told after a move: the ParameterStatus values that changed, then for each
   * statement it had in flight an error and ReadyForQuery.
   */
  private clientCatchUp(params: Map<string, string>, inFlight: number, inTransaction: boolean): Buffer[] {
    const out: Buffer[] = [];
    for (const [name, value] of params) {
      if (this.record.serverParams.get(name) === value) continue;
      out.push(parameterStatus(name, value));
      this.record.serverParam(name, value);
    }
    for (let i = 0; i < inFlight; i++) {
      out.push(
        errorResponse(
          '08007',
          'pgha router: the server of this session went away while this statement ran; its outcome is unknown',
          'ERROR',
          inTransaction
            ? 'The transaction is gone. The session goes on with the new server, inside a failed transaction: ROLLBACK.'
            : 'The session goes on with the new server.',
        ),
        readyForQuery(inTransaction ? 'E' : 'I'),
      );
    }
    return out;
  }

  /**
   * Closes a session that cannot move, logging why; the client reads the reason as a FATAL error
   * when it stands between two server messages.
   */
  cut(reason: string, why: string, state: LinkState | null = this.stoppedState): void {
    if (this.closed) return;
    this.host.cut(this, reason, why);
    if (this.link && state?.serverBoundary)
      this.finishWith(
        errorResponse(
          '57P01',
          `pgha router: this session cannot move to another server: ${reason}`,
          'FATAL',
          why,
        ),
      );
    else this.close();
  }

  /** Where a cancel request for this session goes now: the current server and its key. */
  cancelTarget(): { backend: Backend; key: BackendKey } | null {
    return this.backend && this.serverKey && (this.phase === 'relayed' || this.phase === 'holding')
      ? { backend: this.backend, key: this.serverKey }
      : null;
  }
}

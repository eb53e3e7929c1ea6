/**
 * A session's data path after its startup phase, behind one interface: the native relay thread
 * (`NativeLink`, native.ts) or JavaScript (`JsLink`, with tracker.ts), for sessions the router
 * relays itself (`data_path: javascript`, and TLS sessions it terminates). Both track messages when
 * asked (a plaintext PostgreSQL session the router may move), hold at an idle boundary, stop at
 * once, report the server's loss, and take a new server connection.
 */
import type { Socket } from 'node:net';
import type { DataPath, NativeRelay } from './native.js';
import { WireTracker, type LinkEvents, type LinkState } from './tracker.js';

export interface Link {
  readonly dataPath: DataPath;
  /** Stop at the next idle transaction boundary (`held` follows); false when it cannot. */
  hold(): boolean;
  /** Stop reading both sides now; where the session stood (null once it ended). */
  pause(): LinkState | null;
  /** Go on with the same server after a hold or pause; false when that server is gone. */
  release(): boolean;
  /** The server connection of a stopped session, now the caller's (paused); null if none. */
  takeServer(): Socket | null;
  /** Go on with a new server (now the link's), writing `toClient` to the client first. */
  attach(server: Socket, toClient: Buffer | null, status: string): boolean;
  /** Closes both connections at once. */
  close(): void;
  /** Ends the session with last words to the client (it stands between two messages). */
  finish(lastWords: Buffer): void;
  /** Bytes [from the client, to the client] so far. */
  bytes(): [number, number];
}

/** Everything a link reports; `ended` once, when it is over by itself. */
export interface LinkListener extends LinkEvents {
  ended(reason: string): void;
}

/** A session on the native relay thread. */
export class NativeLink implements Link {
  readonly dataPath = 'native' as const;
  private handle: number | null = null;
  private last: [number, number] = [0, 0];

  constructor(
    private readonly relay: NativeRelay,
    private readonly id: number,
  ) {}

  /** Hands both sockets over (the caller destroys its own copies after this returns). */
  start(
    client: Socket,
    server: Socket,
    toServer: Buffer | null,
    toClient: Buffer | null,
    track: boolean,
    l: LinkListener,
  ): void {
    this.handle = this.relay.add(
      this.id,
      client,
      server,
      toServer,
      toClient,
      {
        ended: (fromClient, toC, reason) => {
          this.last = [fromClient, toC];
          this.handle = null;
          l.ended(reason);
        },
        held: (s) => l.held(s),
        lost: (s, reason, kept) => l.lost(s, reason, kept),
        client: (t, b, tr) => l.client(t, b, tr),
        server: (t, b) => l.server(t, b),
      },
      track,
    );
  }

  hold(): boolean {
    return this.handle !== null && this.relay.hold(this.handle);
  }

  pause(): LinkState | null {
    return this.handle === null ? null : this.relay.pause(this.handle);
  }

  release(): boolean {
    return this.handle !== null && this.relay.release(this.handle);
  }

  takeServer(): Socket | null {
    return this.handle === null ? null : this.relay.takeServer(this.handle);
  }

  attach(server: Socket, toClient: Buffer | null, status: string): boolean {
    if (this.handle === null) return false;
    const ok = this.relay.attach(this.handle, server, toClient, status);
    // The relay holds a duplicate of the descriptor: Node's socket goes (the connection stays).
    server.removeAllListeners();
    server.on('error', () => undefined);
    server.destroy();
    return ok;
  }

  finish(lastWords: Buffer): void {
    if (this.handle === null) return;
    const b = this.relay.bytes(this.handle);
    if (b) this.last = b;
    this.relay.finish(this.id, this.handle, lastWords);
    this.handle = null;
  }

  close(): void {
    if (this.handle === null) return;
    const b = this.relay.close(this.id, this.handle);
    if (b) this.last = b;
    this.handle = null;
  }

  bytes(): [number, number] {
    if (this.handle !== null) {
      const b = this.relay.bytes(this.handle);
      if (b) this.last = b;
    }
    return this.last;
  }
}

/** A session relayed in JavaScript. */
export class JsLink implements Link {
  readonly dataPath = 'javascript' as const;
  private server: Socket | null;
  private readonly tracker: WireTracker | null;
  private stopped = false;
  private holding = false;
  private ended = false;
  private lost = false;
  private fromClient = 0;
  private toClient = 0;
  private readonly onClientData = (chunk: Buffer) => this.fromClientBytes(chunk);
  private readonly onClientDrain = () => {
    if (!this.stopped) this.server?.resume();
    this.checkHold();
  };
  private readonly onClientEnd = () => this.server?.end();
  private readonly onClientClose = () => this.end('client closed');
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private serverListeners: Array<[string, (...args: any[]) => void]> = [];

  /**
   * `server` is connected and paused. The link reads it through its `'data'` events, as it reads
   * every server it is given later: a socket that reads into a shared buffer (`onread`) has its
   * bytes emitted as `'data'` by the session, so whoever holds the socket (the link, or the router
   * reading a held session's state) gets them, and nobody else.
   */
  constructor(
    private readonly client: Socket,
    server: Socket,
    track: boolean,
    private readonly l: LinkListener,
  ) {
    this.server = server;
    this.tracker = track
      ? new WireTracker({ client: (t, b, tr) => l.client(t, b, tr), server: (t, b) => l.server(t, b) })
      : null;
    client.on('data', this.onClientData);
    client.on('drain', this.onClientDrain);
    client.on('end', this.onClientEnd);
    client.on('close', this.onClientClose);
    this.watchServer(server);
  }

  private watchServer(server: Socket): void {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const on = (event: string, fn: (...args: any[]) => void) => {
      server.on(event, fn);
      this.serverListeners.push([event, fn]);
    };
    on('data', (chunk: Buffer) => this.fromServer(chunk));
    on('drain', () => {
      if (!this.stopped) this.client.resume();
      this.checkHold();
    });
    on('end', () => this.serverGone(server, 'server closed the connection'));
    on('close', () => this.serverGone(server, 'server closed the connection'));
    on('error', () => undefined);
  }

  private unwatchServer(server: Socket): void {
    for (const [event, fn] of this.serverListeners) server.removeListener(event, fn);
    this.serverListeners = [];
  }

  /** Writes what the client sent to the server. */
  private fromClientBytes(chunk: Buffer): void {
    // Asked to hold and at an idle boundary: these bytes begin the next statement, so they wait in
    // the client socket for the hold (or its release) instead of reaching the server first.
    const atHold = this.holding && this.tracker !== null && this.tracker.idleBoundary();
    if (this.stopped || !this.server || atHold) {
      this.client.pause();
      this.client.unshift(chunk);
      if (atHold) this.checkHold();
      return;
    }
    this.fromClient += chunk.length;
    this.tracker?.client(chunk);
    if (!this.server.write(chunk)) this.client.pause();
  }

  /** Server bytes (a chunk of the link's own: it may keep views into it). */
  private fromServer(chunk: Buffer): boolean {
    if (this.ended) return true;
    const t = this.tracker;
    let out: Buffer[];
    if (t === null || t.broken) out = [chunk];
    else {
      const r = t.server(chunk);
      out = r.out;
      if (r.lost) {
        for (const b of out) this.write(b);
        this.markLost(r.lost.reason, r.lost.kept);
        return true;
      }
    }
    let more = true;
    for (const b of out) more = this.write(b) && more;
    if (!more) this.server?.pause();
    this.checkHold();
    return more;
  }

  private write(b: Buffer): boolean {
    this.toClient += b.length;
    return this.client.write(b);
  }

  private serverGone(server: Socket, reason: string): void {
    if (server !== this.server || this.ended || this.lost) return;
    const t = this.tracker;
    if (t !== null && !t.broken && !t.fatal && !this.client.readableEnded) {
      if (this.stopped) return; // the session will find out when it goes on
      this.markLost(reason, null);
      return;
    }
    this.client.end();
    this.end(reason);
  }

  private markLost(reason: string, kept: Buffer | null): void {
    this.lost = true;
    this.stopped = true;
    this.holding = false;
    this.client.pause();
    this.server?.pause();
    this.l.lost(this.tracker!.state(true), reason, kept);
  }

  private checkHold(): void {
    const t = this.tracker;
    if (!this.holding || this.stopped || t === null || !t.idleBoundary()) return;
    if (this.client.writableLength > 0 || (this.server?.writableLength ?? 0) > 0) return;
    this.holding = false;
    this.stopped = true;
    this.client.pause();
    this.server?.pause();
    this.l.held(t.state(false));
  }

  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.l.ended(reason);
  }

  hold(): boolean {
    if (this.tracker === null || this.stopped || this.ended) return false;
    this.holding = true;
    // `held` follows later, never from inside hold() (as from the native relay): the caller
    // records the hold first.
    setImmediate(() => this.checkHold());
    return true;
  }

  pause(): LinkState | null {
    if (this.ended) return null;
    this.stopped = true;
    this.holding = false;
    this.client.pause();
    this.server?.pause();
    return this.tracker?.state(this.lost) ?? null;
  }

  release(): boolean {
    const s = this.server;
    if (this.ended || this.lost || !s || s.destroyed || s.readableEnded) return false;
    this.stopped = false;
    this.holding = false;
    this.client.resume();
    s.resume();
    return true;
  }

  takeServer(): Socket | null {
    const s = this.server;
    if (!this.stopped || !s) return null;
    this.unwatchServer(s);
    this.server = null;
    s.pause();
    return s;
  }

  attach(server: Socket, toClient: Buffer | null, status: string): boolean {
    if (this.ended || !this.stopped) return false;
    const old = this.server;
    if (old) {
      this.unwatchServer(old);
      old.destroy();
    }
    this.server = server;
    this.lost = false;
    this.tracker?.resetServer(status);
    this.watchServer(server);
    this.stopped = false;
    if (toClient && toClient.length > 0) this.fromServer(toClient);
    this.client.resume();
    server.resume();
    return true;
  }

  finish(lastWords: Buffer): void {
    this.ended = true;
    this.client.removeListener('data', this.onClientData);
    this.client.end(lastWords);
    this.server?.destroy();
    setTimeout(() => this.client.destroy(), 1000).unref();
  }

  close(): void {
    this.ended = true;
    this.client.removeListener('data', this.onClientData);
    this.client.destroy();
    this.server?.destroy();
  }

  bytes(): [number, number] {
    return [this.fromClient, this.toClient];
  }
}

/**
 * The router's native data path: `native/relay.c`, built into `build/Release/pgha_relay.node` by
 * `npm run build:native` (node-gyp; `scripts/setup` and `npm install` run it).
 *
 * After a session's startup phase (see session.ts), both of its sockets are handed to a relay thread
 * that copies bytes between them in C with recv/send on an epoll loop: no JavaScript, no allocation
 * and no event-loop turn per message. For a session the router may move (plaintext PostgreSQL), the
 * relay also follows message boundaries and transaction status in C, holds the session at an idle
 * boundary when asked, reports the loss of its server instead of ending it, takes a new server
 * connection for it, and reports the rare client statements that change session state. JavaScript
 * keeps everything that needs a decision: the startup phase, routing, cancel keys, the fence and moves.
 */
import { Socket } from 'node:net';
import { loadAddon } from '../util/package-root.js';
import type { LinkEvents, LinkState } from './tracker.js';

/** Where the router's bytes are copied after the startup phase. */
export type DataPath = 'native' | 'javascript';

interface AddonInfo extends LinkState {
  fromClient: number;
  toClient: number;
  reason?: string;
  type?: string;
  truncated?: boolean;
  data?: Buffer;
}

/** The addon's relay object (native/relay.c). */
interface AddonRelay {
  add(
    id: number,
    clientFd: number,
    serverFd: number,
    toServer: Buffer | null,
    toClient: Buffer | null,
    track: boolean,
  ): number;
  close(handle: number): [number, number] | null;
  bytes(handle: number): [number, number] | null;
  hold(handle: number): boolean;
  pause(handle: number): LinkState | null;
  state(handle: number): LinkState | null;
  release(handle: number): boolean;
  takeServer(handle: number): number;
  attach(handle: number, serverFd: number, toClient: Buffer | null, status: string): boolean;
  finish(handle: number, lastWords: Buffer | null): boolean;
  stop(): void;
  threads(): number;
}

interface Addon {
  createRelay(onEvent: (id: number, kind: string, info: AddonInfo) => void, threads: number): AddonRelay;
}

/** Called once when the relay ends a session by itself: either side closed or failed. */
export type RelayEnded = (fromClient: number, toClient: number, reason: string) => void;

/** The addon's name in binding.gyp. */
const ADDON = 'pgha_relay';

/** What a relayed session hears from the relay: its end, and with tracking the events of tracker.ts. */
export type RelayListener = RelayEnded | (Partial<LinkEvents> & { ended: RelayEnded });

/** The relay thread of this process; sessions of every router in it share it. */
export class NativeRelay {
  private readonly listeners = new Map<number, RelayListener>();
  private readonly relay: AddonRelay;

  constructor(addon: Addon, threads: number) {
    this.relay = addon.createRelay((id, kind, info) => this.dispatch(id, kind, info), threads);
  }

  private dispatch(id: number, kind: string, info: AddonInfo): void {
    const l = this.listeners.get(id);
    if (!l) return;
    if (kind === 'closed') {
      this.listeners.delete(id);
      (typeof l === 'function' ? l : l.ended)(info.fromClient, info.toClient, info.reason ?? 'closed');
      return;
    }
    if (typeof l === 'function') return;
    const state = toState(info);
    if (kind === 'held') l.held?.(state);
    else if (kind === 'lost') l.lost?.(state, info.reason ?? 'server lost', info.data ?? null);
    else if (kind === 'client')
      l.client?.(info.type ?? '?', info.data ?? Buffer.alloc(0), info.truncated ?? false);
    else if (kind === 'server') l.server?.(info.type ?? '?', info.data ?? Buffer.alloc(0));
  }

  /** How many relay threads copy bytes (each with its own epoll loop and sessions). */
  get threads(): number {
    return this.relay.threads();
  }

  /**
   * Takes over a connected pair: the relay duplicates both descriptors (the caller then destroys
   * its sockets), writes `toServer` / `toClient` first, and copies from then on. With `track`, it
   * follows the PostgreSQL messages (see the file comment). Returns the handle for the other
   * calls. Throws when a socket has no descriptor.
   */
  add(
    id: number,
    client: Socket,
    server: Socket,
    toServer: Buffer | null,
    toClient: Buffer | null,
    listener: RelayListener,
    track = false,
  ): number {
    this.listeners.set(id, listener);
    try {
      return this.relay.add(id, fdOf(client), fdOf(server), toServer, toClient, track);
    } catch (err) {
      this.listeners.delete(id);
      throw err;
    }
  }

  /** Closes a relayed session at once (the fence); returns its byte counts, or null if it had ended. */
  close(id: number, handle: number): [number, number] | null {
    this.listeners.delete(id);
    return this.relay.close(handle);
  }

  /** Bytes written so far: [client → server, server → client]; null once the session ended. */
  bytes(handle: number): [number, number] | null {
    return this.relay.bytes(handle);
  }

  /** Asks a tracked session to stop at its next idle boundary (`held` follows); false if it cannot. */
  hold(handle: number): boolean {
    return this.relay.hold(handle);
  }

  /** Stops reading both sides now; returns where the session stood (null once it ended). */
  pause(handle: number): LinkState | null {
    const s = this.relay.pause(handle);
    return s && toState(s);
  }

  state(handle: number): LinkState | null {
    const s = this.relay.state(handle);
    return s && toState(s);
  }

  /** A held or paused session goes on with its server. */
  release(handle: number): boolean {
    return this.relay.release(handle);
  }

  /** The server connection of a stopped session, as a paused socket JavaScript now owns; null if none. */
  takeServer(handle: number): Socket | null {
    const fd = this.relay.takeServer(handle);
    if (fd < 0) return null;
    const s = new Socket({ fd, readable: true, writable: true });
    s.pause();
    return s;
  }

  /**
   * A stopped session goes on with `server` (its descriptor is duplicated: the caller destroys the
   * socket), writing `toClient` to the client first; `status` is the new server's transaction status.
   */
  attach(handle: number, server: Socket, toClient: Buffer | null, status: string): boolean {
    return this.relay.attach(handle, fdOf(server), toClient, status);
  }

  /** Ends a session after writing `lastWords` to the client (best effort). */
  finish(id: number, handle: number, lastWords: Buffer | null): boolean {
    this.listeners.delete(id);
    return this.relay.finish(handle, lastWords);
  }
}

function toState(s: LinkState): LinkState {
  return {
    status: s.status,
    pendingSync: s.pendingSync,
    unsynced: s.unsynced,
    copy: s.copy,
    clientBoundary: s.clientBoundary,
    serverBoundary: s.serverBoundary,
    broken: s.broken,
    lost: s.lost,
  };
}

/** The descriptor under a connected `net.Socket` (Node keeps it on the handle, on Linux). */
export function fdOf(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the socket has no file descriptor');
  return fd;
}

let loaded: NativeRelay | Error | undefined;

/**
 * The process's native relay with `threads` threads, loaded on first use (later calls get the same
 * relay whatever they ask); an Error says why it cannot be used.
 */
export function nativeRelay(threads = 1): NativeRelay | Error {
  if (loaded === undefined) {
    try {
      const addon = loadAddon<Addon>(ADDON);
      loaded = new NativeRelay(addon, threads);
    } catch (err) {
      loaded = new Error(
        `the native data path is not available (${(err as Error).message.split('\n')[0]}); ` +
          'build it with `npm run build:native` (needs a C compiler, make and python3)',
      );
    }
  }
  return loaded;
}

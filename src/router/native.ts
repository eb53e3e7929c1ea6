/**
 * The router's native data path: `native/relay.c`, built into `build/Release/pgha_relay.node` by
 * `npm run build:native` (node-gyp; `scripts/setup` and `npm install` run it).
 *
 * After a session's startup phase (see session.ts), both of its sockets are handed to a relay thread
 * that copies bytes between them in C with recv/send on an epoll loop: no JavaScript, no allocation
 * and no event-loop turn per message. JavaScript keeps everything that needs a decision: the
 * startup phase, routing, cancel keys and the fence, which closes a relayed session at once
 * through `close()`.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

/** Where the router's bytes are copied after the startup phase. */
export type DataPath = 'native' | 'javascript';

/** The addon's relay object (native/relay.c). */
interface AddonRelay {
  add(
    id: number,
    clientFd: number,
    serverFd: number,
    toServer: Buffer | null,
    toClient: Buffer | null,
  ): number;
  close(handle: number): [number, number] | null;
  bytes(handle: number): [number, number] | null;
  stop(): void;
  threads(): number;
}

interface Addon {
  createRelay(
    onClose: (id: number, fromClient: number, toClient: number, reason: string) => void,
    threads: number,
  ): AddonRelay;
}

/** Called once when the relay ends a session by itself: either side closed or failed. */
export type RelayEnded = (fromClient: number, toClient: number, reason: string) => void;

/** The file the addon is loaded from (the same relative place from `src/router` and `dist/router`). */
export const ADDON_PATH = '../../build/Release/pgha_relay.node';

/** The relay thread of this process; sessions of every router in it share it. */
export class NativeRelay {
  private readonly ended = new Map<number, RelayEnded>();
  private readonly relay: AddonRelay;

  constructor(addon: Addon, threads: number) {
    this.relay = addon.createRelay((id, fromClient, toClient, reason) => {
      const cb = this.ended.get(id);
      this.ended.delete(id);
      cb?.(fromClient, toClient, reason);
    }, threads);
  }

  /** How many relay threads copy bytes (each with its own epoll loop and sessions). */
  get threads(): number {
    return this.relay.threads();
  }

  /**
   * Takes over a connected pair: the relay duplicates both descriptors (the caller then destroys
   * its sockets), writes `toServer` / `toClient` first, and copies from then on. Returns the
   * handle for `close` and `bytes`. Throws when a socket has no descriptor.
   */
  add(
    id: number,
    client: Socket,
    server: Socket,
    toServer: Buffer | null,
    toClient: Buffer | null,
    onEnd: RelayEnded,
  ): number {
    const handle = this.relay.add(id, fdOf(client), fdOf(server), toServer, toClient);
    this.ended.set(id, onEnd);
    return handle;
  }

  /** Closes a relayed session at once (the fence); returns its byte counts, or null if it had ended. */
  close(id: number, handle: number): [number, number] | null {
    this.ended.delete(id);
    return this.relay.close(handle);
  }

  /** Bytes written so far: [client → server, server → client]; null once the session ended. */
  bytes(handle: number): [number, number] | null {
    return this.relay.bytes(handle);
  }
}

/** The descriptor under a connected `net.Socket` (Node keeps it on the handle, on Linux). */
function fdOf(socket: Socket): number {
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
      const addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
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

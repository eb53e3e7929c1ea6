/**
 * The router's native relay (native/relay.c through src/router/native.ts) on real loopback sockets:
 * each test builds client ⇄ [relay] ⇄ backend, where the relay holds the router's two sockets.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeRelay, type NativeRelay } from '../../src/router/native.js';
import {
  errorResponse,
  message,
  parameterStatus,
  queryMessage,
  readyForQuery,
} from '../../src/router/protocol.js';
import type { LinkState } from '../../src/router/tracker.js';

let relay: NativeRelay;
let front: Server; // where "clients" connect: the router's listening socket
let back: Server; // the "backend"
const accepted: { front: Socket[]; back: Socket[] } = { front: [], back: [] };
const open: Socket[] = [];
let nextId = 1;

beforeAll(async () => {
  // Three loops, so sessions spread over threads and handles carry a loop index (the router's
  // default is one thread; this file has its own module instance).
  const r = nativeRelay(3);
  if (r instanceof Error) throw r; // `npm test` builds it (scripts/setup → npm run build)
  relay = r;
  expect(relay.threads).toBe(3);
  front = createServer({ pauseOnConnect: true, noDelay: true, allowHalfOpen: true }, (s) =>
    accepted.front.push(s),
  );
  back = createServer({ noDelay: true, allowHalfOpen: true }, (s) => accepted.back.push(s));
  for (const s of [front, back]) {
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
  }
});

afterAll(async () => {
  for (const s of open) s.destroy();
  for (const s of [...accepted.front, ...accepted.back]) s.destroy();
  for (const s of [front, back]) await new Promise((resolve) => s.close(resolve));
});

const portOf = (s: Server) => (s.address() as { port: number }).port;

async function nextAccepted(list: Socket[], count: number): Promise<Socket> {
  while (list.length < count) await new Promise((r) => setTimeout(r, 2));
  return list[count - 1]!;
}

interface Relayed {
  id: number;
  handle: number;
  /** The client's own socket (the application's side). */
  client: Socket;
  /** The backend's accepted socket. */
  backend: Socket;
  /** Resolves when the relay ends the session by itself. */
  ended: Promise<{ fromClient: number; toClient: number; reason: string }>;
}

/**
 * Connects a client and a backend and gives the router's two sockets to the relay. Not reentrant:
 * it pairs sockets by the order they are accepted.
 */
async function relayed(
  toServer: Buffer | null = null,
  toClient: Buffer | null = null,
  events: Partial<TrackedEvents> | null = null,
): Promise<Relayed> {
  const frontCount = accepted.front.length + 1;
  const backCount = accepted.back.length + 1;
  const client = connect({ port: portOf(front), host: '127.0.0.1', allowHalfOpen: true });
  client.setNoDelay(true);
  open.push(client);
  await once(client, 'connect');
  const routerClient = await nextAccepted(accepted.front, frontCount);
  const routerServer = connect({ port: portOf(back), host: '127.0.0.1', noDelay: true });
  await once(routerServer, 'connect');
  routerServer.pause();
  const backend = await nextAccepted(accepted.back, backCount);
  open.push(backend);
  const id = nextId++;
  let resolveEnded!: Relayed['ended'] extends Promise<infer T> ? (v: T) => void : never;
  const ended = new Promise<{ fromClient: number; toClient: number; reason: string }>(
    (r) => (resolveEnded = r),
  );
  const ended_ = (fromClient: number, toC: number, reason: string) =>
    resolveEnded({ fromClient, toClient: toC, reason });
  const handle = events
    ? relay.add(id, routerClient, routerServer, toServer, toClient, { ...events, ended: ended_ }, true)
    : relay.add(id, routerClient, routerServer, toServer, toClient, ended_);
  routerClient.destroy();
  routerServer.destroy();
  return { id, handle, client, backend, ended };
}

/** Reads exactly `n` bytes from `s`. */
async function readExactly(s: Socket, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer) => {
      chunks.push(b);
      got += b.length;
      if (got >= n) {
        s.removeListener('data', onData);
        s.removeListener('close', onClose);
        const all = Buffer.concat(chunks);
        if (all.length > n) s.unshift(all.subarray(n));
        resolve(all.subarray(0, n));
      }
    };
    const onClose = () => reject(new Error(`closed after ${got} of ${n} bytes`));
    s.on('data', onData);
    s.once('close', onClose);
  });
}

/** Reads `s` to its end and returns the byte count and sha256, slowly when `pauseMs` is set. */
async function drain(s: Socket, pauseMs = 0): Promise<{ length: number; sha: string }> {
  const hash = createHash('sha256');
  let length = 0;
  // Not destroyed at the end of input: the socket may still be writing.
  for await (const chunk of s.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    length += chunk.length;
    if (pauseMs > 0 && Math.random() < 0.05) await new Promise((r) => setTimeout(r, pauseMs));
  }
  return { length, sha: hash.digest('hex') };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface TrackedEvents {
  held(s: LinkState): void;
  lost(s: LinkState, reason: string, kept: Buffer | null): void;
  client(type: string, body: Buffer, truncated: boolean): void;
  server(type: string, body: Buffer): void;
}

/** A tracked session with its events collected. */
async function tracked() {
  const seen = {
    held: [] as LinkState[],
    lost: [] as Array<{ state: LinkState; reason: string; kept: Buffer | null }>,
    client: [] as string[],
    server: [] as string[],
  };
  const r = await relayed(null, null, {
    held: (s) => seen.held.push(s),
    lost: (state, reason, kept) => seen.lost.push({ state, reason, kept }),
    client: (type, body) => seen.client.push(`${type}:${body.toString('latin1').replace(/\0/g, '|')}`),
    server: (type, body) => seen.server.push(`${type}:${body.toString('latin1').replace(/\0/g, '|')}`),
  });
  return { r, seen };
}

const until = async (what: string, ok: () => boolean) => {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
};

const ROWS = Buffer.concat([
  message('T', Buffer.from([0, 0])),
  message('D', Buffer.from([0, 0])),
  message('C', Buffer.from('SELECT 1\0')),
]);

/** A second backend connection, connected and paused, with its accepted end. */
async function anotherBackend(): Promise<{ routerSide: Socket; backend: Socket }> {
  const count = accepted.back.length + 1;
  const routerSide = connect({ port: portOf(back), host: '127.0.0.1', noDelay: true });
  await once(routerSide, 'connect');
  routerSide.pause();
  const backend = await nextAccepted(accepted.back, count);
  open.push(backend);
  return { routerSide, backend };
}

describe('native relay', () => {
  it('writes the bytes held at hand-off first, then relays both ways', async () => {
    const r = await relayed(Buffer.from('held-for-server|'), Buffer.from('held-for-client|'));
    r.client.write('hello');
    expect((await readExactly(r.backend, 21)).toString()).toBe('held-for-server|hello');
    expect((await readExactly(r.client, 16)).toString()).toBe('held-for-client|');
    for (let i = 0; i < 50; i++) {
      r.client.write(`ping ${i}`);
      const got = await readExactly(r.backend, `ping ${i}`.length);
      r.backend.write(`pong ${got.toString().slice(5)}`);
      expect((await readExactly(r.client, `pong ${i}`.length)).toString()).toBe(`pong ${i}`);
    }
    const counted = relay.bytes(r.handle);
    const up = 21 + [...Array(50).keys()].reduce((n, i) => n + `ping ${i}`.length, 0);
    const down = 16 + [...Array(50).keys()].reduce((n, i) => n + `pong ${i}`.length, 0);
    expect(counted).toEqual([up, down]);
    expect(relay.close(r.id, r.handle)).toEqual([up, down]);
  });

  it('moves tens of megabytes both ways at once to slow readers, intact', async () => {
    const r = await relayed();
    const up = randomBytes(24 * 1024 * 1024);
    const down = randomBytes(24 * 1024 * 1024);
    const atBackend = drain(r.backend, 5);
    const atClient = drain(r.client, 5);
    r.client.end(up);
    r.backend.end(down);
    const [b, c] = await Promise.all([atBackend, atClient]);
    expect(b).toEqual({ length: up.length, sha: sha(up) });
    expect(c).toEqual({ length: down.length, sha: sha(down) });
    const ended = await r.ended;
    expect(ended).toEqual({ fromClient: up.length, toClient: down.length, reason: 'closed' });
    expect(relay.bytes(r.handle)).toBeNull();
    for (const garbage of [-1, 2 ** 60, Number.NaN, r.handle - (r.handle % 16) + 15])
      expect(relay.bytes(garbage)).toBeNull();
  }, 60_000);

  it('passes a half close on and keeps the other direction open', async () => {
    const r = await relayed();
    r.client.end('last words');
    const backendEnded = once(r.backend, 'end');
    expect((await readExactly(r.backend, 10)).toString()).toBe('last words');
    r.backend.resume();
    await backendEnded;
    // The client has stopped writing; it still reads.
    r.backend.write('reply after the end');
    expect((await readExactly(r.client, 19)).toString()).toBe('reply after the end');
    r.backend.end();
    expect(await r.ended).toEqual({ fromClient: 10, toClient: 19, reason: 'closed' });
  });

  it('closes both connections at once when JavaScript closes the session (the fence)', async () => {
    const r = await relayed();
    r.client.write('x');
    await readExactly(r.backend, 1);
    // The relay closes both connections: each side reads its end.
    const clientClosed = once(r.client, 'end');
    const backendClosed = once(r.backend, 'end');
    r.client.resume();
    r.backend.resume();
    expect(relay.close(r.id, r.handle)).toEqual([1, 0]);
    await Promise.all([clientClosed, backendClosed]);
    expect(relay.close(r.id, r.handle)).toBeNull(); // a stale handle does nothing
    expect(relay.bytes(r.handle)).toBeNull();
    for (const garbage of [-1, 2 ** 60, Number.NaN, r.handle - (r.handle % 16) + 15])
      expect(relay.bytes(garbage)).toBeNull();
    // The relay does not report a session JavaScript closed.
    const reported = await Promise.race([r.ended, new Promise((res) => setTimeout(() => res('none'), 100))]);
    expect(reported).toBe('none');
  });

  it('ends the session and closes the client when the backend resets', async () => {
    const r = await relayed();
    r.client.write('abc');
    await readExactly(r.backend, 3);
    const clientClosed = once(r.client, 'end');
    r.client.on('error', () => undefined);
    r.client.resume();
    r.backend.resetAndDestroy();
    const ended = await r.ended;
    expect(ended.reason).toBe('server reset');
    expect(ended.fromClient).toBe(3);
    await clientClosed;
  });

  it('relays hundreds of sessions at once without mixing their bytes', async () => {
    const sessions: Relayed[] = [];
    for (let i = 0; i < 200; i++) sessions.push(await relayed()); // one at a time: see relayed()
    // Sessions go to the least busy loop: all three threads carry some (the loop is the handle's
    // low four bits).
    expect(new Set(sessions.map((s) => s.handle % 16))).toEqual(new Set([0, 1, 2]));
    for (const s of sessions) s.backend.on('data', (b: Buffer) => s.backend.write(b)); // echo
    await Promise.all(
      sessions.map(async (s, i) => {
        for (let round = 0; round < 5; round++) {
          const msg = Buffer.from(`session ${i} round ${round} `.repeat(1 + (i % 40)));
          s.client.write(msg);
          expect((await readExactly(s.client, msg.length)).equals(msg)).toBe(true);
        }
      }),
    );
    for (const s of sessions) {
      const [up, down] = relay.close(s.id, s.handle)!;
      expect(up).toBe(down);
    }
  }, 60_000);
});

describe('native relay, tracked sessions', () => {
  it('holds a session at its next idle boundary, not inside a transaction', async () => {
    const { r, seen } = await tracked();
    r.client.write(queryMessage('BEGIN'));
    await readExactly(r.backend, queryMessage('BEGIN').length);
    const begun = Buffer.concat([message('C', Buffer.from('BEGIN\0')), readyForQuery('T')]);
    r.backend.write(begun);
    await readExactly(r.client, begun.length);
    expect(relay.hold(r.handle)).toBe(true);
    await new Promise((res) => setTimeout(res, 50));
    expect(seen.held).toEqual([]);
    // Inside the transaction the session goes on; the commit ends it and the hold takes.
    r.client.write(queryMessage('COMMIT'));
    await readExactly(r.backend, queryMessage('COMMIT').length);
    r.backend.write(Buffer.concat([message('C', Buffer.from('COMMIT\0')), readyForQuery('I')]));
    await until('the hold', () => seen.held.length === 1);
    expect(seen.held[0]).toMatchObject({
      status: 'I',
      pendingSync: 0,
      clientBoundary: true,
      serverBoundary: true,
    });
    // A new statement waits in the kernel: not read, not passed on.
    r.client.write(queryMessage('select 1'));
    await new Promise((res) => setTimeout(res, 50));
    expect(r.backend.readableLength).toBe(0);
    relay.close(r.id, r.handle);
  });

  it('moves a held session to another server: the waiting statement goes there', async () => {
    const { r, seen } = await tracked();
    relay.hold(r.handle);
    await until('the hold', () => seen.held.length === 1);
    r.client.write(queryMessage('select 2'));
    const old = relay.takeServer(r.handle)!;
    expect(old).not.toBeNull();
    old.destroy();
    const next = await anotherBackend();
    expect(relay.attach(r.handle, next.routerSide, parameterStatus('TimeZone', 'UTC'), 'I')).toBe(true);
    next.routerSide.destroy();
    expect(
      (await readExactly(next.backend, queryMessage('select 2').length)).equals(queryMessage('select 2')),
    ).toBe(true);
    const ps = parameterStatus('TimeZone', 'UTC');
    expect((await readExactly(r.client, ps.length)).equals(ps)).toBe(true);
    next.backend.write(Buffer.concat([ROWS, readyForQuery('I')]));
    expect(
      (await readExactly(r.client, ROWS.length + 6)).equals(Buffer.concat([ROWS, readyForQuery('I')])),
    ).toBe(true);
    expect(seen.server).toEqual(['S:TimeZone|UTC|']);
    relay.close(r.id, r.handle);
  });

  it("reports its server's loss with where it stood, keeping a shutdown FATAL from the client", async () => {
    const { r, seen } = await tracked();
    r.client.write(queryMessage('select pg_sleep(10)'));
    await readExactly(r.backend, queryMessage('select pg_sleep(10)').length);
    const fatal = errorResponse('57P01', 'terminating connection due to unexpected postmaster exit');
    r.backend.end(fatal);
    await until('the loss', () => seen.lost.length === 1);
    expect(seen.lost[0]!.reason).toBe('server shut down');
    expect(seen.lost[0]!.kept).toEqual(fatal);
    expect(seen.lost[0]!.state).toMatchObject({
      status: 'I',
      pendingSync: 1,
      serverBoundary: true,
      lost: true,
    });
    await new Promise((res) => setTimeout(res, 50));
    expect(r.client.readableLength).toBe(0);
    relay.close(r.id, r.handle);
  });

  it('reports a reset server as lost, and the statements that change session state', async () => {
    const { r, seen } = await tracked();
    const msgs = [queryMessage('SET datestyle TO iso'), queryMessage('select 1'), queryMessage('LISTEN x')];
    r.client.write(Buffer.concat(msgs));
    await readExactly(r.backend, Buffer.concat(msgs).length);
    expect(seen.client).toEqual(['Q:SET datestyle TO iso|', 'Q:LISTEN x|']);
    r.backend.resetAndDestroy();
    await until('the loss', () => seen.lost.length === 1);
    expect(seen.lost[0]!.reason).toBe('server reset');
    expect(seen.lost[0]!.state.pendingSync).toBe(3);
    relay.close(r.id, r.handle);
  });

  it('ends the session with last words to the client', async () => {
    const { r } = await tracked();
    const words = errorResponse('57P01', 'pgha router: cannot move');
    relay.finish(r.id, r.handle, words);
    expect((await readExactly(r.client, words.length)).equals(words)).toBe(true);
    await once(r.client, 'end');
  });
});

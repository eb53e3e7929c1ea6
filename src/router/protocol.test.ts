import { describe, expect, it } from 'vitest';
import {
  BackendStartupReader,
  FrontendStartupReader,
  backendKeyId,
  cancelRequest,
  errorResponse,
  parseErrorFields,
  startupMessage,
  type BackendStartupEvent,
  type FrontendPacket,
} from './protocol.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Byte-level fixtures, as libpq and PostgreSQL 15 send them.
const SSL_REQUEST = hex('00000008 04d2162f');
const GSSENC_REQUEST = hex('00000008 04d21630');
const CANCEL = hex('00000010 04d2162e 00003039 deadbeef'); // pid 12345, secret deadbeef
// StartupMessage 3.0: user=postgres database=app
const STARTUP = hex(
  '00000024 00030000' +
    '7573657200 706f73746772657300' + // user\0postgres\0
    '646174616261736500 61707000' + // database\0app\0
    '00',
);
// Server: AuthenticationOk, ParameterStatus(client_encoding=UTF8), BackendKeyData(pid 4242, key 01020304), ReadyForQuery(I)
const AUTH_OK = hex('52 00000008 00000000');
const PARAM = hex('53 00000019 636c69656e745f656e636f64696e6700 5554463800');
const KEY = hex('4b 0000000c 00001092 01020304');
const READY = hex('5a 00000005 49');

function drainFrontend(chunks: Buffer[]): FrontendPacket[] {
  const r = new FrontendStartupReader();
  const out: FrontendPacket[] = [];
  for (const c of chunks) {
    r.push(c);
    for (let p = r.next(); p; p = r.next()) out.push(p);
  }
  return out;
}

function drainBackend(chunks: Buffer[]): BackendStartupEvent[] {
  const r = new BackendStartupReader();
  const out: BackendStartupEvent[] = [];
  for (const c of chunks) {
    r.push(c);
    for (let e = r.next(); e; e = r.next()) out.push(e);
  }
  return out;
}

/** Every way of cutting `buf` into two pieces, plus one byte at a time. */
function splits(buf: Buffer): Buffer[][] {
  const out: Buffer[][] = [[buf]];
  for (let i = 1; i < buf.length; i++) out.push([buf.subarray(0, i), buf.subarray(i)]);
  out.push([...buf].map((b) => Buffer.from([b])));
  return out;
}

describe('FrontendStartupReader', () => {
  it('recognises SSLRequest, GSSENCRequest and CancelRequest', () => {
    expect(drainFrontend([SSL_REQUEST])).toEqual([{ kind: 'ssl', raw: SSL_REQUEST }]);
    expect(drainFrontend([GSSENC_REQUEST])).toEqual([{ kind: 'gssenc', raw: GSSENC_REQUEST }]);
    const [cancel] = drainFrontend([CANCEL]);
    expect(cancel).toMatchObject({ kind: 'cancel', key: { pid: 12345 } });
    expect(cancel?.kind === 'cancel' && cancel.key.secret.toString('hex')).toBe('deadbeef');
    expect(cancelRequest({ pid: 12345, secret: hex('deadbeef') })).toEqual(CANCEL);
  });

  it('parses a StartupMessage split at every byte', () => {
    expect(startupMessage({ user: 'postgres', database: 'app' })).toEqual(STARTUP);
    for (const chunks of splits(STARTUP)) {
      expect(drainFrontend(chunks)).toEqual([
        { kind: 'startup', raw: STARTUP, version: 196608, params: { user: 'postgres', database: 'app' } },
      ]);
    }
  });

  it('reads an SSLRequest and then the StartupMessage sent after the server said N', () => {
    const both = Buffer.concat([SSL_REQUEST, STARTUP]);
    for (const chunks of splits(both)) {
      expect(drainFrontend(chunks).map((p) => p.kind)).toEqual(['ssl', 'startup']);
    }
  });

  it('keeps bytes pipelined after the StartupMessage for the server', () => {
    const r = new FrontendStartupReader();
    r.push(Buffer.concat([STARTUP, hex('51 0000000d 73656c6563742031 00')]));
    expect(r.next()?.kind).toBe('startup');
    expect(r.takeRest()).toEqual(hex('51 0000000d 73656c6563742031 00'));
  });

  it('refuses garbage, huge and malformed packets', () => {
    expect(drainFrontend([Buffer.from('GET / HTTP/1.1\r\n\r\n')])[0]).toMatchObject({ kind: 'invalid' });
    const huge = Buffer.alloc(4);
    huge.writeInt32BE(20000);
    expect(drainFrontend([huge])[0]).toEqual({
      kind: 'invalid',
      reason: 'invalid length of startup packet: 20000',
    });
    expect(drainFrontend([hex('00000004')])[0]).toMatchObject({ kind: 'invalid' });
    expect(drainFrontend([hex('00000008 00020000')])[0]).toMatchObject({
      kind: 'invalid',
      reason: 'unsupported frontend protocol or request code 2.0',
    });
    // parameters not NUL-terminated
    expect(drainFrontend([hex('0000000c 00030000 75736572')])[0]).toMatchObject({ kind: 'invalid' });
    // after invalid, nothing more
    const r = new FrontendStartupReader();
    r.push(Buffer.concat([hex('00000004'), STARTUP]));
    expect(r.next()?.kind).toBe('invalid');
    expect(r.next()).toBeNull();
  });

  it('waits for a length prefix cut short', () => {
    expect(drainFrontend([hex('0000')])).toEqual([]);
  });

  it('passes a direct TLS ClientHello through', () => {
    expect(drainFrontend([hex('16030100a5010000')])).toEqual([{ kind: 'direct-tls' }]);
  });
});

describe('BackendStartupReader', () => {
  const stream = Buffer.concat([AUTH_OK, PARAM, KEY, READY]);

  it('finds BackendKeyData then ReadyForQuery however the bytes are cut', () => {
    for (const chunks of splits(stream)) {
      const events = drainBackend(chunks);
      expect(events).toEqual([
        { kind: 'auth', code: 0, data: Buffer.alloc(0) },
        { kind: 'param', name: 'client_encoding', value: 'UTF8' },
        { kind: 'key', key: { pid: 4242, secret: hex('01020304') } },
        { kind: 'ready', status: 'I' },
      ]);
    }
    expect(backendKeyId({ pid: 4242, secret: hex('01020304') })).toBe('4242:01020304');
  });

  it('stops at ReadyForQuery: later bytes are not parsed', () => {
    const events = drainBackend([Buffer.concat([READY, hex('ffffffffff')])]);
    expect(events).toEqual([{ kind: 'ready', status: 'I' }]);
  });

  it('reports an ErrorResponse with its SQLSTATE', () => {
    const err = errorResponse('28P01', 'password authentication failed');
    expect(parseErrorFields(err.subarray(5))).toMatchObject({ C: '28P01', S: 'FATAL' });
    expect(drainBackend([AUTH_OK, err])).toEqual([
      { kind: 'auth', code: 0, data: Buffer.alloc(0) },
      { kind: 'error', sqlstate: '28P01', message: 'password authentication failed' },
    ]);
  });

  it('accepts a long (protocol 3.2) cancel key', () => {
    const secret = Buffer.alloc(32, 7);
    const k = Buffer.concat([hex('4b'), Buffer.alloc(4), hex('00000001'), secret]);
    k.writeInt32BE(4 + 4 + 32, 1);
    expect(drainBackend([k])).toEqual([{ kind: 'key', key: { pid: 1, secret } }]);
  });

  it('refuses a nonsense length', () => {
    expect(drainBackend([hex('52 00000002')])[0]).toMatchObject({ kind: 'invalid' });
  });
});

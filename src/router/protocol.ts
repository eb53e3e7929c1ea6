/**
 * The pieces of the PostgreSQL wire protocol the router reads and writes: the start of a session
 * (the client's first packets: SSLRequest, GSSENCRequest, CancelRequest, StartupMessage; the
 * server's messages up to BackendKeyData / ReadyForQuery), a general message framer for the
 * router's own conversations with servers, and the messages it builds. After the startup phase the
 * data path only follows message headers (tracker.ts, native/relay.c).
 *
 * Both readers are incremental: they buffer partial chunks and frame by the length prefix, as
 * node-postgres' pg-protocol parser does, so a packet split anywhere across TCP reads parses the same.
 */

/** Protocol codes of the untyped first packets (PostgreSQL's pqcomm.h). */
export const CANCEL_REQUEST_CODE = 80877102; // 1234 << 16 | 5678
export const SSL_REQUEST_CODE = 80877103; // 1234 << 16 | 5679
export const GSSENC_REQUEST_CODE = 80877104; // 1234 << 16 | 5680
/** Protocol 3.x major version in a StartupMessage (minor versions 0..2 are accepted). */
export const PROTOCOL_3 = 3;

/** PostgreSQL refuses startup packets longer than this (MAX_STARTUP_PACKET_LENGTH); so do we. */
export const MAX_STARTUP_PACKET_LENGTH = 10000;

/** A session's cancel key, as the server sent it in BackendKeyData (`pid` + secret). */
export interface BackendKey {
  pid: number;
  /** 4 bytes in protocol 3.0; up to 256 in 3.2 (PostgreSQL 18). */
  secret: Buffer;
}

export type FrontendPacket =
  | { kind: 'ssl'; raw: Buffer }
  | { kind: 'gssenc'; raw: Buffer }
  | { kind: 'cancel'; raw: Buffer; key: BackendKey }
  | { kind: 'startup'; raw: Buffer; version: number; params: Record<string, string> }
  /** The first byte of a TLS record (PostgreSQL 17's `sslnegotiation=direct`): pass through. */
  | { kind: 'direct-tls' }
  | { kind: 'invalid'; reason: string };

/** The map key for a cancel key: pid and secret, hex. */
export function backendKeyId(key: BackendKey): string {
  return `${key.pid}:${key.secret.toString('hex')}`;
}

function parseStartupParams(body: Buffer): Record<string, string> | null {
  // Pairs of NUL-terminated strings, then one final NUL.
  const params: Record<string, string> = {};
  let pos = 0;
  for (;;) {
    if (pos >= body.length) return null;
    if (body[pos] === 0) return pos === body.length - 1 ? params : null;
    const kEnd = body.indexOf(0, pos);
    if (kEnd < 0) return null;
    const vEnd = body.indexOf(0, kEnd + 1);
    if (vEnd < 0) return null;
    params[body.toString('utf8', pos, kEnd)] = body.toString('utf8', kEnd + 1, vEnd);
    pos = vEnd + 1;
  }
}

/**
 * Reads the client's untyped startup-phase packets (`Int32 length` including itself, `Int32 code`,
 * body). Feed chunks with `push`; `next` returns a packet once one is complete, or null.
 * After `invalid` the reader is done: the caller closes the connection.
 */
export class FrontendStartupReader {
  private buf: Buffer = Buffer.alloc(0);
  /** Set after `invalid` or `direct-tls`: nothing more is parsed. */
  private failed = false;

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  /** Bytes received beyond the packets returned so far (e.g. pipelined after a StartupMessage). */
  takeRest(): Buffer {
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }

  next(): FrontendPacket | null {
    if (this.failed) return null;
    if (this.buf.length >= 1 && this.buf[0] === 0x16) {
      // A TLS handshake record where a length would be: the client speaks TLS directly. The bytes
      // stay in the buffer (`takeRest`) for the server.
      this.failed = true;
      return { kind: 'direct-tls' };
    }
    if (this.buf.length < 4) return null;
    const len = this.buf.readInt32BE(0);
    if (len < 8 || len > MAX_STARTUP_PACKET_LENGTH) {
      this.failed = true;
      return { kind: 'invalid', reason: `invalid length of startup packet: ${len}` };
    }
    if (this.buf.length < len) return null;
    const raw = this.buf.subarray(0, len);
    this.buf = this.buf.subarray(len);
    const code = raw.readInt32BE(4);
    if (code === SSL_REQUEST_CODE && len === 8) return { kind: 'ssl', raw };
    if (code === GSSENC_REQUEST_CODE && len === 8) return { kind: 'gssenc', raw };
    if (code === CANCEL_REQUEST_CODE) {
      if (len < 16 || len > 12 + 256) {
        this.failed = true;
        return { kind: 'invalid', reason: `invalid length of cancel request: ${len}` };
      }
      return { kind: 'cancel', raw, key: { pid: raw.readInt32BE(8), secret: Buffer.from(raw.subarray(12)) } };
    }
    const major = code >>> 16;
    if (major === PROTOCOL_3) {
      const params = parseStartupParams(raw.subarray(8));
      if (params === null) {
        this.failed = true;
        return {
          kind: 'invalid',
          reason: 'malformed startup packet: parameters are not NUL-terminated pairs',
        };
      }
      return { kind: 'startup', raw, version: code, params };
    }
    this.failed = true;
    return {
      kind: 'invalid',
      reason: `unsupported frontend protocol or request code ${code >>> 16}.${code & 0xffff}`,
    };
  }
}

export type BackendStartupEvent =
  /** An authentication request (`R`): its code (0 ok, 3 cleartext, 5 MD5, 10-12 SASL) and the rest. */
  | { kind: 'auth'; code: number; data: Buffer }
  /** ParameterStatus. */
  | { kind: 'param'; name: string; value: string }
  /** BackendKeyData: the session's cancel key. */
  | { kind: 'key'; key: BackendKey }
  /** ReadyForQuery: the startup phase is over; everything after this is copied blindly. */
  | { kind: 'ready'; status: string }
  /** ErrorResponse before ReadyForQuery: the server refuses the session (it then closes). */
  | { kind: 'error'; sqlstate: string | undefined; message: string | undefined }
  | { kind: 'invalid'; reason: string };

/** Largest server message accepted during startup (auth challenges, parameters, notices are small). */
const MAX_BACKEND_STARTUP_MESSAGE = 1 << 20;

/**
 * Follows the server's typed messages (`Byte1 type`, `Int32 length` excluding the type byte) during
 * the startup phase. `push` a chunk, then drain `next()`; each returned event has consumed its message.
 * The bytes themselves are forwarded by the caller unchanged.
 */
export class BackendStartupReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  next(): BackendStartupEvent | null {
    while (!this.done) {
      if (this.buf.length < 5) return null;
      const type = this.buf[0]!;
      const len = this.buf.readInt32BE(1);
      if (len < 4 || len > MAX_BACKEND_STARTUP_MESSAGE) {
        this.done = true;
        return { kind: 'invalid', reason: `invalid server message length ${len} (type ${type})` };
      }
      if (this.buf.length < len + 1) return null;
      const body = this.buf.subarray(5, len + 1);
      this.buf = this.buf.subarray(len + 1);
      switch (type) {
        case 0x52 /* R */:
          if (body.length < 4) {
            this.done = true;
            return { kind: 'invalid', reason: 'authentication request too short' };
          }
          return { kind: 'auth', code: body.readInt32BE(0), data: Buffer.from(body.subarray(4)) };
        case 0x53 /* S */: {
          const nul = body.indexOf(0);
          const end = body.indexOf(0, nul + 1);
          if (nul < 0 || end < 0) continue;
          return {
            kind: 'param',
            name: body.toString('utf8', 0, nul),
            value: body.toString('utf8', nul + 1, end),
          };
        }
        case 0x4b /* K */:
          if (body.length < 8) {
            this.done = true;
            return { kind: 'invalid', reason: `BackendKeyData too short (${body.length} bytes)` };
          }
          return { kind: 'key', key: { pid: body.readInt32BE(0), secret: Buffer.from(body.subarray(4)) } };
        case 0x5a /* Z */:
          this.done = true;
          return { kind: 'ready', status: body.length > 0 ? String.fromCharCode(body[0]!) : 'I' };
        case 0x45 /* E */: {
          this.done = true;
          const fields = parseErrorFields(body);
          return { kind: 'error', sqlstate: fields.C, message: fields.M };
        }
        default:
          // N (notice), v (NegotiateProtocolVersion): skip.
          continue;
      }
    }
    return null;
  }
}

/** One typed message (`Byte1 type`, `Int32 length`, body), as `MessageReader` frames it. */
export interface Message {
  type: string;
  body: Buffer;
  /** The whole message, header included. */
  raw: Buffer;
}

/**
 * Frames typed messages in either direction after the startup packet: `push` chunks, then drain
 * `next()`. For the router's own conversations (authentication as a client, replaying a session)
 * and the client's authentication messages; never on the data path.
 */
export class MessageReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxLength = 1 << 26) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
  }

  /** The next complete message, null when more bytes are needed; throws on a nonsense length. */
  next(): Message | null {
    if (this.buf.length < 5) return null;
    const len = this.buf.readInt32BE(1);
    if (len < 4 || len > this.maxLength)
      throw new Error(`invalid message length ${len} (type ${this.buf[0]})`);
    if (this.buf.length < len + 1) return null;
    const raw = this.buf.subarray(0, len + 1);
    this.buf = this.buf.subarray(len + 1);
    return { type: String.fromCharCode(raw[0]!), body: raw.subarray(5), raw };
  }

  /** Bytes received after the messages returned so far. */
  takeRest(): Buffer {
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }
}

/** A typed message: type byte, length, body. */
export function message(type: string, ...parts: Buffer[]): Buffer {
  const body = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cstr = (s: string) => Buffer.from(s + '\0', 'utf8');
const int16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

/** Query (simple protocol). */
export const queryMessage = (sql: string) => message('Q', cstr(sql));
/** Parse: a prepared statement `name` (empty: unnamed) with parameter type OIDs (0: unspecified). */
export const parseMessage = (name: string, sql: string, types: number[]) =>
  message('P', cstr(name), cstr(sql), int16(types.length), ...types.map((t) => int32(t)));
export const syncMessage = () => message('S', Buffer.alloc(0));
export const terminateMessage = () => message('X', Buffer.alloc(0));
/** PasswordMessage: a cleartext or MD5 password. */
export const passwordMessage = (password: string) => message('p', cstr(password));
/** SASLInitialResponse: the mechanism and the client-first-message. */
export const saslInitialResponse = (mechanism: string, data: Buffer) =>
  message('p', cstr(mechanism), int32(data.length), data);
/** SASLResponse: the client-final-message. */
export const saslResponse = (data: Buffer) => message('p', data);
/** ParameterStatus, as the server sends it. */
export const parameterStatus = (name: string, value: string) => message('S', cstr(name), cstr(value));
/** ReadyForQuery with a transaction status (I, T or E). */
export const readyForQuery = (status: string) => message('Z', Buffer.from(status, 'latin1'));

/** ErrorResponse / NoticeResponse fields: `Byte1 code`, NUL-terminated string, ..., final NUL. */
export function parseErrorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const code = String.fromCharCode(body[pos]!);
    const end = body.indexOf(0, pos + 1);
    if (end < 0) break;
    out[code] = body.toString('utf8', pos + 1, end);
    pos = end + 1;
  }
  return out;
}

/** Builds an ErrorResponse (`E`) as a server would send it: severity, SQLSTATE, message, detail. */
export function errorResponse(
  sqlstate: string,
  message: string,
  severity = 'FATAL',
  detail?: string,
): Buffer {
  const parts = [`S${severity}`, `V${severity}`, `C${sqlstate}`, `M${message}`];
  if (detail !== undefined) parts.push(`D${detail}`);
  const body = Buffer.concat([...parts.map((p) => Buffer.from(p + '\0', 'utf8')), Buffer.from([0])]);
  const head = Buffer.alloc(5);
  head[0] = 0x45;
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** Builds a CancelRequest packet for `key`. */
export function cancelRequest(key: BackendKey): Buffer {
  const out = Buffer.alloc(12 + key.secret.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  out.writeInt32BE(key.pid, 8);
  key.secret.copy(out, 12);
  return out;
}

/** Builds a StartupMessage (protocol 3.0) with the given parameters; used by tests and the bench. */
export function startupMessage(params: Record<string, string>): Buffer {
  const body = Buffer.concat([
    ...Object.entries(params).flatMap(([k, v]) => [Buffer.from(k + '\0'), Buffer.from(v + '\0')]),
    Buffer.from([0]),
  ]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(body.length + 8, 0);
  head.writeInt32BE(PROTOCOL_3 << 16, 4);
  return Buffer.concat([head, body]);
}

/**
 * Follows a relayed PostgreSQL session's messages in both directions without keeping them: the
 * JavaScript twin of the tracking in native/relay.c (same rules, same events), used by sessions the
 * router relays in JavaScript (`data_path: javascript`, and sessions whose TLS the router terminates).
 *
 * From the 5-byte message headers alone: the transaction status of the last ReadyForQuery, the
 * sync points (Query, Sync, FunctionCall) still unanswered, extended-protocol messages since the
 * last Sync, COPY, and whether each direction stands between two messages. Bodies are looked at
 * only for the few messages that matter: a client Query/Parse/Close (classified by `sqlMatters`,
 * reported when it may change session state), the server's ReadyForQuery, ParameterStatus and
 * ErrorResponse (a FATAL that says the server is going away is kept back from the client).
 */

/** Where a tracked session stands (the relay's snapshot). */
export interface LinkState {
  /** Transaction status of the last ReadyForQuery: I (idle), T (in a transaction), E (failed one). */
  status: string;
  /** Query/Sync/FunctionCall messages sent and not yet answered by ReadyForQuery. */
  pendingSync: number;
  /** Extended-protocol messages were sent after the last Sync. */
  unsynced: boolean;
  /** The server started a COPY that has not ended. */
  copy: boolean;
  /** The client → server direction stands between two messages. */
  clientBoundary: boolean;
  /** The server → client direction stands between two messages (nothing half passed on). */
  serverBoundary: boolean;
  /** A message length that cannot be: tracking stopped; the session cannot move. */
  broken: boolean;
  /** The server connection is gone. */
  lost: boolean;
}

/** What a tracked link reports to its session. */
export interface LinkEvents {
  /** The session stopped at an idle boundary after a hold request. */
  held(state: LinkState): void;
  /** The server connection ended, failed, or said it is shutting down (`kept`: that FATAL, kept back). */
  lost(state: LinkState, reason: string, kept: Buffer | null): void;
  /** A client message that may change session state (Query, Parse or Close; `body` without header). */
  client(type: string, body: Buffer, truncated: boolean): void;
  /** A server message the session wants (ParameterStatus). */
  server(type: string, body: Buffer): void;
}

/** Client statement bytes kept to classify and report (as CAPTURE_MAX in relay.c). */
export const CAPTURE_MAX = 64 * 1024;
/** Server errors longer than this pass unread (ERROR_MAX in relay.c). */
const ERROR_MAX = 16 * 1024;

const KEYWORDS = new Set([
  'SET',
  'RESET',
  'PREPARE',
  'DEALLOCATE',
  'LISTEN',
  'UNLISTEN',
  'CREATE',
  'DECLARE',
  'DISCARD',
  'CLOSE',
  'LOAD',
  'DO',
]);

const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const isAlpha = (c: number) => (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;

function startsWithCi(b: Buffer, at: number, word: string): boolean {
  if (at + word.length > b.length) return false;
  for (let i = 0; i < word.length; i++) {
    const c = b[at + i]!;
    if ((isAlpha(c) ? c | 0x20 : c) !== word.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Whether a statement text may change session state: its first keyword (SET, PREPARE, LISTEN,
 * CREATE, ...), a second statement after `;`, or a call of an advisory lock or set_config function.
 * Quoted text is skipped; when unsure it says yes (the session then parses the text itself).
 */
export function sqlMatters(q: Buffer): boolean {
  const n = q.length;
  let i = 0;
  for (;;) {
    while (i < n && (isSpace(q[i]!) || q[i] === 0x28)) i++;
    if (i + 1 < n && q[i] === 0x2d && q[i + 1] === 0x2d) {
      while (i < n && q[i] !== 0x0a) i++;
      continue;
    }
    if (i + 1 < n && q[i] === 0x2f && q[i + 1] === 0x2a) {
      i += 2;
      while (i + 1 < n && !(q[i] === 0x2a && q[i + 1] === 0x2f)) i++;
      i += 2;
      continue;
    }
    break;
  }
  let w = i;
  while (w < n && isAlpha(q[w]!)) w++;
  if (KEYWORDS.has(q.toString('latin1', i, w).toUpperCase())) return true;
  let quote = 0;
  let afterEnd = false;
  for (let k = w; k < n; k++) {
    const c = q[k]!;
    if (quote !== 0) {
      if (c === quote) quote = 0;
      continue;
    }
    if (c === 0x27 || c === 0x22) {
      quote = c;
      continue;
    }
    if (afterEnd) {
      if (!isSpace(c) && c !== 0x3b) return true;
      continue;
    }
    if (c === 0x3b) {
      afterEnd = true;
      continue;
    }
    if ((c | 0x20) === 0x61 && startsWithCi(q, k, 'advisory')) return true;
    if ((c | 0x20) === 0x73 && startsWithCi(q, k, 'set_config')) return true;
  }
  return false;
}

/** Whether a complete client message (type and body) is worth reporting. */
export function clientMessageMatters(type: number, body: Buffer): boolean {
  if (type === 0x43 /* C */) return body.length >= 2 && body[0] === 0x53 && body[1] !== 0;
  let q = body;
  if (type === 0x50 /* P */) {
    const nul = body.indexOf(0);
    if (nul !== 0) return true; // a named statement (or unreadable)
    q = body.subarray(1);
  }
  const end = q.indexOf(0);
  return sqlMatters(end >= 0 ? q.subarray(0, end) : q);
}

/** An ErrorResponse field (`C`, `V`, `S`, `M`, ...), or undefined. */
export function errorField(body: Buffer, code: string): string | undefined {
  let pos = 0;
  const want = code.charCodeAt(0);
  while (pos < body.length && body[pos] !== 0) {
    const c = body[pos]!;
    const end = body.indexOf(0, pos + 1);
    if (end < 0) return undefined;
    if (c === want) return body.toString('utf8', pos + 1, end);
    pos = end + 1;
  }
  return undefined;
}

/** A FATAL that says the server is going away (57P01 admin shutdown, 57P02 crash, 57P03). */
export function isShutdownFatal(body: Buffer): boolean {
  const code = errorField(body, 'C');
  if (code === undefined || !/^57P0[123]$/.test(code)) return false;
  const sev = errorField(body, 'V') ?? errorField(body, 'S');
  return sev === 'FATAL' || sev === 'PANIC';
}

function isFatal(body: Buffer): boolean {
  const sev = errorField(body, 'V') ?? errorField(body, 'S');
  return sev === 'FATAL' || sev === 'PANIC';
}

class Framer {
  hdr = Buffer.alloc(5);
  hdrLen = 0;
  type = 0;
  left = 0;
  capturing = false;
  withheld = false;
  truncated = false;
  cap: Buffer[] = [];
  capLen = 0;
  capMax = 0;

  atBoundary(): boolean {
    return this.hdrLen === 0 && this.left === 0;
  }

  append(b: Buffer): void {
    if (this.capLen >= this.capMax) {
      if (b.length > 0) this.truncated = true;
      return;
    }
    const room = this.capMax - this.capLen;
    if (b.length > room) {
      this.truncated = true;
      b = b.subarray(0, room);
    }
    this.cap.push(Buffer.from(b));
    this.capLen += b.length;
  }

  captured(): Buffer {
    return this.cap.length === 1 ? this.cap[0]! : Buffer.concat(this.cap);
  }

  reset(): void {
    this.hdrLen = 0;
    this.left = 0;
    this.capturing = false;
    this.withheld = false;
    this.truncated = false;
    this.cap = [];
    this.capLen = 0;
  }
}

/** The outcome of server bytes: what goes to the client, and whether the server is gone. */
export interface ServerChunk {
  out: Buffer[];
  /** Set when the server said it is going away: that FATAL (kept back) and the reason. */
  lost: { reason: string; kept: Buffer } | null;
}

/** The tracking state of one session (both directions). */
export class WireTracker {
  status = 'I';
  pendingSync = 0;
  unsynced = false;
  copy = false;
  /** The server sent a FATAL that went to the client: its close is the end of the session. */
  fatal = false;
  broken = false;
  private readonly fr = [new Framer(), new Framer()] as const;

  constructor(private readonly events: Pick<LinkEvents, 'client' | 'server'>) {}

  state(lost: boolean): LinkState {
    return {
      status: this.status,
      pendingSync: this.pendingSync,
      unsynced: this.unsynced,
      copy: this.copy,
      clientBoundary: this.fr[0].atBoundary(),
      serverBoundary: this.fr[1].atBoundary(),
      broken: this.broken,
      lost,
    };
  }

  /** Idle between transactions, every message answered, nothing half sent either way. */
  idleBoundary(): boolean {
    return (
      this.status === 'I' &&
      this.pendingSync === 0 &&
      !this.unsynced &&
      !this.copy &&
      !this.broken &&
      this.fr[0].atBoundary() &&
      this.fr[1].atBoundary()
    );
  }

  /** A new server connection takes over: its side starts afresh. */
  resetServer(status: string): void {
    this.fr[1].reset();
    this.status = status;
    this.pendingSync = 0;
    this.unsynced = false;
    this.copy = false;
    this.fatal = false;
  }

  /** Follows client → server bytes (all of them are passed on). */
  client(p: Buffer): void {
    const f = this.fr[0];
    let off = 0;
    const n = p.length;
    while (off < n && !this.broken) {
      if (f.hdrLen < 5) {
        const k = Math.min(5 - f.hdrLen, n - off);
        p.copy(f.hdr, f.hdrLen, off, off + k);
        f.hdrLen += k;
        off += k;
        if (f.hdrLen < 5) break;
        const len = f.hdr.readUInt32BE(1);
        if (len < 4 || len > 0x7fffffff) {
          this.broken = true;
          break;
        }
        f.type = f.hdr[0]!;
        f.left = len - 4;
        this.clientStart(f);
        if (f.left === 0) this.clientEnd(f);
        continue;
      }
      const k = Math.min(f.left, n - off);
      if (f.capturing) f.append(p.subarray(off, off + k));
      f.left -= k;
      off += k;
      if (f.left === 0) this.clientEnd(f);
    }
  }

  private clientStart(f: Framer): void {
    switch (String.fromCharCode(f.type)) {
      case 'Q':
      case 'F':
        this.pendingSync++;
        break;
      case 'S':
        this.pendingSync++;
        this.unsynced = false;
        break;
      case 'P':
      case 'B':
      case 'E':
      case 'D':
      case 'C':
      case 'H':
        this.unsynced = true;
        break;
      default:
        break;
    }
    f.capturing = f.type === 0x51 || f.type === 0x50 || f.type === 0x43;
    f.cap = [];
    f.capLen = 0;
    f.truncated = false;
    f.capMax = CAPTURE_MAX;
  }

  private clientEnd(f: Framer): void {
    if (f.capturing) {
      const body = f.captured();
      if (clientMessageMatters(f.type, body))
        this.events.client(String.fromCharCode(f.type), body, f.truncated);
    }
    f.reset();
  }

  /** Follows server → client bytes: returns what to pass on, keeping a shutdown FATAL back. */
  server(p: Buffer): ServerChunk {
    const out: Buffer[] = [];
    if (this.broken) return { out: [p], lost: null };
    const f = this.fr[1];
    const n = p.length;
    let off = 0;
    let span = 0;
    const flush = (to: number) => {
      if (to > span) out.push(p.subarray(span, to));
    };
    while (off < n) {
      if (f.hdrLen < 5) {
        const had = f.hdrLen;
        const k = Math.min(5 - had, n - off);
        const hstart = off;
        p.copy(f.hdr, had, off, off + k);
        f.hdrLen += k;
        off += k;
        if (f.hdrLen < 5) {
          flush(hstart);
          return { out, lost: null };
        }
        const len = f.hdr.readUInt32BE(1);
        if (len < 4 || len > 0x7fffffff) {
          this.broken = true;
          flush(hstart);
          out.push(Buffer.from(f.hdr), p.subarray(off));
          return { out, lost: null };
        }
        f.type = f.hdr[0]!;
        f.left = len - 4;
        f.cap = [];
        f.capLen = 0;
        f.truncated = false;
        f.capturing = f.type === 0x5a || f.type === 0x53 || f.type === 0x45;
        f.capMax = f.type === 0x45 ? ERROR_MAX : 1024;
        f.withheld = f.type === 0x45 && f.left <= ERROR_MAX;
        if (f.withheld) {
          flush(hstart);
          span = off;
        } else if (had > 0) {
          out.push(Buffer.from(f.hdr.subarray(0, had)));
          span = hstart;
        }
        if (f.type === 0x47 || f.type === 0x48 || f.type === 0x57) this.copy = true;
        if (f.left === 0) {
          const lost = this.serverEnd(f, out);
          if (lost) return { out, lost };
        }
        continue;
      }
      const k = Math.min(f.left, n - off);
      if (f.capturing) f.append(p.subarray(off, off + k));
      f.left -= k;
      off += k;
      if (f.withheld) span = off;
      if (f.left === 0) {
        const lost = this.serverEnd(f, out);
        if (lost) return { out, lost };
      }
    }
    flush(off);
    return { out, lost: null };
  }

  private serverEnd(f: Framer, out: Buffer[]): ServerChunk['lost'] {
    const body = f.captured();
    switch (f.type) {
      case 0x5a /* Z */:
        if (body.length >= 1) this.status = String.fromCharCode(body[0]!);
        if (this.pendingSync > 0) this.pendingSync--;
        this.copy = false;
        break;
      case 0x53 /* S */:
        this.events.server('S', body);
        break;
      case 0x45 /* E */: {
        if (f.withheld) {
          const whole = Buffer.concat([f.hdr, body]);
          if (isShutdownFatal(body)) {
            f.reset();
            return { reason: 'server shut down', kept: whole };
          }
          out.push(whole);
        }
        if (isFatal(body)) this.fatal = true;
        break;
      }
      default:
        break;
    }
    f.reset();
    return null;
  }
}

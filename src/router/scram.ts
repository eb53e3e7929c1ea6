/**
 * Authenticating to another server as a client, without its password (what a session move needs).
 *
 * SCRAM-SHA-256 (RFC 5802/7677): the client proves it knows ClientKey = HMAC(SaltedPassword,
 * "Client Key") by sending ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage), where
 * StoredKey = H(ClientKey) is what the server keeps (pg_authid.rolpassword) and AuthMessage is the
 * exchange itself. The router sees the whole exchange pass by; with the role's StoredKey (read from
 * pg_authid) it recovers ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage), checks that
 * H(ClientKey) = StoredKey, and can then run a fresh exchange with any server holding the same
 * verifier (a physical replica does: pg_authid is replicated). PgBouncer's SCRAM pass-through rests
 * on the same algebra. The client's own exchange goes through unchanged.
 *
 * MD5: the server keeps "md5" + md5(password + user) and asks md5(that + salt): the stored hash
 * alone answers any salt. Cleartext `password`: the router saw the password itself.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** A role's SCRAM-SHA-256 verifier as pg_authid stores it. */
export interface ScramSecret {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`; null for anything else. */
export function parseScramSecret(text: string): ScramSecret | null {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text);
  if (!m) return null;
  const storedKey = Buffer.from(m[3]!, 'base64');
  const serverKey = Buffer.from(m[4]!, 'base64');
  if (storedKey.length !== 32 || serverKey.length !== 32) return null;
  return { iterations: Number(m[1]), salt: Buffer.from(m[2]!, 'base64'), storedKey, serverKey };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();
const hmac = (key: Buffer, text: string) => createHmac('sha256', key).update(text, 'utf8').digest();

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** The messages of one SCRAM exchange as they passed the router. */
export interface ScramTranscript {
  mechanism: string;
  clientFirstBare: string;
  serverFirst: string;
  clientFinalWithoutProof: string;
  proof: Buffer;
}

/** Attributes of a SCRAM message (`r=...,s=...,i=...`). */
function attributes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}

/**
 * Collects a SCRAM transcript from the client's SASLInitialResponse and SASLResponse bodies and
 * the server's AuthenticationSASLContinue data, in the order they pass.
 */
export class ScramObserver {
  private mechanism: string | null = null;
  private clientFirstBare: string | null = null;
  private serverFirst: string | null = null;
  private clientFinal: string | null = null;

  /** A client `p` message while SASL is under way: the initial response first, then the final one. */
  clientMessage(body: Buffer): void {
    if (this.mechanism === null) {
      const nul = body.indexOf(0);
      if (nul < 0 || body.length < nul + 5) return;
      this.mechanism = body.toString('utf8', 0, nul);
      const len = body.readInt32BE(nul + 1);
      const first = body.toString('utf8', nul + 5, nul + 5 + Math.max(0, len));
      // gs2-header: cbind-flag "," [authzid] "," — the bare message follows the second comma.
      const a = first.indexOf(',');
      const b = a < 0 ? -1 : first.indexOf(',', a + 1);
      if (b >= 0) this.clientFirstBare = first.slice(b + 1);
      return;
    }
    if (this.clientFinal === null) this.clientFinal = body.toString('utf8');
  }

  /** AuthenticationSASLContinue's data (the server-first-message). */
  serverContinue(data: Buffer): void {
    if (this.serverFirst === null) this.serverFirst = data.toString('utf8');
  }

  transcript(): ScramTranscript | null {
    if (!this.mechanism || !this.clientFirstBare || !this.serverFirst || !this.clientFinal) return null;
    const at = this.clientFinal.lastIndexOf(',p=');
    if (at < 0) return null;
    return {
      mechanism: this.mechanism,
      clientFirstBare: this.clientFirstBare,
      serverFirst: this.serverFirst,
      clientFinalWithoutProof: this.clientFinal.slice(0, at),
      proof: Buffer.from(this.clientFinal.slice(at + 3), 'base64'),
    };
  }
}

/** ClientKey from a transcript and the role's StoredKey; null when it does not check out. */
export function recoverClientKey(t: ScramTranscript, storedKey: Buffer): Buffer | null {
  if (t.proof.length !== 32) return null;
  const authMessage = `${t.clientFirstBare},${t.serverFirst},${t.clientFinalWithoutProof}`;
  const clientKey = xor(t.proof, hmac(storedKey, authMessage));
  return timingSafeEqual(sha256(clientKey), storedKey) ? clientKey : null;
}

/** A SCRAM-SHA-256 client that proves ClientKey (no channel binding: the router's own connection). */
export class ScramClient {
  private readonly nonce = randomBytes(18).toString('base64');
  private authMessage: string | null = null;

  constructor(
    private readonly clientKey: Buffer,
    /** The role's ServerKey, to check the server's signature; null to skip the check. */
    private readonly serverKey: Buffer | null,
  ) {}

  get mechanism(): string {
    return 'SCRAM-SHA-256';
  }

  /** The client-first-message (PostgreSQL takes the user from the startup packet, as libpq does). */
  clientFirst(): Buffer {
    return Buffer.from(`n,,n=,r=${this.nonce}`, 'utf8');
  }

  /** The client-final-message for the server-first-message; throws when the server's nonce is wrong. */
  clientFinal(serverFirst: Buffer): Buffer {
    const text = serverFirst.toString('utf8');
    const attrs = attributes(text);
    const r = attrs.get('r');
    if (!r?.startsWith(this.nonce) || r.length <= this.nonce.length)
      throw new Error('SCRAM: the server nonce does not extend ours');
    const withoutProof = `c=biws,r=${r}`;
    this.authMessage = `n=,r=${this.nonce},${text},${withoutProof}`;
    const storedKey = sha256(this.clientKey);
    const proof = xor(this.clientKey, hmac(storedKey, this.authMessage));
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
  }

  /** Checks AuthenticationSASLFinal's `v=` against the ServerKey (true when there is none to check). */
  verifyServerFinal(serverFinal: Buffer): boolean {
    if (this.serverKey === null) return true;
    if (this.authMessage === null) return false;
    const v = attributes(serverFinal.toString('utf8')).get('v');
    if (v === undefined) return false;
    const expected = hmac(this.serverKey, this.authMessage);
    const got = Buffer.from(v, 'base64');
    return got.length === expected.length && timingSafeEqual(got, expected);
  }
}

/** The answer to an MD5 password request from the stored `md5...` hash and the server's 4-byte salt. */
export function md5Response(stored: string, salt: Buffer): string {
  const inner = Buffer.concat([Buffer.from(stored.slice(3), 'utf8'), salt]);
  return 'md5' + createHash('md5').update(inner).digest('hex');
}

/** The MD5 hash PostgreSQL stores for a password (`md5` + md5(password + user)). */
export function md5Stored(password: string, user: string): string {
  return (
    'md5' +
    createHash('md5')
      .update(password + user, 'utf8')
      .digest('hex')
  );
}

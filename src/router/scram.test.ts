/**
 * SCRAM pass-through: a client exchange (node-postgres' own SCRAM client against a server side
 * written from RFC 5802 here) passes by; with the role's verifier the router recovers ClientKey and
 * authenticates as the client again, and the server side accepts it.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  ScramClient,
  ScramObserver,
  md5Response,
  md5Stored,
  parseScramSecret,
  recoverClientKey,
} from './scram.js';

interface PgSasl {
  startSession(mechanisms: string[]): { response: string; clientNonce: string; message: string };
  continueSession(session: object, password: string, serverData: string): Promise<void>;
}
const sasl = createRequire(import.meta.url)('pg/lib/crypto/sasl.js') as PgSasl;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();
const hmac = (k: Buffer, s: string) => createHmac('sha256', k).update(s).digest();

/** The verifier PostgreSQL stores for `password` (pg_authid.rolpassword). */
function verifier(password: string, salt = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const storedKey = sha256(hmac(salted, 'Client Key'));
  const serverKey = hmac(salted, 'Server Key');
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** A SCRAM server: checks the client's proof against the verifier, as PostgreSQL does. */
function server(stored: string) {
  const s = parseScramSecret(stored)!;
  let first = '';
  let serverFirst = '';
  return {
    first(clientFirst: string): string {
      first = clientFirst.slice(clientFirst.indexOf(',', clientFirst.indexOf(',') + 1) + 1);
      const nonce = /r=([^,]*)/.exec(first)![1]! + randomBytes(18).toString('base64');
      serverFirst = `r=${nonce},s=${s.salt.toString('base64')},i=${s.iterations}`;
      return serverFirst;
    },
    final(clientFinal: string): { ok: boolean; serverFinal: string } {
      const at = clientFinal.lastIndexOf(',p=');
      const authMessage = `${first},${serverFirst},${clientFinal.slice(0, at)}`;
      const proof = Buffer.from(clientFinal.slice(at + 3), 'base64');
      const sig = hmac(s.storedKey, authMessage);
      const clientKey = Buffer.from(proof.map((b, i) => b ^ sig[i]!));
      return {
        ok: sha256(clientKey).equals(s.storedKey),
        serverFinal: `v=${hmac(s.serverKey, authMessage).toString('base64')}`,
      };
    },
  };
}

/** The client's SASLInitialResponse body: mechanism, length, client-first-message. */
function initialBody(mechanism: string, data: string): Buffer {
  const d = Buffer.from(data);
  const len = Buffer.alloc(4);
  len.writeInt32BE(d.length);
  return Buffer.concat([Buffer.from(mechanism + '\0'), len, d]);
}

/** Runs node-postgres' client through a server while an observer watches, as the router does. */
async function observedExchange(password: string, stored: string) {
  const srv = server(stored);
  const observer = new ScramObserver();
  const session = sasl.startSession(['SCRAM-SHA-256']);
  observer.clientMessage(initialBody('SCRAM-SHA-256', session.response));
  const serverFirst = srv.first(session.response);
  observer.serverContinue(Buffer.from(serverFirst));
  await sasl.continueSession(session, password, serverFirst);
  const clientFinal = (session as unknown as { response: string }).response;
  observer.clientMessage(Buffer.from(clientFinal));
  expect(srv.final(clientFinal).ok).toBe(true);
  return observer.transcript()!;
}

describe('SCRAM pass-through', () => {
  it('parses a verifier as pg_authid stores it', () => {
    const v = verifier('secret', Buffer.alloc(16, 1), 4096);
    const s = parseScramSecret(v)!;
    expect(s.iterations).toBe(4096);
    expect(s.salt).toEqual(Buffer.alloc(16, 1));
    expect(s.storedKey).toHaveLength(32);
    expect(parseScramSecret('md5abc')).toBeNull();
    expect(parseScramSecret('SCRAM-SHA-256$4096:AAAA$short:short')).toBeNull();
  });

  it('recovers ClientKey from an exchange it watched and signs in again as that client', async () => {
    const stored = verifier('Bacula@Catalog25');
    const t = await observedExchange('Bacula@Catalog25', stored);
    const secret = parseScramSecret(stored)!;
    const clientKey = recoverClientKey(t, secret.storedKey);
    expect(clientKey).not.toBeNull();
    // Another server with the same verifier (a replica) accepts the router's own exchange.
    for (let i = 0; i < 3; i++) {
      const srv = server(stored);
      const c = new ScramClient(clientKey!, secret.serverKey);
      const serverFirst = srv.first(c.clientFirst().toString());
      const final = srv.final(c.clientFinal(Buffer.from(serverFirst)).toString());
      expect(final.ok).toBe(true);
      expect(c.verifyServerFinal(Buffer.from(final.serverFinal))).toBe(true);
      expect(c.verifyServerFinal(Buffer.from('v=' + Buffer.alloc(32).toString('base64')))).toBe(false);
    }
  });

  it('refuses a verifier that does not fit the exchange (a changed password)', async () => {
    const t = await observedExchange('old password', verifier('old password'));
    expect(recoverClientKey(t, parseScramSecret(verifier('new password'))!.storedKey)).toBeNull();
  });

  it('refuses a server nonce that does not extend its own', () => {
    const c = new ScramClient(randomBytes(32), null);
    expect(() => c.clientFinal(Buffer.from('r=someoneelse,s=AAAA,i=4096'))).toThrow(/nonce/);
  });

  it('answers MD5 from the stored hash alone', () => {
    const salt = Buffer.from([1, 2, 3, 4]);
    const stored = md5Stored('pw', 'alice');
    expect(stored).toBe('md5' + createHash('md5').update('pwalice').digest('hex'));
    // libpq: "md5" + md5(md5(password + user) + salt)
    const inner = createHash('md5').update('pwalice').digest('hex');
    const expected =
      'md5' +
      createHash('md5')
        .update(Buffer.concat([Buffer.from(inner), salt]))
        .digest('hex');
    expect(md5Response(stored, salt)).toBe(expected);
  });
});

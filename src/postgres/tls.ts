/**
 * A role's libpq TLS settings (`postgresql.authentication.<role>.sslmode`, `sslcert`, ...) carried to
 * every connection made as that role: the conninfo strings of primary_conninfo and pg_rewind, the
 * options of pg_basebackup, and the agent's own SQL connections (node-postgres), which follow
 * libpq's sslmode semantics so a server that only accepts `hostssl ... clientcert=verify-ca` works
 * exactly as it does for Patroni.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { LIBPQ_TLS_KEYS, type Credentials } from '../config/types.js';
import { errorMessage } from '../util/errors.js';

/** The role's libpq TLS/GSS keywords that are set, for a conninfo string. */
export function libpqTls(cred: Credentials): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of LIBPQ_TLS_KEYS) {
    const v = cred[k];
    if (v !== undefined && v !== '') out[k] = v;
  }
  return out;
}

/** One way to open a connection: plain, or TLS with these options. */
export type TlsAttempt = { tls: false } | { tls: true; options: ConnectionOptions };

/**
 * How node-postgres should connect as `cred`, as libpq would with the same sslmode: the attempts in
 * order (libpq's `prefer` tries TLS, then plain; `allow` plain, then TLS). Unix-socket connections
 * never use TLS, as in libpq. Files are read here, so a missing or unreadable one is reported by name.
 */
export function tlsAttempts(cred: Credentials, unixSocket: boolean): TlsAttempt[] {
  const mode = cred.sslmode ?? 'prefer';
  if (unixSocket || mode === 'disable') return [{ tls: false }];
  const read = (key: 'sslcert' | 'sslkey' | 'sslrootcert' | 'sslcrl'): Buffer | undefined => {
    const file = cred[key];
    if (!file) return undefined;
    try {
      return readFileSync(file);
    } catch (e) {
      throw new Error(`postgresql.authentication: cannot read ${key} ${file}: ${errorMessage(e)}`, {
        cause: e,
      });
    }
  };
  const base: ConnectionOptions = {};
  const cert = read('sslcert');
  const key = read('sslkey');
  if (cert && key) {
    base.cert = cert;
    base.key = key;
    if (cred.sslpassword) base.passphrase = cred.sslpassword;
  }
  const ca = read('sslrootcert');
  const crl = read('sslcrl');
  if (crl) base.crl = crl;
  // libpq: `require` with a root certificate present verifies the chain as verify-ca does.
  const verifyChain =
    mode === 'verify-ca' || mode === 'verify-full' || (mode === 'require' && ca !== undefined);
  const secure: ConnectionOptions = verifyChain
    ? {
        ...base,
        ...(ca ? { ca } : {}),
        rejectUnauthorized: true,
        // verify-ca checks the chain only; verify-full also the host name (Node's default check).
        ...(mode === 'verify-full' ? {} : { checkServerIdentity: () => undefined }),
      }
    : { ...base, rejectUnauthorized: false };
  const tls: TlsAttempt = { tls: true, options: secure };
  switch (mode) {
    case 'allow':
      return [{ tls: false }, tls];
    case 'prefer':
      return [tls, { tls: false }];
    default:
      return [tls];
  }
}

/**
 * Whether a failed attempt may fall through to the next one, as libpq does for `prefer` and `allow`:
 * when the server has no TLS, or refused the connection itself (pg_hba, authentication: an error
 * with an SQLSTATE). A refused or unreachable port is final.
 */
export function mayTryNext(err: unknown): boolean {
  if (noTlsOnServer(err)) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

/** node-postgres's error when TLS was asked for and the server has it off. */
export function noTlsOnServer(err: unknown): boolean {
  return /does not support SSL/i.test(errorMessage(err));
}

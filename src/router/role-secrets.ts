/**
 * The stored password verifiers of roles (`pg_authid.rolpassword`), read with the superuser
 * credentials of the router's YAML (`postgresql.authentication.superuser`, with its sslmode and
 * certificates, as the agents connect): a session's move needs its role's verifier once, to
 * recover the SCRAM ClientKey from the exchange the router saw, or to answer MD5. pg_authid is replicated, so any member can answer; a member
 * that the session used first is asked first. Verifiers are cached for a minute per role (one
 * query for many sessions of one role) and re-read when one does not fit (a changed password).
 */
import pg from 'pg';
import type { Credentials } from '../config/types.js';
import { mayTryNext, tlsAttempts } from '../postgres/tls.js';
import { errorMessage } from '../util/errors.js';
import type { Backend } from './topology.js';

/** The superuser of the YAML, with its libpq TLS settings (sslmode, sslcert, ...). */
export interface SuperuserCredentials extends Credentials {
  /** Database to connect to (default `postgres`). */
  database?: string;
}

const CACHE_MS = 60_000;

export class RoleSecrets {
  private readonly cache = new Map<string, { at: number; value: Promise<string | null> }>();

  constructor(
    private readonly superuser: SuperuserCredentials | null,
    private readonly connectTimeoutMs: number,
  ) {}

  /** Whether verifiers can be read at all (superuser credentials configured). */
  get available(): boolean {
    return this.superuser !== null;
  }

  /**
   * The role's rolpassword (null when it has none), from the first of `backends` that answers.
   * Throws with every member's error when none does.
   */
  get(role: string, backends: Backend[], fresh = false): Promise<string | null> {
    const hit = this.cache.get(role);
    if (!fresh && hit && Date.now() - hit.at < CACHE_MS) return hit.value;
    const value = this.read(role, backends);
    this.cache.set(role, { at: Date.now(), value });
    value.catch(() => this.cache.delete(role));
    return value;
  }

  private async read(role: string, backends: Backend[]): Promise<string | null> {
    const su = this.superuser;
    if (!su)
      throw new Error('no superuser credentials in the configuration (postgresql.authentication.superuser)');
    const errors: string[] = [];
    for (const b of backends) {
      try {
        return await this.readFrom(su, b, role);
      } catch (err) {
        errors.push(`${b.name}: ${errorMessage(err)}`);
      }
    }
    throw new Error(`could not read the verifier of role ${role}: ${errors.join('; ') || 'no member'}`);
  }

  /** One member's answer, connecting as libpq would with the superuser's sslmode. */
  private async readFrom(su: SuperuserCredentials, b: Backend, role: string): Promise<string | null> {
    const attempts = tlsAttempts(su, false);
    for (let i = 0; ; i++) {
      const attempt = attempts[i]!;
      const c = new pg.Client({
        host: b.host,
        port: b.port,
        user: su.username,
        database: su.database ?? 'postgres',
        connectionTimeoutMillis: this.connectTimeoutMs,
        application_name: 'pgha router',
        ssl: attempt.tls ? attempt.options : false,
        ...(su.password !== undefined ? { password: su.password } : {}),
      });
      c.on('error', () => undefined);
      try {
        await c.connect();
        const r = await c.query<{ rolpassword: string | null }>(
          'SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = $1',
          [role],
        );
        return r.rows[0]?.rolpassword ?? null;
      } catch (err) {
        if (i + 1 >= attempts.length || !mayTryNext(err)) throw err;
      } finally {
        await c.end().catch(() => undefined);
      }
    }
  }
}

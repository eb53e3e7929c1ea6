import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { libpqTls, mayTryNext, tlsAttempts, type TlsAttempt } from './tls.js';

const dir = mkdtempSync(join(tmpdir(), 'pgha-tls-unit-'));
for (const f of ['ca.crt', 'client.crt', 'client.key']) writeFileSync(join(dir, f), `${f}\n`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const files = {
  sslrootcert: join(dir, 'ca.crt'),
  sslcert: join(dir, 'client.crt'),
  sslkey: join(dir, 'client.key'),
};
const user = (over: Record<string, string> = {}) => ({ username: 'u', ...over });
/** An attempt as a short word: plain, tls (no verification), verify-ca, verify-full. */
const word = (a: TlsAttempt): string => {
  if (!a.tls) return 'plain';
  if (a.options.rejectUnauthorized !== true) return 'tls';
  return a.options.checkServerIdentity ? 'verify-ca' : 'verify-full';
};

describe('connections follow libpq’s sslmode', () => {
  it.each([
    ['unset (libpq default prefer)', {}, ['tls', 'plain']],
    ['disable', { sslmode: 'disable' }, ['plain']],
    ['allow', { sslmode: 'allow' }, ['plain', 'tls']],
    ['prefer', { sslmode: 'prefer' }, ['tls', 'plain']],
    ['require', { sslmode: 'require' }, ['tls']],
    ['require with a root certificate verifies the chain', { sslmode: 'require', ...files }, ['verify-ca']],
    ['verify-ca', { sslmode: 'verify-ca', ...files }, ['verify-ca']],
    ['verify-full', { sslmode: 'verify-full', ...files }, ['verify-full']],
  ])('%s', (_name, over, expected) => {
    expect(tlsAttempts(user(over), false).map(word)).toEqual(expected);
  });

  it('presents the client certificate and trusts only the configured CA', () => {
    const [a] = tlsAttempts(user({ sslmode: 'verify-ca', ...files, sslpassword: 'pw' }), false);
    expect(a).toMatchObject({
      tls: true,
      options: {
        cert: Buffer.from('client.crt\n'),
        key: Buffer.from('client.key\n'),
        ca: Buffer.from('ca.crt\n'),
      },
    });
    expect(a?.tls && a.options.passphrase).toBe('pw');
  });

  it('never uses TLS over a Unix socket, as libpq', () => {
    expect(tlsAttempts(user({ sslmode: 'verify-full', ...files }), true).map(word)).toEqual(['plain']);
  });

  it('names a certificate file it cannot read', () => {
    expect(() =>
      tlsAttempts(
        user({ sslmode: 'verify-ca', sslcert: join(dir, 'nope.crt'), sslkey: files.sslkey }),
        false,
      ),
    ).toThrow(/cannot read sslcert .*nope\.crt/);
  });

  it('falls through to the next attempt only when the server answered', () => {
    expect(mayTryNext(new Error('The server does not support SSL connections'))).toBe(true);
    expect(mayTryNext(Object.assign(new Error('no pg_hba.conf entry'), { code: '28000' }))).toBe(true);
    expect(mayTryNext(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(
      false,
    );
  });

  it('carries only the keys that are set into conninfo strings', () => {
    expect(libpqTls(user({ sslmode: 'verify-ca', sslcert: '/c', channel_binding: 'require' }))).toEqual({
      sslmode: 'verify-ca',
      sslcert: '/c',
      channel_binding: 'require',
    });
    expect(libpqTls(user())).toEqual({});
  });
});

/**
 * Certificates for tests, made with openssl in a directory of the test's own: a CA and
 * certificates it signs (for 127.0.0.1 and localhost), or a self-signed one.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runAsUser } from '../../src/util/process.js';

/** Runs openssl in `dir`; its output is kept for the error when it fails. */
export function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A self-signed certificate `<name>.crt` with its key `<name>.key` in `dir` (made if missing). */
export function selfSigned(
  dir: string,
  name: string,
  subject = `/CN=${name}`,
): { cert: string; key: string } {
  mkdirSync(dir, { recursive: true });
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    subject,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
  ]);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/**
 * A CA (`ca.crt`, `ca.key`) and, for each of `names`, `<name>.crt` and `<name>.key` signed by it,
 * valid for 127.0.0.1 and localhost.
 */
export function makeCa(dir: string, names: string[], caSubject = '/CN=pgha-test-ca'): void {
  selfSigned(dir, 'ca', caSubject);
  writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const name of names) {
    openssl(dir, [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    ]);
    openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      `${name}.crt`,
      '-extfile',
      'san.cnf',
    ]);
  }
}

/**
 * Gives `files` (relative to `dir`, `.` for the directory itself) to the OS user `user`, as
 * PostgreSQL wants its key; nothing to do when the tests do not run as root.
 */
export function giveTo(user: string, dir: string, files: string[]): void {
  const u = runAsUser(user);
  if (u) for (const f of files) chownSync(join(dir, f), u.uid, u.gid);
}

import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findPgTool, isMemberFailure, toolFailure } from './tools.js';

const dir = mkdtempSync(join(tmpdir(), 'pgha-bacula-tools-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tool(path: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, '#!/bin/sh\n');
  chmodSync(path, 0o755);
}

describe('findPgTool', () => {
  it('takes bin_dir when set, and says so when the program is not there', () => {
    tool(join(dir, 'custom', 'pg_dump'));
    expect(findPgTool('pg_dump', join(dir, 'custom'), join(dir, 'none'), '')).toBe(
      join(dir, 'custom', 'pg_dump'),
    );
    expect(() => findPgTool('pg_restore', join(dir, 'custom'), join(dir, 'none'), '')).toThrow(
      `postgresql.bin_dir: ${join(dir, 'custom', 'pg_restore')} does not exist`,
    );
  });

  it('finds the newest client-only install (no pg_ctl), then PATH', () => {
    const root = join(dir, 'lib');
    tool(join(root, '13', 'bin', 'pg_dump'));
    tool(join(root, '16', 'bin', 'pg_dump'));
    expect(findPgTool('pg_dump', undefined, root, '')).toBe(join(root, '16', 'bin', 'pg_dump'));
    tool(join(dir, 'path', 'pg_restore'));
    expect(findPgTool('pg_restore', undefined, root, join(dir, 'path'))).toBe(
      join(dir, 'path', 'pg_restore'),
    );
    expect(() => findPgTool('pg_nothing', undefined, root, '')).toThrow(
      /pg_nothing not found in .* or on PATH/,
    );
  });
});

describe('toolFailure', () => {
  it("keeps libpq's reason on one line, without the program prefix", () => {
    const stderr =
      'pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "bacula"\n';
    expect(toolFailure('pg_dump', stderr)).toBe(
      'connection to server at "127.0.0.1", port 5432 failed: FATAL: password authentication failed for user "bacula"',
    );
    expect(
      toolFailure(
        'pg_dump',
        'pg_dump: error: Dumping the contents of table "file" failed: PQgetResult() failed.\npg_dump: detail: Error message from server: ERROR:  canceling statement due to conflict with recovery\nDETAIL:  User query might have needed to see row versions that must be removed.\n',
      ),
    ).toBe(
      'Dumping the contents of table "file" failed: PQgetResult() failed. (DETAIL: User query might have needed to see row versions that must be removed.)',
    );
    expect(toolFailure('pg_restore', '')).toBe('no error message');
  });
});

describe('isMemberFailure', () => {
  it('is true for what another member may not suffer, false for what all would', () => {
    expect(
      isMemberFailure(
        'pg_dump: error: connection to server at "127.0.0.1", port 5999 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?',
      ),
    ).toBe(true);
    expect(isMemberFailure('ERROR:  canceling statement due to conflict with recovery')).toBe(true);
    expect(isMemberFailure('FATAL:  the database system is shutting down')).toBe(true);
    expect(isMemberFailure('FATAL:  terminating connection due to administrator command')).toBe(true);
    expect(
      isMemberFailure(
        'pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "bacula"',
      ),
    ).toBe(false);
    expect(
      isMemberFailure(
        'pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "nope" does not exist',
      ),
    ).toBe(false);
  });
});

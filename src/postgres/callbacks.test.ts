import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createCallbackRunner, runCallback } from './callbacks.js';

const dir = mkdtempSync(join(tmpdir(), 'pgha-cb-'));
const out = join(dir, 'out');
const script = join(dir, 'cb.sh');
// Records its arguments; the "slow" variant sleeps so the next callback has to kill it.
writeFileSync(
  script,
  `#!/bin/sh\necho "$@" >> ${out}\nif [ "$1" = slow ]; then sleep 30; echo finished >> ${out}; fi\nexit 0\n`,
);
chmodSync(script, 0o755);
const logger = pino({ level: 'silent' });

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('runCallback', () => {
  it('runs <cmd> <action> <role> <scope> without a shell', async () => {
    rmSync(out, { force: true });
    expect(await runCallback(`${script} fast`, 'on_start', 'primary', 'my cluster', logger)).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe('fast on_start primary my cluster\n');
  });

  it('kills a previous callback that is still running', async () => {
    rmSync(out, { force: true });
    const first = runCallback(`${script} slow`, 'on_role_change', 'replica', 's', logger);
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    expect(await runCallback(script, 'on_role_change', 'primary', 's', logger)).toBe(0);
    expect(await first).toBeNull();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(readFileSync(out, 'utf8')).toBe('slow on_role_change replica s\non_role_change primary s\n');
  });

  it('never rejects: a missing program or no command resolve to null', async () => {
    expect(await runCallback('/nonexistent/cb', 'on_stop', 'primary', 's', logger)).toBeNull();
    expect(await runCallback(undefined, 'on_stop', 'primary', 's', logger)).toBeNull();
    expect(await runCallback('   ', 'on_stop', 'primary', 's', logger)).toBeNull();
    expect(await runCallback('/bin/false', 'on_stop', 'primary', 's', logger)).toBe(1);
  });

  it('binds configured callbacks to the scope', async () => {
    rmSync(out, { force: true });
    const run = createCallbackRunner({ on_reload: script }, 'sc', logger);
    run('on_reload', 'replica');
    run('on_start', 'replica'); // not configured: nothing
    await new Promise((r) => setTimeout(r, 500));
    expect(readFileSync(out, 'utf8')).toBe('on_reload replica sc\n');
  });
});

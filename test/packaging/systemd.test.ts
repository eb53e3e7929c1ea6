/**
 * The systemd units under packaging/systemd: `systemd-analyze verify` accepts each (with `pgha`
 * pointed at this checkout's bin/pgha, since the test machine has no installed copy), and each
 * starts a `pgha` command that exists, with the restart policy and user it documents. Without
 * systemd-analyze only the structural checks run.
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  copyFileSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const UNITS_DIR = join(ROOT, 'packaging', 'systemd');
const PGHA = join(ROOT, 'bin', 'pgha');
const tmp = mkdtempSync(join(tmpdir(), 'pgha-units-'));

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** `[Section]` → key → values (a key may repeat), comments and blank lines dropped. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current = new Map<string, string[]>();
  let inSection = false;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const section = /^\[([A-Za-z]+)\]$/.exec(line);
    if (section) {
      current = new Map();
      inSection = true;
      sections.set(section[1]!, current);
      return;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    if (!kv || !inSection) throw new Error(`line ${i + 1}: not "Key=value" inside a section: ${raw}`);
    const list = current.get(kv[1]!) ?? [];
    list.push(kv[2]!);
    current.set(kv[1]!, list);
  });
  return sections;
}

function hasSystemdAnalyze(): boolean {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const units = readdirSync(UNITS_DIR).filter((f) => f.endsWith('.service'));
const EXPECTED = {
  'pgha-agent.service': { command: 'agent', restart: 'on-failure' },
  'pgha-agent@.service': { command: 'agent', restart: 'on-failure' },
  'pgha-router.service': { command: 'router', restart: 'always' },
  'pgha-vip.service': { command: 'vip', restart: 'always' },
} as const;

describe('systemd units', () => {
  it('are the four documented units', () => {
    expect(units.sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(units)('%s: sections, a pgha command that exists, restart policy, user', async (file) => {
    const unit = parseUnit(readFileSync(join(UNITS_DIR, file), 'utf8'));
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install']);
    const service = unit.get('Service')!;
    const exec = service.get('ExecStart') ?? [];
    expect(exec).toHaveLength(1);
    const [bin, command, config, ...rest] = exec[0]!.split(/\s+/);
    const want = EXPECTED[file as keyof typeof EXPECTED];
    expect([bin, command, rest]).toEqual(['pgha', want.command, []]);
    expect(config).toMatch(/^\/etc\/patroni\/(config|%i)\.yml$/);
    // The command exists in this build of the CLI and takes the config as its argument.
    const { stdout } = await promisify(execFile)(process.execPath, [PGHA, want.command, '--help']);
    expect(stdout).toMatch(new RegExp(`^Usage: pgha ${want.command} \\[options\\] [<[]config[>\\]]`, 'm'));
    expect(service.get('Restart')).toEqual([want.restart]);
    expect(service.get('User')).toEqual(['postgres']);
    expect(unit.get('Install')!.get('WantedBy')).toEqual(['multi-user.target']);
    if (want.command === 'agent') {
      // The agent stops PostgreSQL itself; systemd must not kill the postmaster under it.
      expect(service.get('KillMode')).toEqual(['process']);
      expect(Number.parseInt(service.get('TimeoutStopSec')![0]!, 10)).toBeGreaterThanOrEqual(60);
      // The agent runs as postgres; root hands it the watchdog device first when one is configured.
      expect(service.get('ExecStartPre')).toEqual([`+pgha watchdog-access ${config} --user postgres`]);
    }
  });

  it('watchdog-access gives the agent user the device only when watchdog.mode is set', async () => {
    const device = join(tmp, 'watchdog');
    writeFileSync(device, '');
    const yml = (mode: string) => {
      const path = join(tmp, `wd-${mode}.yml`);
      writeFileSync(
        path,
        [
          'scope: s',
          'name: node1',
          'restapi: {listen: 127.0.0.1:8008}',
          'etcd3: {hosts: 127.0.0.1:2379}',
          'postgresql: {listen: 127.0.0.1:5432, data_dir: /tmp/x, authentication: {superuser: {username: a}, replication: {username: b}}}',
          `watchdog: {mode: ${mode}, device: ${device}}`,
        ].join('\n'),
      );
      return path;
    };
    const run = async (mode: string) =>
      (
        await promisify(execFile)(process.execPath, [
          PGHA,
          'watchdog-access',
          yml(mode),
          '--user',
          'postgres',
        ])
      ).stdout;
    expect(await run('off')).toMatch(/watchdog.mode is off: nothing to do/);
    expect(statSync(device).uid).toBe(0);
    expect(await run('automatic')).toMatch(/now belongs to postgres/);
    expect(statSync(device).uid).not.toBe(0);
    expect(await run('required')).toMatch(/already belongs to postgres/);
  });

  it.runIf(hasSystemdAnalyze())('pass systemd-analyze verify', async () => {
    for (const file of units) {
      // Verify needs an executable it can find: this checkout's bin/pgha stands in for the installed one.
      const text = readFileSync(join(UNITS_DIR, file), 'utf8')
        .replace(/^ExecStart=pgha /m, `ExecStart=${PGHA} `)
        .replace(/^ExecStartPre=\+pgha /m, `ExecStartPre=+${PGHA} `);
      const name = file === 'pgha-agent@.service' ? 'pgha-agent@15-main.service' : file;
      writeFileSync(join(tmp, name), text);
      if (name !== file) copyFileSync(join(tmp, name), join(tmp, file));
      const res = await promisify(execFile)('systemd-analyze', ['verify', '--man=no', join(tmp, name)]).then(
        (r) => ({ code: 0, stderr: r.stderr }),
        (err: { code?: number; stderr?: string }) => ({ code: err.code ?? 1, stderr: err.stderr ?? '' }),
      );
      expect({ file, ...res }).toEqual({ file, code: 0, stderr: '' });
    }
  });
});

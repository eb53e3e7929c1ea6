/**
 * `npm pack` gives a package that installs and runs: the tarball (built by `prepack`) holds the CLI,
 * the bundled code with the licences of the libraries inside it, and the packaging files, and
 * nothing of the source tree. It has no dependencies: installed globally into a fresh prefix (with
 * an empty npm cache of its own), no library is installed beside it, and its `pgha` prints its help
 * and starts the three-node demo cluster from the bundle alone.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../support/net.js';

const ROOT = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'pgha-pack-'));
// The demo runs PostgreSQL as postgres when started as root: it must be able to reach its data below.
chmodSync(tmp, 0o755);
const prefix = join(tmp, 'prefix');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  scripts: Record<string, string>;
  dependencies?: Record<string, string>;
};

let files: string[] = [];
let tarball = '';

beforeAll(async () => {
  // prepack builds dist/ first, so the tarball never ships stale or missing JavaScript.
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', tmp], {
    cwd: ROOT,
    timeout: 240_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const [info] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = join(tmp, info!.filename);
  files = info!.files.map((f) => f.path);
  // An empty cache of its own: the install must work on a machine that never saw this project.
  await run('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', tarball], {
    cwd: tmp,
    timeout: 240_000,
    maxBuffer: 16 * 1024 * 1024,
    env: { ...process.env, npm_config_cache: join(tmp, 'npm-cache') },
  });
}, 480_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }));

describe('npm pack', () => {
  it('builds on prepack and ships the CLI, the compiled code and the packaging files only', () => {
    expect(pkg.scripts.prepack).toBe('npm run build');
    expect(files).toEqual(
      expect.arrayContaining([
        'bin/pgha',
        'dist/cli.js',
        'package.json',
        'README.md',
        'packaging/systemd/pgha-agent@.service',
        'packaging/grafana/pgha.json',
        'docs/configuration.md',
        'native/relay.c',
        'native/memory.c',
        'native/build.sh',
        'binding.gyp',
        'dist/THIRD-PARTY-LICENSES.txt',
      ]),
    );
    // The libraries are in the bundle, their licences beside it (scripts/build.ts).
    expect(pkg.dependencies ?? {}).toEqual({});
    const licences = readFileSync(join(ROOT, 'dist', 'THIRD-PARTY-LICENSES.txt'), 'utf8');
    for (const lib of ['pg', 'pino', 'hono', 'yaml', 'zod', 'commander', 'prom-client'])
      expect(licences).toMatch(new RegExp(`^${lib} \\d+\\.\\d+\\.\\d+\\nlicence: \\S+`, 'm'));
    const unwanted = files.filter(
      (f) => /^(src|test|bench|scripts|node_modules)\//.test(f) || /\.test\.js$/.test(f),
    );
    expect(unwanted).toEqual([]);
    // The bundle (scripts/build.ts): the agent's code is a chunk of its own, loaded on demand.
    expect(files.filter((f) => /^dist\/agent-\w+\.js$/.test(f))).toHaveLength(1);
  });

  it('installs globally and `pgha --help` and `--version` work from the installed copy', async () => {
    const bin = join(prefix, 'bin', 'pgha');
    // The bin is npm's link into the installed package, not into this checkout.
    expect(realpathSync(bin)).toBe(
      join(realpathSync(prefix), 'lib', 'node_modules', pkg.name, 'bin', 'pgha'),
    );
    const help = await run(bin, ['--help'], { cwd: tmp });
    expect(help.stdout).toMatch(/^Usage: pgha \[options\] \[command\]/);
    for (const command of ['agent', 'demo', 'ctl', 'router', 'vip'])
      expect(help.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    expect((await run(bin, ['--version'], { cwd: tmp })).stdout.trim()).toBe(pkg.version);
    // The install script built the native addons in the installed copy: the router's data path
    // and the agent's memory release.
    const installed = join(prefix, 'lib', 'node_modules', pkg.name);
    for (const addon of ['pgha_relay', 'pgha_memory', 'pgha_reap'])
      expect(existsSync(join(installed, 'build', 'Release', `${addon}.node`))).toBe(true);
    // Nothing was installed beside it: what runs is the bundle.
    const beside = existsSync(join(installed, 'node_modules'))
      ? readdirSync(join(installed, 'node_modules'))
      : [];
    expect(beside.filter((d) => !d.startsWith('.'))).toEqual([]);
  });

  it('runs the demo cluster from the installed copy', async () => {
    // A base whose derived ports (up to +4002, the router's) stay below the ephemeral range (32768+).
    const [port] = await freePorts(1);
    const dir = join(tmp, 'demo');
    const { stdout } = await run(
      join(prefix, 'bin', 'pgha'),
      ['demo', '--exit-when-ready', '--dir', dir, '--base-port', String(20000 + (port! % 8700))],
      { cwd: tmp, timeout: 230_000 },
    ).catch((err: Error) => {
      // Say why: the end of each agent's log, before the directory is removed.
      const logs = readdirSync(dir)
        .filter((f) => f.endsWith('.log'))
        .map((f) => `--- ${f}\n${readFileSync(join(dir, f), 'utf8').split('\n').slice(-15).join('\n')}`);
      throw new Error(`${err.message}\n${logs.join('\n')}`, { cause: err });
    });
    expect(stdout).toMatch(/cluster "demo" is up in [\d.]+ s: leader pg\d, 2 streaming replica\(s\)/);
    expect(stdout).toContain('stopped.');
  }, 240_000);
});

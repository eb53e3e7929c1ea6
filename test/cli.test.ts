/** The CLI's error boundary: user errors end in one clear message and exit 1, never a stack trace. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EtcdCluster } from '../src/util/etcd-server.js';
import { CLI } from './support/cluster.js';
import { startEtcd } from './support/etcd.js';

const dir = mkdtempSync(join(tmpdir(), 'pgha-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pgha(...args: string[]) {
  return pghaWith({}, ...args);
}

function pghaWith(extra: NodeJS.ProcessEnv, ...args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: join(dir, 'no-config-home'), ...extra };
  delete env.PATRONICTL_CONFIG_FILE;
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000, env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('pgha CLI errors', () => {
  it('reports every configuration problem at once, as path: problem', () => {
    const file = join(dir, 'bad.yml');
    writeFileSync(
      file,
      'scope: demo\nname: n1\nrestapi:\n  listen: nowhere\netcd3:\n  hosts: []\nbootstrap:\n  dcs:\n    ttl: 5\n    loop_wait: 10\npostgresql:\n  listen: 127.0.0.1:5432\n',
    );
    const r = pgha('agent', file);
    expect(r.code).toBe(1);
    expect(r.err).toContain('restapi.listen: expected host:port, got "nowhere"');
    expect(r.err).toContain('postgresql.data_dir: required');
    expect(r.err).toContain('etcd3.hosts: required');
    // ttl 5 with loop_wait 10 is not a problem: loop_wait is lowered to fit, as Patroni does.
    expect(r.err).not.toContain('bootstrap.dcs');
    expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('names a missing file', () => {
    const r = pgha('agent', join(dir, 'missing.yml'));
    expect(r.code).toBe(1);
    expect(r.err).toContain('missing.yml: cannot read configuration: file not found');
  });

  it('says what to check when etcd is unreachable', () => {
    const r = pgha('ctl', '--dcs-url', 'etcd3://127.0.0.1:1', 'list', 'demo');
    expect(r.code).toBe(1);
    expect(r.err).toContain('etcd unreachable at 127.0.0.1:1');
    expect(r.err).toContain('is etcd running');
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('exits 2 for a command line it cannot read, as patronictl (click) does', () => {
    for (const args of [
      ['ctl', 'list', '--no-such-option'],
      ['ctl', '--dcs-url', 'etcd3://127.0.0.1:1', 'list', '-f', 'html', 'demo'],
      ['ctl', '--dcs-url', 'etcd3://127.0.0.1:1', 'list', '-w', 'soon', 'demo'],
      ['ctl', '--dcs-url', 'etcd3://127.0.0.1:1', 'restart', 'demo', '--role', 'boss'],
      ['ctl', '--dcs-url', 'etcd3://127.0.0.1:1', 'dsn', 'demo', '--role', 'boss'],
      ['ctl', '--dcs-url', 'etcd3://127.0.0.1:1', 'flush', 'demo', 'everything'],
    ]) {
      const r = pgha(...args);
      expect([r.code, args.join(' ')]).toEqual([2, args.join(' ')]);
      expect(r.err).toMatch(
        /unknown option|--format: expected one of|--watch: expected|'boss' is invalid|--role: "boss"|'everything' is not one of/,
      );
      expect(r.err).not.toMatch(/\n\s+at /);
    }
    const patronictl = spawnSync('patronictl', ['list', '--no-such-option'], { encoding: 'utf8' });
    expect(patronictl.status).toBe(2);
  });

  it('prints help for every command', () => {
    for (const cmd of [[], ['agent'], ['ctl'], ['demo']]) {
      const r = pgha(...cmd, '--help');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/Usage: pgha/);
    }
  });
});

describe('pgha ctl reads a patronictl.yaml as patronictl does', () => {
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await startEtcd();
  }, 60_000);
  afterAll(async () => {
    await etcd?.stop();
  });
  // Only the etcd section (and the ctl section) matter to patronictl.
  const minimal = () => `etcd3:\n  hosts: ${etcd.endpoints[0]}\nctl:\n  insecure: true\n`;
  const listed = (r: { code: number | null; out: string; err: string }) => {
    expect(r.err).not.toMatch(/required|^pgha:/m); // the single etcd member is only warned about
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Cluster: demo/);
  };

  it('a file with only the etcd section is enough', () => {
    const file = join(dir, 'patronictl.yaml');
    writeFileSync(file, minimal());
    listed(pgha('ctl', '-c', file, 'list', 'demo'));
  });

  it('-w 0 lists once, as patronictl', () => {
    const r = pgha('ctl', '--dcs-url', etcd.endpoints[0]!, 'list', '-w', '0', 'demo');
    listed(r);
    expect(r.out.match(/Cluster: demo/g)).toHaveLength(1);
  });

  it('--dcs is read as --dcs-url, as patronictl spells it too', () => {
    listed(pgha('ctl', '--dcs', etcd.endpoints[0]!, 'list', 'demo'));
  });

  it("without -c and $PATRONICTL_CONFIG_FILE, reads patronictl's own file under $XDG_CONFIG_HOME", () => {
    const home = join(dir, 'config-home');
    mkdirSync(join(home, 'patroni'), { recursive: true });
    writeFileSync(join(home, 'patroni', 'patronictl.yaml'), minimal());
    listed(pghaWith({ XDG_CONFIG_HOME: home }, 'ctl', 'list', 'demo'));
  });
});

/**
 * `pgha ctl` end to end: real etcd, real PostgreSQL, real `pgha agent` processes, the built CLI
 * run as users run it, and Debian's `patronictl` on the same cluster for comparison.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { CLI, SCOPE, startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

let c: TestCluster;
let cfg: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with `input` on a pipe (or standard input closed when none), as a script would. */
function run(cmd: string, args: string[], input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.PATRONICTL_CONFIG_FILE;
    delete env.EDITOR;
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

const ctl = (args: string[], input = '') => run(process.execPath, [CLI, 'ctl', '-c', cfg, ...args], input);
const patronictl = (args: string[]) => run('patronictl', ['-c', cfg, ...args]);

async function ok(args: string[], input = ''): Promise<string> {
  const r = await ctl(args, input);
  if (r.code !== 0) throw new Error(`pgha ctl ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function leaderName(): Promise<string> {
  const s = await c.readCluster();
  if (!s.leader) throw new Error('no leader');
  return s.leader.name;
}

/** The table without its title line (Patroni 3.0.2 leaves the system identifier out of it). */
const body = (text: string) => text.trim().split('\n').slice(1);

/**
 * pgha shows a replica's `replication_state` (`streaming`) as its State, as patronictl 3.1+ does;
 * Debian's patronictl 3.0.2 predates that field and shows the member key's `running`. Outputs are
 * compared cell by cell with that one difference mapped back.
 */
const as302 = (text: string) => text.replace(/\bstreaming\b/g, 'running');
const cells = (lines: string[]) =>
  lines.filter((l) => !/^\+[-+]*\+$/.test(l)).map((l) => l.split('|').map((x) => x.trim()));

beforeAll(async () => {
  c = await startCluster({ nodes: 3, ttl: 10, loopWait: 1, retryTimeout: 3 });
  cfg = c.nodes[0]!.configPath;
  for (const n of c.nodes) c.startAgent(n.name);
  await c.waitHealthy(2, 90_000);
});

afterAll(async () => {
  await c?.stop();
});

describe('read-only views', () => {
  it('list prints what patronictl prints, in every format', async () => {
    await c.waitHealthy(2);
    for (const fmt of ['json', 'yaml', 'tsv']) {
      const [ours, theirs] = await Promise.all([ok(['list', '-f', fmt]), patronictl(['list', '-f', fmt])]);
      expect(theirs.code).toBe(0);
      expect(as302(ours)).toBe(theirs.stdout);
    }
    const [ours, theirs] = await Promise.all([ok(['list']), patronictl(['list'])]);
    expect(cells(body(as302(ours)))).toEqual(cells(body(theirs.stdout)));
    expect(ours).toMatch(/\| Replica \| streaming \|/);
    const sysid = (await c.readCluster()).initialize!;
    expect(ours.split('\n')[0]).toMatch(new RegExp(`^\\+ Cluster: demo \\(${sysid}\\) -+\\+`));
    const rows = JSON.parse(await ok(['list', '-f', 'json'])) as Array<{ Role: string }>;
    expect(rows.map((r) => r.Role).sort()).toEqual(['Leader', 'Replica', 'Replica']);
  });

  it('list -e adds the extra columns, -t a timestamp; topology matches patronictl', async () => {
    const ext = await ok(['list', '-e', '-t']);
    expect(ext.split('\n')[0]).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    expect(ext).toContain('| Pending restart | Scheduled restart | Tags');
    const [ours, theirs] = await Promise.all([ok(['topology']), patronictl(['topology'])]);
    expect(cells(body(as302(ours)))).toEqual(cells(body(theirs.stdout)));
    expect(ours).toMatch(/\| \+ pg\d/);
  });

  it('show-config and history match patronictl', async () => {
    for (const cmd of ['show-config', 'history']) {
      const [ours, theirs] = await Promise.all([ok([cmd]), patronictl([cmd])]);
      expect(ours).toBe(theirs.stdout);
    }
    expect(await ok(['show-config'])).toMatch(/^loop_wait: 1\n/m);
  });

  it('dsn names the leader, a member or a role, and says why when none fits', async () => {
    const leader = await leaderName();
    const port = c.node(leader).pgPort;
    expect(await ok(['dsn'])).toBe(`host=127.0.0.1 port=${port}\n`);
    expect(await ok(['dsn'])).toBe((await patronictl(['dsn'])).stdout);
    expect(await ok(['dsn', '-m', 'pg2'])).toBe(`host=127.0.0.1 port=${c.node('pg2').pgPort}\n`);
    const replica = await ok(['dsn', '--role', 'replica']);
    expect(replica).not.toContain(`port=${port}\n`);
    const both = await ctl(['dsn', '-r', 'replica', '-m', 'pg2']);
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('--role and --member are mutually exclusive options');
    const none = await ctl(['dsn', '-m', 'pg9']);
    expect(none.stderr).toContain('pg9 is not a member of cluster demo (members: pg1, pg2, pg3)');
  });

  it('query runs SQL on the leader or a chosen member, as the configured superuser', async () => {
    expect(await ok(['query', '-c', 'SELECT 1 AS one, NULL AS n, true AS t'])).toBe(
      'one\tn\tt\n1\tNone\tTrue\n',
    );
    const leader = await leaderName();
    const other = c.nodes.find((n) => n.name !== leader)!.name;
    expect(await ok(['query', '-m', other, '-c', 'SELECT pg_is_in_recovery()'])).toBe(
      'pg_is_in_recovery\nTrue\n',
    );
    expect(await ok(['query', '-r', 'primary', '--format', 'json', '-c', 'SELECT current_user AS u'])).toBe(
      '[{"u": "postgres"}]\n',
    );
    const bad = await ctl(['query', '-c', 'SELECT no_such_column']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\tERROR, SQLSTATE: 42703\n$/);
    const neither = await ctl(['query']);
    expect(neither.stderr).toContain('You need to specify either --command or --file');
  });

  it('version asks every member', async () => {
    const out = await ok(['version', SCOPE]);
    expect(out).toMatch(/^pgha ctl version \d+\.\d+\.\d+\n\n/);
    for (const n of c.nodes)
      expect(out).toMatch(new RegExp(`^${n.name}: Patroni \\S+ PostgreSQL \\d+\\.\\d+`, 'm'));
  });
});

describe('edit-config', () => {
  it('sets values parsed as YAML with a CAS write, showing the diff', async () => {
    // (A ttl change, which moves every key onto a new lease, is covered in test/ha/cluster.test.ts.)
    const out = await ok([
      'edit-config',
      '-s',
      'maximum_lag_on_failover=2097152',
      '-p',
      'work_mem=8MB',
      '--force',
    ]);
    expect(out).toContain('--- \n+++ \n');
    expect(out).toMatch(/^-maximum_lag_on_failover: 1048576$/m);
    expect(out).toMatch(/^\+maximum_lag_on_failover: 2097152$/m);
    expect(out).toMatch(/^\+ {4}work_mem: 8MB$/m);
    expect(out.trim().split('\n').pop()).toBe('Configuration changed');
    const config = (await c.readCluster()).config!.value as {
      maximum_lag_on_failover: unknown;
      postgresql: { parameters: Record<string, unknown> };
    };
    expect(config.maximum_lag_on_failover).toBe(2097152);
    expect(config.postgresql.parameters.work_mem).toBe('8MB');
    // patronictl reads back what we wrote.
    expect((await patronictl(['show-config'])).stdout).toMatch(/^maximum_lag_on_failover: 2097152$/m);
  });

  it('asks before applying: refuses without an answer, applies on "y" from a pipe', async () => {
    const before = (await c.readCluster()).config!;
    const refused = await ctl(['edit-config', '-s', 'maximum_lag_on_failover=1048576']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('no answer to "Apply these changes? [y/N]"');
    expect((await c.readCluster()).config!.modRevision).toBe(before.modRevision);
    const no = await ctl(['edit-config', '-s', 'maximum_lag_on_failover=1048576'], 'n\n');
    expect(no.code).toBe(1);
    expect(no.stderr).toContain('Aborted: the configuration was not changed');
    const yes = await ok(
      ['edit-config', '-s', 'maximum_lag_on_failover=1048576', '-s', 'postgresql.parameters.work_mem='],
      'y\n',
    );
    expect(yes).toContain('Configuration changed');
    const config = (await c.readCluster()).config!.value as {
      maximum_lag_on_failover: unknown;
      postgresql: { parameters: Record<string, unknown> };
    };
    expect(config.maximum_lag_on_failover).toBe(1048576);
    expect(config.postgresql.parameters).not.toHaveProperty('work_mem');
    expect(await ok(['edit-config', '-s', 'maximum_lag_on_failover=1048576', '--force'])).toBe(
      'Not changed\n',
    );
  });

  it('applies a YAML document from standard input only with --force', async () => {
    const withoutForce = await ctl(['edit-config', '--apply', '-'], 'retry_timeout: 4\n');
    expect(withoutForce.stdout).toContain('Use --force option to apply changes');
    expect((await c.readCluster()).config!.value.retry_timeout).toBe(3);
    await ok(['edit-config', '--apply', '-', '--force', '--quiet'], 'retry_timeout: 4\n');
    expect((await c.readCluster()).config!.value.retry_timeout).toBe(4);
    await ok(['edit-config', '-s', 'retry_timeout=3', '--force', '--quiet']);
  });
});

describe('maintenance mode', () => {
  it('pause and resume go through the REST API and show in list', async () => {
    expect(await ok(['pause', '--wait'])).toContain('Success: cluster management is paused');
    expect((await c.readCluster()).config!.value.pause).toBe(true);
    expect(await ok(['list'])).toMatch(/\n Maintenance mode: on\n$/);
    const again = await ctl(['pause']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('Cluster is already paused');
    expect(await ok(['resume', '--wait'])).toContain('Success: cluster management is resumed');
    expect((await c.readCluster()).config!.value).not.toHaveProperty('pause');
    expect(await ok(['list'])).not.toContain('Maintenance mode');
    expect((await ctl(['resume'])).stderr).toContain('Cluster is not paused');
  });
});

describe('switchover and failover', () => {
  it('refuses with the reason: unknown candidate, the leader itself, a wrong leader', async () => {
    const leader = await leaderName();
    const unknown = await ctl(['switchover', '--force', '--candidate', 'pg9']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(
      'candidate pg9 is not a member of cluster demo (members: pg1, pg2, pg3)',
    );
    const same = await ctl(['switchover', '--force', '--candidate', leader]);
    expect(same.stderr).toContain(`${leader} is the leader; the candidate must be another member`);
    const other = c.nodes.find((n) => n.name !== leader)!.name;
    const wrong = await ctl(['switchover', '--force', '--leader', other]);
    expect(wrong.stderr).toContain(
      `Member ${other} is not the leader of cluster demo (the leader is ${leader})`,
    );
    const unanswered = await ctl(['failover']);
    expect(unanswered.code).toBe(1);
    expect(unanswered.stdout).toContain('Current cluster topology');
    expect(unanswered.stderr).toMatch(/no answer to "Candidate \['pg\d', 'pg\d'\] \[\]"/);
  });

  it('switchover --force --candidate moves the leader through the REST API', async () => {
    await c.waitHealthy(2);
    const old = await leaderName();
    const target = c.nodes.find((n) => n.name !== old)!.name;
    const out = await ok(['switchover', '--force', '--candidate', target]);
    expect(out).toMatch(
      new RegExp(`^\\d{4}-\\d{2}-\\d{2} [\\d:.]+ Successfully switched over to "${target}"$`, 'm'),
    );
    await waitFor('the new leader to run', async () => (await leaderName()) === target, 30_000);
    await c.waitHealthy(2);
    const history = await ok(['history', '-f', 'json']);
    const entries = JSON.parse(history) as Array<{ TL: number; 'New Leader': string }>;
    expect(entries.at(-1)?.['New Leader']).toBe(target);
    expect(history).toBe((await patronictl(['history', '-f', 'json'])).stdout);
  });

  it('switchover answers its questions from a pipe, as patronictl does', async () => {
    await c.waitHealthy(2);
    const old = await leaderName();
    const target = c.nodes.find((n) => n.name !== old)!.name;
    const out = await ok(['switchover'], `${old}\n${target}\nnow\ny\n`);
    expect(out).toContain(
      `Are you sure you want to switchover cluster demo, demoting current leader ${old}? [y/N]: `,
    );
    expect(out).toContain(`Successfully switched over to "${target}"`);
    await waitFor('the new leader to run', async () => (await leaderName()) === target, 30_000);
  });

  it('a scheduled switchover shows in list and is flushed', async () => {
    await c.waitHealthy(2);
    const leader = await leaderName();
    const target = c.nodes.find((n) => n.name !== leader)!.name;
    const at = new Date(Date.now() + 3600_000).toISOString();
    const out = await ok(['switchover', '--force', '--candidate', target, '--scheduled', at]);
    expect(out).toContain('Switchover scheduled');
    expect(await ok(['list'])).toContain(' Switchover scheduled at: ');
    expect(await ok(['flush', SCOPE, 'switchover', '--force'])).toMatch(/^Success: /);
    expect(await ok(['flush', SCOPE, 'switchover', '--force'])).toBe('No pending scheduled switchover\n');
    expect(await leaderName()).toBe(leader);
  });
});

describe('member actions', () => {
  it('reload and restart a replica through the REST API', async () => {
    await c.waitHealthy(2);
    const leader = await leaderName();
    const replica = c.nodes.find((n) => n.name !== leader)!.name;
    const reload = await ok(['reload', SCOPE, replica, '--force']);
    expect(reload).toMatch(
      new RegExp(`(No changes to apply on member|Reload request received for member) ${replica}`),
    );
    const restart = await ok(['restart', SCOPE, replica, '--force']);
    expect(restart).toContain(`Success: restart on member ${replica}`);
    const notReplica = await ctl(['restart', SCOPE, leader, '--role', 'replica', '--force']);
    expect(notReplica.code).toBe(1);
    expect(notReplica.stderr).toContain(`No replica among provided members: ${leader}`);
    const unknown = await ctl(['reload', SCOPE, 'pg9', '--force']);
    expect(unknown.stderr).toContain('pg9 is not a member of cluster demo (members: pg1, pg2, pg3)');
    await c.waitHealthy(2);
  });
});

describe('remove', () => {
  let dcs: EtcdDcs;
  beforeAll(async () => {
    // A second cluster in the same etcd, with a leader, so removing it leaves the real one alone.
    dcs = new EtcdDcs({
      hosts: c.etcd.endpoints,
      namespace: '/service/',
      scope: 'gone',
      name: 'g1',
      ttl: 600, // outlives the prompts below on a slow machine: its leader key is never renewed
    });
    await dcs.initialize('123', true);
    await dcs.setConfig({ ttl: 30 });
    await dcs.touchMember({ conn_url: 'postgres://127.0.0.1:1/postgres', state: 'running', role: 'primary' });
    expect(await dcs.attemptToAcquireLeader()).toBe(true);
  });
  afterAll(async () => {
    await dcs?.close({ revokeLease: true }).catch(() => undefined);
  });

  it('refuses without answers, or with a wrong one, and removes after all three', async () => {
    const none = await ctl(['remove', 'gone']);
    expect(none.code).toBe(1);
    expect(none.stdout).toContain('Cluster: gone (123)');
    expect(none.stderr).toContain('no answer to "Please confirm the cluster name to remove"');
    const wrongName = await ctl(['remove', 'gone'], 'demo\n');
    expect(wrongName.stderr).toContain('Cluster names specified do not match');
    const notAware = await ctl(['remove', 'gone'], 'gone\nyes\n');
    expect(notAware.stderr).toContain('You did not exactly type "Yes I am aware"');
    const wrongLeader = await ctl(['remove', 'gone'], 'gone\nYes I am aware\ng2\n');
    expect(wrongLeader.stderr).toContain('You did not specify the current leader of the cluster');
    expect((await dcs.readCluster()).initialize).toBe('123');
    const done = await ctl(['remove', 'gone'], 'gone\nYes I am aware\ng1\n');
    expect(done.code).toBe(0);
    const after = await dcs.readCluster();
    expect(after.initialize).toBeNull();
    expect(after.config).toBeNull();
    expect(after.leader).toBeNull();
    // The real cluster is untouched.
    expect((await c.readCluster()).initialize).toMatch(/^\d+$/);
  });
});

/**
 * Creating data: a new cluster (initdb or a custom `bootstrap.method` that restores a backup), a
 * standby cluster's leader (a copy of the remote source), and a replica's copy (the methods of
 * `create_replica_methods`, replica-methods.ts). A step that fails leaves no data directory behind
 * to be started: the half-made one is removed and the next cycle tries again.
 */
import type { ClusterState } from '../dcs/types.js';
import type { ConnTarget, RoleConfig } from '../postgres/types.js';
import { errorMessage } from '../util/errors.js';
import { startAs, watchdogRefusal } from './actions.js';
import type { RunnerContext } from './context.js';
import { bootstrapArgs, planReplicaMethods } from './replica-methods.js';
import { REMOTE_UPSTREAM } from './standby.js';
import type { Decision } from './types.js';

type Of<K extends Decision['kind']> = Extract<Decision, { kind: K }>;

/** How often the wait for the end of a restored backup's recovery says it still waits. */
const RECOVERY_REPORT_MS = 30_000;

/**
 * pg_hba.conf while a restored backup starts: the superuser's password is the backup's, not ours, so
 * the agent connects over trust from this host to set it (as Patroni does); the real file follows.
 */
export function bootstrapTrustHba(superuser: string, replication: string): string[] {
  return [
    `local all ${superuser} trust`,
    `local replication ${replication} trust`,
    `host all ${superuser} 127.0.0.1/32 trust`,
    `host all ${superuser} ::1/128 trust`,
    `host replication ${replication} 127.0.0.1/32 trust`,
  ];
}

export async function bootstrap(c: RunnerContext, d: Of<'bootstrap'>, cluster: ClusterState): Promise<void> {
  const standby = c.dynamic().standby_cluster;
  const bs = c.d.config.bootstrap;
  const method = bs.method ?? 'initdb';
  const custom = method === 'initdb' ? undefined : bs.methods?.[method];
  if (!standby && method !== 'initdb' && !custom) {
    await c.setHold(
      `bootstrap.method is "${method}" but bootstrap.${method}.command is not set; refusing to create an empty ` +
        'cluster in its place. Add the command, or remove bootstrap.method to run initdb',
      false,
    );
    return c.say(d, 'not bootstrapping', 'error');
  }
  if (!standby) {
    const noWatchdog = watchdogRefusal(c);
    if (noWatchdog) return c.say(d, `not bootstrapping: ${noWatchdog}`, 'error');
  }
  if (!(await c.d.dcs.initialize('', true)))
    return c.say(d, 'another member won the initialisation race; waiting for it');
  const pg = c.d.pg;
  try {
    if (standby) {
      c.say(d, 'won the initialisation race; creating the standby leader from the standby_cluster source');
      await bootstrapStandbyLeader(c, cluster);
      return;
    }
    c.say(
      d,
      `won the initialisation race; ${custom ? `running bootstrap method ${method}` : 'running initdb'}`,
    );
    await c.during(custom ? 'running custom bootstrap script' : 'initializing new cluster', async () => {
      if (custom) await restoreBackup(c, method, custom);
      else {
        await pg.initdb(bs.initdb);
        await pg.configure(c.roleConfig('primary', null, null));
        await pg.start(c.dynamic().primary_start_timeout * 1000);
      }
      if (!(await c.d.dcs.attemptToAcquireLeader()))
        throw new Error(`could not take the leader key after ${custom ? method : 'initdb'}`);
      c.snapshot.isLeader = true;
      if (custom) await waitForEndOfRecovery(c);
      await postBootstrap(c, Boolean(custom));
      const control = await pg.controlData();
      if (!control) throw new Error('pg_controldata gave nothing after the bootstrap');
      await c.d.dcs.initialize(control.systemIdentifier, false);
      if (!cluster.config) await c.d.dcs.setConfig(bs.dcs);
    });
  } catch (err) {
    c.log.error(
      `bootstrap failed: ${errorMessage(err)}; removing the half-made data directory and releasing the race`,
    );
    await pg.stop('immediate', 10_000).catch(() => undefined);
    await c.d.dcs.deleteLeader().catch(() => false);
    c.snapshot.isLeader = false;
    await c.d.dcs.cancelInitialization().catch(() => undefined);
    await pg.removeDataDirectory().catch(() => undefined);
    throw err;
  }
  c.st.configuredUpstream = null;
  c.st.upstreamKnown = true;
  c.snapshot.role = 'primary';
  c.snapshot.isLeader = true;
  c.d.runCallback('on_start', 'primary');
  c.log.info('initialised a new cluster; I am the leader');
}

/** Runs the custom bootstrap command and starts what it restored (archive recovery when asked). */
async function restoreBackup(
  c: RunnerContext,
  method: string,
  m: NonNullable<NonNullable<RunnerContext['d']['config']['bootstrap']['methods']>[string]>,
): Promise<void> {
  const pg = c.d.pg;
  if ((await pg.dataDirectoryState()) !== 'empty')
    throw new Error(`bootstrap method ${method}: the data directory ${pg.dataDirectory} is not empty`);
  await pg.prepareForRestore();
  const res = await pg.runCommand(m.command, bootstrapArgs(m.no_params, c.d.config.scope, pg.dataDirectory), {
    onLine: (line) => c.log.info(`${method}: ${line}`),
  });
  if (res.code !== 0)
    throw new Error(
      `bootstrap method ${method} (${m.command}) failed with exit code ${res.code}: ${res.output}`,
    );
  if ((await pg.dataDirectoryState()) !== 'initialized')
    throw new Error(
      `bootstrap method ${method} (${m.command}) succeeded but left no PostgreSQL data directory in ${pg.dataDirectory}`,
    );
  await pg.adoptRestoredDataDirectory();
  const a = c.d.config.postgresql.authentication;
  const rc: RoleConfig = {
    ...c.roleConfig('primary', null, null),
    pgHba: bootstrapTrustHba(a.superuser.username, a.replication.username),
  };
  if (m.recovery_conf) {
    rc.signal = 'recovery';
    rc.recovery = Object.fromEntries(
      Object.entries(m.recovery_conf).map(([k, v]) => [
        k,
        typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v),
      ]),
    );
  } else if (m.keep_existing_recovery_conf) rc.signal = 'keep';
  await pg.configure(rc);
  await pg.start(c.dynamic().primary_start_timeout * 1000);
}

/** A restored backup may replay an archive first: the cluster exists once it runs as a primary. */
async function waitForEndOfRecovery(c: RunnerContext): Promise<void> {
  let reported = c.clock.mono();
  for (;;) {
    if (!(await c.d.pg.isRunning()))
      throw new Error('PostgreSQL stopped while recovering the restored backup (see its log)');
    const status = await c.d.pg.status().catch(() => null);
    if (status && !status.inRecovery) return;
    if (c.clock.mono() - reported >= RECOVERY_REPORT_MS) {
      c.log.info('waiting for end of recovery after bootstrap');
      reported = c.clock.mono();
    }
    await new Promise((r) => c.clock.setTimer(() => r(undefined), 1000));
  }
}

/**
 * After the first start: the roles (pgha's and `bootstrap.users`), then `post_bootstrap`, then — after
 * a custom bootstrap — the real pg_hba.conf and recovery settings in place of the temporary ones.
 */
async function postBootstrap(c: RunnerContext, custom: boolean): Promise<void> {
  const pg = c.d.pg;
  const bs = c.d.config.bootstrap;
  await pg.createUsers();
  if (bs.users) await pg.createBootstrapUsers(bs.users);
  const script = bs.post_bootstrap ?? bs.post_init;
  if (script) {
    const conn = await pg.localConnection();
    c.log.info(`running post_bootstrap: ${script}`);
    const res = await pg.runCommand(script, [conn.connstring], {
      env: conn.env,
      onLine: (line) => c.log.info(`post_bootstrap: ${line}`),
    });
    if (res.code !== 0)
      throw new Error(`post_bootstrap script ${script} failed with exit code ${res.code}: ${res.output}`);
  }
  if (custom) {
    await pg.configure(c.roleConfig('primary', null, null));
    await pg.reload();
  }
  c.markServerConfigApplied();
}

/** The standby leader's first copy: from the remote source, started as its replica. */
async function bootstrapStandbyLeader(c: RunnerContext, cluster: ClusterState): Promise<void> {
  const standby = c.dynamic().standby_cluster;
  const remote = c.remoteTarget();
  const ok = await c.during('creating replica', () =>
    createReplicaData(c, remote, standby?.create_replica_methods ?? ['basebackup']),
  );
  if (!ok) throw new Error('no create_replica_methods of standby_cluster could copy the source');
  if (!(await c.d.dcs.attemptToAcquireLeader()))
    throw new Error('could not take the leader key after copying the standby_cluster source');
  c.snapshot.isLeader = true;
  await startAs(c, { role: 'replica', cluster, upstream: REMOTE_UPSTREAM }, 'on_start');
  const control = await c.d.pg.controlData();
  if (!control) throw new Error('pg_controldata gave nothing after copying the standby_cluster source');
  await c.d.dcs.initialize(control.systemIdentifier, false);
  if (!cluster.config) await c.d.dcs.setConfig(c.d.config.bootstrap.dcs);
  c.log.info('created the standby leader of a new standby cluster');
}

/**
 * Tries the replica methods in order (replica-methods.ts) to fill the empty data directory from
 * `source` (null: none; only `no_leader` methods run). True when one succeeded; a method that
 * fails leaves nothing behind.
 */
export async function createReplicaData(
  c: RunnerContext,
  source: ConnTarget | null,
  methods: readonly string[],
): Promise<boolean> {
  const pg = c.d.pg;
  const conn = source ? await pg.replicationConnection(source) : null;
  const steps = planReplicaMethods({
    methods,
    sections: c.d.config.postgresql.replica_methods ?? {},
    connstring: conn?.connstring ?? null,
    scope: c.d.config.scope,
    dataDir: pg.dataDirectory,
  });
  if (steps.length === 0) {
    c.log.warn(
      `no replica method can run${source ? '' : ' without a member to copy from'} (create_replica_methods: ${methods.join(', ')})`,
    );
    return false;
  }
  for (const step of steps) {
    try {
      if (step.kind === 'basebackup') {
        const target = source as ConnTarget;
        c.log.info(`running pg_basebackup from ${target.host}:${target.port}`);
        await pg.basebackup(target, c.d.config.postgresql.basebackup, (line) =>
          c.log.info(`pg_basebackup: ${line}`),
        );
      } else {
        if (!step.keepData) {
          if ((await pg.dataDirectoryState()) !== 'empty') await pg.removeDataDirectory();
          await pg.prepareForRestore();
        }
        const res = await pg.runCommand(step.command, step.args, {
          env: conn?.env ?? {},
          onLine: (line) => c.log.info(`${step.method}: ${line}`),
        });
        if (res.code !== 0) throw new Error(`${step.command} exited with code ${res.code}: ${res.output}`);
        if ((await pg.dataDirectoryState()) !== 'initialized')
          throw new Error(`${step.command} succeeded but left no PostgreSQL data directory`);
        await pg.adoptRestoredDataDirectory();
      }
      c.log.info(`replica has been created using ${step.method}`);
      return true;
    } catch (err) {
      c.log.error(`creating the replica with ${step.method} failed: ${errorMessage(err)}`);
      await pg.removeDataDirectory().catch(() => undefined);
    }
  }
  return false;
}

/**
 * `pgha bacula`: the pieces a Bacula Director needs from a pgha cluster that holds its catalog —
 * the `Catalog` resource pointing at the router, a catalog dump for the BackupCatalog job's
 * `RunBeforeJob`, and the restore of such a dump.
 */
import type { Command } from 'commander';
import { loadCtlConfig } from '../config/load.js';
import type { HostPort, PghaConfig } from '../config/types.js';
import { createEtcdDcs } from '../dcs/etcd.js';
import type { ClusterState } from '../dcs/types.js';
import { PghaError } from '../util/errors.js';
import { createLogger, type Logger } from '../util/log.js';
import { dumpCatalog } from './dump.js';
import {
  catalogEndpoint,
  checkName,
  passwordFromEnv,
  readYamlMapping,
  renderCatalogResource,
  type EndpointFlags,
} from './resource.js';
import { restoreCatalog } from './restore.js';
import { chooseDumpSources, formatBytes, parseBytes } from './source.js';
import { findPgTool } from './tools.js';

/** Flags shared by the commands that log in to the catalog database. */
interface DbFlags {
  dbname: string;
  user: string;
  passwordEnv?: string;
  dcsUrl?: string;
}

export interface CatalogResourceFlags extends EndpointFlags {
  name: string;
  dbname: string;
  user: string;
  passwordEnv?: string;
}

export interface BackupFlags extends DbFlags {
  output?: string;
  member?: string;
  leader?: boolean;
  replicaOnly?: boolean;
  maxLag: string;
  progressInterval: string;
}

export interface RestoreFlags extends DbFlags, EndpointFlags {
  input?: string;
  throughRouter?: boolean;
  clean?: boolean;
  yes?: boolean;
}

/** `pgha bacula catalog-resource`: the Director's Catalog resource, printed on stdout. */
export function catalogResourceText(path: string, flags: CatalogResourceFlags): string {
  const raw = readYamlMapping(path);
  const at = catalogEndpoint(raw, flags, path);
  const password = passwordFromEnv(flags.passwordEnv);
  return renderCatalogResource({
    name: checkName(flags.name, '--name'),
    address: at.host,
    port: at.port,
    dbname: checkName(flags.dbname, '--dbname'),
    user: checkName(flags.user, '--user'),
    ...(password !== undefined ? { password } : {}),
  });
}

/** The cluster settings of `path`: `scope` and `etcd3` are all that is required. */
function loadClusterConfig(path: string, dcsUrl: string | undefined): PghaConfig {
  const config = loadCtlConfig(path, dcsUrl);
  if (!config.scope) throw new PghaError('PGHA_NO_SCOPE', `${path}: scope: required: the cluster to read`);
  return config;
}

async function readCluster(config: PghaConfig, logger: Logger): Promise<ClusterState> {
  logger.info(`reading cluster ${config.scope} from etcd (${config.etcd.hosts.join(', ')})`);
  const dcs = createEtcdDcs(
    { ...config, name: 'pgha-bacula' },
    { ttl: 30, requestTimeoutMs: 5000, logger: logger.child({}, { level: 'silent' }) },
  );
  try {
    return await dcs.readCluster();
  } finally {
    await dcs.close({ revokeLease: false }).catch(() => undefined);
  }
}

/** Aborts on SIGINT/SIGTERM while `fn` runs, so a child program is stopped and temp files removed. */
async function withSignals<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await fn(ac.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function positiveSeconds(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new PghaError('PGHA_BAD_OPTION', `${flag}: expected a positive number of seconds, got "${value}"`);
  return n;
}

function cliLogger(): Logger {
  return createLogger({ type: 'plain', level: process.env.PGHA_LOG_LEVEL ?? 'info' });
}

/** `pgha bacula backup-catalog`: dumps the catalog; the summary line goes to stdout (Bacula's job log). */
export async function runBackupCatalog(path: string, flags: BackupFlags): Promise<void> {
  if (!flags.output)
    throw new PghaError('PGHA_BAD_OPTION', '--output: required: the file to write the dump to');
  if (flags.leader && (flags.member !== undefined || flags.replicaOnly))
    throw new PghaError('PGHA_BAD_OPTION', '--leader cannot be combined with --member or --replica-only');
  const maxLagBytes = parseBytes(flags.maxLag);
  if (maxLagBytes === undefined)
    throw new PghaError(
      'PGHA_BAD_OPTION',
      `--max-lag: expected bytes like 1048576 or 16MB, got "${flags.maxLag}"`,
    );
  const interval = positiveSeconds(flags.progressInterval, '--progress-interval');
  const dbname = checkName(flags.dbname, '--dbname');
  const user = checkName(flags.user, '--user');
  const password = passwordFromEnv(flags.passwordEnv);
  const config = loadClusterConfig(path, flags.dcsUrl);
  const pgDump = findPgTool('pg_dump', config.postgresql.bin_dir || undefined);
  const pgRestore = findPgTool('pg_restore', config.postgresql.bin_dir || undefined);
  const logger = cliLogger();

  const cluster = await readCluster(config, logger);
  const choice = chooseDumpSources(cluster, {
    maxLagBytes,
    ...(flags.member !== undefined ? { member: flags.member } : {}),
    replicaOnly: Boolean(flags.replicaOnly),
    leaderOnly: Boolean(flags.leader),
  });
  for (const s of choice.skipped) logger.info(`not dumping from ${s.name}: ${s.reason}`);
  if (choice.sources.length === 0) {
    const why = choice.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
    const wanted =
      flags.member !== undefined ? `member ${flags.member}` : flags.leader ? 'the leader' : 'any member';
    throw new PghaError(
      'PGHA_NO_SOURCE',
      `cannot dump the catalog of cluster ${config.scope}: ${wanted} unusable` +
        `${cluster.leader ? '' : ' (no leader)'}${why ? ` (${why})` : ''}`,
    );
  }
  const result = await withSignals((signal) =>
    dumpCatalog({
      pgDump,
      pgRestore,
      sources: choice.sources,
      output: flags.output!,
      dbname,
      user,
      ...(password !== undefined ? { password } : {}),
      progressIntervalS: interval,
      logger,
      signal,
    }),
  );
  console.log(
    `catalog dump ${result.output}: ${formatBytes(result.bytes)}, ${result.entries} entries, ` +
      `from ${result.source.name} (${result.source.role}) in ${result.seconds.toFixed(1)} s`,
  );
}

/** Where a restore connects: an explicit endpoint (router, VIP) or the leader named in etcd. */
async function restoreTarget(
  path: string,
  flags: RestoreFlags,
  logger: Logger,
): Promise<{ at: HostPort; name: string; binDir: string | undefined }> {
  if (flags.throughRouter || flags.address !== undefined || flags.port !== undefined) {
    // No etcd needed: the router (or whatever listens there) finds the primary.
    const raw = readYamlMapping(path);
    const at = catalogEndpoint(raw, flags, path);
    const pgSection = raw.postgresql as { bin_dir?: unknown } | undefined;
    const binDir =
      typeof pgSection?.bin_dir === 'string' && pgSection.bin_dir ? pgSection.bin_dir : undefined;
    return { at, name: flags.address !== undefined ? '--address' : 'the router', binDir };
  }
  const config = loadClusterConfig(path, flags.dcsUrl);
  const binDir = config.postgresql.bin_dir || undefined;
  const cluster = await readCluster(config, logger);
  const source = chooseDumpSources(cluster, { maxLagBytes: 0, leaderOnly: true }).sources[0];
  if (!source)
    throw new PghaError(
      'PGHA_NO_LEADER',
      `cluster ${config.scope} has no running leader to restore into` +
        (cluster.leader ? ` (${cluster.leader.name} is not running)` : ''),
    );
  return { at: { host: source.host, port: source.port }, name: `the leader ${source.name}`, binDir };
}

/** `pgha bacula restore-catalog`: loads a dump into the catalog database on the primary. */
export async function runRestoreCatalog(path: string, flags: RestoreFlags): Promise<void> {
  if (!flags.input) throw new PghaError('PGHA_BAD_OPTION', '--input: required: the dump to restore');
  const dbname = checkName(flags.dbname, '--dbname');
  const user = checkName(flags.user, '--user');
  const password = passwordFromEnv(flags.passwordEnv);
  const logger = cliLogger();
  const target = await restoreTarget(path, flags, logger);
  if (!flags.yes)
    throw new PghaError(
      'PGHA_NOT_CONFIRMED',
      `restore-catalog writes ${flags.input} into database "${dbname}" at ${target.at.host}:${target.at.port} ` +
        `(${target.name})${flags.clean ? ', dropping what is there' : ''}; stop the Director, then pass --yes to confirm`,
    );
  const pgRestore = findPgTool('pg_restore', target.binDir);
  const result = await withSignals((signal) =>
    restoreCatalog({
      pgRestore,
      input: flags.input!,
      target: target.at,
      targetName: target.name,
      dbname,
      user,
      ...(password !== undefined ? { password } : {}),
      clean: Boolean(flags.clean),
      logger,
      signal,
    }),
  );
  console.log(
    `catalog restored into database "${dbname}" at ${target.at.host}:${target.at.port} (${target.name}): ` +
      `${result.entries} entries, ${result.tables} tables loaded in ${result.seconds.toFixed(1)} s`,
  );
}

/** Registers `pgha bacula` and its commands. */
export function registerBacula(program: Command): void {
  const bacula = program
    .command('bacula')
    .description('the Bacula catalog on a pgha cluster: Catalog resource, catalog dump and restore');

  const db = (cmd: Command) =>
    cmd
      .option('--dbname <name>', 'catalog database', 'bacula')
      .option('--user <name>', 'database user', 'bacula')
      .option(
        '--password-env <var>',
        "environment variable holding the user's password (default: PGPASSWORD or ~/.pgpass)",
      );

  db(
    bacula
      .command('catalog-resource')
      .description("print the Director's Catalog resource for this cluster (for bacula-dir.conf)")
      .argument('<config>', 'YAML with a router: section (patroni.yml works); its vip: address is used')
      .option('--name <name>', 'resource name that Clients and Jobs refer to', 'MyCatalog')
      .option('--address <host>', 'DB Address (default: vip.address, else router.listen host)')
      .option('--port <port>', 'DB Port (default: the router.listen port)'),
  ).action((config: string, opts: CatalogResourceFlags) => {
    process.stdout.write(catalogResourceText(config, opts));
  });

  db(
    bacula
      .command('backup-catalog')
      .description('dump the catalog with pg_dump (custom format) from a streaming replica, else the leader')
      .argument('<config>', 'YAML with scope and etcd3 (patroni.yml works)')
      .option('-o, --output <file>', 'file to write; replaced only once the new dump is complete')
      .option('--member <name>', 'dump from this member only')
      .option('--leader', 'dump from the leader only')
      .option('--replica-only', 'fail rather than dump from the leader when no replica qualifies')
      .option('--max-lag <bytes>', 'skip replicas further behind the leader than this', '16MB')
      .option('--progress-interval <seconds>', 'seconds between progress lines on stderr', '5')
      .option('--dcs-url <url>', 'etcd3://host:port[,host:port], replaces the etcd3 section'),
  ).action(async (config: string, opts: BackupFlags) => {
    await runBackupCatalog(config, opts);
  });

  db(
    bacula
      .command('restore-catalog')
      .description('restore a catalog dump with pg_restore into the primary, in one transaction')
      .argument('<config>', 'YAML with scope and etcd3 (patroni.yml works)')
      .option('-i, --input <file>', 'dump written by backup-catalog (or pg_dump --format=custom)')
      .option('--clean', 'drop the objects in the dump before creating them again')
      .option('--yes', 'confirm: the Director is stopped and the database may be written')
      .option(
        '--through-router',
        'connect through the router (vip.address or router.listen) instead of the leader',
      )
      .option('--address <host>', 'connect to this host instead of the leader (implies --through-router)')
      .option('--port <port>', 'port with --address (default: the router.listen port)')
      .option('--dcs-url <url>', 'etcd3://host:port[,host:port], replaces the etcd3 section'),
  ).action(async (config: string, opts: RestoreFlags) => {
    await runRestoreCatalog(config, opts);
  });
}

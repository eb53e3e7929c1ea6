/**
 * `pgha router <config.yml>`: the scope and etcd settings of the node's own YAML (so one router runs
 * beside each agent, as HAProxy did in the seed) or of a small file on a client host holding only
 * `scope`, `etcd3` and `router`. Command-line flags override the `router:` section.
 */
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Command } from 'commander';
import { loadCtlConfig, readConfigPath } from '../config/load.js';
import { errorMap, formatIssue, routerSection } from '../config/schema.js';
import type { Credentials, PghaConfig, RouterConfig } from '../config/types.js';
import { createEtcdDcs } from '../dcs/etcd.js';
import { ConfigError } from '../util/errors.js';
import { createLogger, type Logger } from '../util/log.js';
import { RoleSecrets } from './role-secrets.js';
import { Router } from './router.js';
import { routerMetrics, startStatusServer, type StatusServer } from './status.js';

/** Command-line overrides, named as the `router:` keys they replace. */
export interface RouterFlags {
  listen?: string;
  replicaListen?: string;
  statusListen?: string;
  balance?: string;
  maxLag?: string;
  fallbackToPrimary?: boolean;
  waitTimeout?: string;
  checkInterval?: string;
  verifyPrimary?: boolean;
  dataPath?: string;
  relayThreads?: string;
  replicaGrace?: string;
  drainTimeout?: string;
  dcsUrl?: string;
}

/** Parses the `router:` section of `raw` with `flags` applied on top; throws `ConfigError`. */
export function parseRouterSection(raw: unknown, flags: RouterFlags = {}): RouterConfig {
  const base = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? { ...raw } : {};
  const over: Record<string, unknown> = {
    listen: flags.listen,
    replica_listen: flags.replicaListen,
    status_listen: flags.statusListen,
    balance: flags.balance,
    max_lag: flags.maxLag,
    fallback_to_primary: flags.fallbackToPrimary,
    wait_timeout: flags.waitTimeout,
    check_interval: flags.checkInterval,
    verify_primary: flags.verifyPrimary,
    data_path: flags.dataPath,
    relay_threads: flags.relayThreads,
    replica_grace: flags.replicaGrace,
    drain_timeout: flags.drainTimeout,
  };
  for (const [k, v] of Object.entries(over)) if (v !== undefined) (base as Record<string, unknown>)[k] = v;
  const parsed = routerSection.safeParse(base, { error: errorMap });
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => formatIssue(i, ['router'])));
  const r = parsed.data;
  const out: RouterConfig = {
    listen: r.listen,
    balance: r.balance,
    fallback_to_primary: r.fallback_to_primary,
    wait_timeout: r.wait_timeout,
    connect_timeout: r.connect_timeout,
    check_interval: r.check_interval,
    verify_primary: r.verify_primary,
    data_path: r.data_path,
    relay_threads: r.relay_threads,
    replica_grace: r.replica_grace,
    drain_timeout: r.drain_timeout,
  };
  if (r.tls) out.tls = r.tls;
  if (r.replica_listen) out.replica_listen = r.replica_listen;
  if (r.status_listen) out.status_listen = r.status_listen;
  if (r.max_lag !== undefined) out.max_lag = r.max_lag;
  return out;
}

/** Loads the cluster settings and the router section from `path` (flags override). */
export function loadRouterConfig(path: string | undefined, flags: RouterFlags = {}): PghaConfig {
  const config = loadCtlConfig(path, flags.dcsUrl);
  if (!config.scope) throw new ConfigError(['scope: required: the cluster the router serves']);
  let raw: unknown;
  if (path !== undefined) {
    const parsed = readConfigPath(path);
    raw = (parsed.value as Record<string, unknown> | undefined)?.router;
  }
  config.router = parseRouterSection(raw, flags);
  return config;
}

export interface RunningRouter {
  router: Router;
  status: StatusServer | null;
  stop(): Promise<void>;
}

/** `router.tls` as a TLS context; a file that cannot be read is a configuration error. */
function tlsContext(tls: RouterConfig['tls']): SecureContext | null {
  if (!tls) return null;
  try {
    return createSecureContext({ cert: readFileSync(tls.certificate), key: readFileSync(tls.key) });
  } catch (err) {
    throw new ConfigError([`router.tls: ${(err as Error).message}`]);
  }
}

/** The superuser of the YAML, which reads role verifiers so sessions can move (null: none configured). */
function superuserOf(config: PghaConfig): RoleSecrets | null {
  const su = (config.postgresql as { authentication?: { superuser?: Credentials } } | undefined)
    ?.authentication?.superuser;
  if (!su?.username) return null;
  return new RoleSecrets(su, (config.router?.connect_timeout ?? 5) * 1000);
}

/** Starts a router (and its status server) from a loaded configuration. */
export async function startRouter(config: PghaConfig, logger: Logger): Promise<RunningRouter> {
  const rc = config.router ?? parseRouterSection(undefined);
  const tls = tlsContext(rc.tls);
  const id = `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  const dcs = createEtcdDcs(
    { ...config, name: `router-${id}` },
    {
      // The lease of its registration (routers/<id>): an agent switching over waits only for
      // routers whose key lives.
      ttl: 10,
      // Until the first read says the cluster's retry_timeout, which the router then uses as the agents do.
      requestTimeoutMs: Math.min(5000, Math.max(1000, rc.check_interval * 2000)),
      logger,
    },
  );
  const router = new Router({
    source: dcs,
    logger,
    listen: rc.listen,
    ...(rc.replica_listen ? { replicaListen: rc.replica_listen } : {}),
    balance: rc.balance,
    maxLagBytes: rc.max_lag ?? null,
    fallbackToPrimary: rc.fallback_to_primary,
    waitTimeoutMs: rc.wait_timeout * 1000,
    connectTimeoutMs: rc.connect_timeout * 1000,
    checkIntervalMs: rc.check_interval * 1000,
    verifyPrimary: rc.verify_primary,
    dataPath: rc.data_path,
    relayThreads: rc.relay_threads,
    replicaGraceMs: rc.replica_grace * 1000,
    drainTimeoutMs: rc.drain_timeout * 1000,
    tls,
    secrets: superuserOf(config),
    id,
  });
  try {
    await router.start();
  } catch (err) {
    await router.stop();
    await dcs.close();
    throw err;
  }
  let status: StatusServer | null = null;
  if (rc.status_listen) {
    const host = rc.status_listen.hosts[0] ?? '127.0.0.1';
    try {
      status = await startStatusServer(
        router,
        routerMetrics(router, { scope: config.scope }),
        host === '*' || host === '' ? '0.0.0.0' : host,
        rc.status_listen.port,
      );
    } catch (err) {
      await router.stop();
      await dcs.close();
      throw err;
    }
    logger.info({ port: status.port }, 'router status and metrics listening');
  }
  return {
    router,
    status,
    async stop() {
      await status?.close();
      await router.stop();
      await dcs.close({ revokeLease: true });
    },
  };
}

/** `pgha router`: runs until SIGTERM or SIGINT. */
export async function runRouterCommand(path: string | undefined, flags: RouterFlags): Promise<void> {
  const config = loadRouterConfig(path, flags);
  const logger = createLogger({
    type: config.log.type,
    level: config.log.level,
    base: { router: config.scope },
  });
  const running = await startRouter(config, logger);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'stopping the router');
      running.stop().then(resolve, (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/** Registers `pgha router` on the CLI. */
export function registerRouter(program: Command): void {
  program
    .command('router')
    .description('route PostgreSQL clients to the primary and to replicas, following the cluster in etcd')
    .argument('[config]', 'YAML with scope, etcd3 and an optional router: section (patroni.yml works)')
    .option('--listen <host:port>', 'read-write port (router.listen)')
    .option('--replica-listen <host:port>', 'read-only port (router.replica_listen)')
    .option('--status-listen <host:port>', 'status and /metrics (router.status_listen)')
    .option('--balance <policy>', 'read-only port: round-robin or least-connections')
    .option('--max-lag <bytes>', 'skip replicas further behind than this (e.g. 16MB)')
    .option('--fallback-to-primary', 'read-only port: use the primary when no replica qualifies')
    .option('--no-fallback-to-primary', 'read-only port: never use the primary')
    .option('--wait-timeout <seconds>', 'how long new connections wait for a primary')
    .option('--check-interval <seconds>', 'seconds between etcd reads that prove the view is current')
    .option('--verify-primary', "confirm a new primary with its agent's REST API (default)")
    .option('--no-verify-primary', "do not confirm a new primary with its agent's REST API")
    .option('--data-path <path>', 'native, javascript or auto: who copies bytes after the startup phase')
    .option('--relay-threads <n>', 'threads of the native data path (default 1)')
    .option('--replica-grace <seconds>', 'seconds an unfit replica keeps its read-only sessions (default 10)')
    .option(
      '--drain-timeout <seconds>',
      'seconds a switchover lets transactions finish before cutting (default 5)',
    )
    .option('--dcs-url <url>', 'etcd3://host:port[,host:port], replaces the etcd3 section')
    .action(async (config: string | undefined, opts: RouterFlags) => {
      await runRouterCommand(config, opts);
    });
}

/**
 * `pgha agent <config.yml>`: wires the config, etcd, the local PostgreSQL, the HA loop and the REST
 * API together, and shuts them down in order on SIGTERM/SIGINT.
 */
import { appendFileSync, createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createApi } from './api/app.js';
import { LocalCheck } from './api/live.js';
import { startApiServer, type ApiServer } from './api/server.js';
import { loadConfigOrThrow } from './config/load.js';
import { applyReloadedConfig } from './config/reload.js';
import { dynamicProblems, etcdRefusalMessage, holdMessage, keyNotes, NoteMemory } from './config/keys.js';
import { parseDynamicConfig } from './config/schema.js';
import type { DynamicConfig, PghaConfig } from './config/types.js';
import { createEtcdDcs, type EtcdDcs } from './dcs/etcd.js';
import { checkEtcdMembership, checkRestAuthentication, formatFinding } from './doctor/checks.js';
import type { Dcs, Member } from './dcs/types.js';
import { Operator } from './ha/operator.js';
import { uiOptionsFromConfig } from './ui/routes.js';
import type { FailsafeAnswer, FailsafeLeader } from './ha/failsafe.js';
import { HaRunner } from './ha/runner.js';
import { EtcdLeaderKeeper } from './ha/etcd-leader.js';
import type { PeerStatus } from './ha/types.js';
import { peerStatusFromBody, type PeerBody } from './ha/peer.js';
import { createCallbackRunner } from './postgres/callbacks.js';
import { Postgres } from './postgres/postgres.js';
import { slotNameForMember } from './postgres/slots.js';
import { errorMessage, PghaError } from './util/errors.js';
import { createLogger, type Logger } from './util/log.js';
import { getJson, httpRequestText, peerTls, type HttpOptions } from './util/http.js';
import { probePort } from './util/net.js';
import { exitOnStopSignals, startReaper } from './util/reaper.js';
import { releaseWhenSettled } from './util/startup-memory.js';
import { VERSION } from './version.js';
import { Watchdog } from './watchdog/watchdog.js';

export interface Agent {
  runner: HaRunner;
  config: PghaConfig;
  /** Re-reads the YAML and reloads PostgreSQL (SIGHUP, as Patroni). */
  reload(): void;
  stop(opts?: { stopPostgres?: boolean }): Promise<void>;
}

/**
 * TLS of the agent's own requests to its peers. As Patroni's agent, it does not check that a peer's
 * certificate names the address it is reached at (members' certificates often name none); the
 * certificate is still checked against the CA when one is configured.
 */
export function agentPeerTls(config: Pick<PghaConfig, 'restapi' | 'ctl'>): HttpOptions {
  return { ...peerTls(config), insecure: true };
}

/** Reads a peer's `GET /patroni` and keeps what the leader race needs. */
export async function fetchPeerStatus(
  member: Member,
  signal: AbortSignal,
  tls: HttpOptions = {},
): Promise<PeerStatus> {
  const url = member.data.api_url;
  if (!url) return { name: member.name, reachable: false };
  return peerStatusFromBody(member, await getJson<PeerBody>(url, { ...tls, signal }));
}

/** `POST /failsafe` to a peer, with the cluster's REST credentials (Patroni's `call_failsafe_member`). */
export async function postFailsafe(
  member: Member,
  leader: FailsafeLeader,
  signal: AbortSignal,
  config: PghaConfig,
): Promise<FailsafeAnswer> {
  const url = member.data.api_url;
  if (!url) return { name: member.name, accepted: false, detail: 'no api_url' };
  const auth = config.restapi.authentication;
  const res = await httpRequestText(new URL('/failsafe', url).toString(), {
    method: 'POST',
    json: leader,
    signal,
    ...agentPeerTls(config),
    ...(auth ? { auth } : {}),
  });
  const accepted = res.status === 200 && res.text === 'Accepted';
  const lsn = Number(res.headers.lsn);
  return {
    name: member.name,
    accepted,
    detail: accepted ? 'accepted' : `${res.status} ${res.text.slice(0, 200)}`,
    ...(Number.isFinite(lsn) && res.headers.lsn !== undefined ? { lsn } : {}),
  };
}

/** Checks what the loader cannot: that the PostgreSQL binaries are where the config says. */
function checkEnvironment(config: PghaConfig): void {
  const pgCtl = join(config.postgresql.bin_dir, 'pg_ctl');
  if (!existsSync(pgCtl)) {
    throw new PghaError(
      'PGHA_NO_BINARIES',
      `postgresql.bin_dir: ${pgCtl} does not exist; install PostgreSQL (apt-get install postgresql) or fix bin_dir`,
    );
  }
}

/** The error that stops the agent before it changes anything: one line per refused key. */
function refusal(messages: readonly string[]): PghaError {
  return new PghaError('PGHA_REFUSED', messages.join('\n'));
}

/**
 * The refusals of the dynamic configuration already in etcd, read before the agent touches anything.
 * When etcd cannot be read now, the HA loop applies the same rule (`hold`) once it can.
 */
async function refusalsInEtcd(dcs: Dcs, retryTimeout: number, logger: Logger): Promise<string[]> {
  try {
    const cluster = await dcs.readCluster(AbortSignal.timeout(retryTimeout * 1000));
    const value = cluster.config?.value;
    if (!value) return [];
    return keyNotes(value, 'dynamic')
      .filter((n) => n.kind === 'refused')
      .map(etcdRefusalMessage);
  } catch (err) {
    logger.debug(`could not read the cluster before starting (${errorMessage(err)}); the HA loop will`);
    return [];
  }
}

/**
 * The dynamic configuration as the HA loop reads it every cycle: defaults applied, problems and keys
 * pgha does not act on logged when they first appear or change (not every cycle), and a `hold` when a
 * key must stop the agents from acting (`standby_cluster`).
 */
function dynamicParser(config: PghaConfig, logger: Logger): (raw: Record<string, unknown>) => DynamicConfig {
  const reported = new NoteMemory();
  let lastErrors = '';
  let lastAdjusted = '';
  return (raw) => {
    const { config: dyn, errors, warnings } = parseDynamicConfig(raw);
    const problems = errors.join('; ');
    if (problems !== lastErrors && problems !== '')
      logger.warn(`dynamic configuration has problems, defaults used for them: ${problems}`);
    lastErrors = problems;
    const adjusted = warnings.join('; ');
    if (adjusted !== lastAdjusted && adjusted !== '')
      logger.warn(`dynamic configuration adjusted: ${adjusted}`);
    lastAdjusted = adjusted;
    const notes = keyNotes(raw, 'dynamic');
    // bootstrap.dcs (read until the cluster has a config key) was reported by the loader already; a
    // refused key is reported by the HA loop, which holds on it (`hold`).
    if (raw !== config.bootstrap.dcs) {
      for (const n of reported.fresh(notes))
        if (n.kind !== 'refused') logger.warn(`dynamic configuration: ${n.message}`);
    }
    const holds = notes.filter((n) => n.kind === 'refused').map(holdMessage);
    return holds.length > 0 ? { ...dyn, hold: holds.join('; ') } : dyn;
  };
}

/**
 * Set-up problems the agent reports once, at start (`pgha ctl doctor` checks these and more): a
 * REST API whose writing endpoints anyone on the network may call, and an etcd cluster with fewer
 * than three or an even number of members. The etcd check runs in the background: it never
 * delays or stops the start.
 */
function reportSetupFindings(config: PghaConfig, dcs: EtcdDcs, retryTimeout: number, logger: Logger): void {
  for (const f of checkRestAuthentication(config.restapi)) logger.warn(formatFinding(f));
  dcs.memberList(AbortSignal.timeout(retryTimeout * 1000)).then(
    (members) => {
      for (const f of checkEtcdMembership(members)) logger.warn(formatFinding(f));
    },
    (err: unknown) => logger.debug(`could not list the etcd members (${errorMessage(err)})`),
  );
}

/** Starts an agent from a loaded configuration. */
export async function startAgent(config: PghaConfig, logger: Logger): Promise<Agent> {
  checkEnvironment(config);
  const initial = parseDynamicConfig(config.bootstrap.dcs).config;
  const dcs = createEtcdDcs(config, {
    ttl: initial.ttl,
    requestTimeoutMs: initial.retry_timeout * 1000,
    logger,
  });
  // Before anything is written or started: a key in etcd pgha cannot honour stops the agent here.
  const refusedInEtcd = await refusalsInEtcd(dcs, initial.retry_timeout, logger);
  if (refusedInEtcd.length > 0) {
    await dcs.close({ revokeLease: false }).catch(() => undefined);
    throw refusal(refusedInEtcd);
  }
  reportSetupFindings(config, dcs, initial.retry_timeout, logger);
  // cluster_name is the scope, as Patroni sets it (it names the processes and the log lines).
  const pg = new Postgres(config.postgresql, { name: config.name, scope: config.scope, logger });
  const callbacks = createCallbackRunner(config.postgresql.callbacks, config.scope, logger);
  const watchdog = new Watchdog({
    mode: config.watchdog.mode,
    device: config.watchdog.device,
    driver: config.watchdog.driver,
    safetyMargin: config.watchdog.safety_margin,
    logger,
  });
  const runner = new HaRunner({
    config,
    dcs,
    pg,
    logger,
    watchdog,
    parseDynamic: dynamicParser(config, logger),
    fetchPeer: (m, signal) => fetchPeerStatus(m, signal, agentPeerTls(config)),
    postFailsafe: (m, leader, signal) => postFailsafe(m, leader, signal, config),
    probePort: (host, port) => probePort(host, port),
    runCallback: callbacks,
    slotName: slotNameForMember,
    version: VERSION,
  });
  const operator = new Operator({
    runner,
    dcs,
    pg,
    logger,
    fetchPeer: (m, signal) => fetchPeerStatus(m, signal, agentPeerTls(config)),
    runCallback: callbacks,
    validateDynamic: async (raw) => {
      const params = await pg.parameterProblems(parseDynamicConfig(raw).config.postgresql.parameters);
      return [...dynamicProblems(raw), ...params.map((p) => `postgresql.parameters.${p}`)];
    },
    reloadLocalConfig: () => {
      if (!config.source) return 'the configuration came from the environment only; nothing to re-read';
      const warnings: string[] = [];
      const next = loadConfigOrThrow(config.source, process.env, (w) => warnings.push(w));
      for (const w of warnings) logger.warn(`configuration: ${w}`);
      return `re-read ${config.source}: ${applyReloadedConfig(config, next)}`;
    },
  });
  // The REST API checks PostgreSQL per request over a connection of its own (api/live.ts).
  const apiPg = new Postgres(config.postgresql, { name: config.name, scope: config.scope, logger });
  const local = new LocalCheck({ pg: apiPg, busyState: () => runner.st.busyState });
  const app = createApi({
    runner,
    liveCheck: () => local.check(),
    operator,
    restapi: config.restapi,
    tags: config.tags,
    version: VERSION,
    ui: uiOptionsFromConfig(config),
  });
  let api: ApiServer;
  try {
    api = await startApiServer(app, config.restapi);
  } catch (err) {
    await dcs.close().catch(() => undefined);
    await pg.close();
    await apiPg.close();
    throw err;
  }
  logger.info(
    `pgha ${VERSION} agent ${config.name} of cluster ${config.scope}; REST API on ${config.restapi.connect_address}`,
  );
  await runner.start();
  const etcdLeader = new EtcdLeaderKeeper({
    port: dcs,
    me: config.name,
    logger,
    active: () =>
      runner.snapshot.isLeader && !runner.dynamicConfig.pause && runner.dynamicConfig.move_etcd_leader,
    intervalMs: () => Math.max(2, runner.dynamicConfig.loop_wait) * 1000,
    timeoutMs: () => Math.min(2, runner.dynamicConfig.retry_timeout) * 1000,
  });
  etcdLeader.start();
  return {
    runner,
    config,
    reload: () => void operator.reload('SIGHUP received'),
    async stop(opts = {}) {
      operator.close();
      await etcdLeader.stop();
      await runner.shutdown(opts);
      await api.close();
      await apiPg.close();
    },
  };
}

/** With `log.dir`, the agent logs to `<dir>/patroni.log` (Patroni's file name), else to stderr. */
function logDestination(config: PghaConfig): NodeJS.WritableStream {
  const dir = config.log.dir;
  if (!dir) return process.stderr;
  try {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'patroni.log');
    appendFileSync(path, '');
    return createWriteStream(path, { flags: 'a' });
  } catch (err) {
    throw new PghaError(
      'PGHA_LOG_DIR',
      `log.dir: cannot write ${join(dir, 'patroni.log')}: ${(err as Error).message}`,
    );
  }
}

/** The `pgha agent` command: runs until SIGTERM or SIGINT. */
export async function runAgentCommand(configPath: string | undefined): Promise<void> {
  const warnings: string[] = [];
  const refusals: string[] = [];
  const config = loadConfigOrThrow(
    configPath,
    process.env,
    (w) => warnings.push(w),
    (r) => refusals.push(r),
  );
  const logger = createLogger({
    type: config.log.type,
    level: config.log.level,
    base: { node: config.name },
    destination: logDestination(config),
  });
  for (const w of warnings) logger.warn(`configuration: ${w}`);
  // In a container without an init, what PostgreSQL leaves behind is ours to collect.
  startReaper(logger);
  const startSignals = exitOnStopSignals(logger);
  let agent: Agent;
  try {
    if (refusals.length > 0) throw refusal(refusals);
    agent = await startAgent(config, logger);
  } catch (err) {
    // Standard error gets the CLI's line; a log file would otherwise not say why the agent stopped.
    if (config.log.dir && err instanceof PghaError) logger.fatal(err.message);
    throw err;
  } finally {
    startSignals();
  }
  // Once PostgreSQL runs and a whole HA cycle has passed that way, the start-up's memory goes back.
  const cancelRelease = releaseWhenSettled(() => agent.runner.snapshot.state === 'running', logger, {
    holdMs: agent.runner.snapshot.dynamic.loop_wait * 1000,
  });
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      cancelRelease();
      logger.info(`received ${sig}; shutting down`);
      agent
        .stop()
        .catch((err: unknown) => logger.error(`shutdown failed: ${String(err)}`))
        .finally(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('SIGHUP', () => agent.reload());
  });
}

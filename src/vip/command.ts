/**
 * `pgha vip <config.yml>`: Keepalived's part of the seed. Reads the node's own YAML (scope, name,
 * etcd3 and a `vip:` section), holds the virtual IP on this node while it may (see `decide.ts`),
 * and on SIGTERM/SIGINT removes the address and releases its etcd key.
 */
import type { Command } from 'commander';
import type { PghaConfig, VipConfig } from '../config/types.js';
import { createEtcdDcs } from '../dcs/etcd.js';
import { createLogger, type Logger } from '../util/log.js';
import { loadVipConfig } from './config.js';
import { safetyMarginMs } from '../ha/timing.js';
import { probeHttp } from './health.js';
import { IpRoute } from './iproute.js';
import { VipManager } from './manager.js';
import { startVipStatusServer, vipMetrics, type VipStatusServer } from './status.js';

export interface RunningVip {
  manager: VipManager;
  status: VipStatusServer | null;
  stop(): Promise<void>;
}

/** Checks the host (ip, privileges, interface), then starts the VIP loop and its status server. */
export async function startVip(config: PghaConfig & { vip: VipConfig }, logger: Logger): Promise<RunningVip> {
  const v = config.vip;
  const net = new IpRoute({
    address: v.address,
    family: v.family,
    prefix: v.prefix,
    iface: v.interface,
    arpCount: v.arp_count,
    log: logger,
  });
  await net.preflight();
  // Every etcd request must give up well before the deadline, so the loop can notice in time.
  const budgetMs = v.ttl * 1000 - safetyMarginMs(v.ttl);
  const dcs = createEtcdDcs(config, {
    ttl: v.ttl,
    requestTimeoutMs: Math.round(Math.max(500, Math.min(3000, budgetMs / 3))),
    logger,
  });
  const healthUrl = v.router_health_url;
  const probeTimeoutMs = Math.max(200, Math.min(1000, v.check_interval * 1000));
  const manager = new VipManager({
    config: v,
    me: config.name,
    store: dcs,
    net,
    ...(v.mode === 'router' && healthUrl ? { probe: () => probeHttp(healthUrl, probeTimeoutMs) } : {}),
    log: logger,
  });
  try {
    await manager.start();
  } catch (err) {
    await net.close();
    await dcs.close();
    throw err;
  }
  logger.info(
    `pgha vip: ${v.address}/${v.prefix} on ${v.interface}, mode ${v.mode}` +
      (v.mode === 'router' ? `, router health ${healthUrl}` : '') +
      `, key ${dcs.prefix}vip/${v.address}`,
  );
  let status: VipStatusServer | null = null;
  if (v.status_listen) {
    const host = v.status_listen.hosts[0] ?? '127.0.0.1';
    try {
      status = await startVipStatusServer(
        () => manager.status(),
        vipMetrics(() => manager.status(), { scope: config.scope }),
        host === '*' || host === '' ? '0.0.0.0' : host,
        v.status_listen.port,
      );
    } catch (err) {
      await manager.stop();
      await dcs.close({ revokeLease: true });
      throw err;
    }
    logger.info({ port: status.port }, 'vip status and metrics listening');
  }
  return {
    manager,
    status,
    async stop() {
      await status?.close();
      await manager.stop();
      // Revoking the lease also drops the key should the release above have failed.
      await dcs.close({ revokeLease: true });
    },
  };
}

/** `pgha vip`: runs until SIGTERM or SIGINT. */
export async function runVipCommand(path: string, opts: { dcsUrl?: string }): Promise<void> {
  const config = loadVipConfig(path, opts.dcsUrl);
  const logger = createLogger({
    type: config.log.type,
    level: config.log.level,
    base: { vip: config.vip.address, node: config.name },
  });
  // Handlers first: a signal during start-up (the first check may already hold the VIP) must
  // still remove the address and release the key.
  let signalled: string | null = null;
  let wake: () => void = () => undefined;
  const onSignal = (signal: string) => {
    signalled ??= signal;
    wake();
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  const running = await startVip(config, logger);
  if (signalled === null) await new Promise<void>((resolve) => (wake = resolve));
  logger.info({ signal: signalled }, 'stopping: removing the VIP and releasing its key');
  try {
    await running.stop();
  } catch (err) {
    logger.error({ err }, 'error while stopping');
  }
}

/** Registers `pgha vip` on the CLI. */
export function registerVip(program: Command): void {
  program
    .command('vip')
    .description(
      "hold a virtual IP on the leader's node or on a node with a healthy router (Keepalived's part)",
    )
    .argument('<config>', 'YAML with scope, name, etcd3 and a vip: section (patroni.yml works)')
    .option('--dcs-url <url>', 'etcd3://host:port[,host:port], replaces the etcd3 section')
    .action(async (config: string, opts: { dcsUrl?: string }) => {
      await runVipCommand(config, opts);
    });
}

/**
 * The `vip:` section of the node's own YAML (the same file the agent reads), checked by `vipSection`
 * in the config schema, with the defaults that depend on other sections: the prefix by address
 * family, and in router mode the health URL from `router.status_listen`.
 */
import { isIP } from 'node:net';
import { loadCtlConfig, readConfigPath } from '../config/load.js';
import {
  errorMap,
  formatHostPort,
  formatIssue,
  formatPath,
  localHostOf,
  routerSection,
  vipSection,
} from '../config/schema.js';
import type { PghaConfig, VipConfig } from '../config/types.js';
import { ConfigError } from '../util/errors.js';

/** An IPv6 address in its canonical (RFC 5952) text form, so `fd00:0::1` and `fd00::1` name one key. */
export function canonicalAddress(address: string): string {
  const a = address.trim();
  if (isIP(a) !== 6) return a;
  return new URL(`http://[${a}]/`).hostname.slice(1, -1);
}

/**
 * Parses a `vip:` mapping (`raw`) into `VipConfig`; `router` is the same file's `router:` section,
 * whose `status_listen` gives router mode its default health URL. Throws `ConfigError`.
 */
export function parseVipSection(raw: unknown, router?: unknown): VipConfig {
  if (raw === undefined || raw === null) {
    throw new ConfigError([
      'vip: required: add a vip section, e.g. `vip: {address: 192.168.1.160, interface: eth0}`',
    ]);
  }
  const parsed = vipSection.safeParse(raw, { error: errorMap });
  if (!parsed.success) {
    // A misspelt key here would silently leave a default in force: an error, not a warning.
    throw new ConfigError(
      parsed.error.issues.flatMap((i) =>
        i.code === 'unrecognized_keys'
          ? i.keys.map((k) => `${formatPath(['vip', ...i.path, k])}: unknown key`)
          : [formatIssue(i, ['vip'])],
      ),
    );
  }
  const v = parsed.data;
  const address = canonicalAddress(v.address);
  const family = isIP(address) === 6 ? 6 : 4;
  const out: VipConfig = {
    address,
    family,
    prefix: v.prefix ?? (family === 4 ? 32 : 128),
    interface: v.interface,
    mode: v.mode,
    ttl: v.ttl,
    check_interval: v.check_interval,
    fall: v.fall,
    rise: v.rise,
    arp_count: v.arp_count,
  };
  if (v.status_listen) out.status_listen = v.status_listen;
  if (v.router_health_url) out.router_health_url = v.router_health_url;
  else if (v.mode === 'router') {
    const r = routerSection.safeParse(router ?? {}, { error: errorMap });
    const status = r.success ? r.data.status_listen : undefined;
    if (!status) {
      throw new ConfigError([
        'vip.router_health_url: required in router mode when router.status_listen is not set ' +
          '(the local router status URL, e.g. http://127.0.0.1:8009/status)',
      ]);
    }
    out.router_health_url = `http://${formatHostPort(localHostOf(status.hosts[0] ?? ''), status.port)}/status`;
  }
  return out;
}

/**
 * Loads `path` for `pgha vip`: scope, name, etcd (with `--dcs-url` and the `PATRONI_*` overrides,
 * as for the ctl) and the `vip:` section. Throws `ConfigError` listing every problem.
 */
export function loadVipConfig(path: string, dcsUrl?: string): PghaConfig & { vip: VipConfig } {
  // Validates the whole file first, so a problem anywhere (the vip section included) is reported
  // as `path.to.key: what is wrong`, exactly as the agent would report it.
  const config = loadCtlConfig(path, dcsUrl);
  const parsed = readConfigPath(path);
  const raw = (parsed.value ?? {}) as Record<string, unknown>;
  const problems: string[] = [];
  if (!config.scope) problems.push('scope: required: the cluster whose leader or routers the VIP follows');
  if (config.name === 'patronictl' && raw.name !== 'patronictl' && !process.env.PATRONI_NAME)
    problems.push('name: required: the node name the VIP key is held under');
  let vip: VipConfig | undefined;
  try {
    vip = parseVipSection(raw.vip, raw.router);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  if (problems.length || !vip) throw new ConfigError(problems, path);
  return { ...config, vip };
}

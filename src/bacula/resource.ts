/**
 * The Bacula Director's `Catalog` resource for a pgha cluster, and the endpoint it names: the
 * router's port on the virtual IP (the seed's HAProxy port 5433 on the Keepalived address).
 */
import { isIP } from 'node:net';
import { readConfigPath } from '../config/load.js';
import type { HostPort } from '../config/types.js';
import { parseRouterSection } from '../router/command.js';
import { ConfigError, PghaError } from '../util/errors.js';

/** What goes into the resource. */
export interface CatalogResource {
  /** The resource name Clients and Jobs refer to (Debian's default configuration uses `MyCatalog`). */
  name: string;
  address: string;
  port: number;
  dbname: string;
  user: string;
  /** Omitted from the resource when undefined (libpq then looks in ~/.pgpass). */
  password?: string;
}

/** Quotes a value for a Bacula configuration file: `"..."` with `\` and `"` escaped. */
export function baculaQuote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Renders the `Catalog { ... }` resource, one directive per line, ending with a newline. */
export function renderCatalogResource(r: CatalogResource): string {
  const lines = [
    'Catalog {',
    `  Name = ${baculaQuote(r.name)}`,
    `  DB Address = ${baculaQuote(r.address)}`,
    `  DB Port = ${r.port}`,
    `  dbname = ${baculaQuote(r.dbname)}`,
    `  dbuser = ${baculaQuote(r.user)}`,
  ];
  if (r.password !== undefined) lines.push(`  dbpassword = ${baculaQuote(r.password)}`);
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** Overrides from the command line; unset ones come from the YAML. */
export interface EndpointFlags {
  address?: string;
  port?: string;
}

const WILDCARDS = new Set(['', '*', '0.0.0.0', '::']);

/** Parses `--port`: an integer 1..65535, else a one-line error naming the flag. */
export function parsePortFlag(value: string, flag = '--port'): number {
  const n = /^\d{1,5}$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= 1 && n <= 65535))
    throw new PghaError('PGHA_BAD_OPTION', `${flag}: expected a port number 1-65535, got "${value}"`);
  return n;
}

/** Reads a configuration's top-level mapping (a file or a directory); a missing or broken one is a one-line `PghaError`. */
export function readYamlMapping(path: string): Record<string, unknown> {
  const parsed = readConfigPath(path);
  if (parsed.errors.length) throw new PghaError('PGHA_CONFIG_INVALID', parsed.errors.join('; '));
  return parsed.value;
}

/** `vip.address` of the YAML without a `/prefix`, or undefined when there is no `vip:` section. */
export function vipAddress(raw: Record<string, unknown>, source: string): string | undefined {
  const vip = raw.vip;
  if (vip === undefined || vip === null) return undefined;
  const address = (vip as Record<string, unknown>).address;
  if (typeof address !== 'string' || isIP(address.split('/')[0]!.trim()) === 0)
    throw new PghaError(
      'PGHA_CONFIG_INVALID',
      `${source}: vip.address: expected an IP address like 192.168.1.160, got ${JSON.stringify(address)}`,
    );
  return address.split('/')[0]!.trim();
}

/**
 * The address and port clients use for the read-write port: `--address`/`--port` when given; else
 * the virtual IP (`vip.address`) or the router's own listen host, with the router's listen port.
 * A router listening on every address with no `vip:` section gives no usable address: that is an
 * error asking for `--address`, rather than a guess that only works on the node itself.
 */
export function catalogEndpoint(
  raw: Record<string, unknown>,
  flags: EndpointFlags,
  source: string,
): HostPort {
  let router;
  try {
    router = parseRouterSection(raw.router);
  } catch (err) {
    // One line, naming the file: `f.yml: router.listen: expected host:port, got "..."`.
    if (err instanceof ConfigError) throw new PghaError(err.code, `${source}: ${err.problems.join('; ')}`);
    throw err;
  }
  const port = flags.port !== undefined ? parsePortFlag(flags.port) : router.listen.port;
  if (flags.address !== undefined) {
    const address = flags.address.trim();
    if (address === '' || /[\s/]/.test(address))
      throw new PghaError(
        'PGHA_BAD_OPTION',
        `--address: expected a host name or IP address, got "${address}"`,
      );
    return { host: address, port };
  }
  const vip = vipAddress(raw, source);
  if (vip !== undefined) return { host: vip, port };
  const host = router.listen.hosts[0] ?? '';
  if (WILDCARDS.has(host))
    throw new PghaError(
      'PGHA_NO_ADDRESS',
      `${source}: router.listen is ${host || '*'}:${router.listen.port} (every address) and there is no vip: section; ` +
        'pass --address with the address the Director connects to (the virtual IP)',
    );
  return { host, port };
}

/** Reads `--password-env VAR`: the variable must be set and not empty. */
export function passwordFromEnv(
  name: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (name === undefined) return undefined;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
    throw new PghaError(
      'PGHA_BAD_OPTION',
      `--password-env: expected an environment variable name, got "${name}"`,
    );
  const value = env[name];
  if (value === undefined || value === '')
    throw new PghaError('PGHA_BAD_OPTION', `--password-env: environment variable ${name} is not set`);
  return value;
}

/** Checks a database or role name given on the command line (one line per mistake). */
export function checkName(value: string, flag: string): string {
  if (value.trim() === '' || value.includes('\0'))
    throw new PghaError('PGHA_BAD_OPTION', `${flag}: expected a name, got "${value}"`);
  return value;
}

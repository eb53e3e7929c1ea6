/**
 * `pgha agent --validate-config`, as `patroni --validate-config`: checks a node's configuration and
 * what it names on this host, then exits: nothing printed and status 0 when the agent could start
 * with it, one line per problem and status 1 otherwise. Beyond the file itself (`loadConfig`, the
 * keys the agent refuses included) it checks what Patroni's validator checks: the PostgreSQL
 * programs in `bin_dir`, a data directory that holds a cluster of that PostgreSQL version, listen
 * ports not taken by another process, and etcd members that answer.
 *
 * `validationFindings` decides from facts; `gatherFacts` reads them from the host.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { probePort } from '../util/net.js';
import { run } from '../util/process.js';
import { ConfigError, errorMessage } from '../util/errors.js';
import { isExecutable, loadConfig } from './load.js';
import { isLoopbackListenHost } from '../doctor/checks.js';
import { parseVersionOutput } from '../postgres/postgres.js';
import { formatHostPort, isWildcardHost, localHostOf, parseHostPort } from './schema.js';
import type { ListenAddress, PghaConfig } from './types.js';

/** The programs the agent runs from `bin_dir` (Patroni's validator asks for the same six). */
export const REQUIRED_PROGRAMS = [
  'pg_ctl',
  'initdb',
  'pg_controldata',
  'pg_basebackup',
  'postgres',
  'pg_isready',
];

/** What the data directory holds. */
export type DataDirFacts =
  | { kind: 'missing' | 'empty' | 'not-a-directory' | 'no-cluster' }
  | { kind: 'unreadable'; why: string }
  | { kind: 'cluster'; version: string; walDir: boolean };

export interface HostFacts {
  /** Whether `bin_dir` is a directory. */
  binDirExists: boolean;
  /** The programs of `REQUIRED_PROGRAMS` that are missing or not executable. */
  missingPrograms: string[];
  dataDir: DataDirFacts;
  /**
   * The major version `bin_dir`'s postgres reports, as PG_VERSION writes it (15, or 9.6); why it
   * could not be read; null when there is no postgres program to ask.
   */
  binaryVersion: string | Error | null;
  /** Listen addresses where something already accepts connections. */
  portsInUse: Array<{ key: string; address: string }>;
  /** etcd members that did not accept a connection. */
  etcdUnreachable: string[];
}

export interface ValidationOptions {
  /** Do not report listen ports in use (the node's own agent or PostgreSQL may be running). */
  ignoreListenPort?: boolean;
}

/** The problems (the agent would not start, or would not work) and warnings the facts show. */
export function validationFindings(
  config: PghaConfig,
  facts: HostFacts,
  opts: ValidationOptions = {},
): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  const { bin_dir: binDir, data_dir: dataDir } = config.postgresql;
  if (!facts.binDirExists)
    errors.push(`postgresql.bin_dir: ${binDir} is not a directory; install PostgreSQL or fix bin_dir`);
  else if (facts.missingPrograms.length)
    errors.push(
      `postgresql.bin_dir: ${binDir} has no executable ${facts.missingPrograms.join(', ')}; install PostgreSQL or fix bin_dir`,
    );

  const d = facts.dataDir;
  if (d.kind === 'not-a-directory')
    errors.push(`postgresql.data_dir: ${dataDir} exists and is not a directory`);
  if (d.kind === 'unreadable') errors.push(`postgresql.data_dir: cannot read ${dataDir}: ${d.why}`);
  if (d.kind === 'no-cluster')
    errors.push(
      `postgresql.data_dir: ${dataDir} is not empty but holds no PostgreSQL cluster (no PG_VERSION); move its files away or fix data_dir`,
    );
  if (d.kind === 'cluster') {
    const wal = Number(d.version) >= 10 ? 'pg_wal' : 'pg_xlog';
    if (!d.walDir)
      errors.push(`postgresql.data_dir: ${dataDir} holds a cluster without its ${wal} directory`);
    if (facts.binaryVersion instanceof Error)
      errors.push(`postgresql.bin_dir: ${facts.binaryVersion.message}`);
    else if (facts.binaryVersion !== null && facts.binaryVersion !== d.version) {
      errors.push(
        `postgresql.data_dir: ${dataDir} holds PostgreSQL ${d.version} data, but ${join(binDir, 'postgres')} is PostgreSQL ` +
          `${facts.binaryVersion}; point bin_dir at PostgreSQL ${d.version}'s programs`,
      );
    }
  }

  if (!opts.ignoreListenPort)
    for (const p of facts.portsInUse)
      errors.push(
        `${p.key}: ${p.address} is already in use; stop what listens there, or pass --ignore-listen-port ` +
          `when it is this node's own agent or PostgreSQL`,
      );
  for (const h of facts.etcdUnreachable) errors.push(`etcd3.hosts: ${h} is not reachable`);

  for (const [key, address] of [
    ['restapi.connect_address', config.restapi.connect_address],
    ['postgresql.connect_address', config.postgresql.connect_address],
  ] as const) {
    const host = parseHostPort(address)?.host;
    if (host && (isLoopbackListenHost(host) || isWildcardHost(host)))
      warnings.push(
        `${key}: ${address} cannot be reached from other hosts; use this host's own address there`,
      );
  }
  return { errors, warnings };
}

function dataDirFacts(dir: string): DataDirFacts {
  let entries: string[];
  try {
    if (!statSync(dir).isDirectory()) return { kind: 'not-a-directory' };
    entries = readdirSync(dir);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT'
      ? { kind: 'missing' }
      : { kind: 'unreadable', why: errorMessage(err) };
  }
  const files = entries.filter((e) => !e.startsWith('.') && e !== 'lost+found');
  if (files.length === 0) return { kind: 'empty' };
  if (!files.includes('PG_VERSION')) return { kind: 'no-cluster' };
  let version: string;
  try {
    version = readFileSync(join(dir, 'PG_VERSION'), 'utf8').trim();
  } catch (err) {
    return { kind: 'unreadable', why: errorMessage(err) };
  }
  const wal = Number(version) >= 10 ? 'pg_wal' : 'pg_xlog';
  return { kind: 'cluster', version, walDir: existsSync(join(dir, wal)) };
}

async function binaryVersion(binDir: string): Promise<string | Error> {
  const postgres = join(binDir, 'postgres');
  try {
    const res = await run(postgres, ['--version'], { timeoutMs: 10_000 });
    const v = res.code === 0 ? parseVersionOutput(res.stdout) : null;
    if (!v) return new Error(`cannot read the version of ${postgres}`);
    return v.major >= 10 ? String(v.major) : `${v.major}.${v.minor}`;
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** Reads the facts `validationFindings` decides from: files, programs, and TCP connections. */
export async function gatherFacts(config: PghaConfig, timeoutMs = 1000): Promise<HostFacts> {
  const pg = config.postgresql;
  const missingPrograms = REQUIRED_PROGRAMS.filter((p) => !isExecutable(join(pg.bin_dir, p)));
  const listens: Array<[string, ListenAddress]> = [
    ['restapi.listen', config.restapi.listen],
    ['postgresql.listen', pg.listen],
  ];
  const portChecks = listens.flatMap(([key, listen]) =>
    listen.hosts.map(localHostOf).map(async (host) => {
      const open = (await probePort(host, listen.port, timeoutMs)) === 'open';
      return open ? { key, address: formatHostPort(host, listen.port) } : null;
    }),
  );
  const etcdChecks = config.etcd.hosts.map(async (hostPort) => {
    const hp = parseHostPort(hostPort);
    return hp && (await probePort(hp.host, hp.port, timeoutMs)) === 'open' ? null : hostPort;
  });
  const [ports, etcd, version] = await Promise.all([
    Promise.all(portChecks),
    Promise.all(etcdChecks),
    missingPrograms.includes('postgres') ? Promise.resolve(null) : binaryVersion(pg.bin_dir),
  ]);
  let binDirExists = false;
  try {
    binDirExists = statSync(pg.bin_dir).isDirectory();
  } catch {
    // missing
  }
  return {
    binDirExists,
    missingPrograms,
    dataDir: dataDirFacts(pg.data_dir),
    binaryVersion: version,
    portsInUse: ports.filter((p) => p !== null),
    etcdUnreachable: etcd.filter((h) => h !== null),
  };
}

/**
 * The whole check: the configuration (from `path`, or `PATRONI_CONFIGURATION` and the `PATRONI_*`
 * variables), then this host. Warnings go to `warn`; problems throw a `ConfigError` listing them all.
 */
export async function validateAgentConfig(
  path: string | undefined,
  opts: ValidationOptions = {},
  warn: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const result = loadConfig(path, env);
  const errors = [...result.errors, ...(result.refusals ?? [])];
  const warnings = [...result.warnings];
  if (result.config && errors.length === 0) {
    const found = validationFindings(result.config, await gatherFacts(result.config), opts);
    errors.push(...found.errors);
    warnings.push(...found.warnings);
  }
  for (const w of warnings) warn(`warning: ${w}`);
  if (errors.length) throw new ConfigError(errors, result.config?.source ?? path ?? 'configuration');
}

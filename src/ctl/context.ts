/**
 * What every ctl command needs: the configuration (from `-c`, `$PATRONICTL_CONFIG_FILE`,
 * patronictl's default file or `--dcs-url`), a read/write handle on the cluster's keys in etcd, the members' REST API and
 * questions on standard input.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { loadCtlConfig, readConfigPath } from '../config/load.js';
import type { PghaConfig } from '../config/types.js';
import { createEtcdDcs } from '../dcs/etcd.js';
import type { Dcs, Member } from '../dcs/types.js';
import { PghaError } from '../util/errors.js';
import { apiRequest, type ApiResponse, type ApiSettings } from './api.js';
import { createPrompter, type Prompter } from './prompt.js';

export interface GlobalOptions {
  configFile?: string;
  dcsUrl?: string;
  /** patronictl's other spelling of `--dcs-url`. */
  dcs?: string;
  insecure?: boolean;
}

export interface CtlContext {
  config: PghaConfig;
  /** The cluster named on the command line, else the configuration's scope; throws when neither. */
  scope(name?: string): string;
  /** Opens the store for `scope` (the cluster named on the command line, or the config's). */
  dcs(scope?: string): Dcs;
  /** A request to a member's REST API (Patroni's `request_patroni`). */
  api(
    member: Member,
    method: string,
    endpoint: string,
    body?: unknown,
    timeoutMs?: number,
  ): Promise<ApiResponse>;
  prompter: Prompter;
  close(): Promise<void>;
}

/** The `ctl` section of the file (pgha's config loader keeps only what the agent uses). */
function ctlSection(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  try {
    const parsed = readConfigPath(path);
    const root = parsed.value as Record<string, unknown> | undefined;
    const ctl = root?.ctl;
    return ctl && typeof ctl === 'object' ? (ctl as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * The configuration file: `-c`, else `$PATRONICTL_CONFIG_FILE`, else patronictl's own default,
 * `patroni/patronictl.yaml` under `$XDG_CONFIG_HOME` (`~/.config`), when it exists and is readable.
 */
export function ctlConfigPath(
  configFile: string | undefined,
  env: NodeJS.ProcessEnv,
  exists: (path: string) => boolean = readable,
): string | undefined {
  if (configFile ?? env.PATRONICTL_CONFIG_FILE) return configFile ?? env.PATRONICTL_CONFIG_FILE;
  const base = env.XDG_CONFIG_HOME || (env.HOME ? join(env.HOME, '.config') : undefined);
  const fallback = base ? join(base, 'patroni', 'patronictl.yaml') : undefined;
  return fallback && exists(fallback) ? fallback : undefined;
}

/** patronictl ignores its default file when it cannot read it. */
function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** Builds the context; the store is connected lazily and closed by `close()`. */
export function ctlContext(opts: GlobalOptions): CtlContext {
  const path = ctlConfigPath(opts.configFile, process.env);
  const dcsUrl = opts.dcsUrl ?? opts.dcs ?? process.env.DCS_URL;
  // As patronictl: a patronictl.yaml needs only the etcd section; what a file gives is checked.
  const config = loadCtlConfig(path, dcsUrl, process.env);
  const ctl = ctlSection(path);
  const ctlAuth = ctl.authentication as { username?: unknown; password?: unknown } | undefined;
  const restAuth = config.restapi.authentication;
  const settings: ApiSettings = {
    auth:
      ctlAuth && typeof ctlAuth.username === 'string'
        ? {
            username: ctlAuth.username,
            password: typeof ctlAuth.password === 'string' ? ctlAuth.password : String(ctlAuth.password),
          }
        : restAuth
          ? { username: restAuth.username, password: restAuth.password }
          : undefined,
    insecure: Boolean(opts.insecure) || ctl.insecure === true,
    cacert: str(ctl.cacert) ?? config.restapi.cafile,
    certfile: str(ctl.certfile) ?? config.restapi.certfile,
    keyfile: str(ctl.keyfile) ?? config.restapi.keyfile,
    keyfilePassword: str(ctl.keyfile_password) ?? config.restapi.keyfile_password,
    timeoutMs: 120_000,
  };
  const opened: Dcs[] = [];
  let prompter: Prompter | undefined;
  const scope = (name?: string) => {
    const s = name ?? config.scope;
    if (!s)
      throw new PghaError(
        'PGHA_NO_SCOPE',
        'no cluster name given: pass it as an argument or set scope in the configuration',
      );
    return s;
  };
  return {
    config,
    scope,
    dcs(name) {
      const d = createEtcdDcs({ ...config, scope: scope(name) }, { ttl: 30, requestTimeoutMs: 5000 });
      opened.push(d);
      return d;
    },
    api(member, method, endpoint, body, timeoutMs) {
      return apiRequest(
        { ...settings, timeoutMs: timeoutMs ?? settings.timeoutMs },
        member,
        method,
        endpoint,
        body,
      );
    },
    get prompter() {
      prompter ??= createPrompter();
      return prompter;
    },
    async close() {
      prompter?.close();
      await Promise.all(opened.map((d) => d.close({ revokeLease: false }).catch(() => undefined)));
    },
  };
}

/**
 * What every ctl command needs: the configuration (from `-c`, `$PATRONICTL_CONFIG_FILE` or
 * `--dcs-url`) and a read/write handle on the cluster's keys in etcd.
 */
import { loadConfigOrThrow, loadCtlConfig } from '../config/load.js';
import type { PghaConfig } from '../config/types.js';
import { createEtcdDcs } from '../dcs/etcd.js';
import type { Dcs } from '../dcs/types.js';
import { PghaError } from '../util/errors.js';

export interface GlobalOptions {
  configFile?: string;
  dcsUrl?: string;
  insecure?: boolean;
}

export interface CtlContext {
  config: PghaConfig;
  /** Opens the store for `scope` (the cluster named on the command line, or the config's). */
  dcs(scope?: string): Dcs;
  close(): Promise<void>;
}

/** Builds the context; the store is connected lazily and closed by `close()`. */
export function ctlContext(opts: GlobalOptions): CtlContext {
  const path = opts.configFile ?? process.env.PATRONICTL_CONFIG_FILE;
  const config =
    path && !opts.dcsUrl
      ? loadConfigOrThrow(path, process.env)
      : loadCtlConfig(path, opts.dcsUrl, process.env);
  const opened: Dcs[] = [];
  return {
    config,
    dcs(scope) {
      const name = scope ?? config.scope;
      if (!name)
        throw new PghaError(
          'PGHA_NO_SCOPE',
          'no cluster name given: pass it as an argument or set scope in the configuration',
        );
      const d = createEtcdDcs({ ...config, scope: name }, { ttl: 30, requestTimeoutMs: 5000 });
      opened.push(d);
      return d;
    },
    async close() {
      await Promise.all(opened.map((d) => d.close({ revokeLease: false }).catch(() => undefined)));
    },
  };
}

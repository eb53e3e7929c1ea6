/**
 * Validates PostgreSQL parameters against one installation's `postgres` binary: the thin, spawning
 * half of `guc.ts`. It reads the binary's parameters once (`postgres --describe-config`), takes units
 * and enum values from a running server's pg_settings when one is at hand and from the generated
 * table otherwise, and after the pure review asks the binary itself about what is left
 * (`postgres -C ... -c name=value ...`, which parses every value, check hooks included, without
 * touching a data directory), so a value PostgreSQL would refuse never reaches postgresql.conf.
 */
import { join } from 'node:path';
import pino from 'pino';
import { PghaError, errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { run, type OsUser, type RunResult } from '../util/process.js';
import { isValidParamName } from './conf.js';
import {
  buildCatalog,
  describeDropped,
  parseDescribeConfig,
  parseRefusal,
  reviewParameters,
  type DroppedParameter,
  type GucCatalog,
  type ParameterReview,
  type ReviewOptions,
  type SettingEntry,
} from './guc.js';
import { PG_SETTINGS } from './pg-settings.generated.js';

const TOOL_TIMEOUT_MS = 15_000;

/** Locations pgha sets for the check itself, so the binary reads no file of the node. */
const CHECK_OWNED = new Set(['config_file', 'data_directory', 'hba_file', 'ident_file']);

export interface ValidatorOptions {
  /** `postgresql.bin_dir`. */
  binDir: string;
  /** Runs the binary as this user (PostgreSQL refuses root); null: as ourselves. */
  user: () => OsUser | null;
  logger?: Logger;
  /** pg_settings of a running server of this binary, or null when none runs. */
  serverSettings?: () => Promise<{ major: number; settings: Record<string, SettingEntry> } | null>;
}

/** The binary could not be run or did not answer as expected. */
export class ValidatorError extends PghaError {
  constructor(message: string, cause?: unknown) {
    super('PGHA_PARAMETER_CHECK_FAILED', message, { cause, retryable: true });
  }
}

export class ParameterValidator {
  private readonly o: ValidatorOptions;
  private readonly log: Logger;
  private described: Promise<{ major: number; text: string }> | null = null;
  private fromServer: GucCatalog | null = null;
  /** Refusals of the last few parameter sets the binary checked, by their JSON. */
  private readonly checked = new Map<string, DroppedParameter[]>();

  constructor(opts: ValidatorOptions) {
    this.o = opts;
    this.log = opts.logger ?? pino({ level: 'silent' });
  }

  private get postgres(): string {
    return join(this.o.binDir, 'postgres');
  }

  private async postgresRun(args: string[]): Promise<RunResult> {
    const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LC_MESSAGES: 'C' };
    delete env.PGDATA;
    try {
      return await run(this.postgres, args, { user: this.o.user(), env, timeoutMs: TOOL_TIMEOUT_MS });
    } catch (e) {
      throw new ValidatorError(`cannot run ${this.postgres}: ${errorMessage(e)}`, e);
    }
  }

  /** The binary's major version and `--describe-config`, read once. */
  private describe(): Promise<{ major: number; text: string }> {
    this.described ??= (async () => {
      const version = await this.postgresRun(['-V']);
      const m = /\(PostgreSQL\)\s+(\d+)/.exec(version.stdout);
      if (version.code !== 0 || !m)
        throw new ValidatorError(`cannot read the version of ${this.postgres}: ${version.stderr.trim()}`);
      const res = await this.postgresRun(['--describe-config']);
      if (res.code !== 0)
        throw new ValidatorError(`${this.postgres} --describe-config failed: ${res.stderr.trim()}`);
      return { major: Number(m[1]), text: res.stdout };
    })();
    // A failure is not kept: the next call tries again (the binary may be installed meanwhile).
    this.described.catch(() => (this.described = null));
    return this.described;
  }

  /**
   * What this binary accepts: pg_settings of a running server of the same major version when there
   * is one (kept once read), else the generated table for that version, else the bare binary.
   */
  async catalog(): Promise<GucCatalog> {
    if (this.fromServer) return this.fromServer;
    const { major, text } = await this.describe();
    const described = parseDescribeConfig(text);
    const server = await this.o.serverSettings?.().catch(() => null);
    if (server && server.major === major) {
      this.fromServer = buildCatalog(major, described, server.settings);
      return this.fromServer;
    }
    return buildCatalog(major, described, PG_SETTINGS[major] ?? null);
  }

  /**
   * The parameters to write: converted and checked by `reviewParameters`, then what is left checked
   * by the binary. Throws `ValidatorError` when the binary cannot be run.
   */
  async review(params: Readonly<Record<string, string | number | boolean>>, opts: ReviewOptions = {}) {
    const review = reviewParameters(params, await this.catalog(), opts);
    const refused = await this.refusedByBinary(review.params);
    for (const r of refused) delete review.params[r.name];
    return { ...review, dropped: [...review.dropped, ...refused] } satisfies ParameterReview;
  }

  /** Problems as `name: what is wrong` (empty when the binary takes every value). */
  async problems(params: Readonly<Record<string, string | number | boolean>>): Promise<string[]> {
    return (await this.review(params)).dropped.map(describeDropped);
  }

  /**
   * Asks the binary: `postgres -C server_version_num -c name=value ...` exits 0 when it takes every
   * value and stops at the first it refuses (FATAL, naming it); that one is dropped and the rest
   * asked again.
   */
  private async refusedByBinary(params: Record<string, string>): Promise<DroppedParameter[]> {
    let names = Object.keys(params).filter((n) => isValidParamName(n) && !CHECK_OWNED.has(n.toLowerCase()));
    const key = JSON.stringify(names.map((n) => [n, params[n]]));
    const cached = this.checked.get(key);
    if (cached) return cached;
    const refused: DroppedParameter[] = [];
    for (let round = 0; round <= names.length; round++) {
      const res = await this.postgresRun([
        '-C',
        'server_version_num',
        '--config-file=/dev/null',
        '-c',
        'data_directory=/nonexistent/pgha-parameter-check',
        '-c',
        'hba_file=/dev/null',
        '-c',
        'ident_file=/dev/null',
        // postgresql.conf cannot hold a newline in a value: the file gets a space (quoteConfValue).
        ...names.flatMap((n) => ['-c', `${n}=${(params[n] as string).replace(/\n/g, ' ')}`]),
      ]);
      if (res.code === 0) break;
      const refusal = parseRefusal(res.stderr, names);
      if (!refusal) {
        // Not about one of the parameters (a broken installation): PostgreSQL will say so at start.
        this.log.warn(`could not check the parameters with ${this.postgres}: ${res.stderr.trim()}`);
        break;
      }
      const nameOnly = /^(unrecognized configuration parameter|parameter "[^"]+" cannot be changed)/.test(
        refusal.message,
      );
      refused.push({
        name: refusal.name,
        value: params[refusal.name] as string,
        problem: nameOnly ? 'name' : 'value',
        reason: `PostgreSQL refuses it (${refusal.message})`,
      });
      names = names.filter((n) => n !== refusal.name);
    }
    if (this.checked.size >= 8) this.checked.delete(this.checked.keys().next().value as string);
    this.checked.set(key, refused);
    return refused;
  }
}

/**
 * Errors with a stable `code`. The CLI prints an expected error (a `PghaError`) as one line and exits
 * non-zero; anything else is a bug and prints its stack.
 */
export class PghaError extends Error {
  readonly code: string;
  /** True when retrying the same operation later may succeed (etcd unreachable, a timeout). */
  readonly retryable: boolean;
  constructor(code: string, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PghaError';
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/**
 * A command line that cannot be read: an unknown choice or a value of the wrong type for an option.
 * The CLI exits 2 for it, as for an unknown option, as patronictl (click) and most Unix tools do.
 */
export class UsageError extends PghaError {
  constructor(message: string) {
    super('PGHA_USAGE', message);
    this.name = 'UsageError';
  }
}

/** One or more problems in the configuration, reported together as `path.to.key: what is wrong`. */
export class ConfigError extends PghaError {
  readonly problems: string[];
  constructor(problems: string[], source = 'configuration') {
    super('PGHA_CONFIG_INVALID', `${source} has ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

/** The distributed store (etcd) could not be reached or answered with an error. */
export class DcsError extends PghaError {
  constructor(message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super('PGHA_DCS_ERROR', message, { retryable: true, ...options });
  }
}

/** A PostgreSQL operation (start, stop, promote, a tool) failed or timed out. */
export class PostgresError extends PghaError {
  constructor(message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super('PGHA_POSTGRES_ERROR', message, options);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

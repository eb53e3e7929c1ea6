/** Shared pieces of the ctl commands: the context around an action, option parsers. */
import type { Command } from 'commander';
import { PghaError } from '../util/errors.js';
import { ctlContext, type CtlContext, type GlobalOptions } from './context.js';
import { FORMATS, type OutputFormat } from './table.js';

/** Runs `fn` with a context built from the global options, closing it afterwards. */
export async function withContext<T>(cmd: Command, fn: (ctx: CtlContext) => Promise<T>): Promise<T> {
  const ctx = ctlContext(cmd.optsWithGlobals<GlobalOptions>());
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

/** `-f/--format`: pretty, tsv, json, yaml (or yml). */
export function parseFormat(v: string): OutputFormat {
  if (!(FORMATS as readonly string[]).includes(v))
    throw new PghaError('PGHA_BAD_FORMAT', `--format: expected one of ${FORMATS.join(', ')}, got "${v}"`);
  return (v === 'yml' ? 'yaml' : v) as OutputFormat;
}

/** `-w/--watch`: seconds between refreshes, a positive number. */
export function parseSeconds(v: string, flag = '--watch'): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new PghaError('PGHA_BAD_OPTION', `${flag}: expected a positive number of seconds, got "${v}"`);
  return n;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Throws when any per-member request failed, after each member's line was printed. */
export function failIfAny(action: string, failed: string[], total: number): void {
  if (failed.length > 0)
    throw new PghaError(
      'PGHA_MEMBER_FAILED',
      `${action} failed on ${failed.length} of ${total} member(s): ${failed.join(', ')}`,
    );
}

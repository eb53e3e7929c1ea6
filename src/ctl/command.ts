/** Shared pieces of the ctl commands: the context around an action, option parsers. */
import type { Command } from 'commander';
import { PghaError, UsageError } from '../util/errors.js';
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
    throw new UsageError(`--format: expected one of ${FORMATS.join(', ')}, got "${v}"`);
  return (v === 'yml' ? 'yaml' : v) as OutputFormat;
}

/**
 * Seconds between refreshes from `-W` and `-w/--watch`, as patronictl: `-w N` every N seconds, `-W`
 * every 2; 0 (or neither) once, except `-W -w 0`, every 2 seconds.
 */
export function watchEvery(o: { W?: boolean; watch?: string }): number {
  if (o.watch === undefined) return o.W ? 2 : 0;
  const n = Number(o.watch);
  if (o.watch.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new UsageError(`--watch: expected a number of seconds, got "${o.watch}"`);
  return n > 0 ? n : o.W ? 2 : 0;
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

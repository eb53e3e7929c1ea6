/**
 * The REST API's own look at the local PostgreSQL, once per request as Patroni's API does: is the
 * postmaster alive, and what does the status query answer, within a short deadline. It uses its own
 * connection (a `Postgres` of its own), so a long query of the HA loop (a checkpoint, a promotion)
 * never delays a health check; requests that arrive together share one query, and no request
 * waits longer than the deadline, whatever PostgreSQL does (a hung server reads as not answering).
 */
import type { ServerStatus } from '../postgres/types.js';
import type { LiveCheck } from './status.js';

/** How long a request waits for PostgreSQL's answer (HAProxy checks every few seconds). */
export const LIVE_CHECK_TIMEOUT_MS = 1000;

export interface LiveCheckDeps {
  /** The API's own connection to the local PostgreSQL. */
  pg: { isRunning(): Promise<boolean>; status(signal?: AbortSignal): Promise<ServerStatus | null> };
  /** The state an action of the HA loop shows right now (`starting`, `stopping`, ...), or null. */
  busyState(): string | null;
  timeoutMs?: number;
}

export class LocalCheck {
  private inflight: Promise<ServerStatus | null> | null = null;

  constructor(private readonly d: LiveCheckDeps) {}

  /** Checks the local PostgreSQL now; resolves within the deadline and never rejects. */
  async check(): Promise<LiveCheck> {
    const ms = this.d.timeoutMs ?? LIVE_CHECK_TIMEOUT_MS;
    const alive = await withDeadline(
      this.d.pg.isRunning().catch(() => false),
      ms,
      false,
    );
    const status = alive ? await withDeadline(this.query(ms), ms, null) : null;
    return { alive, status, busyState: this.d.busyState() };
  }

  /** One status query at a time; callers that come while it runs share its answer. */
  private query(ms: number): Promise<ServerStatus | null> {
    if (!this.inflight) {
      const p = this.d.pg
        .status(AbortSignal.timeout(ms))
        .catch(() => null)
        .finally(() => {
          if (this.inflight === p) this.inflight = null;
        });
      this.inflight = p;
    }
    return this.inflight;
  }
}

/** `p`'s value, or `fallback` once `ms` passed (p goes on and its outcome is ignored). */
function withDeadline<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
    timer.unref();
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

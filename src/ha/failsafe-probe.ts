/**
 * The effect side of `failsafe-view.ts`: while etcd cannot be read, the router and the VIP ask
 * every member they last saw in etcd (`api_url` of its member key) for `GET /primary`, one round at
 * a time, and keep each member's latest answer. They call `failsafeView` on every answer.
 */
import { errorMessage } from '../util/errors.js';
import { withAnswer, type PrimaryAnswer } from './failsafe-view.js';

/**
 * How long a `GET /primary` may take before it counts as no answer. A slow answer is still safe to
 * use (it counts from when it was asked); the agent's own `POST /failsafe` calls wait as long.
 */
export const PRIMARY_ANSWER_TIMEOUT_MS = 2000;

/** A member whose agent REST API can be asked. */
export interface ProbeTarget {
  name: string;
  /** The agent's REST base URL (`http://host:8008`). */
  apiUrl: string;
}

/** `GET <apiUrl>/primary`, never rejecting: no answer within `timeoutMs` is an answer too. */
export async function askPrimary(
  t: ProbeTarget,
  timeoutMs: number,
  now: () => number,
): Promise<PrimaryAnswer> {
  const sentAt = now();
  try {
    // Patroni's health endpoints need no authentication; the same plain client verify_primary uses.
    const res = await fetch(`${new URL(t.apiUrl).origin}/primary`, {
      method: 'GET',
      signal: AbortSignal.timeout(timeoutMs),
    });
    let failsafeActive = false;
    let detail: string | undefined;
    try {
      const body = (await res.json()) as { failsafe_mode_is_active?: unknown };
      failsafeActive = body.failsafe_mode_is_active === true;
    } catch (err) {
      detail = `unreadable body: ${errorMessage(err)}`;
    }
    return { member: t.name, sentAt, status: res.status, failsafeActive, ...(detail ? { detail } : {}) };
  } catch (err) {
    return { member: t.name, sentAt, status: null, failsafeActive: false, detail: errorMessage(err) };
  }
}

export interface FailsafeProbeOptions {
  intervalMs: number;
  timeoutMs: number;
  /** Monotonic ms. */
  now: () => number;
  /** Called after each answer, with every member's latest. */
  onAnswer: (answers: readonly PrimaryAnswer[]) => void;
  /** Called when `onAnswer` throws (the rounds go on). */
  onError: (err: unknown) => void;
  /** How to ask one member (default `askPrimary` over HTTP). */
  ask?: (t: ProbeTarget) => Promise<PrimaryAnswer>;
}

/** Asks `targets` in rounds, every `intervalMs`, until stopped; one round in flight at most. */
export class FailsafeProbe {
  private answers: PrimaryAnswer[] = [];
  private targets: ProbeTarget[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private generation = 0;

  constructor(private readonly o: FailsafeProbeOptions) {}

  get active(): boolean {
    return this.running;
  }

  /** Every member's latest answer since `start`. */
  latest(): readonly PrimaryAnswer[] {
    return this.answers;
  }

  /** Starts asking (at once), or goes on asking the new `targets` if already running. */
  start(targets: ProbeTarget[]): void {
    this.targets = targets;
    if (this.running) return;
    this.running = true;
    this.answers = [];
    const gen = ++this.generation;
    const round = async (): Promise<void> => {
      await Promise.all(
        this.targets.map(async (t) => {
          const a = await (this.o.ask?.(t) ?? askPrimary(t, this.o.timeoutMs, this.o.now));
          if (gen !== this.generation) return;
          this.answers = withAnswer(this.answers, a);
          try {
            this.o.onAnswer(this.answers);
          } catch (err) {
            this.o.onError(err);
          }
        }),
      );
      if (gen !== this.generation) return;
      this.timer = setTimeout(() => void round(), this.o.intervalMs);
      this.timer.unref();
    };
    void round();
  }

  /** Stops asking and forgets the answers (etcd answered again). */
  stop(): void {
    this.generation++;
    this.running = false;
    this.answers = [];
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

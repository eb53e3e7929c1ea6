/**
 * Operator actions behind the REST API: restart (now or scheduled, with Patroni's filters), reload,
 * switchover/failover requests, dynamic configuration edits, reinitialise. Checks and messages mirror
 * Patroni's api.py/ha.py on purpose (patronictl and scripts read the texts and codes), so do not
 * "improve" the wording. Actions that touch PostgreSQL run under `runner.exclusive`, so they never
 * interleave with an HA cycle; a switchover only writes the `failover` key and lets the leader's loop
 * carry it out, so waiting for its result happens outside the lock.
 */
import { newProblems } from '../config/keys.js';
import type { CallbackName, DynamicConfig } from '../config/types.js';
import type { ClusterState, Dcs, Member } from '../dcs/types.js';
import type { PostgresNode, RoleConfig } from '../postgres/types.js';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import { isoTime } from '../util/clock.js';
import { mergePatch } from '../config/merge-patch.js';
import type { AgentSnapshot } from './runner.js';
import { isNoFailover, manualPromotionRisk } from './rules.js';
import type { PeerStatus } from './types.js';

/** What the operator needs from the HA runner (`HaRunner` satisfies it). */
export interface OperatorRunner {
  readonly snapshot: AgentSnapshot;
  readonly busy: string | null;
  readonly dynamicConfig: DynamicConfig;
  scheduledRestart: Record<string, unknown> | null;
  exclusive<T>(what: string, fn: () => Promise<T>): Promise<T>;
  setBusyState(state: string | null): void;
  wake(): void;
  publish(): Promise<void>;
  reinitialize(force: boolean): Promise<string>;
  currentRoleConfig(): RoleConfig;
}

export interface OperatorDeps {
  runner: OperatorRunner;
  dcs: Pick<Dcs, 'readCluster' | 'setConfig' | 'setFailover'>;
  pg: Pick<PostgresNode, 'configure' | 'reload' | 'restart' | 'isRunning'>;
  logger: Logger;
  /** Asks a member's REST API for its status (`GET /patroni`). */
  fetchPeer(member: Member, signal: AbortSignal): Promise<PeerStatus>;
  runCallback(action: CallbackName, role: string): void;
  /**
   * Problems in a dynamic configuration, each `key: what is wrong` (empty when valid): the schema's,
   * and values in `postgresql.parameters` this node's PostgreSQL would refuse.
   */
  validateDynamic(raw: Record<string, unknown>): string[] | Promise<string[]>;
  now?: () => number;
  /** How long an immediate switchover/failover request waits for the new leader (default 30 s). */
  switchoverWaitMs?: number;
  /**
   * Re-reads the agent's YAML (as Patroni's SIGHUP / `POST /reload`) and applies what can change
   * while running; returns what it did, or throws with why the file cannot be used.
   */
  reloadLocalConfig?(): string;
}

/** An answer for the HTTP layer: Patroni's status code with a text or JSON body. */
export type OperatorResult =
  { status: number; text: string } | { status: number; json: unknown } | { status: number; error: string };

/** Filters and options of `POST /restart`, already type-checked by the HTTP layer. */
export interface RestartRequest {
  /** ISO 8601 with a timezone; absent: restart now. */
  schedule?: string;
  role?: 'primary' | 'replica';
  postgres_version?: string;
  /** Seconds to wait for PostgreSQL to start. */
  timeout?: number;
  restart_pending?: boolean;
}

export interface SwitchoverRequest {
  leader?: string;
  candidate?: string;
  scheduled_at?: string;
}

/** Patroni's `postgres_version_to_int`: "15.4" → 150004, "9.6.3" → 90603; throws with Patroni's text. */
export function postgresVersionToInt(v: string): number {
  const parts = v.split('.');
  if (parts.some((p) => !/^\s*[+-]?\d+\s*$/.test(p))) throw new Error(`Invalid PostgreSQL version: ${v}`);
  const nums = parts.map((p) => Number.parseInt(p, 10));
  if (nums.length < 2 || (nums.length === 2 && nums[0]! < 10) || nums.length > 3)
    throw new Error(`Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: ${v}`);
  if (nums.length === 2) nums.splice(1, 0, 0);
  return Number(nums.map((n) => String(n).padStart(2, '0')).join(''));
}

/**
 * Parses a schedule as Patroni's `parse_schedule` does: a timezone is mandatory (400), an unparsable
 * or past time is 422. Returns the time normalised to ISO 8601 in UTC.
 */
export function parseSchedule(
  value: string,
  action: string,
  now: number,
): { ok: true; at: string; ms: number } | { ok: false; status: number; message: string } {
  const text = value.trim();
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(text) || Number.isNaN(ms)) {
    return {
      ok: false,
      status: 422,
      message: 'Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601',
    };
  }
  if (!/(Z|[+-]\d{2}(:?\d{2})?)$/i.test(text)) {
    return {
      ok: false,
      status: 400,
      message: `Timezone information is mandatory for the scheduled ${action}`,
    };
  }
  if (ms < now) return { ok: false, status: 422, message: `Cannot schedule ${action} in the past` };
  return { ok: true, at: isoTime(ms), ms };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (isRecord(v)) {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

const MAX_TIMER_MS = 60 * 60 * 1000;

export class Operator {
  private readonly d: OperatorDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  private restartTimer: NodeJS.Timeout | null = null;
  private restartPmStart: string | null = null;
  private closed = false;

  constructor(deps: OperatorDeps) {
    this.d = deps;
    this.log = deps.logger;
    this.now = deps.now ?? Date.now;
  }

  private get runner(): OperatorRunner {
    return this.d.runner;
  }

  /** Stops the scheduled-restart timer; call before the runner shuts down. */
  close(): void {
    this.closed = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
  }

  // ---- reload --------------------------------------------------------------------------------

  /** `POST /reload` (and SIGHUP): answers at once, as Patroni does; the reload runs between HA cycles. */
  reload(why = 'reload requested over the REST API'): OperatorResult {
    this.background(this.runner.exclusive('reload', () => this.reloadNow(why)));
    return { status: 202, text: 'reload scheduled' };
  }

  /** Re-reads the YAML, re-renders postgresql.conf from the dynamic and local parameters, reloads. */
  private async reloadNow(why: string): Promise<void> {
    if (this.d.reloadLocalConfig) {
      try {
        this.log.info(`${why}: ${this.d.reloadLocalConfig()}`);
      } catch (err) {
        this.log.error(`${why}: ${errorMessage(err)}; keeping the configuration in force`);
        return;
      }
    }
    if (!(await this.d.pg.isRunning())) {
      this.log.info(`${why}: PostgreSQL is not running; its configuration is written at the next start`);
      return;
    }
    const rc = this.runner.currentRoleConfig();
    await this.d.pg.configure(rc);
    await this.d.pg.reload();
    this.log.info(`${why}: postgresql.conf rewritten and PostgreSQL reloaded`);
    this.d.runCallback('on_reload', rc.role);
  }

  // ---- restart -------------------------------------------------------------------------------

  /** `POST /restart`: restarts now, or schedules the restart (Patroni's `schedule_future_restart`). */
  async restart(req: RestartRequest): Promise<OperatorResult> {
    if (req.postgres_version !== undefined) {
      try {
        postgresVersionToInt(req.postgres_version);
      } catch (err) {
        return { status: 400, text: errorMessage(err) };
      }
    }
    if (req.schedule === undefined) return this.restartNow(req);
    // Deliberately 400 where Patroni answers 500: this is the client's mistake, not a server error.
    if (this.runner.snapshot.paused)
      return { status: 400, text: "Can't schedule restart in the paused state" };
    const when = parseSchedule(req.schedule, 'restart', this.now());
    if (!when.ok) return { status: when.status, text: when.message };
    if (this.runner.scheduledRestart) return { status: 409, text: 'Another restart is already scheduled' };
    const data: Record<string, unknown> = { schedule: when.at };
    for (const k of ['role', 'postgres_version', 'timeout', 'restart_pending'] as const)
      if (req[k] !== undefined) data[k] = req[k];
    this.runner.scheduledRestart = data;
    this.restartPmStart = this.runner.snapshot.status?.postmasterStartTime ?? null;
    this.armScheduledRestart(when.ms);
    this.log.info(`restart scheduled at ${when.at}`);
    this.runner.wake(); // the next cycle publishes scheduled_restart in the member key
    return { status: 202, text: 'Restart scheduled' };
  }

  /** `DELETE /restart`. */
  deleteScheduledRestart(): OperatorResult {
    if (!this.runner.scheduledRestart) return { status: 404, text: 'no restarts are scheduled' };
    this.clearScheduledRestart();
    this.log.info('scheduled restart deleted');
    return { status: 200, text: 'scheduled restart deleted' };
  }

  private clearScheduledRestart(): void {
    this.runner.scheduledRestart = null;
    this.restartPmStart = null;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.runner.wake();
  }

  private armScheduledRestart(at: number): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.closed) return;
    const delay = Math.min(Math.max(0, at - this.now()), MAX_TIMER_MS);
    this.restartTimer = setTimeout(() => void this.onRestartTimer(at), delay);
    this.restartTimer.unref();
  }

  private async onRestartTimer(at: number): Promise<void> {
    this.restartTimer = null;
    const data = this.runner.scheduledRestart;
    if (!data || this.closed) return;
    if (this.now() < at) return this.armScheduledRestart(at);
    const s = this.runner.snapshot;
    const retryMs = Math.max(1, this.runner.dynamicConfig.loop_wait) * 1000;
    // Patroni waits while paused, and while another action runs.
    if (s.paused || this.runner.busy) return this.armScheduledRestart(this.now() + retryMs);
    const pmStart = s.status?.postmasterStartTime ?? null;
    if (this.restartPmStart && pmStart && pmStart !== this.restartPmStart) {
      this.log.info(`cancelling the scheduled restart: PostgreSQL was already restarted at ${pmStart}`);
      return this.clearScheduledRestart();
    }
    const req: RestartRequest = {};
    if (data.role === 'primary' || data.role === 'replica') req.role = data.role;
    if (typeof data.postgres_version === 'string') req.postgres_version = data.postgres_version;
    if (typeof data.timeout === 'number') req.timeout = data.timeout;
    if (data.restart_pending === true) req.restart_pending = true;
    try {
      const res = await this.restartNow(req);
      this.log.info(`scheduled restart: ${'text' in res ? res.text : res.status}`);
    } catch (err) {
      this.log.error(`scheduled restart failed: ${errorMessage(err)}`);
    } finally {
      this.clearScheduledRestart();
    }
  }

  /** Patroni's `restart_matches`: the reason the filters rule this node out, or null. */
  private restartMismatch(req: RestartRequest): string | null {
    const s = this.runner.snapshot;
    const role = s.status ? (s.status.inRecovery ? 'replica' : 'primary') : s.role;
    if (req.role && req.role !== role) return 'host role mismatch';
    if (req.postgres_version && postgresVersionToInt(req.postgres_version) <= (s.status?.serverVersion ?? 0))
      return 'postgres version mismatch';
    if (req.restart_pending && !s.status?.pendingRestart) return 'pending restart flag is not set';
    return null;
  }

  private async restartNow(req: RestartRequest): Promise<OperatorResult> {
    const mismatch = this.restartMismatch(req);
    if (mismatch) {
      this.log.info(`not proceeding with the restart: ${mismatch}`);
      return { status: 503, text: 'restart conditions are not satisfied' };
    }
    const busy = this.runner.busy;
    if (busy) return { status: 503, text: `${busy} already in progress` };
    const timeoutMs = (req.timeout ?? this.runner.dynamicConfig.primary_start_timeout) * 1000;
    return this.runner.exclusive('restart', async () => {
      const rc = this.runner.currentRoleConfig();
      this.log.info(`restarting PostgreSQL as requested (${rc.role})`);
      this.runner.setBusyState('restarting');
      await this.runner.publish().catch(() => undefined);
      try {
        // Re-render the configuration first, so parameters that need a restart take effect.
        await this.d.pg.configure(rc);
        await this.d.pg.restart(timeoutMs);
        this.d.runCallback('on_restart', rc.role);
        return { status: 200, text: 'restarted successfully' };
      } catch (err) {
        this.log.error(`restart failed: ${errorMessage(err)}`);
        return { status: 503, text: 'restart failed' };
      } finally {
        this.runner.setBusyState(null);
        this.runner.wake();
      }
    });
  }

  // ---- reinitialise --------------------------------------------------------------------------

  /** `POST /reinitialize`: replicas only, with Patroni's refusals. */
  async reinitialize(force: boolean): Promise<OperatorResult> {
    const cluster = await this.freshCluster();
    if (!cluster?.leader) return { status: 503, text: 'Cluster has no leader, can not reinitialize' };
    if (cluster.leader.name === this.runner.snapshot.name)
      return { status: 503, text: 'I am the leader, can not reinitialize' };
    const busy = this.runner.busy;
    if (busy && !force) return { status: 503, text: `${busy} already in progress` };
    try {
      await this.runner.reinitialize(force);
      return { status: 200, text: 'reinitialize started' };
    } catch (err) {
      return { status: 503, text: errorMessage(err) };
    }
  }

  // ---- dynamic configuration -----------------------------------------------------------------

  /** `GET /config`: the `config` key, read fresh (the snapshot may be a cycle old). */
  async getConfig(): Promise<OperatorResult> {
    const cluster = (await this.freshCluster()) ?? this.runner.snapshot.cluster;
    if (!cluster?.config)
      return { status: 502, error: 'the cluster has no dynamic configuration yet (is it initialised?)' };
    return { status: 200, json: cluster.config.value };
  }

  /** `PATCH /config`: JSON merge patch, written only if the key did not change since it was read. */
  async patchConfig(patch: Record<string, unknown>): Promise<OperatorResult> {
    const cluster = await this.d.dcs.readCluster(this.deadline());
    if (!cluster.config)
      return { status: 503, error: 'the cluster has no dynamic configuration yet (is it initialised?)' };
    const data = structuredClone(cluster.config.value);
    if (mergePatch(data, patch)) {
      const problems = await this.newProblems(cluster.config.value, data);
      if (problems.length > 0)
        return { status: 400, error: `the patched configuration is invalid: ${problems.join('; ')}` };
      const res = await this.d.dcs.setConfig(data, cluster.config.modRevision);
      if (!res.ok)
        return {
          status: 409,
          error: 'the configuration changed while the patch was applied (compare-and-set failed); retry',
        };
      this.log.info({ patch }, 'dynamic configuration patched over the REST API');
    }
    this.runner.wake();
    return { status: 200, json: data };
  }

  /** `PUT /config`: replaces the dynamic configuration. */
  async putConfig(value: Record<string, unknown>): Promise<OperatorResult> {
    const cluster = await this.d.dcs.readCluster(this.deadline());
    const current = cluster.config?.value ?? {};
    if (stableJson(current) !== stableJson(value)) {
      const problems = await this.newProblems(current, value);
      if (problems.length > 0)
        return { status: 400, error: `the configuration is invalid: ${problems.join('; ')}` };
      try {
        await this.d.dcs.setConfig(value);
      } catch (err) {
        return { status: 502, error: `could not write the config key: ${errorMessage(err)}` };
      }
      this.log.info('dynamic configuration replaced over the REST API');
    }
    this.runner.wake();
    return { status: 200, json: value };
  }

  /** Problems of `next` that `current` does not already have (an edit is not blamed for old ones). */
  private async newProblems(
    current: Record<string, unknown>,
    next: Record<string, unknown>,
  ): Promise<string[]> {
    return newProblems(await this.d.validateDynamic(current), await this.d.validateDynamic(next));
  }

  // ---- switchover / failover -----------------------------------------------------------------

  /** `DELETE /switchover`: cancels a scheduled switchover (writes `{}` with compare-and-set). */
  async deleteSwitchover(): Promise<OperatorResult> {
    const cluster = await this.d.dcs.readCluster(this.deadline());
    const fo = cluster.failover;
    if (!fo?.scheduled_at) return { status: 404, text: 'no switchover is scheduled' };
    const res = await this.d.dcs.setFailover({}, fo.modRevision);
    if (!res.ok) return { status: 409, error: 'the failover key changed meanwhile; read it again and retry' };
    this.runner.wake();
    return { status: 200, text: 'scheduled switchover deleted' };
  }

  /** `POST /switchover` and `POST /failover`, checked and answered as Patroni's `do_POST_failover`. */
  async switchover(action: 'switchover' | 'failover', req: SwitchoverRequest): Promise<OperatorResult> {
    const { leader, candidate } = req;
    const cluster = await this.d.dcs.readCluster(this.deadline());
    const paused = this.pausedIn(cluster);
    const title = action === 'switchover' ? 'Switchover' : 'Failover';
    const bad = (text: string, status = 400): OperatorResult => ({ status, text });
    this.log.info(
      `received ${action} request with leader=${leader ?? 'None'} candidate=${candidate ?? 'None'} scheduled_at=${req.scheduled_at ?? 'None'}`,
    );

    if (action === 'failover' && !candidate)
      return bad('Failover could be performed only to a specific candidate');
    if (action === 'switchover' && !leader)
      return bad('Switchover could be performed only from a specific leader');
    let scheduledAt: string | undefined;
    if (req.scheduled_at) {
      if (!leader) return bad(`Scheduled ${action} is possible only from a specific leader`);
      if (paused) return bad(`Can't schedule ${action} in the paused state`);
      const when = parseSchedule(req.scheduled_at, action, this.now());
      if (!when.ok) return bad(when.message, when.status);
      scheduledAt = when.at;
    }
    if (paused && !candidate)
      return bad(`${title} is possible only to a specific candidate in a paused state`);
    if (leader && candidate && leader === candidate) return bad('Switchover target and source are the same');
    if (!scheduledAt) {
      const why = await this.failoverImpossible(cluster, leader, candidate, action);
      if (why) return bad(why, 412);
    }
    const risk = candidate
      ? manualPromotionRisk(cluster, this.runner.dynamicConfig.synchronous_mode, candidate)
      : null;
    if (risk) this.log.warn({ event: 'manual_promotion_risk' }, `${action} requested although ${risk}`);
    const value: { leader?: string; member?: string; scheduled_at?: string } = {};
    if (leader) value.leader = leader;
    if (candidate) value.member = candidate;
    if (scheduledAt) value.scheduled_at = scheduledAt;
    try {
      await this.d.dcs.setFailover(value);
    } catch (err) {
      this.log.error(`could not write the failover key: ${errorMessage(err)}`);
      return { status: 503, text: `failed to write ${action} key into DCS` };
    }
    this.runner.wake();
    if (scheduledAt) return { status: 202, text: `${title} scheduled` };
    return this.pollResult(cluster.leader?.name ?? null, candidate ?? null, action);
  }

  private pausedIn(cluster: ClusterState): boolean {
    const raw = cluster.config?.value;
    if (raw && 'pause' in raw) return raw.pause === true || raw.pause === 'true' || raw.pause === 'on';
    return this.runner.snapshot.paused;
  }

  private syncMembers(cluster: ClusterState): string[] | null {
    const mode = this.runner.dynamicConfig.synchronous_mode;
    if (mode !== true) return null;
    return (cluster.sync?.sync_standby ?? '').split(',').filter((x) => x !== '');
  }

  /** Patroni's `is_failover_possible`: why the request cannot work, or null. */
  private async failoverImpossible(
    cluster: ClusterState,
    leader: string | undefined,
    candidate: string | undefined,
    action: string,
  ): Promise<string | null> {
    if (leader && cluster.leader?.name !== leader) return 'leader name does not match';
    const sync = this.syncMembers(cluster);
    let members: Member[];
    if (candidate) {
      if (action === 'switchover' && sync && !sync.includes(candidate))
        return 'candidate name does not match with sync_standby';
      members = cluster.members.filter((m) => m.name === candidate);
      if (members.length === 0) return 'candidate does not exists';
      if (cluster.leader?.name === candidate) return `candidate ${candidate} is already the leader`;
    } else if (sync) {
      members = cluster.members.filter((m) => sync.includes(m.name));
      if (members.length === 0) return `${action} is not possible: can not find sync_standby`;
    } else {
      members = cluster.members.filter((m) => m.name !== cluster.leader?.name && m.data.api_url);
      if (members.length === 0)
        return `${action} is not possible: cluster does not have members except leader`;
    }
    const statuses = await Promise.all(
      members.map((m) =>
        this.d
          .fetchPeer(m, AbortSignal.timeout(2000))
          .catch((): PeerStatus => ({ name: m.name, reachable: false })),
      ),
    );
    const eligible = statuses.some((st, i) => {
      const tags = st.tags ?? members[i]?.data.tags ?? {};
      return st.reachable && !isNoFailover(tags);
    });
    return eligible ? null : `${action} is not possible: no good candidates have been found`;
  }

  /** Patroni's `poll_failover_result`: waits for a new leader, or for the request to be dropped. */
  private async pollResult(
    oldLeader: string | null,
    candidate: string | null,
    action: 'switchover' | 'failover',
  ): Promise<OperatorResult> {
    const verb = action === 'switchover' ? 'switched' : 'failed';
    const title = action === 'switchover' ? 'Switchover' : 'Failover';
    const until = this.now() + (this.d.switchoverWaitMs ?? 30_000);
    while (this.now() < until) {
      await new Promise((r) => setTimeout(r, 250));
      let cluster: ClusterState;
      try {
        cluster = await this.d.dcs.readCluster(AbortSignal.timeout(2000));
      } catch {
        continue;
      }
      const now = cluster.leader?.name;
      if (now && now !== oldLeader) {
        if (!candidate || candidate === now)
          return { status: 200, text: `Successfully ${verb} over to "${now}"` };
        const Verb = verb[0]!.toUpperCase() + verb.slice(1);
        return { status: 200, text: `${Verb} over to "${now}" instead of "${candidate}"` };
      }
      if (!cluster.failover) return { status: 503, text: `${title} failed` };
    }
    return { status: 503, text: `${title} status unknown` };
  }

  // ---- helpers -------------------------------------------------------------------------------

  private deadline(): AbortSignal {
    return AbortSignal.timeout(Math.max(1, this.runner.dynamicConfig.retry_timeout) * 1000);
  }

  private async freshCluster(): Promise<ClusterState | null> {
    try {
      return await this.d.dcs.readCluster(this.deadline());
    } catch {
      return this.runner.snapshot.cluster;
    }
  }

  private background(p: Promise<unknown>): void {
    p.catch((err: unknown) => this.log.error(`operator action failed: ${errorMessage(err)}`));
  }
}

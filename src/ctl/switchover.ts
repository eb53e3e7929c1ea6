/**
 * `switchover` and `failover`: patronictl's `_do_failover_or_switchover`. The request goes to the
 * leader's REST API (`POST /switchover` or `/failover`), which checks the candidate, writes the
 * `failover` key and waits for the outcome. Only when no API answers does it fall back to writing
 * the key itself, as patronictl does.
 */
import type { Command } from 'commander';
import { parseDynamicConfig } from '../config/schema.js';
import type { ClusterState, Member } from '../dcs/types.js';
import { isNoFailover, manualPromotionRisk } from '../ha/rules.js';
import { PghaError } from '../util/errors.js';
import { ApiUnreachableError } from './api.js';
import { withContext } from './command.js';
import type { CtlContext } from './context.js';
import { isPaused, isStandbyCluster, renderMembers } from './members.js';
import { nextHour, parseScheduled } from './schedule.js';
import { leaderMember, memberNames } from './select.js';
import { timestamp } from './table.js';

type Action = 'switchover' | 'failover';

const MiB = 1024 * 1024;

function title(action: Action): string {
  return action[0]!.toUpperCase() + action.slice(1);
}

function isNofailover(m: Member): boolean {
  return isNoFailover(m.data.tags);
}

function formatMb(bytes: number): string {
  const mb = bytes / MiB;
  return `${Number.isInteger(mb) ? mb : mb.toFixed(1)} MB`;
}

/** Why `m` cannot take over now, judged from what it publishes in etcd; undefined when it can. */
export function candidateProblem(cluster: ClusterState, m: Member): string | undefined {
  if (isNofailover(m)) return `${m.name} has the nofailover tag`;
  const state = m.data.state;
  if (state !== 'running' && state !== 'streaming')
    return `${m.name} is ${typeof state === 'string' ? state : 'in an unknown state'}`;
  const raw = cluster.config?.value.maximum_lag_on_failover;
  const maxLag = raw === undefined || raw === null ? MiB : Number(raw);
  const lsn = m.data.xlog_location;
  if (typeof lsn !== 'number') return `${m.name} publishes no WAL position (lag unknown)`;
  const lag = Math.max(0, (cluster.status?.optime ?? 0) - lsn);
  if (Number.isFinite(maxLag) && lag > maxLag)
    return `${m.name} has lag ${formatMb(lag)} > maximum_lag_on_failover ${formatMb(maxLag)}`;
  return undefined;
}

async function failoverOrSwitchover(
  ctx: CtlContext,
  action: Action,
  scopeArg: string | undefined,
  leaderArg: string | undefined,
  candidateArg: string | undefined,
  force: boolean,
  scheduled?: string,
): Promise<void> {
  const scope = ctx.scope(scopeArg);
  const dcs = ctx.dcs(scope);
  let cluster = await dcs.readCluster();
  console.log('Current cluster topology');
  console.log(renderMembers(scope, cluster, 'pretty'));

  if (action === 'switchover' && !cluster.leader?.name)
    throw new PghaError(
      'PGHA_NO_LEADER',
      `This cluster has no leader (cluster ${scope}, members: ${memberNames(cluster)}); use failover --candidate <member> instead`,
    );

  let leader = leaderArg;
  if (leader === undefined) {
    if (force || action === 'failover') leader = cluster.leader?.name;
    else
      leader = await ctx.prompter.prompt(
        isStandbyCluster(cluster.config?.value) ? 'Standby Leader' : 'Primary',
        {
          default: cluster.leader!.name,
        },
      );
  }
  if (leader && cluster.leader && cluster.leader.name !== leader)
    throw new PghaError(
      'PGHA_NOT_LEADER',
      `Member ${leader} is not the leader of cluster ${scope} (the leader is ${cluster.leader.name})`,
    );

  const candidateNames = cluster.members
    .filter((m) => m.name !== leader && !isNofailover(m))
    .map((m) => m.name)
    .sort();
  if (candidateNames.length === 0) {
    const others = cluster.members.filter((m) => m.name !== leader).map((m) => m.name);
    throw new PghaError(
      'PGHA_NO_CANDIDATES',
      `No candidates found to ${action} to: ` +
        (others.length === 0
          ? `cluster ${scope} has no member besides ${leader ?? 'the leader'}`
          : `every other member (${others.join(', ')}) has the nofailover tag`),
    );
  }

  let candidate = candidateArg;
  if (candidate === undefined && !force)
    candidate = await ctx.prompter.prompt(`Candidate [${candidateNames.map((n) => `'${n}'`).join(', ')}]`, {
      default: '',
    });
  if (action === 'failover' && !candidate)
    throw new PghaError('PGHA_NO_CANDIDATE', 'Failover could be performed only to a specific candidate');
  if (candidate && candidate === leader)
    throw new PghaError(
      'PGHA_SAME_MEMBER',
      `${title(action)} target and source are the same: ${leader} is the leader; the candidate must be another member`,
    );
  if (candidate && !candidateNames.includes(candidate)) {
    const m = cluster.members.find((x) => x.name === candidate);
    throw new PghaError(
      'PGHA_BAD_CANDIDATE',
      m
        ? `candidate ${candidate} has the nofailover tag and cannot be promoted (candidates: ${candidateNames.join(', ')})`
        : `candidate ${candidate} is not a member of cluster ${scope} (members: ${memberNames(cluster)})`,
    );
  }

  let scheduledAt: string | undefined;
  if (action === 'switchover') {
    let when = scheduled;
    if (when === undefined && !force)
      when = await ctx.prompter.prompt(`When should the switchover take place (e.g. ${nextHour()} ) `, {
        default: 'now',
      });
    scheduledAt = parseScheduled(when);
    if (scheduledAt && isPaused(cluster))
      throw new PghaError(
        'PGHA_PAUSED',
        "Can't schedule switchover in the paused state (maintenance mode is on; run resume first)",
      );
  }

  // pgha checks here what the leader would refuse later, so the refusal names the member and the number.
  if (action === 'switchover' && !scheduledAt) {
    if (candidate) {
      const problem = candidateProblem(
        cluster,
        cluster.members.find((m) => m.name === candidate)!,
      );
      if (problem)
        throw new PghaError('PGHA_SWITCHOVER_IMPOSSIBLE', `switchover is not possible: ${problem}`);
    } else {
      const problems = candidateNames.map((n) =>
        candidateProblem(
          cluster,
          cluster.members.find((m) => m.name === n)!,
        ),
      );
      if (problems.every((p) => p !== undefined))
        throw new PghaError(
          'PGHA_SWITCHOVER_IMPOSSIBLE',
          `switchover is not possible: no healthy candidate: ${problems.join('; ')}`,
        );
    }
  }

  if (candidate) {
    const mode = parseDynamicConfig(cluster.config?.value ?? {}).config.synchronous_mode;
    const risk = manualPromotionRisk(cluster, mode, candidate);
    if (risk) console.log(`Warning: ${risk}`);
  }

  if (!force) {
    const demote = leader ? `, demoting current leader ${leader}` : '';
    if (scheduledAt) {
      if (
        !(await ctx.prompter.confirm(
          `Are you sure you want to schedule ${action} of cluster ${scope} at ${scheduledAt}${demote}?`,
        ))
      )
        throw new PghaError('PGHA_ABORTED', `Aborting scheduled ${action}`);
    } else if (
      !(await ctx.prompter.confirm(`Are you sure you want to ${action} cluster ${scope}${demote}?`))
    ) {
      throw new PghaError('PGHA_ABORTED', `Aborting ${action}`);
    }
  }

  const body = { leader: leader ?? null, candidate: candidate || null, scheduled_at: scheduledAt ?? null };
  const target = leaderMember(cluster) ?? cluster.members.find((m) => m.name === candidate);
  try {
    if (!target)
      throw new ApiUnreachableError(leader ?? candidate ?? scope, '(no member key)', 'no member to ask');
    let r = await ctx.api(target, 'POST', action, body);
    if (
      r.status === 501 &&
      action === 'switchover' &&
      r.text.includes('Server does not support this operation')
    )
      r = await ctx.api(target, 'POST', 'failover', body);
    if (r.status !== 200 && r.status !== 202)
      throw new PghaError(
        'PGHA_SWITCHOVER_FAILED',
        `${title(action)} failed, details: ${r.status}, ${r.text}`,
      );
    cluster = await dcs.readCluster();
    console.log(`${timestamp()} ${r.text}`);
  } catch (err) {
    if (!(err instanceof ApiUnreachableError)) throw err;
    console.log(`${timestamp()} Could not ${action} using Patroni api, falling back to DCS (${err.message})`);
    const value: { leader?: string; member?: string; scheduled_at?: string } = {};
    if (leader) value.leader = leader;
    if (candidate) value.member = candidate;
    if (scheduledAt) value.scheduled_at = scheduledAt;
    const res = await dcs.setFailover(value);
    if (!res.ok) throw new PghaError('PGHA_DCS_WRITE', `could not write the failover key of ${scope}`);
  }
  console.log(renderMembers(scope, cluster, 'pretty'));
}

/** Registers `switchover` and `failover`. */
export function registerSwitchover(ctl: Command): void {
  ctl
    .command('switchover')
    .description('Switchover to a replica')
    .argument('[cluster_name]', 'Name of the cluster (scope; default: from the configuration)')
    .option('--leader <name>', 'The name of the current leader')
    .option('--primary <name>', 'The name of the current leader (same as --leader)')
    .option('--master <name>', 'The name of the current leader (old spelling of --leader)')
    .option('--candidate <name>', 'The name of the candidate')
    .option('--scheduled <time>', 'Timestamp of a scheduled switchover in unambiguous format (e.g. ISO 8601)')
    .option('--force', 'Do not ask for confirmation at any point')
    .action(
      async (
        scope: string | undefined,
        o: {
          leader?: string;
          primary?: string;
          master?: string;
          candidate?: string;
          scheduled?: string;
          force?: boolean;
        },
        cmd: Command,
      ) => {
        await withContext(cmd, (ctx) =>
          failoverOrSwitchover(
            ctx,
            'switchover',
            scope,
            o.leader ?? o.primary ?? o.master,
            o.candidate,
            Boolean(o.force),
            o.scheduled,
          ),
        );
      },
    );

  ctl
    .command('failover')
    .description('Failover to a replica')
    .argument('[cluster_name]', 'Name of the cluster (scope; default: from the configuration)')
    .option('--leader <name>', 'The name of the current leader')
    .option('--primary <name>', 'The name of the current leader (same as --leader)')
    .option('--master <name>', 'The name of the current leader (old spelling of --leader)')
    .option('--candidate <name>', 'The name of the candidate')
    .option('--force', 'Do not ask for confirmation at any point')
    .action(
      async (
        scope: string | undefined,
        o: { leader?: string; primary?: string; master?: string; candidate?: string; force?: boolean },
        cmd: Command,
      ) => {
        const leader = o.leader ?? o.primary ?? o.master;
        // As patronictl: naming the leader turns a failover into a switchover.
        await withContext(cmd, (ctx) =>
          failoverOrSwitchover(
            ctx,
            leader ? 'switchover' : 'failover',
            scope,
            leader,
            o.candidate,
            Boolean(o.force),
          ),
        );
      },
    );
}

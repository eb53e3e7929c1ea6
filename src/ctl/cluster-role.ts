/**
 * `demote-cluster` and `promote-cluster` (patronictl 4): turn a cluster into a standby cluster of a
 * remote PostgreSQL, or back into a standalone one, by PATCHing `standby_cluster` into the dynamic
 * configuration through the leader's REST API, then watching the leader key until the leader runs
 * in the new role.
 */
import type { Command } from 'commander';
import type { ClusterState } from '../dcs/types.js';
import { isPrimaryRole } from '../ha/rules.js';
import { PghaError } from '../util/errors.js';
import { sleep, withContext } from './command.js';
import type { CtlContext } from './context.js';
import { renderMembers } from './members.js';
import { leaderMember } from './select.js';
import { timestamp } from './table.js';

export interface DemoteOptions {
  host?: string;
  port?: string;
  restoreCommand?: string;
  primarySlotName?: string;
}

/** The `standby_cluster` section `demote-cluster` writes; throws when it would be empty. */
export function standbySection(o: DemoteOptions): Record<string, string | number> {
  if (!o.host && !o.port && !o.restoreCommand)
    throw new PghaError('PGHA_USAGE', 'At least --host, --port or --restore-command should be specified');
  const section: Record<string, string | number> = {};
  if (o.host) section.host = o.host;
  if (o.port) {
    const port = Number(o.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new PghaError('PGHA_USAGE', `--port must be a port number (1-65535), not ${o.port}`);
    section.port = port;
  }
  if (o.primarySlotName) section.primary_slot_name = o.primarySlotName;
  if (o.restoreCommand) section.restore_command = o.restoreCommand;
  return section;
}

/** Whether a leader role is the one the change aims at: the standby leader, or a writable primary. */
function inTargetRole(role: unknown, demote: boolean): boolean {
  return demote ? role === 'standby_leader' : role !== 'standby_leader' && isPrimaryRole(String(role));
}

/** Seconds `changeClusterRole` waits for the leader to run in the new role before giving up. */
const WAIT_SECONDS = 300;

async function changeClusterRole(
  ctx: CtlContext,
  scopeArg: string | undefined,
  force: boolean,
  section: Record<string, string | number> | null,
): Promise<void> {
  const demote = section !== null;
  const action = demote ? 'demot' : 'promot';
  const scope = ctx.scope(scopeArg);
  const dcs = ctx.dcs(scope);
  let cluster: ClusterState = await dcs.readCluster();
  const leader = leaderMember(cluster);
  if (!leader) throw new PghaError('PGHA_NO_LEADER', `Cluster has no leader, ${action}ion is not possible`);
  if (inTargetRole(leader.data.role, demote))
    throw new PghaError('PGHA_CLUSTER_ROLE', 'Cluster is already in the required state');

  console.log('Current cluster topology');
  console.log(renderMembers(scope, cluster, 'pretty'));
  if (!force && !(await ctx.prompter.confirm(`Are you sure you want to ${action}e ${scope} cluster?`)))
    throw new PghaError('PGHA_ABORTED', `Aborted cluster ${action}ion`);

  const r = await ctx.api(leader, 'PATCH', 'config', { standby_cluster: section });
  if (r.status !== 200)
    throw new PghaError(
      'PGHA_CLUSTER_ROLE_FAILED',
      `Failed to ${action}e ${scope} cluster: /config PATCH status code=${r.status}, (${r.text})`,
    );

  const deadline = Date.now() + WAIT_SECONDS * 1000;
  for (;;) {
    cluster = await dcs.readCluster();
    const now = leaderMember(cluster);
    const old = cluster.members.find((m) => m.name === leader.name);
    const running = now?.data.state === 'running';
    if (now && inTargetRole(now.data.role, demote) && running && (!demote || old?.data.state === 'running')) {
      console.log(`${timestamp(0)} cluster is successfully ${action}ed`);
      break;
    }
    const parts = [
      `${timestamp(0)} cluster is unlocked: ${now ? 'False' : 'True'}`,
      `leader role: ${now?.data.role ?? 'None'}`,
      `leader state: ${now?.data.state ?? 'None'}`,
    ];
    if (demote && now && now.name !== leader.name && old?.data.state)
      parts.push(`previous leader state: '${old.data.state}'`);
    console.log(parts.join(', '));
    if (Date.now() >= deadline)
      throw new PghaError(
        'PGHA_CLUSTER_ROLE_TIMEOUT',
        `the leader of ${scope} did not run as ${demote ? 'a standby leader' : 'a primary'} within ${WAIT_SECONDS} s; see its log (pgha ctl list shows its state)`,
      );
    await sleep(1000);
  }
  console.log(renderMembers(scope, cluster, 'pretty'));
}

/** Registers `demote-cluster` and `promote-cluster`. */
export function registerClusterRole(ctl: Command): void {
  ctl
    .command('demote-cluster')
    .description('Demote cluster to a standby cluster')
    .argument('[cluster_name]', 'Name of the cluster (scope; default: from the configuration)')
    .option('--force', 'Do not ask for confirmation at any point')
    .option('--host <host>', 'Address of the remote node')
    .option('--port <port>', 'Port of the remote node')
    .option('--restore-command <command>', 'Command to restore WAL records from the remote primary')
    .option('--primary-slot-name <name>', 'Name of the slot on the remote node to use for replication')
    .action(async (scope: string | undefined, o: DemoteOptions & { force?: boolean }, cmd: Command) => {
      await withContext(cmd, (ctx) => changeClusterRole(ctx, scope, Boolean(o.force), standbySection(o)));
    });
  ctl
    .command('promote-cluster')
    .description('Promote cluster, make it run standalone')
    .argument('[cluster_name]', 'Name of the cluster (scope; default: from the configuration)')
    .option('--force', 'Do not ask for confirmation at any point')
    .action(async (scope: string | undefined, o: { force?: boolean }, cmd: Command) => {
      await withContext(cmd, (ctx) => changeClusterRole(ctx, scope, Boolean(o.force), null));
    });
}

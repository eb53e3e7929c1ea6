/** `dsn`: the libpq connection string of a member, the leader by default (patronictl's `dsn`). */
import type { Command } from 'commander';
import type { Member } from '../dcs/types.js';
import { PghaError } from '../util/errors.js';
import { withContext } from './command.js';
import { connKwargs } from './members.js';
import { anyMember, memberNames, parseRole, ROLES, type Role } from './select.js';
import type { ClusterState } from '../dcs/types.js';

/** `host=... port=...`, as patronictl prints it. */
export function renderDsn(m: Member): string {
  const kw = connKwargs(m);
  return `host=${kw.host ?? 'None'} port=${kw.port ?? 'None'}`;
}

/** The role --role/--member select: a member means any role; neither means the leader. */
export function roleFor(role: string | undefined, member: string | undefined): Role {
  if (member !== undefined) {
    if (role !== undefined)
      throw new PghaError('PGHA_BAD_OPTION', '--role and --member are mutually exclusive options');
    return 'any';
  }
  return role === undefined ? 'leader' : parseRole(role);
}

/** Why no member matched, for the refusal. */
export function noMemberReason(cluster: ClusterState, scope: string, role: Role, member?: string): string {
  if (member !== undefined)
    return `Can not find a suitable member: ${member} is not a member of cluster ${scope} (members: ${memberNames(cluster)})`;
  return `Can not find a suitable member: no member of cluster ${scope} has role ${role} (leader: ${cluster.leader?.name ?? 'none'}, members: ${memberNames(cluster)})`;
}

/** Registers `dsn`. */
export function registerDsn(ctl: Command): void {
  ctl
    .command('dsn')
    .description('Generate a dsn for the provided member, defaults to a dsn of the leader')
    .argument('[cluster_name]', 'Name of the cluster (scope; default: from the configuration)')
    .option('-r, --role <role>', `Give a dsn of any member with this role (${ROLES.join(', ')})`)
    .option('-m, --member <name>', 'Generate a dsn for this member')
    .action(async (scopeArg: string | undefined, o: { role?: string; member?: string }, cmd: Command) => {
      const role = roleFor(o.role, o.member);
      await withContext(cmd, async (ctx) => {
        const scope = ctx.scope(scopeArg);
        const cluster = await ctx.dcs(scope).readCluster();
        const m = anyMember(cluster, role, o.member);
        if (!m) throw new PghaError('PGHA_NO_MEMBER', noMemberReason(cluster, scope, role, o.member));
        console.log(renderDsn(m));
      });
    });
}

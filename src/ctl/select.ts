/**
 * Picking the members a command acts on, as patronictl's `get_all_members`, `get_any_member` and
 * `get_members` do, with refusals that name the members and roles involved.
 */
import type { ClusterState, Member } from '../dcs/types.js';
import { PghaError, UsageError } from '../util/errors.js';
import type { CtlContext } from './context.js';
import { renderMembers } from './members.js';

/** patronictl's `--role` choices. */
export const ROLES = ['leader', 'primary', 'standby-leader', 'replica', 'standby', 'any', 'master'] as const;
export type Role = (typeof ROLES)[number];

export function parseRole(v: string): Role {
  if (!(ROLES as readonly string[]).includes(v))
    throw new UsageError(`--role: "${v}" is not one of ${ROLES.map((r) => `'${r}'`).join(', ')}`);
  return v as Role;
}

export function memberNames(cluster: ClusterState): string {
  return cluster.members.map((m) => m.name).join(', ') || 'none';
}

/** The leader's member entry, or undefined when there is no leader or it has no member key. */
export function leaderMember(cluster: ClusterState): Member | undefined {
  const name = cluster.leader?.name;
  return name ? cluster.members.find((m) => m.name === name) : undefined;
}

/** Members having `role` (Patroni's `get_all_members`). */
export function allMembers(cluster: ClusterState, role: Role): Member[] {
  if (role === 'leader' || role === 'primary' || role === 'master' || role === 'standby-leader') {
    const leader = leaderMember(cluster);
    if (!leader) return [];
    const r = leader.data.role;
    const ok =
      role === 'leader' ||
      (role === 'standby-leader' && r !== 'master' && r !== 'primary') ||
      (role !== 'standby-leader' && r !== 'standby_leader');
    return ok ? [leader] : [];
  }
  const leaderName = cluster.leader?.name;
  return cluster.members.filter((m) => role === 'any' || m.name !== leaderName);
}

/** The first member with `role` (and name `member`, when given). */
export function anyMember(cluster: ClusterState, role: Role, member?: string): Member | undefined {
  return allMembers(cluster, role).find((m) => member === undefined || m.name === member);
}

/** Members with an api_url, the leader first (Patroni's `get_all_members_leader_first`). */
export function membersLeaderFirst(cluster: ClusterState): Member[] {
  const leader = leaderMember(cluster);
  const first = leader?.data.api_url ? [leader] : [];
  return [...first, ...cluster.members.filter((m) => m.data.api_url && m !== first[0])];
}

/**
 * The members `action` applies to (Patroni's `get_members`): the named ones, which must have
 * `role`, or all members with `role`; prints the member table and asks for confirmation unless
 * `force`.
 */
export async function selectMembers(
  ctx: CtlContext,
  cluster: ClusterState,
  scope: string,
  names: string[],
  role: Role,
  force: boolean,
  action: string,
  askConfirmation = true,
  roleGiven = true,
): Promise<Member[]> {
  const members = allMembers(cluster, role);
  const candidates = members.map((m) => m.name);
  if (!force || roleGiven) {
    if (names.length === 0 && candidates.length === 0)
      throw new PghaError(
        'PGHA_NO_MEMBERS',
        `${scope} cluster doesn't have any members${role === 'any' ? '' : ` with role ${role}`} (members: ${memberNames(cluster)})`,
      );
    console.log(renderMembers(scope, cluster, 'pretty'));
  }
  let chosen: string[];
  if (names.length > 0) {
    const unknown = names.filter((n) => !cluster.members.some((m) => m.name === n));
    if (unknown.length > 0)
      throw new PghaError(
        'PGHA_NOT_A_MEMBER',
        `${unknown.join(', ')} ${unknown.length === 1 ? 'is not a member' : 'are not members'} of cluster ${scope} (members: ${memberNames(cluster)})`,
      );
    chosen = [...new Set(names)].filter((n) => candidates.includes(n));
    if (chosen.length === 0)
      throw new PghaError(
        'PGHA_NO_ROLE_MEMBER',
        `No ${role} among provided members: ${names.join(', ')} (members with role ${role}: ${candidates.join(', ') || 'none'}${cluster.leader ? `; the leader is ${cluster.leader.name}` : ''})`,
      );
  } else {
    chosen = action === 'reinitialize' ? [] : candidates;
  }
  if (chosen.length === 0 && !force) {
    const answer = await ctx.prompter.prompt(
      `Which member do you want to ${action} [${candidates.join(', ')}]?`,
      { default: '' },
    );
    chosen = [answer];
  }
  for (const name of chosen) {
    if (!candidates.includes(name))
      throw new PghaError(
        'PGHA_NOT_A_MEMBER',
        `${name || '""'} is not a member of cluster ${scope} with role ${role} (candidates: ${candidates.join(', ') || 'none'})`,
      );
  }
  const selected = members.filter((m) => chosen.includes(m.name));
  if (askConfirmation) await confirmMembersAction(ctx, selected, force, action);
  return selected;
}

/** "Are you sure you want to <action> members a, b?" unless `force` (`confirm_members_action`). */
export async function confirmMembersAction(
  ctx: CtlContext,
  members: Member[],
  force: boolean,
  action: string,
  scheduledAt?: string,
): Promise<void> {
  if (force) return;
  const names = members.map((m) => m.name).join(', ');
  if (scheduledAt) {
    if (
      !(await ctx.prompter.confirm(
        `Are you sure you want to schedule ${action} of members ${names} at ${scheduledAt}?`,
      ))
    )
      throw new PghaError('PGHA_ABORTED', `Aborted scheduled ${action}`);
  } else if (!(await ctx.prompter.confirm(`Are you sure you want to ${action} members ${names}?`))) {
    throw new PghaError('PGHA_ABORTED', `Aborted ${action}`);
  }
}

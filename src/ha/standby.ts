/**
 * Where a member gets its WAL and its data from, as Patroni decides it: standby clusters (the
 * standby leader replicates from a remote PostgreSQL), cascading (`replicatefrom`), cloning from a
 * member tagged `clonefrom`, and `nostream` (WAL from the archive only). Pure: plain data in, names out.
 *
 * The invariant of a standby cluster: while `standby_cluster` is set, no member runs as a writable
 * primary. Its leader holds the leader key but runs PostgreSQL as a replica of the remote host, and
 * the decision table never starts, adopts or promotes a primary while the section is set.
 */
import type { StandbyClusterConfig, TagsConfig } from '../config/types.js';
import type { ClusterState, Member } from '../dcs/types.js';
import { findMember } from './rules.js';

/**
 * The upstream name of the standby cluster's source (`standby_cluster.host:port`). Parentheses keep it
 * apart from member names, which are host names in practice.
 */
export const REMOTE_UPSTREAM = '(standby_cluster)';

function truthy(v: unknown): boolean {
  if (typeof v === 'string') return ['true', 'yes', 'on', '1', 'y', 't'].includes(v.trim().toLowerCase());
  return v === true || v === 1;
}

/** A member's `replicatefrom` tag, when it names another member. */
export function replicatefromOf(m: {
  name: string;
  data: { tags?: Record<string, unknown> };
}): string | null {
  const v = m.data.tags?.replicatefrom;
  return typeof v === 'string' && v !== '' && v !== m.name ? v : null;
}

/** Whether a member's (or this node's) tags say `nostream`. */
export function isNoStream(tags: Record<string, unknown> | undefined): boolean {
  return truthy(tags?.nostream);
}

/**
 * The member this node streams from (Patroni's `_get_node_to_follow`): the remote source for the
 * standby leader (or any member of a standby cluster while it has no leader); the member named by
 * `replicatefrom` when the store has it (else the leader); otherwise the leader. Null: nobody (no
 * leader, or `nostream`, which replays from the archive only).
 */
export function upstreamFor(input: {
  me: string;
  cluster: ClusterState;
  standby: StandbyClusterConfig | undefined;
  tags: TagsConfig;
}): string | null {
  const { me, cluster, standby, tags } = input;
  const leader = cluster.leader?.name ?? null;
  if (isNoStream(tags)) return null;
  if (standby && (leader === null || leader === me)) return REMOTE_UPSTREAM;
  const from =
    typeof tags.replicatefrom === 'string' && tags.replicatefrom !== me ? tags.replicatefrom : null;
  if (from && findMember(cluster, from)) return from;
  return leader === me ? null : leader;
}

/**
 * The member a new replica copies its data from (Patroni's `get_clone_member`): a running member
 * tagged `clonefrom`, neither this node nor the leader (the first by name, so a retry picks the same);
 * otherwise the leader. Null when there is none.
 */
export function cloneSource(cluster: ClusterState, me: string): Member | null {
  const leader = cluster.leader?.name ?? null;
  const candidates = cluster.members
    .filter(
      (m) =>
        m.name !== me &&
        m.name !== leader &&
        truthy(m.data.tags?.clonefrom) &&
        m.data.state === 'running' &&
        Boolean(m.data.conn_url),
    )
    .sort((a, b) => a.name.localeCompare(b.name));
  return candidates[0] ?? (leader && leader !== me ? (findMember(cluster, leader) ?? null) : null);
}

/**
 * The members that stream from this node, whose physical slots it keeps: as leader (or standby
 * leader) every member without a `replicatefrom` of its own; as a replica the members whose
 * `replicatefrom` names it. Members tagged `nostream` stream from nobody.
 */
export function slotMembers(cluster: ClusterState, me: string, iAmLeader: boolean): string[] {
  return cluster.members
    .filter((m) => m.name !== me && !isNoStream(m.data.tags))
    .filter((m) => {
      const from = replicatefromOf(m);
      if (from === me) return true;
      // A replicatefrom naming a member that is gone falls back to the leader, as upstreamFor does.
      return iAmLeader && (from === null || !findMember(cluster, from));
    })
    .map((m) => m.name);
}

/**
 * The recovery settings a member of a standby cluster runs with: the standby leader takes
 * restore_command, archive_cleanup_command and recovery_min_apply_delay from the section, the
 * other members the first two (they stream from the standby leader, and fall back on the archive).
 */
export function standbyRecoveryParams(
  standby: StandbyClusterConfig | undefined,
  standbyLeader: boolean,
): Record<string, string> {
  if (!standby) return {};
  const out: Record<string, string> = {};
  if (standby.restore_command) out.restore_command = standby.restore_command;
  if (standby.archive_cleanup_command) out.archive_cleanup_command = standby.archive_cleanup_command;
  if (standbyLeader && standby.recovery_min_apply_delay)
    out.recovery_min_apply_delay = standby.recovery_min_apply_delay;
  return out;
}

/**
 * Small pure rules shared by the planners: roles, tags and names as Patroni reads them.
 */
import type { DynamicConfig } from '../config/types.js';
import type { ClusterState, Member } from '../dcs/types.js';

/** Primary roles as published in member keys (`master` is Patroni's old name, still accepted). */
export function isPrimaryRole(role: string | undefined): boolean {
  return role === 'primary' || role === 'master' || role === 'standby_leader';
}

export function findMember(cluster: ClusterState, name: string | undefined | null): Member | undefined {
  if (!name) return undefined;
  return cluster.members.find((m) => m.name === name);
}

function parseIntTag(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^\s*[-+]?\d+\s*$/.test(v)) return Number(v);
  return undefined;
}

function truthy(v: unknown): boolean {
  if (typeof v === 'string') return ['true', 'yes', 'on', '1', 'y', 't'].includes(v.trim().toLowerCase());
  return v === true || v === 1;
}

/**
 * Whether tags forbid promotion, as Patroni's `nofailover`: the `nofailover` tag when set, else a
 * `failover_priority` of 0 or less. Used for this node's tags and a peer's published ones alike.
 */
export function isNoFailover(tags: Record<string, unknown> | undefined): boolean {
  if (!tags) return false;
  if (tags.nofailover !== undefined && tags.nofailover !== null) return truthy(tags.nofailover);
  const p = parseIntTag(tags.failover_priority);
  return p !== undefined && p <= 0;
}

/** Patroni's `failover_priority`: 0 when `nofailover` is set, else the tag, else 1. */
export function failoverPriority(tags: Record<string, unknown> | undefined): number {
  if (tags && tags.nofailover !== undefined && tags.nofailover !== null && truthy(tags.nofailover)) return 0;
  return parseIntTag(tags?.failover_priority) ?? 1;
}

/** Splits a comma-separated member list. */
export function nameList(value: string | null | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Case-insensitive membership, as PostgreSQL compares synchronous_standby_names. */
export function includesName(list: readonly string[], name: string | null | undefined): boolean {
  if (!name) return false;
  const n = name.toLowerCase();
  return list.some((x) => x.toLowerCase() === n);
}

/** The `sync` key's members: its leader and its synchronous standbys (empty without a leader). */
export function syncMembers(cluster: ClusterState): string[] {
  const s = cluster.sync;
  if (!s?.leader) return [];
  return [s.leader, ...nameList(s.sync_standby)];
}

/** Whether synchronous replication is active: the mode is on and the `sync` key names a leader. */
export function syncModeActive(
  cluster: ClusterState,
  config: Pick<DynamicConfig, 'synchronous_mode'>,
): boolean {
  return config.synchronous_mode !== false && !!cluster.sync?.leader;
}

/** Quorum commit is active: `synchronous_mode: quorum` and the `sync` key names a leader. */
export function quorumModeActive(
  cluster: ClusterState,
  config: Pick<DynamicConfig, 'synchronous_mode'>,
): boolean {
  return config.synchronous_mode === 'quorum' && !!cluster.sync?.leader;
}

/**
 * The risk of promoting `candidate` by hand in synchronous mode when the `sync` key does not list
 * it: commits acknowledged by the synchronous standbys alone would be lost. Null when there is none.
 */
export function manualPromotionRisk(
  cluster: ClusterState,
  synchronousMode: DynamicConfig['synchronous_mode'],
  candidate: string,
): string | null {
  if (!synchronousMode || !cluster.sync?.leader) return null;
  const standbys = nameList(cluster.sync.sync_standby);
  if (cluster.sync.leader === candidate || includesName(standbys, candidate)) return null;
  return (
    `${candidate} is not a synchronous standby (synchronous: ${standbys.join(', ') || 'none'}); ` +
    'transactions acknowledged to clients but not yet received by it will be lost if it is promoted'
  );
}

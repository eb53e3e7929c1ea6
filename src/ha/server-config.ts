/**
 * The PostgreSQL configuration a node runs with, from the dynamic and local configuration and what
 * the node is: parameters (the leader's synchronous_standby_names, hot_standby_feedback for copied
 * logical slots), pg_hba, and for a replica its upstream, slot and recovery settings. Pure: plain
 * data in, a `RoleConfig` out; the runner passes it to PostgreSQL.
 */
import type { DynamicConfig, PghaConfig } from '../config/types.js';
import type { ClusterState, Member } from '../dcs/types.js';
import type { ConnTarget, RoleConfig } from '../postgres/types.js';
import { findMember, isNoFailover } from './rules.js';
import { needsHotStandbyFeedback } from './slot-plan.js';
import { REMOTE_UPSTREAM, standbyRecoveryParams } from './standby.js';

type Params = Record<string, string | number | boolean>;
type LocalConfig = Pick<PghaConfig, 'postgresql' | 'bootstrap' | 'tags'>;

/** Dynamic parameters under the local ones; synchronous_standby_names only on the leader. */
export function serverParameters(input: {
  dyn: DynamicConfig;
  config: LocalConfig;
  isLeader: boolean;
  ssn: string;
}): Params {
  const { dyn, config } = input;
  const params: Params = { ...dyn.postgresql.parameters, ...config.postgresql.parameters };
  // The leader owns synchronous_standby_names (Patroni does the same); replicas run without it.
  params.synchronous_standby_names = input.isLeader ? input.ssn : '';
  // Copies of logical slots stay usable only if the primary keeps the catalog rows they need.
  const nofailover = isNoFailover(config.tags);
  if (needsHotStandbyFeedback({ useSlots: dyn.postgresql.use_slots, nofailover, permanent: dyn.slots }))
    params.hot_standby_feedback = 'on';
  return params;
}

/** pg_hba lines: the node's own, else the dynamic configuration's, else bootstrap's. */
export function serverPgHba(dyn: DynamicConfig, config: LocalConfig): string[] | undefined {
  return config.postgresql.pg_hba ?? dyn.postgresql.pg_hba ?? config.bootstrap.pg_hba;
}

/** The standby cluster's source as a connection target, when `standby_cluster` names one. */
export function remoteTarget(dyn: DynamicConfig): ConnTarget | null {
  const s = dyn.standby_cluster;
  if (!s || (!s.host && !s.port)) return null;
  return { host: s.host ?? 'localhost', port: s.port ?? 5432, member: REMOTE_UPSTREAM };
}

/** What a standby leader's configuration depends on: a change means it must be re-rendered. */
export function remoteKey(dyn: DynamicConfig): string {
  const s = dyn.standby_cluster;
  return s ? JSON.stringify([s.host, s.port, s.primary_slot_name, standbyRecoveryParams(s, true)]) : '';
}

/** Patroni's recovery_conf: the dynamic one under the local one, then the standby cluster's. */
function recoverySettings(dyn: DynamicConfig, config: LocalConfig, remote: boolean): Record<string, string> {
  const recovery: Record<string, string> = {};
  for (const [k, v] of Object.entries({
    ...dyn.postgresql.recovery_conf,
    ...config.postgresql.recovery_conf,
  }))
    recovery[k] = typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v);
  return Object.assign(recovery, standbyRecoveryParams(dyn.standby_cluster, remote));
}

/**
 * The configuration of a primary, or of a replica of `upstream` (a member, or `REMOTE_UPSTREAM`
 * for the standby leader), with its slot when slots are used.
 */
export function roleConfigFor(input: {
  role: 'primary' | 'replica';
  cluster: ClusterState | null;
  upstream: string | null;
  dyn: DynamicConfig;
  config: LocalConfig;
  parameters: Params;
  slotName: string;
  connTarget: (m: Member) => ConnTarget | null;
}): RoleConfig {
  const { role, dyn, config } = input;
  const cfg: RoleConfig = { role, parameters: input.parameters, pgHba: serverPgHba(dyn, config) };
  if (role !== 'replica') return cfg;
  const remote = input.upstream === REMOTE_UPSTREAM;
  if (remote) {
    cfg.upstream = remoteTarget(dyn);
    cfg.slotName = cfg.upstream ? (dyn.standby_cluster?.primary_slot_name ?? null) : null;
  } else {
    const m = input.cluster && input.upstream ? findMember(input.cluster, input.upstream) : undefined;
    cfg.upstream = m ? input.connTarget(m) : null;
    cfg.slotName = dyn.postgresql.use_slots && cfg.upstream ? input.slotName : null;
  }
  const recovery = recoverySettings(dyn, config, remote);
  if (Object.keys(recovery).length > 0) cfg.recovery = recovery;
  return cfg;
}

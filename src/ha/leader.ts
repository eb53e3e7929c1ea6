/**
 * The leader's upkeep each cycle, as Patroni's: register the cluster when the store lost it
 * (`initialize`, `config`), publish `status` (optime) and `history` (from its own timeline history
 * file), keep the replication slots (slot-plan.ts, slots-run.ts), run synchronous replication one
 * step (sync.ts), keep the `failsafe` key. Replicas keep their slots with the same code.
 */
import type { ClusterState, MemberData, StatusKey } from '../dcs/types.js';
import type { ServerStatus } from '../postgres/types.js';
import { errorMessage } from '../util/errors.js';
import { releaseKey, watchdogRefusal } from './actions.js';
import type { RunnerContext } from './context.js';
import { failsafeTopology, sameTopology } from './failsafe.js';
import { historyMatches, mergeTimelineHistory } from './history.js';
import { memberData } from './member.js';
import { planQuorum, planSync } from './sync.js';
import type { LocalPostgres } from './types.js';

/** How soon the loop looks again while a change of synchronous replication is on its way (ms). */
const SYNC_RECHECK_MS = 200;
/** Quick looks after one change at most: a standby that never confirms is then looked at every loop_wait. */
const SYNC_RECHECKS = 25;

/**
 * The leader of a cluster the store lost (a wiped namespace, a rebuilt etcd) writes it back, as
 * Patroni: `initialize` with its system id and `config` with the dynamic configuration it runs.
 */
/**
 * Renews the leader key this node holds and arms the fence from the renewal's send time while it
 * runs a writable primary. A leader that needs a watchdog and has none releases the key and stops
 * PostgreSQL ('stopped'); a renewal the store refused (the key is gone) disarms the fence and
 * returns the cluster without a leader. Throws when the store cannot be reached.
 */
export async function renewMyKey(
  c: RunnerContext,
  cluster: ClusterState,
  pg: LocalPostgres,
  signal: AbortSignal,
): Promise<{ cluster: ClusterState; leaseSent: number | null } | 'stopped'> {
  const sent = await c.d.dcs.renewLeader(signal);
  const noWatchdog = sent !== null && !c.dynamic().pause ? watchdogRefusal(c) : null;
  if (noWatchdog) {
    c.log.error(`${noWatchdog}: releasing the leader key and stopping PostgreSQL`);
    await releaseKey(c);
    if (pg.running) await c.stopFastOrImmediate();
    return 'stopped';
  }
  if (sent === null) {
    c.lease.disarm();
    return { cluster: { ...cluster, leader: null }, leaseSent: null };
  }
  if (pg.running && pg.status && !pg.status.inRecovery) c.lease.arm(sent);
  return { cluster, leaseSent: sent };
}

export async function registerCluster(c: RunnerContext, cluster: ClusterState, sysid: string): Promise<void> {
  if (cluster.initialize === null && (await c.d.dcs.initialize(sysid, true)))
    c.log.warn(
      { event: 'registered' },
      `the store had no initialize key: registered this cluster as system ${sysid}`,
    );
  if (!cluster.config) {
    await c.d.dcs.setConfig(
      c.dynamic().raw && Object.keys(c.dynamic().raw).length > 0 ? c.dynamic().raw : c.d.config.bootstrap.dcs,
    );
    c.log.warn('the store had no config key: wrote the dynamic configuration in force');
  }
}

/** Leader's upkeep each cycle. */
export async function leaderDuties(
  c: RunnerContext,
  cluster: ClusterState,
  status: ServerStatus | null,
): Promise<void> {
  if (status?.inRecovery && c.dynamic().standby_cluster) return standbyLeaderDuties(c, cluster, status);
  if (!status || status.inRecovery) return;
  if (cluster.initialize === null || !cluster.config)
    await registerCluster(c, cluster, status.systemIdentifier);
  await maintainFailsafeKey(c, cluster);
  await maintainHistory(c, cluster, status);
  await maintainSlots(c, cluster, 'primary', status);
  await manageSync(c, cluster, status);
  // Patroni's `status`: the optime, the positions of the slots the leader keeps (replicas keep
  // theirs there) and the member slots it retains; empty parts are left out, as Patroni does.
  const pub = c.slots.published;
  const value: StatusKey = { optime: status.walPosition };
  if (pub && Object.keys(pub.slots).length > 0) value.slots = pub.slots;
  if (pub && pub.retainSlots.length > 0) value.retain_slots = pub.retainSlots;
  const key = JSON.stringify(value);
  if (key !== c.st.lastStatusKey) {
    await c.d.dcs.setStatus(value);
    c.st.lastStatusKey = key;
  }
}

/**
 * The standby leader's upkeep: register the cluster, keep slots for the members that stream from it,
 * publish its position. No history, sync or failsafe key: its PostgreSQL is a replica of the source.
 */
async function standbyLeaderDuties(
  c: RunnerContext,
  cluster: ClusterState,
  status: ServerStatus,
): Promise<void> {
  if (cluster.initialize === null || !cluster.config)
    await registerCluster(c, cluster, status.systemIdentifier);
  await maintainSlots(c, cluster, 'standby_leader', status);
  const key = JSON.stringify({ optime: status.walPosition });
  if (key !== c.st.lastStatusKey) {
    await c.d.dcs.setStatus({ optime: status.walPosition });
    c.st.lastStatusKey = key;
  }
}

/** The `history` key says what this leader's own history file says (written after a promotion, restored after a loss). */
async function maintainHistory(c: RunnerContext, cluster: ClusterState, status: ServerStatus): Promise<void> {
  try {
    const switches = await c.d.pg.timelineHistory(status.timeline);
    if (historyMatches(cluster.history, switches)) return;
    await c.d.dcs.setHistory(mergeTimelineHistory(cluster.history, switches, new Date(c.clock.now()), c.me));
  } catch (err) {
    c.log.warn(`could not record the timeline history: ${errorMessage(err)}`);
  }
}

/** One cycle of slot upkeep (slots-run.ts), for a leader or a replica; problems are logged, never thrown. */
export async function maintainSlots(
  c: RunnerContext,
  cluster: ClusterState,
  role: 'primary' | 'standby_leader' | 'replica',
  status: ServerStatus | null,
  mayCopy = true,
): Promise<void> {
  try {
    await c.slots.maintain(c, cluster, role, status, mayCopy);
  } catch (err) {
    c.log.warn(`replication slots: ${errorMessage(err)}`);
  }
}

/** One step of synchronous replication management (sync.ts, quorum.ts); the leader owns both sides. */
async function manageSync(c: RunnerContext, cluster: ClusterState, status: ServerStatus): Promise<void> {
  const mode = c.dynamic().synchronous_mode;
  const input = {
    me: c.me,
    mode,
    strict: c.dynamic().synchronous_mode_strict,
    count: c.dynamic().synchronous_node_count,
    members: cluster.members,
    replication: status.replication,
    syncKey: cluster.sync,
    currentSsn: c.st.ssn,
    ssnSince: c.st.ssnSince,
    maxLag: c.dynamic().maximum_lag_on_syncnode,
    synchronousCommit: status.synchronousCommit,
    primaryLsn: status.walPosition,
    silent: c.st.silentStandbys,
  };
  if (mode === 'quorum') {
    // Each change is made only after the one before it took effect: the order is the safety.
    const plan = planQuorum(input);
    let modRevision = cluster.sync?.modRevision;
    for (const change of plan.changes) {
      if (change.kind === 'key') {
        const res = await c.d.dcs.setSync(change.value, modRevision);
        if (!res.ok) return c.log.warn('the sync key changed under us; will retry on the next cycle');
        modRevision = res.modRevision;
      } else await setSsn(c, change.ssn, status);
    }
    if (plan.why !== c.st.lastSyncWhy)
      c.log.info({ synchronous_standby_names: c.st.ssn }, `synchronous replication: ${plan.why}`);
    c.st.lastSyncWhy = plan.why;
    followUpSync(c, plan.changes.length > 0, plan.pending);
    return;
  }
  const plan = planSync(input);
  if (plan.syncKey) {
    const res = await c.d.dcs.setSync(plan.syncKey, cluster.sync?.modRevision);
    if (!res.ok) {
      c.log.warn('the sync key changed under us; will retry on the next cycle');
      return;
    }
  }
  const changed = plan.syncKey !== null || plan.ssn !== c.st.ssn;
  if (plan.ssn !== c.st.ssn) await setSsn(c, plan.ssn, status);
  if (mode && plan.why !== c.st.lastSyncWhy)
    c.log.info({ synchronous_standby_names: c.st.ssn }, `synchronous replication: ${plan.why}`);
  c.st.lastSyncWhy = plan.why;
  followUpSync(c, changed, plan.pending);
}

/**
 * A change of synchronous replication goes in steps, each made once the one before has taken
 * effect (a standby named, then confirmed, then listed in the key). While one is on its way the
 * loop looks again SYNC_RECHECK_MS later rather than loop_wait later, so the `sync` key names the
 * new standby (and a failover may pick it) within a moment, not several loop_waits; at most
 * SYNC_RECHECKS times after each change, so a standby that never confirms costs no more.
 */
function followUpSync(c: RunnerContext, changed: boolean, pending: boolean): void {
  if (changed) c.st.syncRechecks = 0;
  if (!pending || c.st.syncRechecks >= SYNC_RECHECKS) return;
  c.st.syncRechecks++;
  c.clock.setTimer(() => c.wake(), SYNC_RECHECK_MS);
}

/**
 * Puts a new synchronous_standby_names in force. Standbys added must hold everything committed
 * from the moment it is in force: the position is read once PostgreSQL shows the new value, not
 * before (commits in between were acknowledged by the old list only).
 */
async function setSsn(c: RunnerContext, ssn: string, before: ServerStatus): Promise<void> {
  c.st.ssn = ssn;
  await applySsn(c, ssn);
  // PostgreSQL releases a waiting commit only when a standby's answer shows the commit reached
  // it, and a standby answers when new WAL arrives or every wal_receiver_status_interval (10 s).
  // A standby named now may hold the waiting commits already: one small WAL record makes every
  // standby answer at once, so commits that waited for a lost standby go on.
  if (ssn !== '')
    await c.d.pg
      .nudgeStandbys?.()
      .catch((err: unknown) => c.log.debug(`could not ask the standbys to answer: ${errorMessage(err)}`));
  const after = await c.d.pg.status().catch(() => null);
  c.st.ssnSince = after && !after.inRecovery ? after.walPosition : before.walPosition;
}

/** Writes synchronous_standby_names, reloads, and waits (briefly) until the server shows it. */
async function applySsn(c: RunnerContext, ssn: string): Promise<void> {
  await c.d.pg.configure(c.roleConfig('primary', null, null));
  await c.d.pg.reload();
  c.markServerConfigApplied();
  const until = c.clock.mono() + 2000;
  while (c.clock.mono() < until) {
    if ((await c.d.pg.setting('synchronous_standby_names')) === ssn) return;
    await c.clock.sleep(20);
  }
}

/** The leader keeps the `failsafe` key listing every member (and removes it without failsafe_mode). */
async function maintainFailsafeKey(c: RunnerContext, cluster: ClusterState): Promise<void> {
  try {
    if (!c.dynamic().failsafe_mode) {
      if (cluster.failsafe) await c.d.dcs.setFailsafe(null);
      return;
    }
    const topology = failsafeTopology(cluster, c.me, myApiUrl(c));
    if (sameTopology(cluster.failsafe, topology)) c.st.failsafeWritten = null;
    else {
      c.st.failsafeWritten = topology;
      await c.d.dcs.setFailsafe(topology);
    }
  } catch (err) {
    c.log.warn(`could not write the failsafe key: ${errorMessage(err)}`);
  }
}

/** This node's member key, from what it observed last. */
export function myMemberData(
  c: RunnerContext,
  status: ServerStatus | null,
  scheduledRestart: Record<string, unknown> | null,
): MemberData {
  return memberData({
    running: c.snapshot.running,
    busyState: c.st.busyState,
    previousState: c.snapshot.state,
    status,
    role: c.snapshot.role,
    diverged: c.snapshot.diverged,
    connUrl: myConnUrl(c),
    apiUrl: myApiUrl(c),
    version: c.d.version,
    tags: c.d.config.tags,
    pause: c.dynamic().pause,
    scheduledRestart,
  });
}

export function myConnUrl(c: RunnerContext): string {
  return `postgres://${c.d.config.postgresql.connect_address}/postgres`;
}

export function myApiUrl(c: RunnerContext): string {
  const cfg = c.d.config.restapi;
  return `${cfg.certfile ? 'https' : 'http'}://${cfg.connect_address}/patroni`;
}

/**
 * The HA steps that change what PostgreSQL runs as: bootstrap, adopt, clone, start, release the
 * key, race, promote, demote, follow, rewind, reinitialise. Each carries out a decision the pure
 * planners made (decide.ts, race.ts, recovery.ts) and says what it did.
 */
import type { ClusterState, Member } from '../dcs/types.js';
import { failsafePeers } from './failsafe.js';
import type { ConnTarget } from '../postgres/types.js';
import type { PeerStatus } from './types.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { urlHostPort } from '../util/net.js';
import type { RunnerContext } from './context.js';
import { registerCluster, leaderDuties } from './leader.js';
import { evaluateRace, failoverPossible, watchdogRule } from './race.js';
import { planRewind, planRewindFailure, type RewindPlan } from './recovery.js';
import { findMember } from './rules.js';
import { REMOTE_UPSTREAM, upstreamFor } from './standby.js';
import { createReplicaData } from './bootstrap.js';
import { needsRewind } from './timeline.js';
import { earlyWakeAllowed } from './timing.js';
import type { Decision, LocalPostgres } from './types.js';

type Of<K extends Decision['kind']> = Extract<Decision, { kind: K }>;

/** Host and port from a member's `conn_url` (postgres://host:port/db). */
export function connTarget(m: { name: string; data: { conn_url?: string } }): ConnTarget | null {
  const hp = urlHostPort(m.data.conn_url);
  return hp ? { ...hp, member: m.name } : null;
}

/** Arms the watchdog when it is required and says why this node may not lead without it. */
export function watchdogRefusal(c: RunnerContext): string | null {
  const w = c.d.watchdog;
  if (!w || w.mode !== 'required') return null;
  return watchdogRule(w.mode, w.activate(c.dynamic().ttl, c.dynamic().loop_wait));
}

/** Logs a tool's lines; its `n/m kB (p%)` progress lines at most every 10 s, with the numbers. */
function progressLogger(log: Logger, tool: string, now: () => number): (line: string) => void {
  let last = 0;
  return (line) => {
    const m = /(\d+)\/(\d+) kB \((\d+)%\)/.exec(line);
    if (!m) return log.info(`${tool}: ${line}`);
    if (now() - last < 10_000 && m[3] !== '100') return;
    last = now();
    log.info(
      { progress: { done_kb: Number(m[1]), total_kb: Number(m[2]), percent: Number(m[3]) } },
      `${tool}: ${line.trim()}`,
    );
  };
}

/** Starts PostgreSQL in a role; a replica shows itself first so the leader makes its slot. */
export async function startAs(
  c: RunnerContext,
  opts:
    | { role: 'primary' }
    /** `storeUnreachable`: the caller knows etcd does not answer (failsafe_mode's demotion). */
    | { role: 'replica'; cluster: ClusterState; upstream: string | null; storeUnreachable?: boolean },
  callback: 'on_start' | 'on_restart' | 'on_role_change',
): Promise<void> {
  if (opts.role === 'primary' && c.dynamic().standby_cluster)
    throw new Error(
      'refusing to start as a primary: standby_cluster is set (a standby cluster has no writable primary)',
    );
  c.markServerConfigApplied();
  const rc =
    opts.role === 'primary'
      ? c.roleConfig('primary', null, null)
      : c.roleConfig('replica', opts.cluster, opts.upstream);
  await c.d.pg.configure(rc);
  if (opts.role === 'replica') c.snapshot.running = false;
  // A replica may not reach consistency before it streams, and it cannot stream before the
  // leader made its slot, which the leader does for members it sees: show ourselves first (unless
  // the store is known not to answer: each step would wait retry_timeout for nothing).
  if (opts.role === 'replica' && opts.storeUnreachable !== true) {
    // A rewind or a base backup before this may have outlasted the lease, and the member key with
    // it: renewing first grants a new lease when the old one is gone, so the key is put again.
    // (A replica holds no leader key, so renewing here cannot keep a leadership alive.)
    await c.d.dcs
      .refreshLease(c.clock.timeout(c.dynamic().retry_timeout * 1000))
      .catch((err: unknown) => c.log.warn(`could not renew the etcd lease: ${errorMessage(err)}`));
    await c.publish().catch((err: unknown) => c.log.warn(`could not publish: ${errorMessage(err)}`));
  }
  await c.during('starting', () => c.d.pg.start(c.dynamic().primary_start_timeout * 1000), true);
  c.st.startFailure = null;
  c.st.configuredUpstream = rc.upstream ? rc.upstream.member : null;
  c.st.configuredRemote = c.st.configuredUpstream === REMOTE_UPSTREAM ? c.remoteKey() : null;
  c.st.upstreamKnown = true;
  c.snapshot.role =
    opts.role === 'replica' && c.snapshot.isLeader && c.st.configuredUpstream === REMOTE_UPSTREAM
      ? 'standby_leader'
      : opts.role;
  c.d.runCallback(callback, c.snapshot.role);
}

/**
 * Stopped data that last ran as a primary, and no `initialize` key: the race rules against every
 * member that answers (nobody primary, ahead or on a newer timeline), then the key, then start it
 * as the primary it was — no promotion, so its timeline stays — and register the cluster.
 */
export async function adopt(
  c: RunnerContext,
  d: Of<'adopt'>,
  cluster: ClusterState,
  pg: LocalPostgres,
): Promise<void> {
  const control = pg.control;
  if (!control) throw new Error('cannot read pg_controldata of the existing data directory');
  if (cluster.leader?.name !== c.me) {
    const peers = await c.fetchPeers(cluster);
    const verdict = evaluateRace({
      me: c.me,
      cluster,
      config: c.dynamic(),
      tags: c.d.config.tags,
      status: {
        inRecovery: false,
        timeline: control.timeline,
        walPosition: control.checkpointLsn,
        systemIdentifier: control.systemIdentifier,
        serverVersion: 0,
        postmasterStartTime: '',
        pendingRestart: false,
        replication: [],
      },
      peers,
      formerLeader: c.st.formerLeader,
    });
    if (!verdict.ok) return c.say(d, `not adopting: ${verdict.why}`);
    const noWatchdog = watchdogRefusal(c);
    if (noWatchdog) return c.say(d, `not adopting: ${noWatchdog}`, 'error');
    if (!(await c.d.dcs.attemptToAcquireLeader()))
      return c.say(d, 'another member took the leader key first');
  }
  c.snapshot.isLeader = true;
  c.say(
    d,
    `adopting my data directory (system ${control.systemIdentifier}) as the cluster; starting it as primary`,
  );
  await startAs(c, { role: 'primary' }, 'on_start');
  const sent = await c.d.dcs.renewLeader(c.clock.timeout(c.dynamic().retry_timeout * 1000));
  if (sent !== null) c.lease.arm(sent);
  await registerCluster(c, cluster, control.systemIdentifier);
  await c.d.pg.createUsers();
}

export async function clone(c: RunnerContext, d: Of<'clone'>, cluster: ClusterState): Promise<void> {
  const source = d.from === null ? undefined : findMember(cluster, d.from);
  const target = source ? connTarget(source) : null;
  if (d.from !== null && !target) return c.say(d, `${d.from} publishes no usable conn_url`, 'warn');
  c.say(
    d,
    target
      ? `creating my data from ${d.from} (${target.host}:${target.port})`
      : 'creating my data (no_leader)',
  );
  const ok = await c.during('creating replica', () =>
    createReplicaData(c, target, c.d.config.postgresql.create_replica_methods),
  );
  if (!ok) {
    c.log.error(`could not create a replica from ${d.from ?? 'nothing (no_leader)'}; will retry`);
    return;
  }
  await c.setHold(null);
  const upstream = upstreamFor({
    me: c.me,
    cluster,
    standby: c.dynamic().standby_cluster,
    tags: c.d.config.tags,
  });
  await startAs(c, { role: 'replica', cluster, upstream }, 'on_start');
  c.log.info(
    `replica created from ${d.from ?? 'a no_leader method'}; streaming from ${upstream ?? 'nobody (WAL from the archive)'}`,
  );
}

/** Starts as primary while holding the key; with primary_start_timeout 0, fails over first when it can. */
export async function startPrimary(
  c: RunnerContext,
  d: Of<'start_primary'>,
  cluster: ClusterState,
  leaseSent: number | null,
): Promise<void> {
  if (d.failoverFirst) {
    const possible = failoverPossible({
      me: c.me,
      cluster,
      config: c.dynamic(),
      peers: await c.fetchPeers(cluster),
    });
    if (possible.possible) {
      c.say(
        d,
        `primary_start_timeout is 0 and another member can take over (${possible.why}): releasing the leader key instead of restarting`,
        'warn',
      );
      return releaseKey(c);
    }
    c.say(
      d,
      `primary_start_timeout is 0 but no other member can take over (${possible.why}); restarting in place`,
      'warn',
    );
  } else {
    c.say(
      d,
      d.readOnly
        ? 'starting PostgreSQL read-only; it is promoted next'
        : 'starting PostgreSQL as primary in place',
    );
  }
  try {
    // Data that was a replica's (a promotion cut short) must become a primary by promotion, on a
    // new timeline, never by a start without standby.signal (as Patroni's "starting as readonly").
    if (d.readOnly) await startAs(c, { role: 'replica', cluster, upstream: null }, 'on_start');
    else await startAs(c, { role: 'primary' }, 'on_start');
  } catch (err) {
    // A postmaster that exited cannot serve: the next cycle releases the key (rule start-failed).
    if (!(await c.d.pg.isRunning().catch(() => false))) {
      c.st.startFailure = errorMessage(err).split('\n')[0] ?? 'start failed';
      c.wake();
    }
    throw err;
  }
  c.st.startFailure = null;
  if (!d.readOnly && leaseSent !== null) c.lease.arm(leaseSent);
  // The next cycle looks at once, not loop_wait later: data started read-only is promoted then,
  // and a primary's synchronous standbys, which lost their connections in the crash and retry
  // streaming only after wal_retrieve_retry_interval, are replaced by the ones that stream (or
  // none) then, while its commits wait for them. Once per loop_wait at most (timing.ts).
  const now = c.clock.mono();
  if (earlyWakeAllowed(c.st.startWokeAt, now, c.dynamic().loop_wait)) {
    c.st.startWokeAt = now;
    c.wake();
  }
}

/** Deletes our leader key (as Patroni's `release_leader_key_voluntarily`). */
export async function releaseKey(c: RunnerContext): Promise<void> {
  c.lease.disarm();
  c.st.startFailure = null;
  await c.d.dcs.deleteLeader().catch(() => false);
  c.snapshot.isLeader = false;
  c.st.ledBefore = false;
  c.wake();
}

export async function releaseLeader(
  c: RunnerContext,
  d: Of<'release_leader'>,
  cluster: ClusterState,
): Promise<void> {
  if (d.onlyIfFailoverPossible) {
    const possible = failoverPossible({
      me: c.me,
      cluster,
      config: c.dynamic(),
      peers: await c.fetchPeers(cluster),
    });
    if (!possible.possible)
      return c.say(d, `not failing over: no other member can take over (${possible.why})`, 'warn');
  }
  if (d.stop === 'immediate' && (await c.d.pg.isRunning())) await c.d.pg.stop('immediate', 10_000);
  c.say(d, 'released the leader key so another member can take over', 'warn');
  if (c.snapshot.role === 'primary') {
    c.snapshot.role = 'demoted';
    c.d.runCallback('on_role_change', 'demoted');
  }
  await releaseKey(c);
}

export async function race(
  c: RunnerContext,
  d: Of<'race'>,
  cluster: ClusterState,
  pg: LocalPostgres,
  leaseSent: number | null,
): Promise<void> {
  const status = pg.status;
  if (!status) return;
  // A manual failover naming this node needs no opinion from the peers: answer it at once.
  const named = cluster.failover?.member === c.me && !cluster.failover.leader;
  const peers = named ? [] : await c.fetchPeers(cluster);
  const verdict = evaluateRace({
    me: c.me,
    cluster,
    config: c.dynamic(),
    tags: c.d.config.tags,
    status,
    peers,
    formerLeader: c.st.formerLeader,
  });
  if (!verdict.ok) {
    if (verdict.dropRequest) {
      await c.d.dcs.clearFailover().catch(() => undefined);
      return c.say(d, `not taking the leader key and dropping the request: ${verdict.why}`, 'warn');
    }
    return c.say(d, `not taking the leader key: ${verdict.why}`);
  }
  const noWatchdog = watchdogRefusal(c);
  if (noWatchdog) return c.say(d, `not taking the leader key: ${noWatchdog}`, 'error');
  if (!(await c.d.dcs.attemptToAcquireLeader())) return c.say(d, 'another member took the leader key first');
  if (verdict.risk)
    c.log.warn({ event: 'manual_promotion_risk' }, `promoting on request although ${verdict.risk}`);
  c.snapshot.isLeader = true;
  const sent = await c.d.dcs
    .renewLeader(c.clock.timeout(c.dynamic().retry_timeout * 1000))
    .catch(() => leaseSent);
  if (sent !== null) c.lease.arm(sent);
  if (c.dynamic().standby_cluster) {
    // A standby cluster's leader never promotes: it replicates from the standby_cluster source.
    c.say(d, `took the leader key (${verdict.why}); becoming the standby leader`);
    if (cluster.initialize === null) await registerCluster(c, cluster, status.systemIdentifier);
    if (!status.inRecovery)
      return demote(c, { kind: 'demote', upstream: REMOTE_UPSTREAM, why: d.why }, cluster);
    if (c.st.configuredUpstream !== REMOTE_UPSTREAM || c.st.configuredRemote !== c.remoteKey())
      await follow(c, { kind: 'follow', upstream: REMOTE_UPSTREAM, rewind: false, why: d.why }, cluster);
    return;
  }
  if (status.inRecovery) {
    c.say(d, `took the leader key (${verdict.why}); promoting`);
    await promote(c, cluster);
  } else {
    c.say(d, `took the leader key (${verdict.why}); staying primary`);
    if (cluster.initialize === null) await registerCluster(c, cluster, status.systemIdentifier);
  }
}

export async function promote(c: RunnerContext, cluster: ClusterState): Promise<void> {
  if (c.dynamic().standby_cluster)
    throw new Error(
      'refusing to promote: standby_cluster is set (a standby cluster has no writable primary)',
    );
  const started = c.clock.mono();
  // The keeper keeps the lease while a long replay finishes (it may take longer than ttl).
  await c.during(
    'promoting',
    () => c.d.pg.promote(Math.max(c.dynamic().primary_start_timeout, 60) * 1000),
    true,
  );
  c.st.configuredUpstream = null;
  c.snapshot.role = 'primary';
  c.slots.onPromote(c);
  // Tell routers and peers at once that this member now runs as primary.
  await c.publish();
  c.d.runCallback('on_role_change', 'primary');
  const status = c.snapshot.status;
  const ms = Math.round(c.clock.mono() - started);
  c.log.info(
    { event: 'promoted', timeline: status?.timeline, duration_ms: ms },
    `promoted to primary on timeline ${status?.timeline ?? '?'} in ${ms} ms`,
  );
  if (cluster.failover) await c.d.dcs.clearFailover().catch(() => undefined);
  if (status && cluster.initialize === null) await registerCluster(c, cluster, status.systemIdentifier);
  await leaderDuties(c, cluster, status);
}

/** Carries out a rewind plan; returns whether the data may now be started as a replica. */
async function applyRewindPlan(c: RunnerContext, plan: RewindPlan): Promise<boolean> {
  switch (plan.action) {
    case 'rewind':
      return true;
    case 'retry':
      c.log.warn(plan.why);
      return false;
    case 'remove_data':
      c.log.warn(plan.why);
      await c.d.pg.removeDataDirectory();
      return false;
    case 'hold':
      await c.setHold(plan.why);
      return false;
  }
}

/** Rewinds onto `upstream`, or removes the data when allowed; returns false when it did not rewind. */
async function rewindOnto(c: RunnerContext, cluster: ClusterState, upstream: string): Promise<boolean> {
  const pgc = c.d.config.postgresql;
  const policy = {
    usePgRewind: c.dynamic().postgresql.use_pg_rewind,
    removeOnDiverged: pgc.remove_data_directory_on_diverged_timelines,
    removeOnRewindFailure: pgc.remove_data_directory_on_rewind_failure,
  };
  if (!(await applyRewindPlan(c, planRewind(policy, upstream, c.me)))) return false;
  const target = findMember(cluster, upstream);
  const source = target ? connTarget(target) : null;
  if (!source) throw new Error(`leader ${upstream} publishes no usable conn_url`);
  try {
    await c.during('rewinding', async () => {
      c.log.info(`running pg_rewind from ${upstream} (${source.host}:${source.port})`);
      await c.d.pg.rewind(
        source,
        undefined,
        progressLogger(c.log, 'pg_rewind', () => c.clock.now()),
      );
      c.log.info('pg_rewind finished');
    });
    return true;
  } catch (err) {
    await applyRewindPlan(c, planRewindFailure(policy, upstream, c.me, errorMessage(err)));
    return false;
  }
}

export async function startReplica(
  c: RunnerContext,
  d: Decision,
  cluster: ClusterState,
  upstream: string | null,
  rewind: boolean,
): Promise<void> {
  if (rewind && upstream) {
    c.say(d, 'rewinding before start');
    if (!(await rewindOnto(c, cluster, upstream))) return;
  } else {
    c.say(d, `starting PostgreSQL as a replica${upstream ? ` of ${upstream}` : ''}`);
  }
  await startAs(c, { role: 'replica', cluster, upstream }, 'on_start');
}

export async function demote(c: RunnerContext, d: Of<'demote'>, cluster: ClusterState): Promise<void> {
  c.say(d, 'demoting: stopping PostgreSQL');
  c.lease.disarm();
  await c.during('stopping', () => c.stopFastOrImmediate());
  c.snapshot.role = 'demoted';
  c.d.runCallback('on_role_change', 'replica');
  const control = await c.d.pg.controlData();
  const upstream = d.upstream;
  const rewind =
    upstream !== null &&
    needsRewind({
      control,
      history: control ? await c.d.pg.timelineHistory(control.timeline) : [],
      leaderTimeline: findMember(cluster, upstream)?.data.timeline,
      leaderHistory: cluster.history,
    });
  await startReplica(c, d, cluster, upstream, rewind);
}

export async function follow(c: RunnerContext, d: Of<'follow'>, cluster: ClusterState): Promise<void> {
  if (d.rewind) {
    c.say(d, 'stopping to rewind');
    await c.stopFastOrImmediate();
    return startReplica(c, d, cluster, d.upstream, true);
  }
  c.say(d, d.upstream ? `pointing replication at ${d.upstream}` : 'replicating from no member');
  const rc = c.roleConfig('replica', cluster, d.upstream);
  await c.d.pg.configure(rc);
  // primary_conninfo and primary_slot_name are reloadable since PostgreSQL 13.
  await c.d.pg.reload();
  c.st.configuredUpstream = d.upstream === REMOTE_UPSTREAM || rc.upstream ? d.upstream : null;
  c.st.configuredRemote = d.upstream === REMOTE_UPSTREAM ? c.remoteKey() : null;
  c.st.upstreamKnown = true;
  // Between replica and standby_leader the role changes (on_role_change, from the runner's
  // settleRole); a replica that only repoints replication reloads, as Patroni.
  const was = c.snapshot.role;
  const status = await c.d.pg.status().catch(() => null);
  const now = status ? c.roleOf(status) : was;
  if (was === 'primary' || was === 'demoted') {
    c.snapshot.role = now;
    c.d.runCallback('on_role_change', now);
  } else if (was === now) c.d.runCallback('on_reload', now);
}

/** Replaces this node's data with a fresh copy of the leader (a same-timeline fork, when allowed). */
export async function reinit(c: RunnerContext, d: Of<'reinit'>): Promise<void> {
  c.say(
    d,
    'removing my data to clone afresh (allowed by remove_data_directory_on_diverged_timelines)',
    'warn',
  );
  if (await c.d.pg.isRunning()) await c.d.pg.stop('immediate', 10_000);
  await c.d.pg.removeDataDirectory();
  c.wake();
}

/** `reinit` by an operator: remove the data (never the leader's) and clone on the next cycle. */
export async function reinitializeNow(c: RunnerContext): Promise<string> {
  if (c.snapshot.isLeader) throw new Error('I am the leader; reinitialising the leader is not allowed');
  const cluster = c.snapshot.cluster;
  if (!cluster?.leader) throw new Error('there is no leader to clone from');
  await c.setHold(null);
  if (await c.d.pg.isRunning()) await c.d.pg.stop('immediate', 10_000);
  await c.d.pg.removeDataDirectory();
  c.log.info(`reinitialise requested: data directory removed, will clone from ${cluster.leader.name}`);
  c.wake();
  return `reinitialize started: cloning from ${cluster.leader.name}`;
}

/** Every other member's `GET /patroni`: members of the store, remembered ones, failsafe ones. */
export async function fetchPeers(
  c: RunnerContext,
  cluster: ClusterState,
  only?: string | null,
  prefetched: (name: string) => Promise<PeerStatus> | null = () => null,
): Promise<PeerStatus[]> {
  const known = new Map<string, Member>();
  for (const k of c.st.knownMembers.values()) known.set(k.member.name, k.member);
  for (const m of cluster.members) known.set(m.name, m);
  // Under failsafe_mode, members whose keys expired still count when the last leader knew them.
  if (c.dynamic().failsafe_mode && cluster.failsafe)
    for (const m of failsafePeers(cluster.failsafe, c.me)) if (!known.has(m.name)) known.set(m.name, m);
  const others = [...known.values()].filter(
    (m) => m.name !== c.me && m.data.api_url && (!only || m.name === only),
  );
  const ask = (m: Member): Promise<PeerStatus> => c.d.fetchPeer(m, c.clock.timeout(2000));
  return Promise.all(
    others.map((m) =>
      // A silent leader's REST API was asked as its key went silent (probe.ts): its answer, on the
      // way or just in, stands for this one unless it came back; asking again would only add 2 s.
      (
        prefetched(m.name)?.then((st) => {
          if (st.reachable) return ask(m);
          throw new Error('no answer within 2 s to the request made as its leader key went silent');
        }) ?? ask(m)
      ).catch((err: unknown): PeerStatus => {
        c.log.info(`${m.name} did not answer at ${m.data.api_url}: ${errorMessage(err)}`);
        return { name: m.name, reachable: false };
      }),
    ),
  );
}

/**
 * The HA decision: a pure function from what one cycle observed to the single next step.
 * The states and rules are written down in docs/ha-loop.md; keep the two in step.
 */
import type { Decision, HaInput } from './types.js';
import { findMember, isPrimaryRole, needsRewind } from './rules.js';

/** Picks this cycle's step. Never performs I/O; the runner carries the step out. */
export function decide(input: HaInput): Decision {
  const { me, cluster, pg, config } = input;
  const leader = cluster.leader?.name ?? null;
  const iAmLeader = leader === me;

  if (input.operatorHold) return { kind: 'refuse', why: input.operatorHold };

  // 1. Cluster not initialised yet: race to create it, from scratch or from existing data.
  if (cluster.initialize === null) {
    if (pg.dataState === 'empty')
      return { kind: 'bootstrap', why: 'cluster is not initialised and my data directory is empty' };
    if (pg.dataState === 'initialized') {
      return {
        kind: 'adopt',
        why: 'cluster is not initialised and my data directory holds a PostgreSQL cluster',
      };
    }
    return { kind: 'refuse', why: invalidDataDir() };
  }
  if (cluster.initialize === '' && !iAmLeader) {
    return { kind: 'idle', why: 'another member is initialising the cluster' };
  }

  // 2. Cluster exists: my data must be a copy of it.
  if (pg.dataState === 'empty') {
    const source = leader && leader !== me ? findMember(cluster, leader) : undefined;
    if (source && source.data.conn_url && source.data.state === 'running') {
      return {
        kind: 'clone',
        from: source.name,
        why: `my data directory is empty; cloning from leader ${source.name}`,
      };
    }
    return { kind: 'idle', why: 'my data directory is empty and there is no running leader to clone from' };
  }
  if (pg.dataState === 'invalid') return { kind: 'refuse', why: invalidDataDir() };
  const sysid = pg.control?.systemIdentifier;
  if (cluster.initialize !== '' && sysid !== undefined && sysid !== cluster.initialize) {
    return {
      kind: 'refuse',
      why:
        `my data directory holds database system ${sysid}, but this cluster is ${cluster.initialize}; ` +
        `refusing to join and leaving the data untouched. To replace it with a copy of the leader run ` +
        `"pgha ctl reinit <scope> ${me}" (or "patronictl reinit <scope> ${me}")`,
    };
  }

  // 3. Maintenance mode: keep the lock if we hold it, touch nothing else.
  if (config.pause) {
    if (iAmLeader && pg.running && pg.status && !pg.status.inRecovery) {
      return { kind: 'renew', why: 'maintenance mode: keeping the leader lock, not acting on PostgreSQL' };
    }
    return { kind: 'idle', why: 'maintenance mode: not acting on PostgreSQL' };
  }

  const leaderMember = leader ? findMember(cluster, leader) : undefined;
  const leaderTimeline = leaderMember?.data.timeline;
  const leaderUnreachable = leader !== null && !iAmLeader && !leaderMember?.data.conn_url;

  // 4. PostgreSQL is down: bring it back in the role the lock says.
  if (!pg.running) {
    if (iAmLeader)
      return { kind: 'start_primary', why: 'PostgreSQL is not running and I hold the leader lock' };
    if (leaderUnreachable) {
      return {
        kind: 'idle',
        why: `PostgreSQL is not running and leader ${leader} has not published its address yet`,
      };
    }
    if (leader) {
      const rewind = needsRewind({ control: pg.control, leaderTimeline, history: cluster.history });
      return {
        kind: 'start_replica',
        upstream: leader,
        rewind,
        why: `PostgreSQL is not running; starting as a replica of leader ${leader}${rewind ? ' after pg_rewind (timeline diverged)' : ''}`,
      };
    }
    return {
      kind: 'start_replica',
      upstream: null,
      rewind: false,
      why: 'PostgreSQL is not running and there is no leader; starting read-only before the leader race',
    };
  }
  const status = pg.status;
  if (status === null) {
    const why = pg.connectionError
      ? `PostgreSQL is running but the agent cannot connect: ${pg.connectionError} (check postgresql.authentication.superuser and pg_hba)`
      : 'PostgreSQL is running but not accepting connections yet';
    return { kind: 'idle', why };
  }

  // 5. Nobody holds the lock: race for it (the runner asks the peers and applies evaluateRace).
  if (leader === null) {
    return { kind: 'race', why: 'there is no leader' };
  }

  // 6. I hold the lock.
  if (iAmLeader) {
    if (status.inRecovery) return { kind: 'promote', why: 'I hold the leader lock but run as a replica' };
    const fo = cluster.failover;
    if (fo && (fo.leader === me || (fo.leader === undefined && fo.member && fo.member !== me))) {
      const at = fo.scheduled_at === undefined ? undefined : Date.parse(fo.scheduled_at);
      // As Patroni: a scheduled switchover missed by more than 1.5 loops is dropped, not run late.
      if (at !== undefined && at < input.now - config.loop_wait * 1500) {
        return { kind: 'cancel_switchover', why: `found a stale switchover scheduled at ${fo.scheduled_at}` };
      }
      const due = at === undefined || at <= input.now;
      if (due) {
        return {
          kind: 'switchover',
          candidate: fo.member ?? null,
          why: `a switchover was requested${fo.member ? ` to ${fo.member}` : ''}`,
        };
      }
    }
    return { kind: 'renew', why: 'I am the leader with the lock' };
  }

  // 7. Someone else holds the lock.
  if (!status.inRecovery) {
    return { kind: 'demote', upstream: leader, why: `${leader} holds the leader lock but I run as primary` };
  }
  if (leaderUnreachable) return { kind: 'idle', why: `leader ${leader} has not published its address yet` };
  // A running replica's own WAL position decides whether it can still stream from the leader.
  const diverged = needsRewind({
    control: pg.control,
    position: status.walPosition,
    timeline: status.timeline,
    leaderTimeline,
    history: cluster.history,
  });
  if (leaderMember && isPrimaryRole(leaderMember.data.role) && pg.configuredUpstream !== leader) {
    return {
      kind: 'follow',
      upstream: leader,
      rewind: diverged,
      why: `following the new leader ${leader} (was ${pg.configuredUpstream ?? 'none'})`,
    };
  }
  if (
    leaderTimeline !== undefined &&
    status.replicationState !== 'streaming' &&
    (pg.notStreamingForMs ?? Infinity) >= DIVERGENCE_GRACE_MS &&
    status.timeline < leaderTimeline &&
    diverged
  ) {
    return {
      kind: 'follow',
      upstream: leader,
      rewind: true,
      why: `my timeline ${status.timeline} diverged from leader ${leader} (timeline ${leaderTimeline}); cannot stream`,
    };
  }
  return { kind: 'idle', why: `following leader ${leader}` };
}

/**
 * A replica whose WAL receiver is reconnecting reports the last checkpoint's timeline, which can be
 * older than the one it already follows; a real divergence keeps it from streaming for good, so
 * only one that lasts this long counts (a receiver retries every 5 s, wal_retrieve_retry_interval).
 */
export const DIVERGENCE_GRACE_MS = 15_000;

function invalidDataDir(): string {
  return 'my data directory is not empty but holds no PostgreSQL cluster (no PG_VERSION); move its files away or fix data_dir';
}

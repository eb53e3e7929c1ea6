/**
 * The HA decision: a pure function from what one cycle observed to the next step. The rules are
 * checked in the order of `RULES` below (docs/ha-loop.md is generated from that table); the first
 * whose condition holds decides. Steps that need the peers' opinion (the race, "can anyone take
 * over?") return a kind the runner completes with the pure planners in race.ts.
 */
import { findMember, isPrimaryRole } from './rules.js';
import { cloneSource, REMOTE_UPSTREAM, upstreamFor } from './standby.js';
import { needsRewind } from './timeline.js';
import type { Decision, HaInput } from './types.js';

/**
 * A replica whose WAL receiver is reconnecting reports the last checkpoint's timeline, which can be
 * older than the one it already follows; a real divergence keeps it from streaming for good, so
 * only one that lasts this long counts (a receiver retries every 5 s, wal_retrieve_retry_interval).
 */
export const DIVERGENCE_GRACE_MS = 15_000;

/** One row of the decision table: when it applies (`when`), and its step. */
export interface Rule {
  id: string;
  /** The condition, as docs/ha-loop.md prints it. */
  when: string;
  /** The step, as docs/ha-loop.md prints it. */
  then: string;
  decide(input: HaInput, ctx: Ctx): Decision | null;
}

interface Ctx {
  leader: string | null;
  iAmLeader: boolean;
  /** A standby cluster: nobody here may run as a writable primary. */
  standby: boolean;
  /** Whom this node should stream from (standby.ts `upstreamFor`). */
  upstream: string | null;
}

const invalidDataDir =
  'my data directory is not empty but holds no PostgreSQL cluster (no PG_VERSION); move its files away or fix data_dir';

function leaderTimeline(input: HaInput, leader: string | null): number | undefined {
  return leader ? findMember(input.cluster, leader)?.data.timeline : undefined;
}

function rewindFor(input: HaInput, leader: string, running: boolean): boolean {
  const { pg, cluster } = input;
  const status = running ? pg.status : null;
  return needsRewind({
    control: pg.control,
    ...(status ? { position: status.walPosition, timeline: status.timeline } : {}),
    ...(pg.history !== undefined ? { history: pg.history } : {}),
    leaderTimeline: leaderTimeline(input, leader),
    leaderHistory: cluster.history,
  });
}

/** The rules, in the order they are checked. */
export const RULES: readonly Rule[] = [
  {
    id: 'operator-hold',
    when: 'the agent waits for an operator (a refused join, a failed rewind; kept across restarts)',
    then: '**refuse**: touch nothing, say why each cycle',
    decide: (i) => (i.operatorHold ? { kind: 'refuse', why: i.operatorHold } : null),
  },
  {
    id: 'empty-leader',
    when: 'data directory empty, I hold the leader key',
    then: '**release_leader**: the data is gone, so is the right to lead',
    decide: (i, c) =>
      i.pg.dataState === 'empty' && c.iAmLeader
        ? {
            kind: 'release_leader',
            why: 'my data directory is empty but I hold the leader key',
            stop: 'immediate',
            onlyIfFailoverPossible: false,
          }
        : null,
  },
  {
    id: 'bootstrap',
    when: 'no `initialize` key, data directory empty',
    then: '**bootstrap**: race on `initialize`; the winner runs initdb, starts, takes `leader`, creates the users, stores the system id and `bootstrap.dcs`',
    decide: (i) => {
      if (i.pg.dataState !== 'empty' || i.cluster.initialize !== null) return null;
      if (i.config.pause)
        return { kind: 'idle', why: 'maintenance mode: running with an empty data directory' };
      return { kind: 'bootstrap', why: 'cluster is not initialised and my data directory is empty' };
    },
  },
  {
    id: 'clone',
    when: 'cluster exists, data directory empty',
    then: '**clone** (create_replica_methods) from a running member tagged `clonefrom`, else the running leader, and start as a replica; or wait for one',
    decide: (i, c) => {
      if (i.pg.dataState !== 'empty') return null;
      if (i.cluster.initialize === '' && !c.iAmLeader)
        return { kind: 'idle', why: 'another member is initialising the cluster' };
      const source = c.leader && !c.iAmLeader ? cloneSource(i.cluster, i.me) : null;
      if (source?.data.conn_url && source.data.state === 'running')
        return {
          kind: 'clone',
          from: source.name,
          why: `my data directory is empty; cloning from ${source.name === c.leader ? 'leader ' : ''}${source.name}`,
        };
      return { kind: 'idle', why: 'my data directory is empty and there is no running leader to clone from' };
    },
  },
  {
    id: 'invalid-data',
    when: 'data directory holds files but no cluster',
    then: '**refuse**',
    decide: (i) => (i.pg.dataState === 'invalid' ? { kind: 'refuse', why: invalidDataDir } : null),
  },
  {
    id: 'sysid',
    when: "data directory's system id ≠ `initialize`",
    then: '**refuse** (in pause, a leader releases the key first), naming the fix (`pgha ctl reinit`)',
    decide: (i, c) => {
      const sysid = i.pg.control?.systemIdentifier ?? i.pg.status?.systemIdentifier;
      const init = i.cluster.initialize;
      if (!init || sysid === undefined || sysid === init) return null;
      if (c.iAmLeader)
        return {
          kind: 'release_leader',
          why: `my system id ${sysid} does not match the cluster's ${init}`,
          stop: 'none',
          onlyIfFailoverPossible: false,
        };
      return {
        kind: 'refuse',
        why:
          `my data directory holds database system ${sysid}, but this cluster is ${init}; ` +
          `refusing to join and leaving the data untouched. To replace it with a copy of the leader run ` +
          `"pgha ctl reinit <scope> ${i.me}" (or "patronictl reinit <scope> ${i.me}")`,
      };
    },
  },
  {
    id: 'initializing',
    when: '`initialize` is being written by another member',
    then: 'wait',
    decide: (i, c) =>
      i.cluster.initialize === '' && !c.iAmLeader
        ? { kind: 'idle', why: 'another member is initialising the cluster' }
        : null,
  },
  {
    id: 'unregistered-stopped',
    when: 'no `initialize` key (a new or wiped store), my PostgreSQL is down',
    then: "data last run as a primary: **adopt** (race, take `leader`, start it as the primary it was, register); a replica's data, or any data in a standby cluster: **start_replica** read-only (of the `standby_cluster` source), never as a primary",
    decide: (i, c) => {
      if (i.cluster.initialize !== null || i.pg.running) return null;
      if (c.leader && !c.iAmLeader)
        return {
          kind: 'idle',
          why: `the store has no initialize key; waiting for leader ${c.leader} to register the cluster`,
        };
      if (i.config.pause) return { kind: 'idle', why: 'maintenance mode: not starting PostgreSQL' };
      if (c.standby)
        return {
          kind: 'start_replica',
          upstream: REMOTE_UPSTREAM,
          rewind: false,
          why: 'this is a standby cluster and the store has no initialize key; starting as a replica of the standby_cluster source (never as a primary)',
        };
      if (i.pg.wasPrimary)
        return { kind: 'adopt', why: 'the store has no initialize key and my data last ran as a primary' };
      return {
        kind: 'start_replica',
        upstream: null,
        rewind: false,
        why: "the store has no initialize key and my data is a replica's; starting it read-only (never as a primary)",
      };
    },
  },
  {
    id: 'pause-leader',
    when: '`pause`, I hold the leader key',
    then: 'primary: **renew** (no fence, no watchdog); not running as primary: **release_leader**, as Patroni',
    decide: (i, c) => {
      if (!i.config.pause || !c.iAmLeader) return null;
      if (i.pg.running && i.pg.status && !i.pg.status.inRecovery)
        return { kind: 'renew', why: 'maintenance mode: keeping the leader key, not acting on PostgreSQL' };
      if (i.pg.running && !i.pg.status)
        return { kind: 'idle', why: 'maintenance mode: PostgreSQL is starting' };
      return {
        kind: 'release_leader',
        why: 'maintenance mode: PostgreSQL is not running as primary here',
        stop: 'none',
        onlyIfFailoverPossible: false,
      };
    },
  },
  {
    id: 'pause-other',
    when: '`pause`, I do not hold the leader key',
    then: "a running primary with this cluster's data and no leader: **race** (take the key, restart nothing); otherwise do nothing",
    decide: (i, c) => {
      if (!i.config.pause) return null;
      const s = i.pg.status;
      if (!c.leader && i.pg.running && s && !s.inRecovery)
        return { kind: 'race', why: 'maintenance mode: I run as primary and nobody holds the leader key' };
      return { kind: 'idle', why: 'maintenance mode: not acting on PostgreSQL' };
    },
  },
  {
    id: 'start-failed',
    when: 'PostgreSQL down, I hold the leader key, my last start as primary failed',
    then: '**release_leader** so a healthy replica takes over; rejoin later as a replica',
    decide: (i, c) =>
      !i.pg.running && c.iAmLeader && i.pg.startFailure
        ? {
            kind: 'release_leader',
            why: `PostgreSQL failed to start as primary (${i.pg.startFailure})`,
            stop: 'none',
            onlyIfFailoverPossible: false,
          }
        : null,
  },
  {
    id: 'down-leader',
    when: 'PostgreSQL down, I hold the leader key',
    then: "data last run as a primary: **start_primary** in place (no failover; with `primary_start_timeout: 0` release the key instead when another member can take over); a replica's data: started read-only, then promoted (never started as a primary: that would fork its timeline); in a standby cluster: **start_replica** of the `standby_cluster` source (the standby leader)",
    decide: (i, c) => {
      if (i.pg.running || !c.iAmLeader) return null;
      if (c.standby)
        return {
          kind: 'start_replica',
          upstream: c.upstream,
          rewind: false,
          why: 'PostgreSQL is not running and I hold the leader key of a standby cluster; starting as the standby leader',
        };
      const readOnly = !i.pg.wasPrimary;
      return {
        kind: 'start_primary',
        failoverFirst: i.config.primary_start_timeout === 0,
        readOnly,
        why: readOnly
          ? "PostgreSQL is not running and I hold the leader key, but my data is a replica's; starting it read-only to promote it"
          : 'PostgreSQL is not running and I hold the leader key',
      };
    },
  },
  {
    id: 'down-follower',
    when: 'PostgreSQL down, another leader',
    then: "**start_replica** of it (or of the member `replicatefrom` names; of nobody with `nostream`), after pg_rewind when my history diverged from the leader's",
    decide: (i, c) => {
      if (i.pg.running || !c.leader) return null;
      const up = c.upstream;
      const m = up ? findMember(i.cluster, up) : undefined;
      if (up && !m?.data.conn_url)
        return {
          kind: 'idle',
          why: `PostgreSQL is not running and ${up === c.leader ? 'leader ' : ''}${up} has not published its address yet`,
        };
      const rewind = rewindFor(i, c.leader, false);
      return {
        kind: 'start_replica',
        upstream: up,
        rewind,
        why: `PostgreSQL is not running; starting as a replica of ${up === c.leader ? `leader ${up}` : (up ?? 'nobody (nostream: WAL from the archive only)')}${rewind ? ' after pg_rewind (timeline diverged)' : ''}`,
      };
    },
  },
  {
    id: 'down-no-leader',
    when: 'PostgreSQL down, no leader',
    then: '**start_replica** with no upstream (read-only; in a standby cluster, of the `standby_cluster` source), race on a later cycle',
    decide: (i, c) =>
      !i.pg.running
        ? {
            kind: 'start_replica',
            upstream: c.standby ? c.upstream : null,
            rewind: false,
            why: c.standby
              ? 'PostgreSQL is not running and the standby cluster has no leader; following the standby_cluster source before the leader race'
              : 'PostgreSQL is not running and there is no leader; starting read-only before the leader race',
          }
        : null,
  },
  {
    id: 'starting',
    when: 'PostgreSQL starting (no connection yet)',
    then: 'wait; as leader past `primary_start_timeout`: **release_leader** (immediate stop) when another member can take over',
    decide: (i, c) => {
      if (i.pg.status) return null;
      if (c.iAmLeader && (i.pg.startingForMs ?? 0) > i.config.primary_start_timeout * 1000)
        return {
          kind: 'release_leader',
          why: `PostgreSQL has been starting for more than primary_start_timeout (${i.config.primary_start_timeout} s)`,
          stop: 'immediate',
          onlyIfFailoverPossible: true,
        };
      const why = i.pg.connectionError
        ? `PostgreSQL is running but the agent cannot connect: ${i.pg.connectionError} (check postgresql.authentication.superuser and pg_hba)`
        : 'PostgreSQL is running but not accepting connections yet';
      return { kind: 'idle', why };
    },
  },
  {
    id: 'unregistered-running',
    when: 'no `initialize` key, PostgreSQL running',
    then: 'a primary: **race** (on winning, register the cluster; PostgreSQL is not restarted); a replica: wait one ttl for the primary to re-register (in a standby cluster: no wait), then **race** like any replica (promotion, never a restart as primary)',
    decide: (i, c) => {
      if (i.cluster.initialize !== null) return null;
      if (c.leader) {
        if (c.iAmLeader) return null; // registration is part of the leader's upkeep
        return {
          kind: 'idle',
          why: `the store has no initialize key; waiting for leader ${c.leader} to register the cluster`,
        };
      }
      const s = i.pg.status;
      if (s && !s.inRecovery)
        return { kind: 'race', why: 'the store has no initialize key and I run as primary' };
      // Nobody re-registers a standby cluster as its primary: its members race at once.
      if (c.standby)
        return { kind: 'race', why: 'the standby cluster has no initialize key and no standby leader' };
      const waited = i.memory?.uninitializedForMs ?? 0;
      if (waited < i.config.ttl * 1000)
        return {
          kind: 'idle',
          why: `the store has no initialize key and I run as a replica; waiting for the primary to re-register the cluster (${Math.round(waited / 1000)} of ${i.config.ttl} s)`,
        };
      return {
        kind: 'race',
        why: `the store has had no initialize key for ${Math.round(waited / 1000)} s and no leader`,
      };
    },
  },
  {
    id: 'no-leader',
    when: 'running, no leader',
    then: '**race** (race.ts: the healthiest member takes `leader`)',
    decide: (i, c) => (c.leader === null ? { kind: 'race', why: 'there is no leader' } : null),
  },
  {
    id: 'leader-replica',
    when: 'I hold the leader key, running as a replica',
    then: '**promote**; in a standby cluster: **follow** the `standby_cluster` source (the standby leader), never promote',
    decide: (i, c) => {
      if (!c.iAmLeader || !i.pg.status?.inRecovery) return null;
      if (!c.standby) return { kind: 'promote', why: 'I hold the leader key but run as a replica' };
      if (i.pg.configuredUpstream !== REMOTE_UPSTREAM)
        return {
          kind: 'follow',
          upstream: REMOTE_UPSTREAM,
          rewind: false,
          why: 'I hold the leader key of a standby cluster; following the standby_cluster source as the standby leader',
        };
      if (i.cluster.failover)
        return {
          kind: 'cancel_switchover',
          why: 'a switchover was requested in a standby cluster, where pgha does not hand the standby leader over',
        };
      return { kind: 'renew', why: 'I am the standby leader with the lock' };
    },
  },
  {
    id: 'leader-switchover',
    when: 'I hold the leader key, a due `failover` request',
    then: '**switchover**; one scheduled more than 1.5 × loop_wait ago: **cancel_switchover** (as Patroni)',
    decide: (i, c) => {
      if (!c.iAmLeader) return null;
      const fo = i.cluster.failover;
      if (!fo || !(fo.leader === i.me || (fo.leader === undefined && fo.member && fo.member !== i.me)))
        return null;
      if (c.standby)
        return {
          kind: 'cancel_switchover',
          why: 'a switchover was requested in a standby cluster, where pgha does not hand the standby leader over',
        };
      const at = fo.scheduled_at === undefined ? undefined : Date.parse(fo.scheduled_at);
      if (at !== undefined && at < i.now - i.config.loop_wait * 1500)
        return { kind: 'cancel_switchover', why: `found a stale switchover scheduled at ${fo.scheduled_at}` };
      if (at !== undefined && at > i.now) return null;
      return {
        kind: 'switchover',
        candidate: fo.member ?? null,
        why: `a switchover was requested${fo.member ? ` to ${fo.member}` : ''}`,
      };
    },
  },
  {
    id: 'leader',
    when: 'I hold the leader key, primary',
    then: '**renew**: upkeep of `status`, `history`, slots, sync, failsafe; in a standby cluster (the section was added: `demote-cluster`): **demote** to a replica of the `standby_cluster` source',
    decide: (i, c) => {
      if (!c.iAmLeader) return null;
      if (c.standby && i.pg.status && !i.pg.status.inRecovery)
        return {
          kind: 'demote',
          upstream: REMOTE_UPSTREAM,
          why: 'standby_cluster is set but I run as a writable primary; demoting to the standby leader',
        };
      return { kind: 'renew', why: 'I am the leader with the lock' };
    },
  },
  {
    id: 'other-leader-primary',
    when: 'another leader, I run as primary',
    then: '**demote**: fast stop, rewind if diverged, start as its replica',
    decide: (i, c) =>
      i.pg.status && !i.pg.status.inRecovery
        ? {
            kind: 'demote',
            upstream: c.upstream,
            why: `${c.leader} holds the leader lock but I run as primary`,
          }
        : null,
  },
  {
    id: 'diverged',
    when: 'another leader, my replica cannot apply what it streams (a fork on the same timeline number)',
    then: 'publish it as diverged; **reinit** when `remove_data_directory_on_diverged_timelines`, else wait for `pgha ctl reinit`',
    decide: (i, c) => {
      if (!i.pg.diverged || !c.leader) return null;
      const why = `my WAL has diverged from leader ${c.leader} on the same timeline (${i.pg.diverged}); pg_rewind cannot see such a fork`;
      if (i.local?.removeDataOnDivergedTimelines) return { kind: 'reinit', from: c.leader, why };
      return {
        kind: 'idle',
        why: `${why}; run "pgha ctl reinit <scope> ${i.me}" to replace my data with a copy of the leader`,
      };
    },
  },
  {
    id: 'follow',
    when: 'another leader, I stream from someone else than my upstream (the leader, `replicatefrom`, nobody with `nostream`)',
    then: '**follow**: rewrite `primary_conninfo`, reload; pg_rewind first when diverged',
    decide: (i, c) => {
      const leader = c.leader as string;
      const up = c.upstream;
      if (i.pg.configuredUpstream === up) return null;
      if (up === null)
        return {
          kind: 'follow',
          upstream: null,
          rewind: false,
          why: 'nostream: replaying WAL from the archive only',
        };
      const m = findMember(i.cluster, up);
      if (!m?.data.conn_url) return { kind: 'idle', why: `${up} has not published its address yet` };
      if (up === leader && !isPrimaryRole(m.data.role)) return null;
      return {
        kind: 'follow',
        upstream: up,
        rewind: up === leader && rewindFor(i, leader, true),
        why: `following ${up === leader ? `the new leader ${up}` : `${up} (replicatefrom)`} (was ${i.pg.configuredUpstream ?? 'none'})`,
      };
    },
  },
  {
    id: 'fork',
    when: 'another leader, not streaming for 15 s, my history diverged from its',
    then: '**follow** with pg_rewind (a receiver that is only reconnecting reports an older timeline for a few seconds)',
    decide: (i, c) => {
      const s = i.pg.status;
      const leader = c.leader as string;
      const lt = leaderTimeline(i, leader);
      if (
        c.upstream !== leader ||
        !s ||
        lt === undefined ||
        s.replicationState === 'streaming' ||
        (i.pg.notStreamingForMs ?? Infinity) < DIVERGENCE_GRACE_MS ||
        !rewindFor(i, leader, true)
      )
        return null;
      return {
        kind: 'follow',
        upstream: leader,
        rewind: true,
        why: `my timeline ${s.timeline} diverged from leader ${leader} (timeline ${lt}); cannot stream`,
      };
    },
  },
  {
    id: 'following',
    when: 'another leader, streaming from it',
    then: 'nothing',
    decide: (i, c) => ({ kind: 'idle', why: `following leader ${c.leader}` }),
  },
];

function context(input: HaInput): Ctx {
  const leader = input.cluster.leader?.name ?? null;
  const standby = input.config.standby_cluster;
  return {
    leader,
    iAmLeader: leader === input.me,
    standby: standby !== undefined,
    upstream: upstreamFor({ me: input.me, cluster: input.cluster, standby, tags: input.tags }),
  };
}

/** Picks this cycle's step: the first rule of `RULES` that applies. Never performs I/O. */
export function decide(input: HaInput): Decision {
  const ctx = context(input);
  for (const rule of RULES) {
    const d = rule.decide(input, ctx);
    if (d) return d;
  }
  return { kind: 'idle', why: 'no rule applies' };
}

/** Which rule decides `input` (for tests and the docs). */
export function decidingRule(input: HaInput): string {
  const ctx = context(input);
  for (const rule of RULES) if (rule.decide(input, ctx)) return rule.id;
  return 'none';
}

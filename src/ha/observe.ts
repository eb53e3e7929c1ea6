/**
 * What one cycle observes of the local PostgreSQL (LocalPostgres), and what it remembers across
 * cycles to judge it: since when it has been starting, not streaming, stuck in replay, or
 * replaying past what its leader sends (a same-timeline fork, timeline.ts).
 */
import type { ClusterState } from '../dcs/types.js';
import { connTarget } from './actions.js';
import type { RunnerContext } from './context.js';
import { DIVERGENCE_GRACE_MS } from './decide.js';
import { findMember } from './rules.js';
import { REMOTE_UPSTREAM } from './standby.js';
import { divergenceEvidence, type SeenReplayError } from './timeline.js';
import type { LocalPostgres } from './types.js';

export class Observer {
  private startingSince: number | null = null;
  private notStreamingSince: number | null = null;
  private replayWatch: { lsn: number; since: number } | null = null;
  private aheadSince: number | null = null;
  private replayErrors: SeenReplayError[] = [];
  private historyCache: { timeline: number; switches: LocalPostgres['history'] } | null = null;

  constructor(private readonly c: RunnerContext) {}

  /** Reads the local PostgreSQL state. */
  async observe(cluster: ClusterState): Promise<LocalPostgres> {
    const pg = this.c.d.pg;
    const now = this.c.clock.mono();
    const dataState = await pg.dataDirectoryState();
    const running = dataState === 'initialized' && (await pg.isRunning());
    const status = running ? await pg.status() : null;
    const control = status
      ? {
          systemIdentifier: status.systemIdentifier,
          clusterState: status.inRecovery ? 'in archive recovery' : 'in production',
          timeline: status.timeline,
          checkpointLsn: 0,
          minRecoveryLsn: 0,
          dataChecksums: false,
          walLogHints: false,
          raw: {},
        }
      : dataState === 'initialized'
        ? await pg.controlData()
        : null;
    const timeline = status?.timeline ?? control?.timeline;
    let history: LocalPostgres['history'];
    if (timeline !== undefined) {
      if (this.historyCache?.timeline !== timeline)
        this.historyCache = { timeline, switches: await pg.timelineHistory(timeline).catch(() => undefined) };
      history = this.historyCache.switches;
    }
    this.c.snapshot.running = running;
    this.c.snapshot.status = status;
    this.c.snapshot.sysid = control?.systemIdentifier ?? null;
    if (status) {
      this.c.snapshot.role = this.c.roleOf(status);
      if (!this.c.st.upstreamKnown) {
        // After an agent restart, learn which member (or standby_cluster source) the replica streams from.
        const remote = this.c.remoteTarget();
        const from = status.receiverUpstream;
        const isRemote =
          remote !== null && from != null && remote.port === from.port && sameHost(remote.host, from.host);
        this.c.st.configuredUpstream = !status.inRecovery
          ? null
          : isRemote
            ? REMOTE_UPSTREAM
            : this.memberAt(cluster, from);
        if (isRemote) this.c.st.configuredRemote = this.c.remoteKey();
        this.c.st.upstreamKnown = true;
      }
    } else if (!running) {
      this.c.snapshot.role = dataState === 'initialized' ? this.c.snapshot.role : 'uninitialized';
    }
    this.startingSince = running && !status ? (this.startingSince ?? now) : null;
    const receiverDown = status !== null && status.inRecovery && status.replicationState !== 'streaming';
    this.notStreamingSince = receiverDown ? (this.notStreamingSince ?? now) : null;
    const diverged = status?.inRecovery ? await this.watchReplay(cluster, status, now) : null;
    this.c.snapshot.diverged = diverged;
    const wasPrimary =
      !running && control !== null && ['in production', 'shut down'].includes(control.clusterState)
        ? !(await pg.recoverySignalled())
        : false;
    return {
      dataState,
      control,
      running,
      status,
      connectionError: running && !status ? (pg.lastConnectionError ?? null) : null,
      configuredUpstream:
        this.c.st.configuredUpstream === REMOTE_UPSTREAM && this.c.st.configuredRemote !== this.c.remoteKey()
          ? `${REMOTE_UPSTREAM} as it was`
          : this.c.st.configuredUpstream,
      notStreamingForMs: this.notStreamingSince === null ? 0 : now - this.notStreamingSince,
      ...(history !== undefined ? { history } : {}),
      wasPrimary,
      startFailure: this.c.st.startFailure,
      startingForMs: this.startingSince === null ? 0 : now - this.startingSince,
      diverged,
    };
  }

  /** Follows a replica's replay progress and its server log for a same-timeline fork. */
  private async watchReplay(
    cluster: ClusterState,
    status: NonNullable<LocalPostgres['status']>,
    now: number,
  ): Promise<string | null> {
    const replay = status.replayLsn;
    if (replay === undefined || this.replayWatch?.lsn !== replay)
      this.replayWatch = replay === undefined ? null : { lsn: replay, since: now };
    for (const e of await this.c.d.pg.replayErrors().catch(() => []))
      this.replayErrors.push({ ...e, atMono: now });
    this.replayErrors = this.replayErrors.filter((e) => now - e.atMono < 4 * DIVERGENCE_GRACE_MS).slice(-50);
    const leader = cluster.leader ? findMember(cluster, cluster.leader.name) : undefined;
    // Streaming, yet replay stays past everything received: the leader has less WAL than this
    // replica replayed on the same timeline (a healthy replica receives before it replays).
    const ahead =
      replay !== undefined &&
      status.receiveLsn !== undefined &&
      status.replicationState === 'streaming' &&
      status.receiveLsn < replay;
    this.aheadSince = ahead ? (this.aheadSince ?? now) : null;
    return divergenceEvidence({
      receiveLsn: status.receiveLsn,
      replayLsn: replay,
      timeline: status.timeline,
      streaming: status.replicationState === 'streaming',
      replayStuckSince: this.replayWatch?.since ?? null,
      aheadSince: this.aheadSince,
      notStreamingForMs: this.notStreamingSince === null ? 0 : now - this.notStreamingSince,
      errors: this.replayErrors,
      leaderTimeline: leader?.data.timeline,
      leaderPosition: leader?.data.xlog_location,
      nowMono: now,
      graceMs: DIVERGENCE_GRACE_MS,
    });
  }

  private memberAt(
    cluster: ClusterState,
    addr: { host: string; port: number } | null | undefined,
  ): string | null {
    if (!addr) return null;
    for (const m of cluster.members) {
      const t = connTarget(m);
      if (t && t.port === addr.port && sameHost(t.host, addr.host)) return m.name;
    }
    return null;
  }
}

function sameHost(a: string, b: string): boolean {
  const loopback = (h: string) => h === 'localhost' || h.startsWith('127.') || h === '::1';
  return a === b || loopback(a) === loopback(b);
}

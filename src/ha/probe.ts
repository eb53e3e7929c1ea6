/**
 * The replica side of `fast_failover`: probe the leader's ports every LEADER_PROBE_MS and, once
 * fast-failover.ts finds it proven gone, delete its key by compare-and-set on the key's revision
 * (a leader that renewed or re-took the key since has another revision, so nothing happens).
 */
import type { ClusterState } from '../dcs/types.js';
import type { TimerHandle } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import { urlHostPort } from '../util/net.js';
import type { RunnerContext } from './context.js';
import { countRefusals, LEADER_PROBE_MS, leaderGoneVerdict, REFUSALS_NEEDED } from './fast-failover.js';
import { findMember } from './rules.js';

export class LeaderProbe {
  private timer: TimerHandle | null = null;
  private refusals = { key: '', count: 0 };
  private gone: { name: string; modRevision: string; why: string } | null = null;
  private stopped = false;

  constructor(private readonly c: RunnerContext) {}

  start(): void {
    if (this.stopped || !this.c.d.probePort) return;
    this.timer = this.c.clock.setTimer(() => {
      void this.probe()
        .catch((err: unknown) => this.c.log.debug(`leader probe failed: ${errorMessage(err)}`))
        .finally(() => this.start());
    }, LEADER_PROBE_MS);
  }

  stop(): void {
    this.stopped = true;
    this.c.clock.clearTimer(this.timer);
  }

  private async probe(): Promise<void> {
    const c = this.c;
    const cluster = c.snapshot.cluster;
    const leader = cluster?.leader;
    const m = leader ? findMember(cluster, leader.name) : undefined;
    const pg = urlHostPort(m?.data.conn_url);
    const api = urlHostPort(m?.data.api_url);
    const probePort = c.d.probePort?.bind(c.d);
    if (
      !c.dynamic().fast_failover ||
      c.dynamic().pause ||
      !leader ||
      leader.name === c.me ||
      !pg ||
      !api ||
      !probePort
    ) {
      this.refusals = { key: '', count: 0 };
      return;
    }
    const [a, b] = await Promise.all([probePort(pg.host, pg.port), probePort(api.host, api.port)]);
    const key = `${leader.name}@${leader.modRevision}`;
    this.refusals = countRefusals(this.refusals, key, a, b);
    if (this.refusals.count < REFUSALS_NEEDED) return;
    const silent = await c.d.dcs.leaseSilentMs(leader.lease, c.clock.timeout(1000)).catch(() => null);
    const verdict = leaderGoneVerdict({
      refusals: this.refusals.count,
      leaseSilentMs: silent,
      ttlS: c.dynamic().ttl,
      pgAddress: `${pg.host}:${pg.port}`,
      apiAddress: `${api.host}:${api.port}`,
    });
    if (!verdict.gone) {
      if (this.refusals.count === REFUSALS_NEEDED)
        c.log.info(`leader ${leader.name} not replaced early: ${verdict.why}`);
      return;
    }
    this.gone = { name: leader.name, modRevision: leader.modRevision, why: verdict.why };
    c.wake();
  }

  /** Deletes the key of a leader proven gone (compare-and-set on its revision), so the race starts now. */
  async releaseGone(cluster: ClusterState): Promise<ClusterState> {
    const gone = this.gone;
    this.gone = null;
    const l = cluster.leader;
    if (!gone || !l || l.name !== gone.name || l.modRevision !== gone.modRevision || l.name === this.c.me)
      return cluster;
    const released = await this.c.d.dcs.deleteLeaderOf(gone.name, gone.modRevision).catch(() => false);
    if (!released) return cluster;
    this.c.log.warn(
      { event: 'leader_gone', leader: gone.name },
      `leader ${gone.name} is gone: ${gone.why}; released its leader key without waiting for its lease to expire`,
    );
    this.refusals = { key: '', count: 0 };
    return { ...cluster, leader: null };
  }
}

/**
 * Carries out a graceful switchover as switchover.ts plans it: candidate, wait for it to stream,
 * let the routers drain (drain.ts), checkpoint, fast stop, wait for it to hold our last WAL, then
 * release and follow — or abort.
 */
import { compactJson } from '../dcs/keys.js';
import type { ClusterState, DrainKey, Member } from '../dcs/types.js';
import type { RunnerContext } from './context.js';
import { startAs } from './actions.js';
import { drainStep } from './drain.js';
import { findMember, syncModeActive } from './rules.js';
import {
  afterStop,
  chooseCandidate,
  connectStep,
  shutdownWaitMs,
  SWITCHOVER_CONNECT_WAIT_MS,
} from './switchover.js';
import type { Decision, LocalPostgres } from './types.js';

type SwitchoverDecision = Extract<Decision, { kind: 'switchover' }>;

/** Whether `name` has a row in our pg_stat_replication in state `streaming`. */
async function isStreamingFromMe(c: RunnerContext, name: string): Promise<boolean> {
  const status = await c.d.pg.status().catch(() => null);
  return status?.replication.some((r) => r.application_name === name && r.state === 'streaming') ?? false;
}

async function waitForPeerWal(
  c: RunnerContext,
  member: Member,
  lsn: number,
  timeoutMs: number,
): Promise<boolean> {
  const until = c.clock.mono() + timeoutMs;
  while (c.clock.mono() < until) {
    const p = await c.d.fetchPeer(member, c.clock.timeout(1000)).catch(() => null);
    if (p && (p.walPosition ?? 0) > lsn) return true;
    await c.clock.sleep(50);
  }
  return false;
}

/**
 * Step 2b (drain.ts): asks the routers to drain our sessions and waits, without holding the loop,
 * until they have. Returns true once the switchover may stop PostgreSQL.
 */
async function routersDrained(
  c: RunnerContext,
  cluster: ClusterState,
  want: DrainKey,
  wait: { drainSince?: number },
): Promise<boolean> {
  const waitedMs = wait.drainSince === undefined ? 0 : c.clock.mono() - wait.drainSince;
  const step = drainStep({ routers: cluster.routers ?? [], current: cluster.drain ?? null, want, waitedMs });
  if (step.kind === 'proceed') {
    if (step.late.length > 0)
      c.log.warn(`switchover goes on without router(s) ${step.late.join(', ')}: ${step.why}`);
    else if ((cluster.routers ?? []).length > 0) c.log.info(`routers drained: ${step.why}`);
    return true;
  }
  if (step.kind === 'request') {
    const value = compactJson(want);
    const claim = await c.d.dcs.claimKey('drain', value).catch(() => null);
    if (claim === null) c.log.warn('could not write the drain request; trying again');
    // A request of ours left over from a switchover that did not happen: replace it.
    else if (!claim.held && claim.holder !== null && claim.holder !== value)
      await c.d.dcs.releaseKey('drain', claim.holder).catch(() => false);
  }
  wait.drainSince ??= c.clock.mono();
  c.clock.setTimer(() => c.wake(), 50);
  return false;
}

/** Removes this switchover's drain request: the routers then release what they still hold. */
async function endDrain(c: RunnerContext, want: DrainKey): Promise<void> {
  await c.d.dcs.releaseKey('drain', compactJson(want)).catch(() => undefined);
}

export async function switchover(
  c: RunnerContext,
  d: SwitchoverDecision,
  cluster: ClusterState,
  pg: LocalPostgres,
  leaseSent: number | null = null,
): Promise<void> {
  const peers = await c.fetchPeers(cluster, d.candidate);
  const choice = chooseCandidate({
    cluster,
    peers,
    requested: d.candidate,
    synchronous: syncModeActive(cluster, c.dynamic()),
  });
  if (!choice.ok) {
    await c.d.dcs.clearFailover();
    return c.say(d, `switchover cancelled: ${choice.why}`, 'warn');
  }
  const candidate = choice.candidate;
  const key = `${candidate.name}@${cluster.failover?.modRevision ?? ''}`;
  if (c.st.switchoverWait?.key !== key) c.st.switchoverWait = { key, since: c.clock.mono() };
  const step = connectStep(
    await isStreamingFromMe(c, candidate.name),
    c.clock.mono() - c.st.switchoverWait.since,
  );
  if (step === 'wait') {
    c.clock.setTimer(() => c.wake(), 100);
    return c.say(d, `waiting for ${candidate.name} to stream from this primary before stopping`);
  }
  const want: DrainKey = { id: key, from: c.me, to: candidate.name };
  if (step === 'proceed' && !(await routersDrained(c, cluster, want, c.st.switchoverWait))) {
    return c.say(d, `waiting for the routers to drain before stopping for ${candidate.name}`);
  }
  c.st.switchoverWait = null;
  if (step === 'cancel') {
    await c.d.dcs.clearFailover();
    return c.say(
      d,
      `switchover cancelled: candidate ${candidate.name} did not stream from this primary within ` +
        `${SWITCHOVER_CONNECT_WAIT_MS} ms (no pg_stat_replication row in state streaming), so it could ` +
        'not receive the shutdown checkpoint',
      'warn',
    );
  }
  const started = c.clock.mono();
  c.say(d, `switching over to ${candidate.name}: checkpoint, then fast stop`);
  await c.d.pg.checkpoint();
  // The lease is not renewed from here on: the wait below must end while it is still ours.
  // In maintenance mode no fence is armed; the last renewal bounds the wait all the same.
  const fenceAt =
    c.lease.deadline() ?? (leaseSent !== null ? c.lease.deadlineFrom(leaseSent) : c.clock.mono());
  c.lease.disarm();
  await c.during('stopping', () => c.stopFastOrImmediate());
  // Peers read GET /patroni during the race: it must not show the stopped primary as running.
  c.snapshot.running = false;
  c.snapshot.status = null;
  c.snapshot.role = 'demoted';
  const control = await c.d.pg.controlData();
  const target = control?.checkpointLsn ?? 0;
  const member = findMember(cluster, candidate.name);
  const waitMs = shutdownWaitMs(fenceAt, c.clock.mono());
  const caughtUp = member ? await waitForPeerWal(c, member, target, waitMs) : false;
  const keyStillOurs = caughtUp
    ? true
    : (await c.d.dcs.renewLeader(c.clock.timeout(c.dynamic().retry_timeout * 1000)).catch(() => null)) !==
      null;
  const next = afterStop({ candidateCaughtUp: caughtUp, keyStillOurs });
  if (next !== 'release_and_follow') {
    await c.d.dcs.clearFailover().catch(() => undefined);
    await endDrain(c, want);
    c.log.error(
      `switchover to ${candidate.name} aborted: it did not receive the shutdown checkpoint ${target} ` +
        `within ${waitMs} ms; ${next === 'restart_as_primary' ? 'restarting as primary' : 'the leader key is no longer ours, leaving PostgreSQL stopped'}`,
    );
    if (next === 'stay_stopped') return;
    const sent = await c.d.dcs
      .renewLeader(c.clock.timeout(c.dynamic().retry_timeout * 1000))
      .catch(() => null);
    await startAs(c, { role: 'primary' }, 'on_start');
    if (sent !== null) c.lease.arm(sent);
    return;
  }
  await c.d.dcs.deleteLeader();
  await endDrain(c, want);
  c.snapshot.isLeader = false;
  c.st.ledBefore = false;
  c.d.runCallback('on_role_change', 'replica');
  await startAs(c, { role: 'replica', cluster, upstream: candidate.name }, 'on_start');
  const ms = Math.round(c.clock.mono() - started);
  c.log.info(
    { event: 'switchover', from: c.me, to: candidate.name, duration_ms: ms, timeline: pg.status?.timeline },
    `switched over to ${candidate.name} in ${ms} ms; now its replica`,
  );
}

/**
 * Checks of a running cluster's set-up, as plain functions of what was read: the agent runs some
 * at start (etcd membership, an open REST API) and `pgha ctl doctor` runs them all. Each returns
 * the findings it makes: what is wrong, what it does to the cluster, and what to do.
 */
import type { RestApiConfig } from '../config/types.js';
import type { ClusterState, Member } from '../dcs/types.js';

export interface Finding {
  /** Short name of the check (`etcd-quorum`, `rest-open`, ...). */
  check: string;
  /** What is wrong and what it does to the cluster. */
  problem: string;
  /** What to do about it. */
  fix: string;
}

/** One line per finding, as the agent logs it and `pgha ctl doctor` prints it. */
export function formatFinding(f: Finding): string {
  return `${f.check}: ${f.problem}. Fix: ${f.fix}`;
}

/** An etcd member as `MemberList` reports it. */
export interface EtcdMemberRef {
  name: string;
  isLearner: boolean;
}

/** The number of voting members that must answer for etcd to work. */
export function etcdQuorum(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * etcd's membership: fewer than three voting members, or an even number, gives no margin or a
 * margin no better than one member fewer. `answering` (optional) is how many voters answered a
 * status request: fewer than a quorum, or exactly a quorum, is reported too.
 */
export function checkEtcdMembership(members: EtcdMemberRef[], answering?: number): Finding[] {
  const voters = members.filter((m) => !m.isLearner).length;
  const quorum = etcdQuorum(voters);
  const margin = voters - quorum;
  const names = members
    .filter((m) => !m.isLearner)
    .map((m) => m.name || '(unnamed)')
    .sort()
    .join(', ');
  const third =
    'add a third etcd member on another host (for example on the Bacula Director’s host, as docs/bacula.md shows)';
  const out: Finding[] = [];
  if (voters === 1)
    out.push({
      check: 'etcd-quorum',
      problem:
        `etcd has a single member (${names}): when it stops or its host is lost, no member can hold or ` +
        'renew the leader key, so the primary turns read-only after ttl and no replica can take over',
      fix: `${third}, and a second one so that any one of the three may be lost`,
    });
  else if (voters === 2)
    out.push({
      check: 'etcd-quorum',
      problem:
        `etcd has 2 members (${names}): a quorum is 2 of 2, so losing either one (a reboot of its host) ` +
        'stops etcd: the primary turns read-only after ttl and the replica cannot take the leader key; ' +
        'two members are less available than one',
      fix: third,
    });
  else if (voters > 2 && voters % 2 === 0)
    out.push({
      check: 'etcd-quorum',
      problem:
        `etcd has ${voters} members (${names}): a quorum is ${quorum}, so it survives the loss of ${margin} ` +
        `member${margin === 1 ? '' : 's'}, no more than ${voters - 1} members would, and has one more member that can fail`,
      fix: `run an odd number of etcd members: add one, or remove one (etcdctl member remove)`,
    });
  if (answering !== undefined && voters > 0 && answering < voters) {
    const down = voters - answering;
    if (answering < quorum)
      out.push({
        check: 'etcd-quorum',
        problem: `only ${answering} of ${voters} etcd members answer, fewer than a quorum of ${quorum}: etcd cannot write, the primary turns read-only after ttl`,
        fix: 'start the etcd members that are down (systemctl status etcd on their hosts)',
      });
    else if (answering === quorum)
      out.push({
        check: 'etcd-quorum',
        problem: `${down} of ${voters} etcd members do${down === 1 ? 'es' : ''} not answer: one more lost member stops etcd`,
        fix: 'start the etcd members that are down (systemctl status etcd on their hosts)',
      });
  }
  return out;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost|0:0:0:0:0:0:0:1)$/i;

/** True when a listen host is reachable only from this machine. */
export function isLoopbackListenHost(host: string): boolean {
  return LOOPBACK.test(host.replace(/^\[|\]$/g, ''));
}

/**
 * The REST API's writing endpoints (switchover, restart, reinitialize, config) open to anyone who
 * reaches the port: it listens beyond loopback with neither `authentication`, an `allowlist` nor
 * client certificates.
 */
export function checkRestAuthentication(restapi: RestApiConfig): Finding[] {
  const exposed = restapi.listen.hosts.filter((h) => !isLoopbackListenHost(h));
  if (exposed.length === 0) return [];
  if (restapi.authentication) return [];
  if ((restapi.allowlist?.length ?? 0) > 0 || restapi.allowlist_include_members) return [];
  if (restapi.certfile && restapi.cafile && restapi.verify_client && restapi.verify_client !== 'none')
    return [];
  const where = exposed.map((h) => (h === '' || h === '*' ? '0.0.0.0' : h)).join(', ');
  return [
    {
      check: 'rest-open',
      problem:
        `the REST API listens on ${where} port ${restapi.listen.port} without authentication or allowlist: ` +
        'anyone who reaches it can switch over, restart, rewrite the configuration or reinitialise a replica ' +
        '(which deletes its data directory)',
      fix: 'set restapi.authentication (username and password; pgha ctl uses them too) or restapi.allowlist, or listen on 127.0.0.1 only',
    },
  ];
}

/**
 * Replicas further behind the leader than `maximum_lag_on_failover` (bytes): none of them may
 * take over when the primary is lost. The leader's position is the `status` key's optime, else
 * the leader member's own.
 */
export function checkReplicaLag(cluster: ClusterState, maximumLagBytes: number): Finding[] {
  const leaderName = cluster.leader?.name;
  const leader = cluster.members.find((m) => m.name === leaderName);
  const head = cluster.status?.optime ?? leader?.data.xlog_location;
  if (typeof head !== 'number') return [];
  const out: Finding[] = [];
  for (const m of cluster.members) {
    if (m.name === leaderName) continue;
    const pos = replicaPosition(m);
    if (pos === undefined) continue;
    const lag = head - pos;
    if (lag > maximumLagBytes)
      out.push({
        check: 'replica-lag',
        problem: `replica ${m.name} is ${lag} bytes behind the leader, more than maximum_lag_on_failover (${maximumLagBytes}): it will not take over when the primary is lost`,
        fix: `see why it falls behind (pgha ctl list, its PostgreSQL log); raise maximum_lag_on_failover only if losing that much is acceptable`,
      });
  }
  return out;
}

function replicaPosition(m: Member): number | undefined {
  const d = m.data;
  const v = d.replay_lsn ?? d.receive_lsn ?? d.xlog_location;
  return typeof v === 'number' ? v : undefined;
}

/**
 * Replicas that the leader's REST API does not list among its streaming standbys (`replication`
 * of `GET /patroni`): they run, but receive no WAL, so they fall behind and hold no place in
 * synchronous replication.
 */
export function checkStreaming(
  cluster: ClusterState,
  leaderReplication: Array<{ application_name?: string; state?: string }> | null,
): Finding[] {
  if (!cluster.leader || leaderReplication === null) return [];
  const streaming = new Set(
    leaderReplication.filter((r) => r.state === 'streaming').map((r) => r.application_name),
  );
  return cluster.members
    .filter((m) => m.name !== cluster.leader!.name && m.data.state === 'running')
    .filter((m) => !streaming.has(m.name))
    .map((m) => ({
      check: 'not-streaming',
      problem: `replica ${m.name} runs but does not stream from the leader ${cluster.leader!.name} (no replication connection, or its slot is missing)`,
      fix: `read its PostgreSQL log for the reason; pgha ctl reinit <cluster> ${m.name} rebuilds it if it cannot catch up`,
    }));
}

/** A member's clock as seen from here: its `Date` header, corrected by half the round trip. */
export interface ClockSample {
  member: string;
  /** Member's time minus ours, in ms. */
  offsetMs: number;
  /** How precise the sample is (the header has whole seconds, plus half the round trip). */
  errorMs: number;
}

/** Clocks skewed across members by more than `limitMs` (beyond what the samples can tell). */
export function checkClockSkew(samples: ClockSample[], limitMs = 2000): Finding[] {
  if (samples.length < 2) return [];
  const lo = samples.reduce((a, b) => (b.offsetMs < a.offsetMs ? b : a));
  const hi = samples.reduce((a, b) => (b.offsetMs > a.offsetMs ? b : a));
  const skew = hi.offsetMs - lo.offsetMs - hi.errorMs - lo.errorMs;
  if (skew <= limitMs) return [];
  return [
    {
      check: 'clock-skew',
      problem: `the clocks of ${hi.member} and ${lo.member} differ by at least ${(skew / 1000).toFixed(1)} s: logs and the failover history no longer line up, and TLS certificates may look not yet valid or expired`,
      fix: 'run NTP on every host (systemctl enable --now systemd-timesyncd, or chrony)',
    },
  ];
}

/**
 * Debian's own start of a cluster pgha manages: `/etc/postgresql/<version>/<cluster>/start.conf`
 * saying `auto` makes postgresql.service start it at boot, outside the agent (two postmasters race
 * for the data directory, or a former primary comes up writable before the agent decides).
 */
export function checkDebianStartConf(dataDir: string, startConf: string | null): Finding[] {
  const m = /^\/var\/lib\/postgresql\/([^/]+)\/([^/]+)\/?$/.exec(dataDir);
  if (!m || startConf === null) return [];
  const mode = startConf
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .find((l) => l !== '');
  if (mode !== 'auto') return [];
  const [, version, name] = m;
  return [
    {
      check: 'debian-service',
      problem: `Debian starts the cluster ${version}/${name} itself at boot (start.conf says auto), outside pgha: a former primary can come up writable before the agent decides`,
      fix: `echo manual > /etc/postgresql/${version}/${name}/start.conf; systemctl disable postgresql@${version}-${name}`,
    },
  ];
}

/** The log directory the agent cannot write to (`writable` says whether it can, null: unknown). */
export function checkLogDir(dir: string | undefined, writable: boolean | null, why?: string): Finding[] {
  if (!dir || writable !== false) return [];
  return [
    {
      check: 'log-dir',
      problem: `the agent cannot write its log to ${dir}${why ? ` (${why})` : ''}: it refuses to start`,
      fix: `create ${dir} and give it to the agent's user (chown postgres: ${dir})`,
    },
  ];
}

/**
 * What a benchmark needs from a 3-node HA cluster, whichever agent runs it (real Patroni or pgha):
 * the nodes' ports, the cluster state from etcd, and the three actions the scenarios perform.
 */
import { readFileSync } from 'node:fs';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import { isStreamingMember, type ClusterState, type Member } from '../../src/dcs/types.js';
import { residentOf } from '../../src/util/startup-memory.js';
import { waitFor } from './util.js';

/** HA timings shared by both agents in one run (Patroni's dynamic `ttl`, `loop_wait`, `retry_timeout`). */
export interface HaTimings {
  ttl: number;
  loopWait: number;
  retryTimeout: number;
}

export interface BenchNode {
  name: string;
  pgPort: number;
  apiPort: number;
  dataDir: string;
  configPath: string;
  logPath: string;
}

export interface BenchCluster {
  /** Human-readable product name, e.g. "Patroni 3.0.2". */
  product: string;
  /** The directory holding the nodes' YAML, logs and data (removed by `stop`). */
  dir: string;
  nodes: BenchNode[];
  /** Superuser credentials (the writer logs in with them). */
  superuser: { username: string; password: string };
  /** Reads the cluster keys from etcd (both agents write Patroni's layout). */
  readState(): Promise<ClusterState>;
  /** Waits until a primary leads and every other node streams from it; returns the leader's name. */
  waitHealthy(timeoutMs: number): Promise<string>;
  /** Asks the cluster to switch over from `leader` to `candidate`; resolves once the request is made. */
  switchover(leader: string, candidate: string): Promise<string>;
  /** Kills the node's agent and its postmaster with SIGKILL, as a node crash would. */
  killNode(name: string): void;
  /** Resident memory of each running agent process, in MiB. */
  agentMemory(): AgentMemory[];
  /** Stops the agents (each stops its PostgreSQL), then etcd; removes the directories. */
  stop(): Promise<void>;
}

/** A leader that runs as primary, and `replicas` other members streaming. */
export function healthyLeader(state: ClusterState, replicas: number): string | null {
  const leader = state.leader?.name;
  if (!leader) return null;
  const lead = state.members.find((m) => m.name === leader);
  if (!lead || lead.data.state !== 'running' || !['primary', 'master'].includes(lead.data.role ?? '')) {
    return null;
  }
  const streaming = state.members.filter((m) => m.name !== leader && isStreaming(m));
  return streaming.length >= replicas ? leader : null;
}

/**
 * pgha and Patroni 4 publish a streaming replica as "running" with replication_state "streaming";
 * Patroni 3.0.2 publishes only "running".
 */
function isStreaming(m: Member): boolean {
  if (isStreamingMember(m.data)) return true;
  return (
    m.data.state === 'running' &&
    m.data.role === 'replica' &&
    (m.data.replication_state === undefined || m.data.replication_state === 'streaming')
  );
}

/** An etcd reader for the cluster at `prefix`, plus the generic wait-until-healthy. */
export function clusterReader(
  endpoints: string[],
  namespace: string,
  scope: string,
  replicas: number,
): { dcs: EtcdDcs; waitHealthy(timeoutMs: number): Promise<string> } {
  const dcs = new EtcdDcs({ hosts: endpoints, namespace, scope, name: 'pgha-bench', ttl: 10 });
  return {
    dcs,
    waitHealthy: (timeoutMs) =>
      waitFor(
        `a leader and ${replicas} streaming replicas`,
        async () => healthyLeader(await dcs.readCluster(), replicas),
        timeoutMs,
      ),
  };
}

/** One agent's resident memory in MiB: all of it, its own (anonymous) pages, pages of files. */
export interface AgentMemory {
  name: string;
  rss: number;
  anon: number;
  file: number;
}

/** The resident memory of a pid in MiB, or null when it is gone. */
export function memoryMb(name: string, pid: number | undefined): AgentMemory | null {
  const r = pid ? residentOf(pid) : null;
  return r ? { name, rss: r.rss / 1024, anon: r.anon / 1024, file: r.file / 1024 } : null;
}

/** The pid in a data directory's postmaster.pid, or null. */
export function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(`${dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Last `lines` lines of a log file, for error reports. */
export function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function isPostgres(pid: number): boolean {
  try {
    return /postgres|postmaster/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Stops any postmaster still running in `dataDirs` (the agents normally stop their own): SIGQUIT,
 * then SIGKILL after 5 s. Only pids read from those directories' postmaster.pid are signalled.
 */
export async function stopPostmasters(dataDirs: string[]): Promise<void> {
  const pids = dataDirs.map(postmasterPid).filter((p): p is number => p !== null && isPostgres(p));
  for (const pid of pids) signal(pid, 'SIGQUIT');
  const deadline = Date.now() + 5000;
  while (pids.some(isPostgres) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids.filter(isPostgres)) signal(pid, 'SIGKILL');
}

/** Sends a signal, tolerating a pid that is already gone. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

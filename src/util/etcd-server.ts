/**
 * Real etcd processes, for the demo and the integration tests: a single node or a 3-member
 * cluster on free loopback ports. Only processes started here are ever signalled, by their pid.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive, startProcess, stopProcess } from './process.js';
import { freePorts } from './net.js';

const ETCD_BIN = process.env.PGHA_TEST_ETCD ?? '/usr/bin/etcd';

export interface EtcdMember {
  name: string;
  clientPort: number;
  peerPort: number;
  /** `127.0.0.1:<clientPort>` */
  endpoint: string;
  dataDir: string;
  logFile: string;
  /** The running process, or null while the member is stopped. */
  process: ChildProcess | null;
}

export interface EtcdCluster {
  /** Client endpoints as `127.0.0.1:port`, one per member. */
  endpoints: string[];
  members: EtcdMember[];
  /** Stops member `i` (SIGTERM, then SIGKILL after a grace period). */
  stopMember(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts member `i` again on the same ports and data dir, and waits until it answers /health. */
  startMember(i: number): Promise<void>;
  /** Index of the member that currently leads the raft group, or -1 when none answers. */
  leaderIndex(): Promise<number>;
  /** Stops every member started here and removes the temporary directories. */
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  /** Number of members (default 1); an odd number in production, any number for tests. */
  members?: number;
  /** Parent directory for the data dirs; a fresh temporary directory by default. */
  dataDir?: string;
  /** Keep the members' data when stopping (only with `dataDir`), so a restart resumes. */
  keepData?: boolean;
  /** Client and peer port of each member, in pairs; free ports by default. */
  ports?: number[];
  /** Milliseconds allowed for the cluster to become healthy. */
  startTimeoutMs?: number;
  /** Member names, in order (default etcd0, etcd1, …). */
  names?: string[];
}

/** Every pid started here and still running, so a crashing test run does not leak etcd processes. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) {
      if (isAlive(child)) {
        try {
          child.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });
}

/** Starts etcd and waits until every member reports healthy. Call `stop()` in afterAll. */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdCluster> {
  installExitHook();
  const count = opts.members ?? 1;
  const baseDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'pgha-etcd-'));
  const ownsBaseDir = opts.dataDir === undefined;
  mkdirSync(baseDir, { recursive: true });
  const ports = opts.ports ?? (await freePorts(count * 2));
  const token = `pgha-test-${process.pid}-${Date.now()}`;

  const members: EtcdMember[] = [];
  for (let i = 0; i < count; i++) {
    const clientPort = ports[2 * i]!;
    const peerPort = ports[2 * i + 1]!;
    const name = opts.names?.[i] ?? `etcd${i}`;
    members.push({
      name,
      clientPort,
      peerPort,
      endpoint: `127.0.0.1:${clientPort}`,
      dataDir: join(baseDir, `${name}.data`),
      logFile: join(baseDir, `${name}.log`),
      process: null,
    });
  }
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  const logs: WriteStream[] = [];

  const launch = (m: EtcdMember): void => {
    // Short heartbeat and election timeouts so leader changes take well under a second.
    // etcd 3.4 has no --unsafe-no-fsync; the data dir lives on tmpfs or local disk, which is fast enough.
    const args = [
      '--name',
      m.name,
      '--data-dir',
      m.dataDir,
      '--listen-client-urls',
      `http://127.0.0.1:${m.clientPort}`,
      '--advertise-client-urls',
      `http://127.0.0.1:${m.clientPort}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${m.peerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${m.peerPort}`,
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-state',
      'new',
      '--initial-cluster-token',
      token,
      '--heartbeat-interval',
      '50',
      '--election-timeout',
      '500',
      '--logger',
      'zap',
      '--log-level',
      'warn',
    ];
    const child = startProcess(ETCD_BIN, args, { cwd: baseDir });
    const log = createWriteStream(m.logFile, { flags: 'a' });
    logs.push(log);
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    child.on('error', () => undefined);
    running.add(child);
    child.once('exit', () => running.delete(child));
    m.process = child;
  };

  const stopMember = async (i: number, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> => {
    const m = members[i];
    if (!m) throw new Error(`no etcd member ${i}`);
    const child = m.process;
    m.process = null;
    if (child) await stopProcess(child, signal, graceMs);
  };

  const stop = async (): Promise<void> => {
    // One at a time: a raft leader stopped together with its peers waits for a leadership
    // transfer that cannot happen, until SIGKILL.
    for (let i = members.length - 1; i >= 0; i--) await stopMember(i, 'SIGTERM', 2000);
    await Promise.all(logs.map((l) => new Promise<void>((r) => l.end(() => r()))));
    if (ownsBaseDir) rmSync(baseDir, { recursive: true, force: true });
    else if (!opts.keepData) for (const m of members) rmSync(m.dataDir, { recursive: true, force: true });
  };

  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  try {
    for (const m of members) launch(m);
    await Promise.all(members.map((m) => waitHealthy(m, timeoutMs)));
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    endpoints: members.map((m) => m.endpoint),
    members,
    stopMember,
    async startMember(i: number) {
      const m = members[i];
      if (!m) throw new Error(`no etcd member ${i}`);
      if (m.process && isAlive(m.process)) return;
      launch(m);
      await waitHealthy(m, timeoutMs);
    },
    async leaderIndex() {
      for (let i = 0; i < members.length; i++) {
        const m = members[i]!;
        if (!m.process) continue;
        const status = await fetchJson(`http://${m.endpoint}/v3/maintenance/status`, 'POST');
        if (status && typeof status === 'object') {
          const s = status as { header?: { member_id?: string }; leader?: string };
          if (s.leader !== undefined && s.leader === s.header?.member_id) return i;
        }
      }
      return -1;
    },
    stop,
  };
}

async function fetchJson(url: string, method: 'GET' | 'POST' = 'GET'): Promise<unknown> {
  try {
    const res = await fetch(url, {
      method,
      body: method === 'POST' ? '{}' : undefined,
      signal: AbortSignal.timeout(1000),
    });
    if (!res.ok) return null;
    return await res.json();
  } catch {
    return null;
  }
}

async function waitHealthy(m: EtcdMember, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const child = m.process;
    if (!child || !isAlive(child)) {
      throw new Error(`etcd member ${m.name} exited during start-up; log ${m.logFile}:\n${tail(m.logFile)}`);
    }
    const health = (await fetchJson(`http://${m.endpoint}/health`)) as { health?: string } | null;
    if (health?.health === 'true') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `etcd member ${m.name} not healthy after ${timeoutMs} ms; log ${m.logFile}:\n${tail(m.logFile)}`,
  );
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * etcd as `bench:soak` sees and shakes it, through Debian's `etcdctl` (v3 API): who leads the raft
 * group (`endpoint status -w json`) and a leadership transfer (`move-leader`).
 */
import { run } from '../../src/util/process.js';

const ETCDCTL = process.env.PGHA_TEST_ETCDCTL ?? '/usr/bin/etcdctl';
const ENV = { ...process.env, ETCDCTL_API: '3' };

/** One answering member, as `etcdctl endpoint status` reports it. */
export interface EtcdEndpointStatus {
  endpoint: string;
  /** Decimal member id (64-bit, kept as a string). */
  memberId: string;
  /** Decimal id of the leader this member knows, '0' during an election. */
  leader: string;
  raftTerm: number;
}

/** The whole raft group as seen in one `etcdctl endpoint status` call. */
export interface EtcdView {
  statuses: EtcdEndpointStatus[];
  /** The leader the answering member with the highest term knows; null when none is known. */
  leader: string | null;
  /** Endpoint of the member that reports itself as leader, when one answered. */
  leaderEndpoint: string | null;
  /** Highest raft term among the answering members; 0 when none answered. */
  term: number;
  /** etcdctl's complaints about members that did not answer (a stopped member). */
  errors: string;
}

interface RawStatus {
  Endpoint?: string;
  Status?: {
    header?: { member_id?: string | number; raft_term?: string | number };
    leader?: string | number;
  };
}

/** Runs `etcdctl endpoint status -w json` against every endpoint; never throws. */
export async function etcdStatus(endpoints: string[]): Promise<EtcdView> {
  let stdout = '';
  let errors: string;
  try {
    const r = await run(
      ETCDCTL,
      [
        `--endpoints=${endpoints.join(',')}`,
        '--dial-timeout=1s',
        '--command-timeout=2s',
        'endpoint',
        'status',
        '-w',
        'json',
      ],
      { env: ENV, timeoutMs: 5000 },
    );
    stdout = r.stdout;
    errors = r.stderr.trim();
  } catch (e) {
    errors = e instanceof Error ? e.message : String(e);
  }
  return parseStatus(stdout, errors);
}

/** Parses etcdctl's JSON; member ids are 64-bit, so long numbers are read as strings. */
export function parseStatus(stdout: string, errors = ''): EtcdView {
  const view: EtcdView = { statuses: [], leader: null, leaderEndpoint: null, term: 0, errors };
  const text = stdout.trim();
  if (!text.startsWith('[')) return view;
  let raw: RawStatus[];
  try {
    raw = JSON.parse(text.replace(/:\s*(\d{10,})/g, ':"$1"')) as RawStatus[];
  } catch {
    view.errors = `${errors}\nunparsable etcdctl output: ${text.slice(0, 200)}`.trim();
    return view;
  }
  for (const r of raw) {
    const s = r.Status;
    if (!r.Endpoint || !s?.header) continue;
    view.statuses.push({
      endpoint: r.Endpoint.replace(/^[a-z]+:\/\//i, ''),
      memberId: String(s.header.member_id ?? '0'),
      leader: String(s.leader ?? '0'),
      raftTerm: Number(s.header.raft_term ?? 0),
    });
  }
  let best: EtcdEndpointStatus | null = null;
  for (const s of view.statuses) {
    if (s.leader !== '0' && (!best || s.raftTerm > best.raftTerm)) best = s;
    view.term = Math.max(view.term, s.raftTerm);
  }
  if (best) {
    view.leader = best.leader;
    view.leaderEndpoint = view.statuses.find((s) => s.memberId === best.leader)?.endpoint ?? null;
  }
  return view;
}

/** Transfers raft leadership to `targetId` (decimal); throws with etcdctl's words when refused. */
export async function moveLeader(leaderEndpoint: string, targetId: string): Promise<void> {
  const hex = BigInt(targetId).toString(16);
  const r = await run(
    ETCDCTL,
    [`--endpoints=${leaderEndpoint}`, '--dial-timeout=2s', '--command-timeout=10s', 'move-leader', hex],
    { env: ENV, timeoutMs: 15_000 },
  );
  if (r.code !== 0)
    throw new Error(`etcdctl move-leader ${hex} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
}

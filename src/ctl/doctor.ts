/**
 * `pgha ctl doctor`: runs every set-up check of src/doctor/checks.ts on a live cluster and prints
 * one line per finding, with what to do. Cluster-wide checks read etcd and the members' REST API;
 * local ones (REST authentication, Debian's own start of the cluster, the log directory) read the
 * configuration file given with `-c` and this host. Exit status 1 when anything was found.
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { parseDynamicConfig } from '../config/schema.js';
import type { PghaConfig } from '../config/types.js';
import { EtcdDcs } from '../dcs/etcd.js';
import type { ClusterState } from '../dcs/types.js';
import {
  checkClockSkew,
  checkDebianStartConf,
  checkEtcdMembership,
  checkLogDir,
  checkReplicaLag,
  checkRestAuthentication,
  checkStreaming,
  formatFinding,
  type ClockSample,
  type Finding,
} from '../doctor/checks.js';
import { errorMessage, PghaError } from '../util/errors.js';
import { withContext } from './command.js';
import type { CtlContext } from './context.js';

const API_TIMEOUT_MS = 5000;
const ETCD_STATUS_TIMEOUT_MS = 2000;

export function registerDoctor(ctl: Command): void {
  ctl
    .command('doctor')
    .description(
      'Check a running cluster for set-up problems: etcd quorum margin, replicas not streaming or lagging ' +
        'beyond maximum_lag_on_failover, skewed clocks, and on this host an open REST API, Debian starting ' +
        'the cluster itself, an unwritable log directory. One line per finding; exit status 1 when any',
    )
    .argument('[cluster_name]', 'Name of the cluster (scope; default: from the configuration)')
    .action(async (scope: string | undefined, _o: unknown, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const findings = await runDoctor(ctx, ctx.scope(scope));
        for (const f of findings) console.log(formatFinding(f));
        if (findings.length === 0) console.log('nothing to fix');
        else process.exitCode = 1;
      });
    });
}

/** Every check, cluster-wide then local. */
export async function runDoctor(ctx: CtlContext, scope: string): Promise<Finding[]> {
  const dcs = ctx.dcs(scope);
  if (!(dcs instanceof EtcdDcs)) throw new PghaError('PGHA_NO_ETCD', 'pgha ctl doctor needs etcd');
  const out: Finding[] = [];
  out.push(...(await etcdFindings(dcs)));
  const cluster = await dcs.readCluster();
  out.push(...(await memberFindings(ctx, cluster)));
  if (ctx.config.source) out.push(...localFindings(ctx.config));
  return out;
}

/** etcd's membership and which members answer (quorum margin). */
export async function etcdFindings(dcs: EtcdDcs): Promise<Finding[]> {
  let members;
  try {
    members = await dcs.memberList();
  } catch (err) {
    return [
      {
        check: 'etcd',
        problem: `cannot list the etcd members: ${errorMessage(err)}`,
        fix: 'check etcd.hosts in the configuration and that etcd runs (etcdctl endpoint health)',
      },
    ];
  }
  const voters = members.filter((m) => !m.isLearner);
  const answers = await Promise.all(
    voters.map(async (m) => {
      const url = m.clientUrls[0];
      if (!url) return false;
      const endpoint = url.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
      try {
        await dcs.memberStatus(endpoint, AbortSignal.timeout(ETCD_STATUS_TIMEOUT_MS));
        return true;
      } catch {
        return false;
      }
    }),
  );
  return checkEtcdMembership(members, answers.filter(Boolean).length);
}

async function memberFindings(ctx: CtlContext, cluster: ClusterState): Promise<Finding[]> {
  const out: Finding[] = [];
  if (cluster.members.length === 0)
    return [
      {
        check: 'members',
        problem: `no member of cluster is registered in etcd`,
        fix: 'start the agents (systemctl start pgha-agent@<name>), and check scope and namespace',
      },
    ];
  if (!cluster.leader)
    out.push({
      check: 'leader',
      problem: 'no member holds the leader key: the cluster takes no writes',
      fix: 'pgha ctl list shows the members; their agent logs say why none takes over',
    });
  const dyn = parseDynamicConfig(cluster.config?.value ?? {}).config;
  out.push(...checkReplicaLag(cluster, dyn.maximum_lag_on_failover));

  const samples: ClockSample[] = [];
  let leaderReplication: Array<{ application_name?: string; state?: string }> | null = null;
  await Promise.all(
    cluster.members.map(async (m) => {
      if (!m.data.api_url) return;
      const t0 = Date.now();
      try {
        const r = await ctx.api(m, 'GET', 'patroni', undefined, API_TIMEOUT_MS);
        const t1 = Date.now();
        const date = r.date ? Date.parse(r.date) : NaN;
        // The header has whole seconds: the member's time lies in [date, date + 1 s).
        if (Number.isFinite(date))
          samples.push({
            member: m.name,
            offsetMs: date + 500 - (t0 + t1) / 2,
            errorMs: 500 + (t1 - t0) / 2,
          });
        if (m.name === cluster.leader?.name && r.status === 200) {
          const body = JSON.parse(r.text) as {
            replication?: Array<{ application_name?: string; state?: string }>;
          };
          leaderReplication = body.replication ?? [];
        }
      } catch (err) {
        out.push({
          check: 'rest-api',
          problem: `the REST API of ${m.name} does not answer: ${errorMessage(err)}`,
          fix: `check that its agent runs and that port is reachable from here (${m.data.api_url})`,
        });
      }
    }),
  );
  out.push(...checkStreaming(cluster, leaderReplication));
  out.push(...checkClockSkew(samples));
  return out;
}

/** Checks of this host and the configuration file given with `-c`. */
function localFindings(config: PghaConfig): Finding[] {
  const out = [...checkRestAuthentication(config.restapi)];
  const dataDir = config.postgresql.data_dir;
  const m = /^\/var\/lib\/postgresql\/([^/]+)\/([^/]+)\/?$/.exec(dataDir);
  if (m) {
    const startConf = join('/etc/postgresql', m[1]!, m[2]!, 'start.conf');
    out.push(
      ...checkDebianStartConf(dataDir, existsSync(startConf) ? readFileSync(startConf, 'utf8') : null),
    );
  }
  const dir = config.log.dir;
  if (dir) {
    const agentUid = ownerOf(dataDir) ?? process.getuid?.() ?? 0;
    const w = writableBy(existsSync(dir) ? dir : dirname(dir), agentUid);
    out.push(...checkLogDir(dir, w.writable, w.why));
  }
  return out;
}

function ownerOf(path: string): number | null {
  try {
    return statSync(path).uid;
  } catch {
    return null;
  }
}

/**
 * Whether the agent's user (the owner of the data directory, as the packaged service runs it) may
 * write in `dir`: from the mode bits when we run as someone else, else by trying.
 */
function writableBy(dir: string, uid: number): { writable: boolean | null; why?: string } {
  try {
    if (uid === 0) return { writable: true };
    if (uid === process.getuid?.()) {
      accessSync(dir, constants.W_OK);
      return { writable: true };
    }
    const st = statSync(dir);
    if (st.uid === uid)
      return st.mode & 0o200 ? { writable: true } : { writable: false, why: 'owner may not write' };
    if (st.mode & 0o002) return { writable: true };
    // Group membership is not known from here: say nothing rather than guess.
    if (st.mode & 0o020) return { writable: null };
    return { writable: false, why: `owned by uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}` };
  } catch (err) {
    return { writable: false, why: errorMessage(err) };
  }
}

/**
 * `pause` and `resume`: maintenance mode, set by PATCHing `{"pause": true}` (or `null`) into the
 * dynamic configuration through the REST API, the leader first, as patronictl's `toggle_pause`.
 */
import type { Command } from 'commander';
import type { ClusterState, Dcs } from '../dcs/types.js';
import { PghaError } from '../util/errors.js';
import { ApiUnreachableError } from './api.js';
import { sleep, withContext } from './command.js';
import type { CtlContext } from './context.js';
import { isPaused } from './members.js';
import { membersLeaderFirst } from './select.js';

/**
 * `--wait`: polls until every member that had an API when the request was sent publishes the new
 * pause state, for up to loop_wait + 1 seconds (Patroni's `wait_until_pause_is_applied`).
 */
async function waitUntilApplied(dcs: Dcs, paused: boolean, old: ClusterState): Promise<void> {
  console.log(`'${paused ? 'pause' : 'resume'}' request sent, waiting until it is recognized by all nodes`);
  const before = new Map(old.members.filter((m) => m.data.api_url).map((m) => [m.name, m.modRevision]));
  const loopWait = Number(old.config?.value.loop_wait ?? 10);
  const deadline = Date.now() + (loopWait + 1) * 1000;
  for (;;) {
    const cluster = await dcs.readCluster();
    const pending = cluster.members.filter((m) => before.has(m.name) && (m.data.pause === true) !== paused);
    if (pending.length === 0) break;
    if (Date.now() >= deadline) {
      const remaining = pending.filter((m) => before.get(m.name) !== m.modRevision).map((m) => m.name);
      if (remaining.length > 0)
        throw new PghaError(
          'PGHA_PAUSE_NOT_APPLIED',
          `${remaining.join(', ')} members didn't recognized pause state after ${loopWait} seconds`,
        );
      break;
    }
    await sleep(1000);
  }
  console.log(`Success: cluster management is ${paused ? 'paused' : 'resumed'}`);
}

async function togglePause(ctx: CtlContext, scopeArg: string | undefined, paused: boolean, wait: boolean) {
  const scope = ctx.scope(scopeArg);
  const dcs = ctx.dcs(scope);
  const cluster = await dcs.readCluster();
  if (isPaused(cluster) === paused)
    throw new PghaError('PGHA_PAUSE_STATE', `Cluster is ${paused ? 'already' : 'not'} paused`);
  const unreachable: string[] = [];
  for (const m of membersLeaderFirst(cluster)) {
    let r;
    try {
      r = await ctx.api(m, 'PATCH', 'config', { pause: paused || null }, 30_000);
    } catch (err) {
      if (!(err instanceof ApiUnreachableError)) throw err;
      console.error(`${err.message}; member ${m.name} is not accessible`);
      unreachable.push(m.name);
      continue;
    }
    if (r.status !== 200)
      throw new PghaError(
        'PGHA_PAUSE_FAILED',
        `Failed: ${paused ? 'pause' : 'resume'} cluster management status code=${r.status}, (${r.text})`,
      );
    if (wait) await waitUntilApplied(dcs, paused, cluster);
    else console.log(`Success: cluster management is ${paused ? 'paused' : 'resumed'}`);
    return;
  }
  throw new PghaError(
    'PGHA_NO_ACCESSIBLE_MEMBER',
    `Can not find accessible cluster member of ${scope}` +
      (unreachable.length ? ` (tried ${unreachable.join(', ')})` : ' (no member publishes an api_url)'),
  );
}

/** Registers `pause` and `resume`. */
export function registerPause(ctl: Command): void {
  for (const [name, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    ctl
      .command(name)
      .description(paused ? 'Disable auto failover' : 'Resume auto failover')
      .argument('[cluster_name]', 'Name of the cluster (scope; default: from the configuration)')
      .option('--wait', `Wait until pause is ${paused ? 'applied' : 'cleared'} on all nodes`)
      .action(async (scope: string | undefined, o: { wait?: boolean }, cmd: Command) => {
        await withContext(cmd, (ctx) => togglePause(ctx, scope, paused, Boolean(o.wait)));
      });
  }
}

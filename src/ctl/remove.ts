/**
 * `remove`: deletes every key of a cluster from etcd after the same three questions patronictl
 * asks (the cluster name, "Yes I am aware", and the leader's name when there is a leader).
 * Answers come from the terminal or from piped input; with neither it refuses.
 */
import type { Command } from 'commander';
import { PghaError } from '../util/errors.js';
import { parseFormat, withContext } from './command.js';
import { renderMembers } from './members.js';

const AWARE = 'Yes I am aware';

/** Registers `remove`. */
export function registerRemove(ctl: Command): void {
  ctl
    .command('remove')
    .description('Remove cluster from DCS')
    .argument('<cluster_name>', 'Name of the cluster (scope)')
    .option('-f, --format <fmt>', 'Output format (pretty, tsv, json, yaml)', 'pretty')
    .action(async (scope: string, o: { format: string }, cmd: Command) => {
      const fmt = parseFormat(o.format);
      await withContext(cmd, async (ctx) => {
        const dcs = ctx.dcs(scope);
        const cluster = await dcs.readCluster();
        console.log(renderMembers(scope, cluster, fmt));
        const name = await ctx.prompter.prompt('Please confirm the cluster name to remove');
        if (name !== scope)
          throw new PghaError(
            'PGHA_ABORTED',
            `Cluster names specified do not match: typed "${name}", the cluster is "${scope}"; nothing was removed`,
          );
        const aware = await ctx.prompter.prompt(
          `You are about to remove all information in DCS for ${scope}, please type: "${AWARE}"`,
        );
        if (aware !== AWARE)
          throw new PghaError('PGHA_ABORTED', `You did not exactly type "${AWARE}"; nothing was removed`);
        if (cluster.leader?.name) {
          const leader = await ctx.prompter.prompt(
            'This cluster currently is healthy. Please specify the leader name to continue',
          );
          if (leader !== cluster.leader.name)
            throw new PghaError(
              'PGHA_ABORTED',
              'You did not specify the current leader of the cluster; nothing was removed',
            );
        }
        await dcs.deleteCluster();
      });
    });
}

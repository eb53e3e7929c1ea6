/**
 * `pgha ctl`: patronictl's commands. Each subcommand opens the store through `ctlContext` and
 * closes it afterwards; failures are `PghaError`s with one clear line.
 */
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { PghaError } from '../util/errors.js';
import { ctlContext, type CtlContext, type GlobalOptions } from './context.js';
import { renderMembers } from './members.js';
import { formatOutput, type OutputFormat } from './table.js';
import { confirm, memberApiRequest } from './util.js';

const FORMATS = ['pretty', 'tsv', 'json', 'yaml', 'yml'];

function parseFormat(v: string): OutputFormat {
  if (!FORMATS.includes(v))
    throw new PghaError('PGHA_BAD_FORMAT', `--format: expected one of ${FORMATS.join(', ')}, got "${v}"`);
  return (v === 'yml' ? 'yaml' : v) as OutputFormat;
}

async function withContext<T>(cmd: Command, fn: (ctx: CtlContext) => Promise<T>): Promise<T> {
  const ctx = ctlContext(cmd.optsWithGlobals<GlobalOptions>());
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function registerCtl(program: Command): void {
  const ctl = program
    .command('ctl')
    .description('manage a cluster, as patronictl does (same commands, flags and output)')
    .option('-c, --config-file <file>', 'configuration file (patroni.yml or patronictl.yaml)')
    .option('-d, --dcs-url <url>', 'etcd to use, e.g. etcd3://127.0.0.1:2379 (overrides the config file)')
    .option('-k, --insecure', 'allow connections to the REST API without verifying certificates');

  for (const name of ['list', 'topology']) {
    ctl
      .command(name)
      .description(
        name === 'list' ? 'list the members of a cluster' : 'print the members as a replication tree',
      )
      .argument('[cluster_names...]', 'clusters to show (default: scope from the configuration)')
      .option('-e, --extended', 'show pending restart, scheduled restart and tags columns')
      .option('-t, --timestamp', 'print a timestamp before the table')
      .option('-f, --format <fmt>', 'pretty, tsv, json or yaml', 'pretty')
      .option('-W', 'refresh every 2 seconds until interrupted')
      .option('-w, --watch <seconds>', 'refresh every N seconds until interrupted')
      .action(
        async (
          names: string[],
          opts: { extended?: boolean; timestamp?: boolean; format: string; W?: boolean; watch?: string },
          cmd: Command,
        ) => {
          const fmt = name === 'topology' ? 'topology' : parseFormat(opts.format);
          const every = opts.watch ? Number(opts.watch) : opts.W ? 2 : 0;
          await withContext(cmd, async (ctx) => {
            const scopes = names.length > 0 ? names : [ctx.config.scope];
            for (;;) {
              const out: string[] = [];
              if (opts.timestamp) out.push(new Date().toISOString().replace('T', ' ').slice(0, 19));
              for (const scope of scopes) {
                const cluster = await ctx.dcs(scope).readCluster();
                out.push(renderMembers(scope, cluster, fmt, opts.extended));
              }
              if (every > 0) process.stdout.write('\x1b[2J\x1b[H');
              console.log(out.join('\n'));
              if (every <= 0) return;
              await sleep(every * 1000);
            }
          });
        },
      );
  }

  ctl
    .command('history')
    .description('show the failover history of a cluster')
    .argument('[cluster_name]')
    .option('-f, --format <fmt>', 'pretty, tsv, json or yaml', 'pretty')
    .action(async (scope: string | undefined, opts: { format: string }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const cluster = await ctx.dcs(scope).readCluster();
        const rows = cluster.history.map((h) => [h[0], h[1], h[2], h[3] ?? '', h[4] ?? '']);
        console.log(
          formatOutput(['TL', 'LSN', 'Reason', 'Timestamp', 'New Leader'], rows, parseFormat(opts.format), {
            align: { TL: 'r', LSN: 'r' },
          }),
        );
      });
    });

  ctl
    .command('show-config')
    .description('show the dynamic configuration stored in etcd')
    .argument('[cluster_name]')
    .action(async (scope: string | undefined, _opts: unknown, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const cluster = await ctx.dcs(scope).readCluster();
        if (!cluster.config)
          throw new PghaError(
            'PGHA_NO_CONFIG',
            `cluster ${scope ?? ctx.config.scope} has no dynamic configuration in etcd (is it initialised?)`,
          );
        process.stdout.write(stringify(cluster.config.value));
      });
    });

  ctl
    .command('reinit')
    .description("replace a replica's data with a fresh copy of the leader")
    .argument('<cluster_name>')
    .argument('[members...]')
    .option('--force', 'do not ask for confirmation')
    .option('--wait', 'wait until the reinitialisation finishes')
    .action(
      async (scope: string, members: string[], opts: { force?: boolean; wait?: boolean }, cmd: Command) => {
        await withContext(cmd, async (ctx) => {
          const dcs = ctx.dcs(scope);
          const cluster = await dcs.readCluster();
          if (members.length === 0)
            throw new PghaError('PGHA_NO_MEMBER', `name the member(s) of ${scope} to reinitialise`);
          for (const name of members) {
            const m = cluster.members.find((x) => x.name === name);
            if (!m)
              throw new PghaError(
                'PGHA_NO_MEMBER',
                `${name} is not a member of cluster ${scope} (members: ${cluster.members.map((x) => x.name).join(', ') || 'none'})`,
              );
            if (cluster.leader?.name === name)
              throw new PghaError(
                'PGHA_REINIT_LEADER',
                `${name} is the leader of ${scope}; reinitialising the leader is not allowed (switch over first)`,
              );
          }
          if (
            !opts.force &&
            !(await confirm(`Are you sure you want to reinitialize members ${members.join(', ')}?`))
          ) {
            throw new PghaError('PGHA_ABORTED', 'aborted');
          }
          for (const name of members) {
            const m = cluster.members.find((x) => x.name === name)!;
            const res = await memberApiRequest(ctx, m, 'POST', '/reinitialize', { force: true });
            console.log(
              res.ok
                ? `Success: reinitialize for member ${name}`
                : `Failed: reinitialize for member ${name}, status code=${res.status}, (${res.text})`,
            );
            if (!res.ok) process.exitCode = 1;
          }
          if (opts.wait) {
            for (const name of members) {
              for (let i = 0; i < 600; i++) {
                const c = await dcs.readCluster();
                const m = c.members.find((x) => x.name === name);
                if (m && (m.data.state === 'running' || m.data.state === 'streaming')) break;
                await sleep(1000);
              }
            }
          }
        });
      },
    );

  ctl
    .command('version')
    .description('print the version of pgha and of each member')
    .argument('[cluster_name]')
    .action(async (scope: string | undefined, _o: unknown, cmd: Command) => {
      const { VERSION } = await import('../version.js');
      console.log(`pgha ctl version ${VERSION}`);
      if (!scope) return;
      await withContext(cmd, async (ctx) => {
        const cluster = await ctx.dcs(scope).readCluster();
        for (const m of cluster.members)
          console.log(`${m.name}: pgha ${String(m.data.version ?? 'unknown')}`);
      });
    });
}

/** `list`, `topology`, `history` and `version`: read-only views, as patronictl prints them. */
import type { Command } from 'commander';
import { EtcdDcs } from '../dcs/etcd.js';
import type { Dcs } from '../dcs/types.js';
import { formatFinding } from '../doctor/checks.js';
import { VERSION } from '../version.js';
import { etcdFindings } from './doctor.js';
import { errorMessage } from '../util/errors.js';
import { parseFormat, sleep, watchEvery, withContext } from './command.js';
import { renderMembers } from './members.js';
import { allMembers } from './select.js';
import { formatOutput, timestamp, type Cell, type OutputFormat } from './table.js';

/** PostgreSQL's integer server_version as text (`150004` → `15.4`), as patronictl's `format_pg_version`. */
export function formatPgVersion(v: number): string {
  if (v < 100000) return `${Math.trunc(v / 10000)}.${Math.trunc(v / 100) % 100}.${v % 100}`;
  return `${Math.trunc(v / 10000)}.${v % 100}`;
}

/** Clears a terminal like click.clear() (nothing when the output is not a terminal). */
function clear(): void {
  if (process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[1;1H');
}

/**
 * After the table, on stderr (the table on stdout stays as patronictl prints it): what etcd's
 * membership does to the cluster when a member is lost, as the agent warns at start (one line per
 * finding, with the fix). Said once per command, also when watching.
 */
async function warnEtcdQuorum(dcs: Dcs): Promise<void> {
  if (!(dcs instanceof EtcdDcs)) return;
  for (const f of await etcdFindings(dcs)) console.error(`${timestamp()} - WARNING - ${formatFinding(f)}`);
}

/** Registers `list`, `topology`, `history` and `version`. */
export function registerViews(ctl: Command): void {
  for (const name of ['list', 'topology'] as const) {
    const c = ctl
      .command(name)
      .description(
        name === 'list'
          ? 'List the Patroni members for a given Patroni'
          : 'Prints ASCII topology for given cluster',
      )
      .argument('[cluster_names...]');
    if (name === 'list')
      c.option('-e, --extended', 'Show some extra information')
        .option('-t, --timestamp', 'Print timestamp')
        .option('-f, --format <fmt>', 'Output format (pretty, tsv, json, yaml)', 'pretty');
    c.option('-W', 'Auto update the screen every 2 seconds')
      .option('-w, --watch <seconds>', 'Auto update the screen every X seconds')
      .action(
        async (
          names: string[],
          o: { extended?: boolean; timestamp?: boolean; format?: string; W?: boolean; watch?: string },
          cmd: Command,
        ) => {
          const fmt: OutputFormat = name === 'topology' ? 'topology' : parseFormat(o.format ?? 'pretty');
          const every = watchEvery(o);
          await withContext(cmd, async (ctx) => {
            const scopes = names.length > 0 ? names : ctx.config.scope ? [ctx.config.scope] : [];
            if (scopes.length === 0) {
              console.error(`${timestamp()} - WARNING - Listing members: No cluster names were provided`);
              return;
            }
            let warned = false;
            for (;;) {
              const out: string[] = [];
              if (o.timestamp) out.push(timestamp(0));
              for (const scope of scopes)
                out.push(renderMembers(scope, await ctx.dcs(scope).readCluster(), fmt, o.extended));
              if (every > 0) clear();
              console.log(out.join('\n'));
              if (!warned) await warnEtcdQuorum(ctx.dcs(scopes[0]));
              warned = true;
              if (every <= 0) return;
              await sleep(every * 1000);
            }
          });
        },
      );
  }

  ctl
    .command('history')
    .description('Show the history of failovers/switchovers')
    .argument('[cluster_name]', 'Name of the cluster (scope; default: from the configuration)')
    .option('-f, --format <fmt>', 'Output format (pretty, tsv, json, yaml)', 'pretty')
    .action(async (scope: string | undefined, o: { format: string }, cmd: Command) => {
      const fmt = parseFormat(o.format);
      await withContext(cmd, async (ctx) => {
        const cluster = await ctx.dcs(ctx.scope(scope)).readCluster();
        const rows: Cell[][] = cluster.history.map((h) => {
          const line: Cell[] = [...h];
          while (line.length < 5) line.push('');
          return line;
        });
        console.log(
          formatOutput(['TL', 'LSN', 'Reason', 'Timestamp', 'New Leader'], rows, fmt, {
            align: { TL: 'r', LSN: 'r' },
          }),
        );
      });
    });

  ctl
    .command('version')
    .description('Output version of pgha ctl or of the running members')
    .argument('[cluster_name]', 'Name of the cluster (scope; default: from the configuration)')
    .argument('[member_names...]', 'Names of the members (default: every member)')
    .action(async (scope: string | undefined, members: string[], _o: unknown, cmd: Command) => {
      console.log(`pgha ctl version ${VERSION}`);
      if (!scope) return;
      console.log('');
      await withContext(cmd, async (ctx) => {
        const cluster = await ctx.dcs(scope).readCluster();
        for (const m of allMembers(cluster, 'any')) {
          if (!m.data.api_url || (members.length > 0 && !members.includes(m.name))) continue;
          try {
            const r = await ctx.api(m, 'GET', 'patroni', undefined, 10_000);
            const data = JSON.parse(r.text) as { patroni?: { version?: string }; server_version?: number };
            const pg = data.server_version ? ` PostgreSQL ${formatPgVersion(data.server_version)}` : '';
            console.log(`${m.name}: Patroni ${data.patroni?.version ?? 'None'}${pg}`);
          } catch (err) {
            console.log(`${m.name}: failed to get version: ${errorMessage(err)}`);
          }
        }
      });
    });
}

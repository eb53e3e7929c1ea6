/**
 * `restart`, `reload`, `reinit` and `flush`: per-member requests to the REST API, with the
 * members chosen, confirmed and reported on as patronictl does.
 */
import { Option, type Command } from 'commander';
import { PghaError, UsageError } from '../util/errors.js';
import { ApiUnreachableError } from './api.js';
import { failIfAny, sleep, withContext } from './command.js';
import { isPaused } from './members.js';
import { nextHour, parseScheduled } from './schedule.js';
import {
  confirmMembersAction,
  membersLeaderFirst,
  parseRole,
  ROLES,
  selectMembers,
  type Role,
} from './select.js';
import { pyStr, timestamp, type Cell } from './table.js';

const pyStrCell = (v: unknown) => pyStr(v as Cell);

/** Patroni's `postgres_version_to_int`: X.Y (10 and later) or X.Y.Z. */
export function postgresVersionToInt(v: string): number {
  const parts = v.split('.');
  if (parts.some((p) => !/^\s*[+-]?\d+\s*$/.test(p)))
    throw new PghaError('PGHA_BAD_VERSION', `Invalid PostgreSQL version: ${v}`);
  const c = parts.map(Number);
  if (c.length < 2 || (c.length === 2 && c[0]! < 10) || c.length > 3)
    throw new PghaError(
      'PGHA_BAD_VERSION',
      `Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: ${v}`,
    );
  if (c.length === 2) c.splice(1, 0, 0);
  return Number(c.map((n) => String(n).padStart(2, '0')).join(''));
}

const roleOption = (what: string) =>
  new Option('-r, --role <role>', `${what} only members with this role`).choices(ROLES).default('any');

function checkResponse(
  status: number,
  text: string,
  member: string,
  action: string,
  silent = false,
): boolean {
  if (status >= 400) {
    console.log(`Failed: ${action} for member ${member}, status code=${status}, (${text})`);
    return false;
  }
  if (!silent) console.log(`Success: ${action} for member ${member}`);
  return true;
}

/** Registers `restart`, `reload`, `reinit` and `flush`. */
export function registerMemberActions(ctl: Command): void {
  ctl
    .command('restart')
    .description('Restart cluster member')
    .argument('<cluster_name>', 'Name of the cluster (scope)')
    .argument('[member_names...]', 'Names of the members (default: every member)')
    .addOption(roleOption('Restart'))
    .option('--any', 'Restart a single member only')
    .option('--scheduled <time>', 'Timestamp of a scheduled restart in unambiguous format (e.g. ISO 8601)')
    .option('--pg-version <version>', 'Restart if the PostgreSQL version is less than provided (e.g. 9.5.2)')
    .option('--pending', 'Restart if pending')
    .option(
      '--timeout <seconds>',
      'Return error and fail over if necessary when restarting takes longer than this.',
    )
    .option('--force', 'Do not ask for confirmation at any point')
    .action(
      async (
        scope: string,
        names: string[],
        o: {
          role: string;
          any?: boolean;
          scheduled?: string;
          pgVersion?: string;
          pending?: boolean;
          timeout?: string;
          force?: boolean;
        },
        cmd: Command,
      ) => {
        await withContext(cmd, async (ctx) => {
          const force = Boolean(o.force);
          const cluster = await ctx.dcs(scope).readCluster();
          let members = await selectMembers(
            ctx,
            cluster,
            scope,
            names,
            parseRole(o.role),
            force,
            'restart',
            false,
          );
          let when = o.scheduled;
          if (when === undefined && !force)
            when = await ctx.prompter.prompt(`When should the restart take place (e.g. ${nextHour()}) `, {
              default: 'now',
            });
          const scheduledAt = parseScheduled(when);
          await confirmMembersAction(ctx, members, force, 'restart', scheduledAt);
          if (o.any) members = [members[Math.floor(Math.random() * members.length)]!].filter(Boolean);
          let version = o.pgVersion;
          if (version === undefined && !force)
            version = await ctx.prompter.prompt(
              'Restart if the PostgreSQL version is less than provided (e.g. 9.5.2) ',
              { default: '' },
            );
          const content: Record<string, unknown> = {};
          if (o.pending) content.restart_pending = true;
          if (version) {
            postgresVersionToInt(version);
            content.postgres_version = version;
          }
          if (scheduledAt) {
            if (isPaused(cluster))
              throw new PghaError(
                'PGHA_PAUSED',
                "Can't schedule restart in the paused state (maintenance mode is on; run resume first)",
              );
            content.schedule = scheduledAt;
          }
          if (o.timeout !== undefined)
            content.timeout = /^\d+$/.test(o.timeout) ? Number(o.timeout) : o.timeout;
          const failed: string[] = [];
          for (const m of members) {
            if (content.schedule && force && m.data.scheduled_restart) {
              const d = await ctx.api(m, 'DELETE', 'restart');
              checkResponse(d.status, d.text, m.name, 'flush scheduled restart', true);
            }
            const r = await ctx.api(m, 'POST', 'restart', content);
            if (r.status === 200) console.log(`Success: restart on member ${m.name}`);
            else if (r.status === 202) console.log(`Success: restart scheduled on member ${m.name}`);
            else if (r.status === 409) {
              console.log(`Failed: another restart is already scheduled on member ${m.name}`);
              failed.push(m.name);
            } else {
              console.log(`Failed: restart for member ${m.name}, status code=${r.status}, (${r.text})`);
              failed.push(m.name);
            }
          }
          failIfAny('restart', failed, members.length);
        });
      },
    );

  ctl
    .command('reload')
    .description('Reload cluster member configuration')
    .argument('<cluster_name>', 'Name of the cluster (scope)')
    .argument('[member_names...]', 'Names of the members (default: every member)')
    .addOption(roleOption('Reload'))
    .option('--force', 'Do not ask for confirmation at any point')
    .action(async (scope: string, names: string[], o: { role: string; force?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const cluster = await ctx.dcs(scope).readCluster();
        const members = await selectMembers(
          ctx,
          cluster,
          scope,
          names,
          parseRole(o.role),
          Boolean(o.force),
          'reload',
        );
        const failed: string[] = [];
        for (const m of members) {
          const r = await ctx.api(m, 'POST', 'reload');
          if (r.status === 200) console.log(`No changes to apply on member ${m.name}`);
          else if (r.status === 202)
            console.log(
              `Reload request received for member ${m.name} and will be processed within ${pyStrCell(cluster.config?.value.loop_wait ?? 10)} seconds`,
            );
          else {
            console.log(`Failed: reload for member ${m.name}, status code=${r.status}, (${r.text})`);
            failed.push(m.name);
          }
        }
        failIfAny('reload', failed, members.length);
      });
    });

  ctl
    .command('reinit')
    .description('Reinitialize cluster member')
    .argument('<cluster_name>', 'Name of the cluster (scope)')
    .argument('[member_names...]', 'Names of the members (default: every member)')
    .option('--force', 'Do not ask for confirmation at any point')
    .option('--wait', 'Wait until reinitialization completes')
    .action(async (scope: string, names: string[], o: { force?: boolean; wait?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const force = Boolean(o.force);
        const cluster = await ctx.dcs(scope).readCluster();
        const members = await selectMembers(ctx, cluster, scope, names, 'replica', force, 'reinitialize');
        const waitOn: typeof members = [];
        const failed: string[] = [];
        for (const m of members) {
          const body = { force };
          for (;;) {
            const r = await ctx.api(m, 'POST', 'reinitialize', body);
            const started = checkResponse(r.status, r.text, m.name, 'reinitialize');
            if (
              !started &&
              r.text.endsWith(' already in progress') &&
              !body.force &&
              (await ctx.prompter.confirm('Do you want to cancel it and reinitialize anyway?'))
            ) {
              body.force = true;
              continue;
            }
            if (started && o.wait) waitOn.push(m);
            if (!started) failed.push(m.name);
            break;
          }
        }
        let shown = '';
        while (waitOn.length > 0) {
          const names = waitOn.map((m) => m.name).join(', ');
          if (names !== shown) console.log(`Waiting for reinitialize to complete on: ${names}`);
          shown = names;
          await sleep(2000);
          for (const m of [...waitOn]) {
            let state: unknown;
            try {
              const r = await ctx.api(m, 'GET', 'patroni', undefined, 10_000);
              state = (JSON.parse(r.text) as { state?: unknown }).state;
            } catch (err) {
              if (!(err instanceof ApiUnreachableError) && !(err instanceof SyntaxError)) throw err;
              state = 'creating replica'; // the API restarts with the agent's work; ask again
            }
            if (state !== 'creating replica') {
              console.log(`Reinitialize is completed on: ${m.name}`);
              waitOn.splice(waitOn.indexOf(m), 1);
            }
          }
        }
        failIfAny('reinitialize', failed, members.length);
      });
    });

  ctl
    .command('flush')
    .description('Discard scheduled events')
    .argument('<cluster_name>', 'Name of the cluster (scope)')
    .argument('<member_names_and_target...>', '[member names...] restart|switchover')
    .addOption(roleOption('Flush'))
    .option('--force', 'Do not ask for confirmation at any point')
    .action(async (scope: string, rest: string[], o: { role: string; force?: boolean }, cmd: Command) => {
      const target = rest[rest.length - 1];
      const names = rest.slice(0, -1);
      if (target !== 'restart' && target !== 'switchover')
        throw new UsageError(
          `Invalid value for '{restart|switchover}': '${target}' is not one of 'restart', 'switchover'.`,
        );
      await withContext(cmd, async (ctx) => {
        const dcs = ctx.dcs(scope);
        const cluster = await dcs.readCluster();
        if (target === 'restart') {
          const role: Role = parseRole(o.role);
          const members = await selectMembers(ctx, cluster, scope, names, role, Boolean(o.force), 'flush');
          const failed: string[] = [];
          for (const m of members) {
            if (m.data.scheduled_restart) {
              const r = await ctx.api(m, 'DELETE', 'restart');
              if (!checkResponse(r.status, r.text, m.name, 'flush scheduled restart')) failed.push(m.name);
            } else console.log(`No scheduled restart for member ${m.name}`);
          }
          failIfAny('flush', failed, members.length);
          return;
        }
        const fo = cluster.failover;
        if (!fo?.scheduled_at) {
          console.log('No pending scheduled switchover');
          return;
        }
        for (const m of membersLeaderFirst(cluster)) {
          try {
            const r = await ctx.api(m, 'DELETE', 'switchover');
            if (r.status === 200) {
              console.log(`Success: ${r.text}`);
              return;
            }
            if (r.status === 404) throw new PghaError('PGHA_FLUSH_FAILED', `Failed: ${r.text}`);
            console.log(`Failed: member=${m.name}, status_code=${r.status}, (${r.text})`);
          } catch (err) {
            if (!(err instanceof ApiUnreachableError)) throw err;
            console.error(`${err.message}; member ${m.name} is not accessible`);
          }
        }
        console.log(`${timestamp()} Could not find any accessible member of cluster ${scope}`);
        const res = await dcs.setFailover({}, fo.modRevision);
        if (!res.ok)
          throw new PghaError(
            'PGHA_CONCURRENT_CHANGE',
            `the failover key of ${scope} changed meanwhile; nothing was flushed (run flush again)`,
          );
      });
    });
}

/**
 * `edit-config` and `show-config`. Like patronictl, edit-config writes the `config` key directly
 * with a compare-and-set on the revision it read (`dcs.set_config_value(..., cluster.config.version)`),
 * so a concurrent change is never overwritten. Unlike patronictl, it first checks
 * `postgresql.parameters` against the PostgreSQL in the YAML's bin_dir (`checkParameters`).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { accessSync, constants } from 'node:fs';
import type { Command } from 'commander';
import { changedNotes, dynamicProblems, editMessage, keyNotes, newProblems } from '../config/keys.js';
import { isExecutable } from '../config/load.js';
import { parseDynamicConfig } from '../config/schema.js';
import type { PghaConfig } from '../config/types.js';
import { ParameterValidator } from '../postgres/validator.js';
import { PghaError, errorMessage } from '../util/errors.js';
import { runAsUser } from '../util/process.js';
import { withContext } from './command.js';
import { applyConfigChanges, applyYaml, parseConfigYaml, pgPairs, sameConfig } from './config-edit.js';
import { unifiedDiff } from './diff.js';
import { formatConfigForEditing } from './table.js';

function readSource(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new PghaError(
      'PGHA_READ_FAILED',
      `cannot read ${file === '-' ? 'standard input' : file}: ${(err as Error).message}`,
    );
  }
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Opens the text in `$EDITOR` (else `editor` or `vi`) and returns what was saved. */
function invokeEditor(before: string, scope: string): string {
  const editor = process.env.EDITOR || which('editor') || which('vi');
  if (!editor)
    throw new PghaError(
      'PGHA_NO_EDITOR',
      'EDITOR environment variable is not set. editor or vi are not available',
    );
  const dir = mkdtempSync(join(tmpdir(), 'pgha-edit-'));
  const file = join(dir, `${scope}-config-${process.pid}.yaml`);
  try {
    writeFileSync(file, before);
    const r = spawnSync(editor, [file], { stdio: 'inherit' });
    if (r.error) throw new PghaError('PGHA_EDITOR_FAILED', `cannot run editor ${editor}: ${r.error.message}`);
    if (r.status !== 0)
      throw new PghaError(
        'PGHA_EDITOR_FAILED',
        `Editor exited with return code ${r.status ?? r.signal ?? '?'}`,
      );
    return readFileSync(file, 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type Obj = Record<string, unknown>;

/**
 * Refuses a configuration with problems the stored one did not have, as PATCH /config does (problems
 * it already had are not blamed on the edit): values the agents could not use and keys they refuse
 * (`dynamicProblems`), and `postgresql.parameters` this node's PostgreSQL (the YAML's bin_dir) would
 * refuse. Without PostgreSQL binaries here it says it could not check the parameters and checks the
 * rest: the agents drop invalid parameters when they apply the configuration.
 */
async function checkEdit(config: PghaConfig, before: Obj, after: Obj): Promise<void> {
  const problems = [
    ...newProblems(dynamicProblems(before), dynamicProblems(after)),
    ...(await parameterProblems(config, before, after)).map((p) => `postgresql.parameters.${p}`),
  ];
  if (problems.length > 0)
    throw new PghaError(
      'PGHA_INVALID_CONFIG',
      `the configuration is invalid, nothing was changed: ${problems.join('; ')}`,
    );
}

/** The new problems of `after`'s `postgresql.parameters`; none when they cannot be checked here. */
async function parameterProblems(config: PghaConfig, before: Obj, after: Obj): Promise<string[]> {
  const binDir = config.postgresql.bin_dir;
  const cannot = (why: string) => {
    console.error(
      `could not validate postgresql.parameters (${why}); the agents ignore values their PostgreSQL refuses`,
    );
    return [];
  };
  if (!binDir || !isExecutable(join(binDir, 'postgres')))
    return cannot(
      binDir
        ? `no PostgreSQL binaries in ${binDir}`
        : 'postgresql.bin_dir is not set and PostgreSQL was not found',
    );
  const params = (c: Obj) => parseDynamicConfig(c).config.postgresql.parameters;
  try {
    const v = new ParameterValidator({ binDir, user: () => runAsUser(config.postgresql.os_user) });
    return newProblems(await v.problems(params(before)), await v.problems(params(after)));
  } catch (err) {
    return cannot(errorMessage(err));
  }
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** Registers `edit-config` and `show-config`. */
export function registerConfigCommands(ctl: Command): void {
  ctl
    .command('edit-config')
    .description('Edit cluster configuration')
    .argument('[cluster_name]', 'Name of the cluster (scope; default: from the configuration)')
    .option('-q, --quiet', 'Do not show changes')
    .option(
      '-s, --set <key=value>',
      'Set specific configuration value. Can be specified multiple times',
      collect,
      [],
    )
    .option(
      '-p, --pg <param=value>',
      'Set specific PostgreSQL parameter value. Shorthand for -s postgresql.parameters. Can be specified multiple times',
      collect,
      [],
    )
    .option('--apply <file>', 'Apply configuration from file. Use - for stdin.')
    .option(
      '--replace <file>',
      'Apply configuration from file, replacing existing configuration. Use - for stdin.',
    )
    .option('--force', 'Do not ask for confirmation at any point')
    .action(
      async (
        scopeArg: string | undefined,
        o: {
          quiet?: boolean;
          set: string[];
          pg: string[];
          apply?: string;
          replace?: string;
          force?: boolean;
        },
        cmd: Command,
      ) => {
        if (o.apply === '-' && o.replace === '-')
          throw new PghaError('PGHA_BAD_OPTION', '--apply - and --replace - cannot both read standard input');
        await withContext(cmd, async (ctx) => {
          const scope = ctx.scope(scopeArg);
          const dcs = ctx.dcs(scope);
          const cluster = await dcs.readCluster();
          if (!cluster.config)
            throw new PghaError(
              'PGHA_NO_CONFIG',
              `cluster ${scope} has no config key in etcd (not initialised, or wrong namespace ${ctx.config.namespace})`,
            );
          const data = cluster.config.value;
          const before = formatConfigForEditing(data);
          let after: string | undefined;
          let changed = data;
          if (o.replace) {
            changed = applyYaml({}, readSource(o.replace), o.replace === '-' ? 'standard input' : o.replace);
            after = formatConfigForEditing(changed);
          }
          if (o.apply) {
            changed = applyYaml(changed, readSource(o.apply), o.apply === '-' ? 'standard input' : o.apply);
            after = formatConfigForEditing(changed);
          }
          if (o.set.length > 0 || o.pg.length > 0) {
            changed = applyConfigChanges(changed, [...o.set, ...pgPairs(o.pg)]);
            after = formatConfigForEditing(changed);
          }
          if (after === undefined) {
            after = invokeEditor(before, scope);
            changed = parseConfigYaml(after, 'the edited configuration');
          }
          if (sameConfig(data, changed)) {
            if (!o.quiet) console.log('Not changed');
            return;
          }
          await checkEdit(ctx.config, data, changed);
          if (!o.quiet) for (const line of unifiedDiff(before, after)) console.log(colour(line));
          // Keys the edit adds or changes that pgha agents do not act on (checkEdit refused the rest).
          for (const n of changedNotes(keyNotes(data, 'dynamic'), keyNotes(changed, 'dynamic')))
            console.error(`note: ${editMessage(n)}`);
          if ((o.apply === '-' || o.replace === '-') && !o.force) {
            console.log('Use --force option to apply changes');
            return;
          }
          if (!o.force && !(await ctx.prompter.confirm('Apply these changes?')))
            throw new PghaError('PGHA_ABORTED', 'Aborted: the configuration was not changed');
          const res = await dcs.setConfig(changed, cluster.config.modRevision);
          if (!res.ok)
            throw new PghaError(
              'PGHA_CONCURRENT_CHANGE',
              `Config modification aborted due to concurrent changes (the config key of ${scope} changed after revision ${cluster.config.modRevision}; run edit-config again)`,
            );
          console.log('Configuration changed');
        });
      },
    );

  ctl
    .command('show-config')
    .description('Show cluster configuration')
    .argument('[cluster_name]', 'Name of the cluster (scope; default: from the configuration)')
    .action(async (scopeArg: string | undefined, _o: unknown, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const scope = ctx.scope(scopeArg);
        const cluster = await ctx.dcs(scope).readCluster();
        if (!cluster.config)
          throw new PghaError(
            'PGHA_NO_CONFIG',
            `cluster ${scope} has no config key in etcd (not initialised, or wrong namespace ${ctx.config.namespace})`,
          );
        // click.echo adds a newline after the YAML's own: patronictl's output ends with an empty line.
        console.log(formatConfigForEditing(cluster.config.value));
      });
    });
}

/** On a terminal, diff lines in colour (patronictl pipes them through ydiff). */
function colour(line: string): string {
  if (!process.stdout.isTTY) return line;
  if (line.startsWith('@@')) return `\x1b[36m${line}\x1b[0m`;
  if (line.startsWith('+') && !line.startsWith('+++')) return `\x1b[32m${line}\x1b[0m`;
  if (line.startsWith('-') && !line.startsWith('---')) return `\x1b[31m${line}\x1b[0m`;
  return line;
}

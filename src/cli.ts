/**
 * The single `pgha` entry point and its one error boundary: an expected failure (`PghaError`)
 * prints one line and exits 1 (2 for a command line that cannot be read); anything else is a bug
 * and prints its stack.
 *
 * Each command's code is loaded only when that command runs (`import()` below), so a long-running
 * `pgha agent` holds neither the router's nor ctl's nor the Bacula tools' code in memory.
 */
import { Command, CommanderError } from 'commander';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandName, modulesToLoad } from './util/argv.js';
import { ConfigError, DcsError, PghaError, UsageError } from './util/errors.js';
import { AGENT_V8_FLAGS, applyV8Flags } from './util/v8-flags.js';
import { VERSION } from './version.js';

type Register = (program: Command) => void;

/** The commands registered by their own modules, in the order `pgha --help` lists them. */
const COMMAND_MODULES: Record<string, () => Promise<Register>> = {
  ctl: async () => (await import('./ctl/index.js')).registerCtl,
  router: async () => (await import('./router/command.js')).registerRouter,
  vip: async () => (await import('./vip/command.js')).registerVip,
  bacula: async () => (await import('./bacula/command.js')).registerBacula,
  'watchdog-access': async () => (await import('./watchdog/access.js')).registerWatchdog,
};

async function buildProgram(args: readonly string[]): Promise<Command> {
  const program = new Command('pgha')
    .description('High availability for PostgreSQL on etcd: a Patroni-compatible agent and its tools')
    .version(VERSION, '-V, --version')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('agent')
    .description("run the HA agent for one PostgreSQL node (reads Patroni's YAML)")
    .argument(
      '[config]',
      'path to the YAML configuration (patroni.yml), or a directory whose YAML files are merged; PATRONI_* environment variables override it',
    )
    .option(
      '--validate-config',
      'check the configuration and what it names on this host (PostgreSQL programs, data directory, ' +
        'listen ports, etcd), print each problem and exit: status 0 when the agent could start with it',
    )
    .option(
      '-i, --ignore-listen-port',
      "with --validate-config: do not report listen ports in use (this node's agent or PostgreSQL may be running)",
    )
    .action(
      async (config: string | undefined, opts: { validateConfig?: boolean; ignoreListenPort?: boolean }) => {
        if (opts.validateConfig) {
          const { validateAgentConfig } = await import('./config/validate.js');
          await validateAgentConfig(config, { ignoreListenPort: opts.ignoreListenPort });
          return;
        }
        const { runAgentCommand } = await import('./agent.js');
        await runAgentCommand(config);
      },
    );

  program
    .command('demo')
    .description('start a local three-node cluster on loopback (etcd plus three agents) until Ctrl-C')
    .option('-d, --dir <dir>', 'directory for data, configs and logs', join(tmpdir(), 'pgha-demo'))
    .option('-n, --nodes <n>', 'number of PostgreSQL nodes', '3')
    .option('--base-port <port>', 'first PostgreSQL port (REST ports start at base + 3000)', '15432')
    .option('--exit-when-ready', 'stop everything and exit as soon as the cluster is ready')
    .action(async (opts: { dir: string; nodes: string; basePort: string; exitWhenReady?: boolean }) => {
      const { runDemo } = await import('./demo/demo.js');
      await runDemo({
        dir: opts.dir,
        nodes: Number(opts.nodes),
        basePort: Number(opts.basePort),
        exitWhenReady: opts.exitWhenReady,
      });
    });

  const names = modulesToLoad(args, Object.keys(COMMAND_MODULES), ['agent', 'demo']);
  const registers = await Promise.all(names.map((n) => COMMAND_MODULES[n]!()));
  for (const register of registers) register(program);
  return program;
}

/** Commander's errors for a command line it cannot read. */
const USAGE_ERRORS = new Set(
  [
    'unknownOption',
    'unknownCommand',
    'missingArgument',
    'optionMissingArgument',
    'missingMandatoryOptionValue',
    'invalidArgument',
    'excessArguments',
    'conflictingOption',
  ].map((c) => `commander.${c}`),
);

async function main(argv: string[]): Promise<number> {
  try {
    const program = await buildProgram(argv.slice(2));
    await program.parseAsync(argv);
    // A command may set its own status without failing (`ctl doctor` when it found something).
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    // Commander has printed its message or the help: a command line it could not read exits 2.
    if (err instanceof CommanderError) return USAGE_ERRORS.has(err.code) ? 2 : err.exitCode;
    if (err instanceof ConfigError) {
      console.error(`pgha: ${err.message}`);
      return 1;
    }
    if (err instanceof DcsError) {
      console.error(
        `pgha: ${err.message}\n  (is etcd running and reachable? check etcd3.hosts in the configuration or --dcs-url)`,
      );
      return 1;
    }
    if (err instanceof PghaError) {
      console.error(`pgha: ${err.message}`);
      return err instanceof UsageError ? 2 : 1;
    }
    console.error('pgha: unexpected error (this is a bug, please report it):');
    console.error(err);
    return 70;
  }
}

if (commandName(process.argv.slice(2)) === 'agent') applyV8Flags(AGENT_V8_FLAGS);
const code = await main(process.argv);
process.exitCode = code;
// Leave a moment for output to flush, but never hang on a stray handle.
setTimeout(() => process.exit(code), 1000).unref();

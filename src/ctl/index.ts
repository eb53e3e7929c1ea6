/**
 * `pgha ctl`: patronictl's commands, flags, questions and output. One file per command group;
 * each opens the store through `ctlContext` and closes it afterwards; refusals are `PghaError`s
 * that say which rule, member or number stopped them.
 */
import { Option, type Command } from 'commander';
import { registerClusterRole } from './cluster-role.js';
import { registerDoctor } from './doctor.js';
import { registerDsn } from './dsn.js';
import { registerConfigCommands } from './edit-config.js';
import { registerViews } from './list.js';
import { registerPause } from './pause.js';
import { registerQuery } from './query.js';
import { registerRemove } from './remove.js';
import { registerMemberActions } from './restart.js';
import { registerSwitchover } from './switchover.js';

export function registerCtl(program: Command): void {
  const ctl = program
    .command('ctl')
    .description('manage a cluster, as patronictl does (same commands, flags and output)')
    .option(
      '-c, --config-file <file>',
      'Configuration file (patroni.yml or patronictl.yaml; default: $PATRONICTL_CONFIG_FILE, else ~/.config/patroni/patronictl.yaml when it exists)',
    )
    .option(
      '-d, --dcs-url <url>',
      'The DCS connect url, e.g. etcd3://127.0.0.1:2379 (overrides the config file)',
    )
    // patronictl's other spelling of --dcs-url.
    .addOption(new Option('--dcs <url>').hideHelp())
    .option('-k, --insecure', 'Allow connections to SSL sites without certs')
    // As with click groups, ctl's options come before the command, so commands may reuse -c and -d.
    .enablePositionalOptions();

  registerViews(ctl);
  registerSwitchover(ctl);
  registerMemberActions(ctl);
  registerPause(ctl);
  registerClusterRole(ctl);
  registerConfigCommands(ctl);
  registerRemove(ctl);
  registerDsn(ctl);
  registerQuery(ctl);
  registerDoctor(ctl);
}

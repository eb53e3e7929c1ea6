/**
 * `pgha watchdog-access <config> [--user postgres]`: gives the agent's OS user the watchdog device
 * when `watchdog.mode` is not off. The agent runs as postgres (as Patroni's units do) and cannot
 * open a device only root may write; the shipped systemd units run this as root before the agent
 * (`ExecStartPre=+`), as Patroni's documentation asks of a udev rule.
 */
import { chmodSync, chownSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { loadConfigOrThrow } from '../config/load.js';
import { PghaError, errorMessage } from '../util/errors.js';
import { lookupUser } from '../util/process.js';

/** Does what the command says and returns the line it prints. */
export function grantWatchdogAccess(configPath: string, userName: string): string {
  const config = loadConfigOrThrow(configPath, process.env, () => undefined);
  const { mode, device } = config.watchdog;
  if (mode === 'off') return 'watchdog.mode is off: nothing to do';
  let st;
  try {
    st = statSync(device);
  } catch {
    return `watchdog.mode is ${mode} but ${device} does not exist (load a watchdog driver, e.g. modprobe softdog); the agent says what it does without it`;
  }
  const user = lookupUser(userName);
  if (st.uid === user.uid && (st.mode & 0o600) === 0o600) return `${device} already belongs to ${userName}`;
  try {
    chownSync(device, user.uid, user.gid);
    chmodSync(device, 0o600);
  } catch (err) {
    throw new PghaError(
      'PGHA_WATCHDOG_ACCESS',
      `cannot give ${userName} access to ${device}: ${errorMessage(err)} (run this as root)`,
    );
  }
  return `${device} now belongs to ${userName}, so the agent can arm it (watchdog.mode ${mode})`;
}

export function registerWatchdog(program: Command): void {
  program
    .command('watchdog-access')
    .description(
      "give the agent's OS user the watchdog device when watchdog.mode is set (run as root, before the agent)",
    )
    .argument('<config>', 'path to the YAML configuration (patroni.yml)')
    .option('-u, --user <name>', 'the OS user the agent runs as', 'postgres')
    .action((config: string, opts: { user: string }) => {
      console.log(grantWatchdogAccess(config, opts.user));
    });
}

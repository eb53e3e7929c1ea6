/**
 * The Linux watchdog device (`watchdog:` section, as Patroni): while this node is the leader, every
 * lease renewal also pings the device; if the agent freezes (SIGSTOP, a hung kernel call, a stuck
 * event loop) so that neither the renewal nor the fence timer can run, the kernel resets the
 * machine before the leader lease can expire for anyone else. Stepping down closes the device with
 * the magic 'V', which disarms it.
 *
 * The timeout is set with util-linux's `wdctl --settimeout` before opening (Node has no ioctl) and
 * read back from sysfs; when neither is possible the device keeps its own timeout and we say so.
 */
import { closeSync, existsSync, openSync, readFileSync, statSync, writeSync, constants } from 'node:fs';
import { basename } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { Logger } from '../util/log.js';

export type WatchdogMode = 'off' | 'automatic' | 'required';

export interface WatchdogOptions {
  mode: WatchdogMode;
  device: string;
  /** Seconds between the watchdog firing and the lease expiring; -1: the timeout is ttl / 2. */
  safetyMargin: number;
  logger: Logger;
}

/** What the HA loop needs from a watchdog (tests and `mode: off` use the same shape). */
export interface LeaderWatchdog {
  readonly mode: WatchdogMode;
  /** Opens and arms the device for this ttl; null when active, else why not. */
  activate(ttlS: number, loopWaitS: number): string | null;
  /** Pings the device (activating it first if needed). */
  keepalive(ttlS: number, loopWaitS: number): void;
  /** Disarms and closes the device (magic close); a no-op when inactive. */
  disable(): void;
  readonly active: boolean;
}

/** The timeout Patroni asks for: ttl − safety_margin, or ttl / 2 with a margin of -1. */
export function desiredTimeout(ttlS: number, safetyMargin: number): number {
  return safetyMargin < 0 ? Math.floor(ttlS / 2) : ttlS - safetyMargin;
}

export class Watchdog implements LeaderWatchdog {
  private fd: number | null = null;
  private lastProblem = '';
  private armedFor: number | null = null;

  constructor(private readonly o: WatchdogOptions) {}

  get mode(): WatchdogMode {
    return this.o.mode;
  }

  get active(): boolean {
    return this.fd !== null;
  }

  activate(ttlS: number, loopWaitS: number): string | null {
    if (this.o.mode === 'off') return 'watchdog.mode is off';
    const want = desiredTimeout(ttlS, this.o.safetyMargin);
    if (this.fd !== null && this.armedFor === want) return null;
    this.disable();
    const problem = this.open(want, loopWaitS);
    if (problem) {
      if (problem !== this.lastProblem) {
        this.lastProblem = problem;
        const level = this.o.mode === 'required' ? 'error' : 'warn';
        this.o.logger[level](
          `watchdog: ${problem}${this.o.mode === 'automatic' ? '; running without it' : ''}`,
        );
      }
      return problem;
    }
    this.lastProblem = '';
    this.armedFor = want;
    return null;
  }

  keepalive(ttlS: number, loopWaitS: number): void {
    if (this.o.mode === 'off') return;
    if (this.activate(ttlS, loopWaitS) !== null || this.fd === null) return;
    try {
      writeSync(this.fd, '1');
    } catch (err) {
      this.o.logger.error(`watchdog: could not ping ${this.o.device}: ${(err as Error).message}`);
    }
  }

  disable(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    this.armedFor = null;
    try {
      // The magic close: without it the kernel would reset the machine once the timeout passes.
      writeSync(fd, 'V');
    } catch (err) {
      this.o.logger.error(`watchdog: could not disarm ${this.o.device}: ${(err as Error).message}`);
    }
    try {
      closeSync(fd);
    } catch {
      // Already closed.
    }
    this.o.logger.info(`watchdog: ${this.o.device} disarmed`);
  }

  private open(want: number, loopWaitS: number): string | null {
    const dev = this.o.device;
    if (!existsSync(dev)) {
      return `${dev} does not exist (load a driver, e.g. "modprobe softdog", or set watchdog.device)`;
    }
    if (want <= loopWaitS) {
      return `the timeout ttl - safety_margin = ${want} s is not longer than loop_wait (${loopWaitS} s)`;
    }
    const isDevice = statSync(dev).isCharacterDevice();
    let note = '';
    if (isDevice) {
      const set = spawnSync('wdctl', ['--settimeout', String(want), dev], { encoding: 'utf8' });
      if (set.error || set.status !== 0)
        note = `; could not set its timeout with wdctl (${set.error?.message ?? set.stderr.trim()})`;
    }
    let fd: number;
    try {
      fd = openSync(dev, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM')
        return `no permission to open ${dev}: run the agent as root or give its user access to the device`;
      if (code === 'EBUSY') return `${dev} is held open by another process`;
      return `cannot open ${dev}: ${(err as Error).message}`;
    }
    const actual = isDevice ? readSysfsTimeout(dev) : null;
    if (actual !== null && actual > want) {
      writeSync(fd, 'V');
      closeSync(fd);
      return `${dev} fires only after ${actual} s, later than ttl - safety_margin = ${want} s${note}`;
    }
    this.fd = fd;
    const timeout = actual === null ? 'its own timeout (unknown here)' : `a ${actual} s timeout`;
    this.o.logger.info(`watchdog: ${dev} armed with ${timeout}; wanted ${want} s${note}`);
    return null;
  }
}

/** `/sys/class/watchdog/<name>/timeout`; `/dev/watchdog` is the first device, watchdog0. */
function readSysfsTimeout(dev: string): number | null {
  const name = basename(dev) === 'watchdog' ? 'watchdog0' : basename(dev);
  try {
    const n = Number(readFileSync(`/sys/class/watchdog/${name}/timeout`, 'utf8').trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

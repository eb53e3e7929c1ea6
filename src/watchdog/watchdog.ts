/**
 * The watchdog (`watchdog:` section, as Patroni): while this node is the leader, every lease
 * renewal also pings the device; if the agent freezes (SIGSTOP, a hung kernel call, a stuck event
 * loop) so that neither the renewal nor the fence timer can run, the device resets the machine
 * before the leader lease can expire for anyone else. Stepping down, maintenance mode and shutdown
 * close the device with the magic 'V', which disarms it.
 *
 * The timeout asked for is Patroni's: ttl − safety_margin (ttl / 2 with -1). A ttl changed in the
 * dynamic configuration changes it on the open device at the next ping, as Patroni does.
 *
 * `watchdog.driver`, as Patroni's:
 * - `default`: the Linux watchdog device. Node has no ioctl, so the timeout is set with util-linux's
 *   `wdctl --settimeout` while the device is closed (the kernel lets one process open it) and read
 *   back from sysfs; a timeout change closes it with the magic 'V', sets it and opens it again.
 * - `testing`: Patroni's test device, a named pipe read by a test harness: the same keepalive
 *   ('1') and magic close ('V') bytes, and the timeout written as a `Ctimeout=<seconds>\n` line
 *   where the Linux driver would use the WDIOC_SETTIMEOUT ioctl.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import type { Logger } from '../util/log.js';

export type WatchdogMode = 'off' | 'automatic' | 'required';

/** The drivers Patroni knows (`watchdog.driver`). */
export const WATCHDOG_DRIVERS = ['default', 'testing'] as const;

export interface WatchdogOptions {
  mode: WatchdogMode;
  device: string;
  /** `watchdog.driver`: `default` (Linux device) or `testing` (Patroni's named-pipe test device). */
  driver?: string;
  /** Seconds between the watchdog firing and the lease expiring; -1: the timeout is ttl / 2. */
  safetyMargin: number;
  logger: Logger;
}

/** What the HA loop needs from a watchdog (tests and `mode: off` use the same shape). */
export interface LeaderWatchdog {
  readonly mode: WatchdogMode;
  /** Opens and arms the device for this ttl (or changes its timeout); null when active, else why not. */
  activate(ttlS: number, loopWaitS: number): string | null;
  /** Pings the device (activating it first if needed, changing its timeout if the ttl changed). */
  keepalive(ttlS: number, loopWaitS: number): void;
  /** Disarms and closes the device (magic close); a no-op when inactive. */
  disable(): void;
  readonly active: boolean;
}

/** The timeout Patroni asks for: ttl − safety_margin, or ttl / 2 with a margin of -1. */
export function desiredTimeout(ttlS: number, safetyMargin: number): number {
  return safetyMargin < 0 ? Math.floor(ttlS / 2) : ttlS - safetyMargin;
}

/** Why a device cannot be used, in words for the log. */
class DeviceProblem extends Error {}

/** One open device behind a driver (Patroni's WatchdogBase). */
interface Device {
  readonly driver: string;
  /** Opens it asking for `timeoutS`; the timeout in force (null: unknown) and a remark for the log. */
  open(timeoutS: number): { actual: number | null; note: string };
  /** Changes the timeout of the open device; as `open`. */
  setTimeout(timeoutS: number): { actual: number | null; note: string };
  keepalive(): void;
  /** The magic close: disarms the device. */
  close(): void;
}

function openProblem(dev: string, err: unknown): DeviceProblem {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM')
    return new DeviceProblem(
      `no permission to open ${dev}: run the agent as root or give its user access to the device (pgha watchdog-access)`,
    );
  if (code === 'EBUSY') return new DeviceProblem(`${dev} is held open by another process`);
  if (code === 'ENXIO') return new DeviceProblem(`nothing reads the named pipe ${dev}`);
  return new DeviceProblem(`cannot open ${dev}: ${(err as Error).message}`);
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done);
}

function magicClose(fd: number): void {
  try {
    // Without the 'V' the kernel would reset the machine once the timeout passes.
    writeSync(fd, 'V');
  } finally {
    closeSync(fd);
  }
}

/** The Linux watchdog device (`driver: default`). */
class LinuxDevice implements Device {
  readonly driver = 'default';
  private fd: number | null = null;

  constructor(private readonly dev: string) {}

  open(timeoutS: number): { actual: number | null; note: string } {
    const dev = this.dev;
    if (!existsSync(dev))
      throw new DeviceProblem(
        `${dev} does not exist (load a driver, e.g. "modprobe softdog", or set watchdog.device)`,
      );
    const isDevice = statSync(dev).isCharacterDevice();
    let note = '';
    if (isDevice) {
      const set = spawnSync('wdctl', ['--settimeout', String(timeoutS), dev], { encoding: 'utf8' });
      if (set.error || set.status !== 0)
        note = `; could not set its timeout with wdctl (${set.error?.message ?? set.stderr.trim()})`;
    }
    try {
      this.fd = openSync(dev, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      throw openProblem(dev, err);
    }
    return { actual: isDevice ? readSysfsTimeout(dev) : null, note };
  }

  setTimeout(timeoutS: number): { actual: number | null; note: string } {
    // No ioctl from Node: disarm, set the timeout on the closed device, arm again.
    this.close();
    return this.open(timeoutS);
  }

  keepalive(): void {
    if (this.fd !== null) writeSync(this.fd, '1');
  }

  close(): void {
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) magicClose(fd);
  }
}

/**
 * Patroni's `testing` driver: a named pipe whose reader notes pings, magic closes and the timeout.
 * The reader reopens the pipe after each close, so an open finding no reader is retried briefly.
 */
class TestingDevice implements Device {
  readonly driver = 'testing';
  private fd: number | null = null;

  constructor(private readonly dev: string) {}

  open(timeoutS: number): { actual: number | null; note: string } {
    if (!existsSync(this.dev)) throw new DeviceProblem(`${this.dev} does not exist`);
    const until = Date.now() + 1000;
    for (;;) {
      try {
        this.fd = openSync(this.dev, constants.O_WRONLY | constants.O_NONBLOCK);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENXIO' || Date.now() >= until)
          throw openProblem(this.dev, err);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
    return this.setTimeout(timeoutS);
  }

  setTimeout(timeoutS: number): { actual: number | null; note: string } {
    if (this.fd === null) throw new DeviceProblem(`${this.dev} is not open`);
    writeAll(this.fd, `Ctimeout=${timeoutS}\n`);
    return { actual: timeoutS, note: '' };
  }

  keepalive(): void {
    if (this.fd !== null) writeSync(this.fd, '1');
  }

  close(): void {
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) magicClose(fd);
  }
}

export class Watchdog implements LeaderWatchdog {
  private device: Device | null = null;
  private lastProblem = '';
  /** The timeout asked for of the open device; null when it is closed. */
  private armedFor: number | null = null;

  constructor(private readonly o: WatchdogOptions) {}

  get mode(): WatchdogMode {
    return this.o.mode;
  }

  get active(): boolean {
    return this.armedFor !== null;
  }

  activate(ttlS: number, loopWaitS: number): string | null {
    if (this.o.mode === 'off') return 'watchdog.mode is off';
    const want = desiredTimeout(ttlS, this.o.safetyMargin);
    if (this.armedFor === want) return null;
    const problem = this.arm(want, loopWaitS);
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
    return null;
  }

  keepalive(ttlS: number, loopWaitS: number): void {
    if (this.o.mode === 'off') return;
    if (this.armedFor === null) {
      if (this.activate(ttlS, loopWaitS) !== null) return;
    }
    try {
      this.device?.keepalive();
    } catch (err) {
      this.o.logger.error(`watchdog: could not ping ${this.o.device}: ${(err as Error).message}`);
    }
    // A ttl changed since the device was armed: its new timeout takes effect now, as Patroni's.
    this.activate(ttlS, loopWaitS);
  }

  disable(): void {
    if (this.armedFor === null || !this.device) return;
    this.armedFor = null;
    try {
      this.device.close();
    } catch (err) {
      this.o.logger.error(`watchdog: could not disarm ${this.o.device}: ${(err as Error).message}`);
    }
    this.o.logger.info(`watchdog: ${this.o.device} disarmed`);
  }

  /** Opens the device for `want` seconds, or changes the timeout of the open one; null or why not. */
  private arm(want: number, loopWaitS: number): string | null {
    const dev = this.o.device;
    if (want <= loopWaitS) {
      this.disable();
      return `the timeout ttl - safety_margin = ${want} s is not longer than loop_wait (${loopWaitS} s)`;
    }
    const driver = this.o.driver ?? 'default';
    if (!this.device || this.device.driver !== driver) {
      this.disable();
      if (driver === 'default') this.device = new LinuxDevice(dev);
      else if (driver === 'testing') this.device = new TestingDevice(dev);
      else return `watchdog.driver ${JSON.stringify(driver)} is not one of ${WATCHDOG_DRIVERS.join(', ')}`;
    }
    const reconfigure = this.armedFor !== null;
    let result: { actual: number | null; note: string };
    try {
      result = reconfigure ? this.device.setTimeout(want) : this.device.open(want);
    } catch (err) {
      this.armedFor = null;
      // Whatever was left open is disarmed: a device that cannot be served must not reset the machine.
      try {
        this.device.close();
      } catch {
        // Already closed.
      }
      return err instanceof DeviceProblem ? err.message : `could not arm ${dev}: ${(err as Error).message}`;
    }
    const { actual, note } = result;
    if (actual !== null && actual > want) {
      this.armedFor = null;
      this.device.close();
      return `${dev} fires only after ${actual} s, later than ttl - safety_margin = ${want} s${note}`;
    }
    this.armedFor = want;
    const timeout = actual === null ? 'its own timeout (unknown here)' : `a ${actual} s timeout`;
    const verb = reconfigure ? 'now has' : 'armed with';
    this.o.logger.info(
      `watchdog: ${dev} ${verb} ${timeout}; wanted ${want} s${note}${driver === 'default' ? '' : ` (${driver} driver)`}`,
    );
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

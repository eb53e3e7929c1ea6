/**
 * The watchdog device contract with a real agent, through Patroni's `testing` driver: the device is
 * a named pipe read here, as Patroni's acceptance harness reads it. The agent must set the
 * timeout to ttl − safety_margin through the device, set it again when the ttl changes, ping it
 * while leading, close it with the magic 'V' in maintenance mode and at shutdown, and stop pinging
 * while it hangs, so that the device would fire.
 */
import { spawnSync } from 'node:child_process';
import { constants, mkdtempSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { signalPid } from '../../src/util/process.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

/** What the device's reader saw: bytes with the time they came, and each close by the agent. */
interface Seen {
  at: number;
  kind: 'open' | 'data' | 'closed';
  text?: string;
}

/** Reads the pipe as Patroni's WatchdogMonitor does: reopening it after each close. */
class Monitor {
  readonly seen: Seen[] = [];
  private stopped = false;
  private fh: FileHandle | null = null;
  private loop: Promise<void> | null = null;

  constructor(readonly path: string) {
    expect(spawnSync('mkfifo', [path]).status).toBe(0);
  }

  start(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const buf = Buffer.alloc(256);
    while (!this.stopped) {
      this.fh = await open(this.path, 'r'); // waits for a writer
      if (this.stopped) {
        await this.fh.close();
        break;
      }
      this.seen.push({ at: Date.now(), kind: 'open' });
      for (;;) {
        const { bytesRead } = await this.fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        this.seen.push({ at: Date.now(), kind: 'data', text: buf.toString('utf8', 0, bytesRead) });
      }
      this.seen.push({ at: Date.now(), kind: 'closed' });
      await this.fh.close();
      this.fh = null;
    }
  }

  /** Every byte written so far, in order. */
  text(from = 0): string {
    return this.seen
      .slice(from)
      .map((s) => s.text ?? '')
      .join('');
  }

  /** The last timeout the agent set. */
  timeout(): number | null {
    const all = [...this.text().matchAll(/Ctimeout=(\d+)\n/g)];
    return all.length ? Number(all[all.length - 1]![1]) : null;
  }

  /** Whether the agent's last act was a magic close followed by closing the device. */
  closed(): boolean {
    const last = this.seen[this.seen.length - 1];
    return last?.kind === 'closed' && this.text().endsWith('V');
  }

  /** When the last ping ('1') arrived. */
  lastPing(): number | null {
    for (let i = this.seen.length - 1; i >= 0; i--)
      if (this.seen[i]!.text?.includes('1')) return this.seen[i]!.at;
    return null;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // Unblock an open that waits for a writer (non-blocking: fails at once when no reader waits).
    const w = await open(this.path, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => null);
    await w?.close();
    await this.loop?.catch(() => undefined);
  }
}

let c: TestCluster;
let monitor: Monitor;
let fifoDir: string | undefined;

beforeAll(async () => {
  fifoDir = mkdtempSync(join(tmpdir(), 'pgha-wd-'));
  const fifo = join(fifoDir, 'watchdog.fifo');
  monitor = new Monitor(fifo);
  monitor.start();
  c = await startCluster({
    nodes: 1,
    ttl: 12,
    loopWait: 1,
    retryTimeout: 3,
    edit: (cfg) => {
      cfg.watchdog = { mode: 'required', driver: 'testing', device: fifo, safety_margin: 5 };
    },
  });
  c.startAgent('pg1');
  await c.waitHealthy(0, 60_000);
});

afterAll(async () => {
  const pid = c?.node('pg1').agent?.pid;
  if (pid) signalPid(pid, 'SIGCONT');
  // The agent's end of the pipe closes with it; then the reader, waiting for the next writer, is woken.
  await c?.stop();
  await monitor?.stop();
  if (fifoDir) rmSync(fifoDir, { recursive: true, force: true });
});

async function patchConfig(body: unknown): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${c.node('pg1').apiPort}/config`, {
    method: 'PATCH',
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
}

it('sets ttl - safety_margin through the device and pings it while leading', async () => {
  await waitFor('pings', () => Promise.resolve(/1/.test(monitor.text())), 15_000);
  expect(monitor.timeout()).toBe(7);
});

it('sets the new timeout on the open device when the ttl changes', async () => {
  const opens = monitor.seen.filter((s) => s.kind === 'open').length;
  await patchConfig({ ttl: 16 });
  await waitFor('timeout 11', () => Promise.resolve(monitor.timeout() === 11), 15_000);
  expect(monitor.seen.filter((s) => s.kind === 'open').length).toBe(opens);
});

it('closes the device with V in maintenance mode and opens it again on resume', async () => {
  await patchConfig({ pause: true });
  await waitFor('a magic close', () => Promise.resolve(monitor.closed()), 10_000);
  const mark = monitor.seen.length;
  await patchConfig({ pause: null });
  await waitFor('pings again', () => Promise.resolve(/1/.test(monitor.text(mark))), 15_000);
  expect(monitor.text(mark)).toMatch(/^Ctimeout=11\n1/);
});

it('stops pinging while the agent hangs, long enough for the device to fire', async () => {
  const pid = c.node('pg1').agent!.pid!;
  await waitFor('a fresh ping', () => Promise.resolve(Date.now() - (monitor.lastPing() ?? 0) < 1500), 10_000);
  const before = monitor.lastPing()!;
  signalPid(pid, 'SIGSTOP');
  try {
    await new Promise((r) => setTimeout(r, 13_000));
    // Not closed, and no ping for longer than the 11 s timeout: the device fires.
    expect(monitor.closed()).toBe(false);
    expect(monitor.lastPing()).toBe(before);
    expect(Date.now() - before).toBeGreaterThan(11_000);
  } finally {
    signalPid(pid, 'SIGCONT');
  }
});

it('closes the device with V when the agent shuts down', async () => {
  await c.stopAgent('pg1');
  await waitFor('a magic close', () => Promise.resolve(monitor.closed()), 10_000);
});

/**
 * V8 settings for the long-running `pgha agent`, applied by the CLI as the agent command starts, so
 * every way of starting it (bin/pgha, the systemd units, `node dist/cli.js agent` from `pgha demo`,
 * the tests and the benchmarks) gets them, without NODE_OPTIONS or a wrapper. Each is a V8 flag
 * that V8 reads while running, not only at start-up; bench/README.md has what each one saves.
 */
import { setFlagsFromString } from 'node:v8';

/**
 * - `--semi-space-growth-factor=1`: the young generation keeps its initial 1 MB semi-spaces instead
 *   of growing them to 16 MB each after allocation bursts (the start-up, a busy HA cycle); the
 *   agent allocates little, and the grown young generation held some 10 MB for nothing. (V8 in
 *   Node 22 and later raises a factor below 2 to 2: the flag then does nothing, and fails nothing.)
 * - `--optimize-for-size`: V8's setting for small devices: the old generation grows in smaller
 *   steps, so garbage is collected before it adds megabytes.
 * - `--no-opt`: no TurboFan. The agent's JavaScript runs a few milliseconds per HA cycle, which
 *   the interpreter and the baseline compiler do as well; the optimizing compiler's code and
 *   working memory cost megabytes.
 * - `--no-sparkplug`: no baseline compiler either, the interpreter runs everything. The baseline
 *   code of the functions the agent runs held about 1.4 MB of the agent's V8 heap (15.2 -> 13.8 MB
 *   used, settled), for no gain a per-cycle budget of milliseconds could measure.
 */
export const AGENT_V8_FLAGS: readonly string[] = [
  '--semi-space-growth-factor=1',
  '--optimize-for-size',
  '--no-opt',
  '--no-sparkplug',
];

/** Applies V8 flags to the running process. */
export function applyV8Flags(flags: readonly string[]): void {
  for (const flag of flags) setFlagsFromString(flag);
}

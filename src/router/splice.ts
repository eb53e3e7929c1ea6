/**
 * The client → server data path after the startup phase: bytes from one socket to the other,
 * nothing parsed. A plain `'data'` → `write()` loop with backpressure: what `pipe()` does, minus its
 * per-chunk bookkeeping (measured slightly cheaper per transaction with pgbench).
 */
import type { Socket } from 'node:net';

/** Copies `from` into `to` until `from` ends; pauses `from` while `to` is full. */
export function splice(from: Socket, to: Socket): void {
  to.on('drain', () => from.resume());
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause();
  });
  from.on('end', () => to.end());
  from.resume();
}

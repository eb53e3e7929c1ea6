/**
 * The client → server data path after the startup phase when the router relays in JavaScript
 * (and during authentication, before a session moves to the native relay): bytes from one socket
 * to the other, nothing parsed. A plain `'data'` → `write()` loop with backpressure: what `pipe()`
 * does, minus its per-chunk bookkeeping (measured slightly cheaper per transaction with pgbench).
 */
import type { Socket } from 'node:net';

/** Copies `from` into `to` until `from` ends; pauses `from` while `to` is full. Returns the undo. */
export function splice(from: Socket, to: Socket): () => void {
  const onDrain = () => from.resume();
  const onData = (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause();
  };
  const onEnd = () => to.end();
  to.on('drain', onDrain);
  from.on('data', onData);
  from.on('end', onEnd);
  from.resume();
  return () => {
    to.removeListener('drain', onDrain);
    from.removeListener('data', onData);
    from.removeListener('end', onEnd);
  };
}

/** A logger whose lines (plain format) the test reads back from `lines`. */
import { PassThrough } from 'node:stream';
import { createLogger, type Logger } from '../util/log.js';

export function capturedLogger(level = 'info'): { logger: Logger; lines: string[] } {
  const out = new PassThrough();
  const lines: string[] = [];
  out.on('data', (b: Buffer) => lines.push(...b.toString().trim().split('\n')));
  return { logger: createLogger({ level, type: 'plain', destination: out }), lines };
}

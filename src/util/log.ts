import pino from 'pino';

export type Logger = pino.Logger;

export interface LogOptions {
  /** `plain` (human-readable, Patroni's default) or `json`. */
  type?: 'plain' | 'json';
  level?: string;
  /** Extra fields on every line, e.g. `{ node: 'pg1' }`. */
  base?: Record<string, unknown>;
  /** Where to write; defaults to stderr. */
  destination?: NodeJS.WritableStream;
}

const PINO_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** Maps Patroni's level names (DEBUG, INFO, WARNING, ERROR, CRITICAL) onto pino's. */
export function normaliseLevel(level: string | undefined): string {
  const l = (level ?? 'info').toLowerCase();
  if (l === 'warning') return 'warn';
  if (l === 'critical') return 'fatal';
  return PINO_LEVELS.has(l) ? l : 'info';
}

function plainLine(obj: Record<string, unknown>): string {
  const { time, level, msg, pid: _pid, hostname: _h, ...rest } = obj;
  const ts = new Date(typeof time === 'number' ? time : Date.now())
    .toISOString()
    .replace('T', ' ')
    .replace('Z', '');
  const name = pino.levels.labels[Number(level)]?.toUpperCase() ?? String(level);
  const extra = Object.keys(rest).length > 0 ? ' ' + JSON.stringify(rest) : '';
  return `${ts} ${name}: ${typeof msg === 'string' ? msg : JSON.stringify(msg ?? '')}${extra}\n`;
}

/** Creates the process logger: one line per event, JSON or plain text. */
export function createLogger(opts: LogOptions = {}): Logger {
  const destination = opts.destination ?? process.stderr;
  const level = normaliseLevel(opts.level);
  if (opts.type === 'json') {
    return pino({ level, base: opts.base ?? {}, timestamp: pino.stdTimeFunctions.isoTime }, destination);
  }
  const stream = {
    write(line: string) {
      try {
        destination.write(plainLine(JSON.parse(line) as Record<string, unknown>));
      } catch {
        destination.write(line);
      }
    },
  };
  return pino({ level, base: opts.base ?? {} }, stream);
}

/** The logger interface Rota writes to, and a small console default. */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** Anything with these four methods works (pino, console wrappers, test recorders). */
export interface Logger {
  debug(message: string, data?: Record<string, unknown>): void;
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** A logger writing one line per entry to stderr, from `level` up (default `warn`). */
export function consoleLogger(level: LogLevel = 'warn'): Logger {
  const write = (at: Exclude<LogLevel, 'silent'>, message: string, data?: Record<string, unknown>) => {
    if (ORDER[at] < ORDER[level]) return;
    const extra = data && Object.keys(data).length > 0 ? ` ${safeJson(data)}` : '';
    process.stderr.write(`rota ${at}: ${message}${extra}\n`);
  };
  return {
    debug: (m, d) => write('debug', m, d),
    info: (m, d) => write('info', m, d),
    warn: (m, d) => write('warn', m, d),
    error: (m, d) => write('error', m, d),
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = consoleLogger('silent');

function safeJson(data: Record<string, unknown>): string {
  try {
    return JSON.stringify(data, (_k, v) => (v instanceof Error ? { name: v.name, message: v.message } : v));
  } catch {
    return '[unserialisable]';
  }
}

/** Check that `value` has the four logger methods. */
export function isLogger(value: unknown): value is Logger {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return ['debug', 'info', 'warn', 'error'].every((m) => typeof v[m] === 'function');
}

/**
 * Structured logs with pino, for `rota start` and the server. The redaction list keeps bearer
 * tokens, passwords in store URLs and `access_token` query parameters out of every line.
 */
import { type DestinationStream, type Logger as PinoLogger, pino } from 'pino';
import type { Logger } from '../core/logger.js';

/** Paths pino blanks out wherever they appear in a log object. */
export const REDACT_PATHS = [
  'token',
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'password',
  '*.token',
  '*.password',
];

/** Options of {@link createLogger}. */
export interface LogOptions {
  /** `trace` … `fatal`, or `silent`. Default `info`. */
  level?: string;
  /** Where lines go. Default stdout. */
  destination?: DestinationStream;
  /** Fields on every line (e.g. `{ node }`). */
  base?: Record<string, unknown>;
}

export function createLogger(options: LogOptions = {}): PinoLogger {
  return pino(
    {
      level: options.level ?? 'info',
      base: options.base ?? {},
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { error: pino.stdSerializers.err, err: pino.stdSerializers.err },
    },
    options.destination ?? pino.destination(1),
  );
}

/** Strip credentials from a store URL or request URL before it is logged or printed. */
export function redactUrl(url: string): string {
  return url
    .replace(/(\/\/[^:/@]*:)[^@/]*@/, '$1[redacted]@')
    .replace(/([?&](?:access_token|token|password)=)[^&]*/gi, '$1[redacted]');
}

/** Rota's four-method Logger on top of a pino logger. */
export function rotaLogger(log: PinoLogger): Logger {
  const at =
    (level: 'debug' | 'info' | 'warn' | 'error') => (message: string, data?: Record<string, unknown>) =>
      data ? log[level](data, message) : log[level](message);
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

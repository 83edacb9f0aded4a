/**
 * Mapping of node-postgres errors to Rota's catalog. The SQL functions raise a few errors of their
 * own with SQLSTATEs in class `RT` (see the migration files); everything else is the driver's or
 * the server's.
 */
import { DatabaseError } from 'pg';
import {
  CompactedError,
  InvalidArgumentError,
  LeaseNotFoundError,
  RevisionOverflowError,
  RotaError,
  StoreError,
  StoreUnavailableError,
  TaskExistsError,
} from '../../errors.js';

/** SQLSTATEs raised by Rota's own SQL functions. */
export const RT_LEASE_NOT_FOUND = 'RT001';
export const RT_TASK_EXISTS = 'RT002';
export const RT_COMPACT_FUTURE = 'RT003';
export const RT_COMPACTED = 'RT004';

/** The server ended or refused the session: nothing of the statement was applied. */
const SERVER_GONE = new Set([
  '57P01',
  '57P02',
  '57P03',
  '53300',
  '53400',
  '08000',
  '08003',
  '08006',
  '08001',
  '08004',
]);
/** The transaction was rolled back as a whole and may simply run again. */
const RERUN = new Set(['40001', '40P01']);
/** Socket-level failures (no answer from the server). */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ECONNABORTED',
]);
const NETWORK_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'not queryable',
  'Client was closed',
  'connection timeout',
];

/** The server answered with an error, so the statement's transaction did not commit. */
export function isServerError(err: unknown): err is DatabaseError {
  return err instanceof DatabaseError;
}

/** A deadlock or serialization failure: the transaction rolled back and can run again as is. */
export function isRerunnable(err: unknown): boolean {
  return isServerError(err) && RERUN.has(err.code ?? '');
}

/**
 * A prepared statement whose result type changed under it (a function replaced by a newer schema
 * while the connection kept the old plan). It failed before running: re-send on a new connection.
 */
export function isStalePlan(err: unknown): boolean {
  return (
    isServerError(err) && err.code === '0A000' && /cached plan must not change result type/.test(err.message)
  );
}

/** The server closed or refused the session (with an answer, so nothing was applied). */
export function isServerGone(err: unknown): boolean {
  return isServerError(err) && SERVER_GONE.has(err.code ?? '');
}

/** The driver refused the statement on a connection it already knew was broken: nothing was sent. */
export function isNotSent(err: unknown): boolean {
  return err instanceof Error && !isServerError(err) && err.message.includes('is not queryable');
}

/** A socket-level failure: the connection broke, with no answer from the server. */
export function isNetworkError(err: unknown): boolean {
  if (isServerError(err) || !(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  if (code && NETWORK_CODES.has(code)) return true;
  return NETWORK_MESSAGES.some((m) => err.message.includes(m));
}

/**
 * Wrap a driver error. `ambiguous`: a write was sent and the connection broke before the answer,
 * so it may have been applied (callers re-read their opId).
 */
export function mapPgError(err: unknown, ambiguous: boolean): RotaError {
  if (err instanceof RotaError) return err;
  if (isServerError(err)) {
    switch (err.code) {
      case RT_LEASE_NOT_FOUND:
        return new LeaseNotFoundError(err.message, { cause: err, detail: { lease: err.detail } });
      case RT_TASK_EXISTS:
        return new TaskExistsError(err.message, { cause: err, detail: { id: err.detail } });
      case RT_COMPACT_FUTURE:
        return new InvalidArgumentError(`revision: ${err.message}`, {
          cause: err,
          detail: { field: 'revision' },
        });
      case RT_COMPACTED:
        return new CompactedError(err.message, { cause: err, detail: { horizon: Number(err.detail) } });
      case '2200H':
        return new RevisionOverflowError(`a sequence passed Number.MAX_SAFE_INTEGER: ${err.message}`, {
          cause: err,
          detail: { what: 'sequence' },
        });
      case '23514':
        if (err.constraint === 'revision_safe') {
          return new RevisionOverflowError('the store revision passed Number.MAX_SAFE_INTEGER', {
            cause: err,
            detail: { what: 'revision' },
          });
        }
        break;
    }
    if (isServerGone(err)) {
      return new StoreUnavailableError(`PostgreSQL ended the session: ${err.message}`, {
        cause: err,
        detail: { ambiguous: false, sqlstate: err.code },
      });
    }
    return new StoreError(`PostgreSQL error ${err.code}: ${err.message}`, {
      cause: err,
      detail: { sqlstate: err.code },
    });
  }
  if (isNetworkError(err)) {
    const text = err instanceof Error ? err.message : String(err);
    return new StoreUnavailableError(`PostgreSQL is unreachable: ${text}`, {
      cause: err,
      detail: { ambiguous },
    });
  }
  const text = err instanceof Error ? err.message : String(err);
  return new StoreError(`PostgreSQL driver error: ${text}`, { cause: err });
}

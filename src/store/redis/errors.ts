/**
 * Map ioredis and Redis errors to Rota's coded errors. Scripts report Rota conditions as error
 * replies that start with the code (`ROTA_TASK_EXISTS <id>`), checked before they write anything.
 */
import {
  CompactedError,
  InvalidArgumentError,
  LeaseNotFoundError,
  type RotaError,
  StoreError,
  StoreUnavailableError,
  TaskExistsError,
  wrapError,
} from '../../errors.js';

/** How a failed command relates to the server. */
export type FailureKind =
  /** Never written to the socket: safe to retry. */
  | 'unsent'
  /** Written, but the connection dropped before the reply: it may have run. */
  | 'lost'
  /** The server refused it without running it (loading, busy script, failover): safe to retry. */
  | 'refused'
  /** The server ran it and answered with an error. */
  | 'reply';

const REFUSED = ['LOADING', 'BUSY', 'MASTERDOWN', 'TRYAGAIN', 'CLUSTERDOWN', 'READONLY'];

export function failureKind(err: unknown): FailureKind {
  if (!(err instanceof Error)) return 'reply';
  if (err.name === 'ReplyError') {
    const word = err.message.split(' ', 1)[0] ?? '';
    return REFUSED.includes(word) ? 'refused' : 'reply';
  }
  if (err.message.startsWith("Stream isn't writeable")) return 'unsent';
  return 'lost';
}

/** True for a `NOSCRIPT` reply (the server lost its script cache, e.g. after a restart). */
export function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError' && err.message.startsWith('NOSCRIPT');
}

/** True for FCALL's reply when the server does not have the function (restarted, FUNCTION FLUSH). */
export function isFunctionMissing(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError' && err.message.includes('Function not found');
}

/** The Rota error for a failed Redis command. `write`: the command may have changed data. */
export function toRotaError(err: unknown, write: boolean): RotaError {
  const kind = failureKind(err);
  if (kind === 'reply' && err instanceof Error) {
    const m = /^(ROTA_[A-Z_]+) ?(.*)$/s.exec(err.message);
    if (m) {
      const [, code, text = ''] = m;
      switch (code) {
        case 'ROTA_LEASE_NOT_FOUND':
          return new LeaseNotFoundError(`lease ${text} not found (expired or revoked)`, {
            detail: { lease: text },
          });
        case 'ROTA_TASK_EXISTS':
          return new TaskExistsError(`task ${text} already exists`, { detail: { id: text } });
        case 'ROTA_COMPACTED':
          return new CompactedError(text);
        case 'ROTA_INVALID_ARGUMENT':
          return new InvalidArgumentError(text, { detail: { field: 'revision' } });
      }
    }
    return new StoreError(`Redis refused the command: ${err.message}`, { cause: err });
  }
  if (kind === 'reply') return wrapError(err, 'ROTA_STORE_ERROR', 'Redis failed');
  const ambiguous = write && kind === 'lost';
  const text = err instanceof Error ? err.message : String(err);
  return new StoreUnavailableError(
    ambiguous
      ? `the connection to Redis dropped before the reply; the write may have been applied: ${text}`
      : `Redis is unavailable: ${text}`,
    { cause: err, detail: { ambiguous } },
  );
}

/**
 * What a failed attempt becomes (tasks.md §2.2, §2.4.4): a retry after the backoff while attempts
 * are left, `RetryAtError` → pending at its time without using an attempt, `RejectError` → back to
 * pending with a rejection counted, `UnrecoverableError` or the last attempt → failed for good
 * (the store dead-letters a copy when the task has a dead-letter queue).
 */
import { HandlerError, RejectError, RetryAtError, RotaError, UnrecoverableError } from '../errors.js';
import type { SettleOp } from '../store/port.js';
import { backoffDelay } from './backoff.js';
import type { BackoffFunction, BackoffOptions, TaskError } from './types.js';

/** Turn anything a handler threw into an Error (non-Error throws become ROTA_HANDLER_FAILED). */
export function asError(err: unknown): Error {
  if (err instanceof Error) return err;
  let text: string;
  try {
    text = typeof err === 'string' ? err : JSON.stringify(err);
  } catch {
    text = String(err);
  }
  return new HandlerError(`handler threw a non-Error value: ${text}`, { cause: err });
}

/** The stored form of an error: its Rota code (ROTA_HANDLER_FAILED for others) and message. */
export function taskError(err: unknown): TaskError {
  const e = asError(err);
  return { code: e instanceof RotaError ? e.code : 'ROTA_HANDLER_FAILED', message: e.message || e.name };
}

export interface FailurePolicy {
  backoff: BackoffOptions | BackoffFunction | null | undefined;
  maxRejections: number;
  random: () => number;
}

export interface FailedAttempt {
  id: string;
  token: number;
  owner: string;
  /** The attempt that failed (1-based; the item's `attempt` while running). */
  attempt: number;
  maxAttempts: number;
  /** True when the claim was started (running); a claimed-only task cannot be retried. */
  started: boolean;
}

/** The settle op for a failed attempt. `retry: false` fails for good regardless of attempts. */
export function failureOp(at: FailedAttempt, err: unknown, policy: FailurePolicy, retry = true): SettleOp {
  const e = asError(err);
  const error = taskError(e);
  const fenced = { id: at.id, token: at.token, owner: at.owner };
  if (e instanceof RejectError) {
    return {
      op: 'release',
      ...fenced,
      refundAttempt: true,
      reject: { reason: error.message, maxRejections: policy.maxRejections },
    };
  }
  if (retry && at.started && e instanceof RetryAtError) {
    return { op: 'retry', ...fenced, retryAt: Math.max(0, Math.trunc(e.at)), refundAttempt: true, error };
  }
  if (!retry || !at.started || e instanceof UnrecoverableError || at.attempt >= at.maxAttempts) {
    return { op: 'fail', ...fenced, error };
  }
  return {
    op: 'retry',
    ...fenced,
    retryIn: backoffDelay(policy.backoff, at.attempt, e, policy.random),
    error,
  };
}

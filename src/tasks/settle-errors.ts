/**
 * Store settle statuses → the spec's error codes (tasks.md §2.2): `stale` → ROTA_STALE_TOKEN,
 * `wrong_owner` → ROTA_WRONG_OWNER, `not_found` → ROTA_TASK_NOT_FOUND, `invalid_state` →
 * ROTA_INVALID_TRANSITION with `detail.from` / `detail.to`.
 *
 * The store answers `stale` both for a token that is no longer current and for a current token
 * whose state does not allow the op (a repeat after the claim ended). On the API path the item is
 * re-read to tell them apart; the worker's fast path never re-reads.
 */
import {
  InvalidTransitionError,
  type RotaError,
  StaleTokenError,
  TaskNotFoundError,
  WrongOwnerError,
} from '../errors.js';
import type { ItemState, QueueItem, SettleResult } from '../store/port.js';

/** The state each settle op moves a task to (for `detail.to`). */
export const OP_TARGET: Record<string, ItemState | 'deleted'> = {
  start: 'running',
  complete: 'completed',
  fail: 'completed',
  retry: 'pending',
  release: 'pending',
  resolve: 'deleted',
  unresolve: 'completed',
  cancel: 'completed',
  abort: 'completed',
  resolving: 'resolving',
};

export function invalidTransition(id: string, from: string | null, to: string): RotaError {
  return new InvalidTransitionError(`task ${id} cannot go from ${from} to ${to}`, {
    detail: { id, from, to },
  });
}

export function notFound(id: string): RotaError {
  return new TaskNotFoundError(`no task ${id}`, { detail: { id } });
}

/**
 * The error for a refused settle. `current` is the item re-read after a `stale` answer (undefined
 * when not re-read); `held` says whether the caller still believed it held the claim.
 */
export function settleError(
  result: SettleResult,
  op: string,
  token: number | null,
  current?: QueueItem | null,
  held = true,
): RotaError {
  const id = result.id;
  const to = OP_TARGET[op] ?? op;
  switch (result.status) {
    case 'wrong_owner':
      return new WrongOwnerError(`task ${id} is held by another owner`, {
        detail: { id, state: result.state },
      });
    case 'not_found':
      return notFound(id);
    case 'invalid_state':
      return invalidTransition(id, result.state, to);
    default: {
      if (current === null) return notFound(id);
      const item = current;
      if (item && item.token === null) return invalidTransition(id, item.state, to);
      if (item && item.token === token && !held) return invalidTransition(id, item.state, to);
      return new StaleTokenError(`token ${token} of task ${id} is not current`, {
        detail: { id, token, current: item?.token ?? null, state: item?.state ?? result.state },
      });
    }
  }
}

/**
 * The queue item state machine as pure functions over plain records (tasks.md §2.2).
 *
 * Backends that run JavaScript next to their data (memory, SQLite, etcd) call these inside their
 * own atomic section; PostgreSQL and Redis express the same rules in SQL and Lua. The conformance
 * suite holds all of them to the same behaviour.
 */
import type {
  DedupSpec,
  FeedItem,
  ItemError,
  ItemState,
  NewItem,
  QueueItem,
  RenewEntry,
  RenewResult,
  SettleOp,
  SettleResult,
  SettleStatus,
} from './port.js';
import { ITEM_DEFAULTS } from './port.js';

/** A stored record: a live item or a tombstone (state `deleted`). */
export type ItemRecord = FeedItem;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Truncate an error message to the stored maximum. */
export function storedError(error: ItemError): ItemError {
  const message = String(error.message ?? '');
  return {
    code: String(error.code),
    message:
      message.length > ITEM_DEFAULTS.errorMessageMax
        ? message.slice(0, ITEM_DEFAULTS.errorMessageMax)
        : message,
  };
}

/** Build the stored record of a new item. `seq` doubles as its first changeSeq. */
export function createItem(input: NewItem, now: number, seq: number): QueueItem {
  const dedup: DedupSpec | null | undefined = input.dedup;
  return {
    id: input.id,
    queue: input.queue,
    state: 'pending',
    outcome: null,
    payload: input.payload,
    priority: input.priority ?? ITEM_DEFAULTS.priority,
    runAt: input.runAt ?? now + (input.delay ?? 0),
    seq,
    attempt: 0,
    maxAttempts: input.maxAttempts ?? ITEM_DEFAULTS.maxAttempts,
    owner: null,
    token: null,
    leaseExpiresAt: null,
    claimedAt: null,
    startedAt: null,
    completedAt: null,
    createdAt: now,
    updatedAt: now,
    progress: null,
    result: null,
    error: null,
    rejections: 0,
    lastRejection: null,
    stalls: 0,
    timeout: input.timeout ?? null,
    claimTimeout: input.claimTimeout ?? null,
    deadLetter: input.deadLetter ?? null,
    completedTtl: input.completedTtl ?? ITEM_DEFAULTS.completedTtl,
    failedTtl: input.failedTtl ?? ITEM_DEFAULTS.failedTtl,
    dedupKey: dedup?.key ?? null,
    dedupUntil: dedup?.ttl !== undefined ? now + dedup.ttl : null,
    expireAt: null,
    meta: input.meta ?? null,
    opId: input.opId ?? null,
    changeSeq: seq,
  };
}

/** Whether a dedup holder still blocks its key at `now`. */
export function dedupActive(holder: ItemRecord | null | undefined, now: number): boolean {
  if (!holder || holder.state === 'deleted') return false;
  if (holder.state === 'pending' || holder.state === 'claimed' || holder.state === 'running') return true;
  return holder.dedupUntil !== null && now < holder.dedupUntil;
}

/** The dead-letter copy of `item`, or null when it has no dead-letter queue. */
export function deadLetterItem(item: ItemRecord, error: ItemError): NewItem | null {
  if (!item.deadLetter) return null;
  return {
    id: `dl-${item.id}`,
    queue: item.deadLetter,
    payload: item.payload,
    completedTtl: item.completedTtl,
    failedTtl: item.failedTtl,
    meta: JSON.stringify({
      deadLetter: {
        originalId: item.id,
        queue: item.queue,
        error: storedError(error),
        attempts: item.attempt,
      },
    }),
  };
}

function withChange(item: ItemRecord, now: number, changeSeq: number): Mutable<ItemRecord> {
  return { ...item, updatedAt: now, changeSeq };
}

function complete(
  next: Mutable<ItemRecord>,
  outcome: 'succeeded' | 'failed' | 'cancelled',
  now: number,
): Mutable<ItemRecord> {
  next.state = 'completed';
  next.outcome = outcome;
  next.completedAt = now;
  next.leaseExpiresAt = null;
  next.expireAt = now + (outcome === 'failed' ? next.failedTtl : next.completedTtl);
  return next;
}

function toPending(next: Mutable<ItemRecord>, runAt: number): Mutable<ItemRecord> {
  next.state = 'pending';
  next.outcome = null;
  next.owner = null;
  next.leaseExpiresAt = null;
  next.claimedAt = null;
  next.runAt = runAt;
  return next;
}

/** Whether `item` can be claimed from `pending` at `now` (pending and due, or an expired lease). */
export function isRunnable(item: ItemRecord, now: number): boolean {
  if (item.state === 'pending') return item.runAt <= now;
  if (item.state === 'claimed') return item.leaseExpiresAt !== null && item.leaseExpiresAt <= now;
  if (item.state === 'running')
    return item.leaseExpiresAt !== null && item.leaseExpiresAt <= now && item.attempt < item.maxAttempts;
  return false;
}

export interface Transition {
  /** The new record; a tombstone when the item was deleted. */
  item: ItemRecord;
  /** A dead-letter item to enqueue in the same atomic step, if any. */
  deadLetter: NewItem | null;
}

/**
 * Apply an expired lease: claimed → pending; running → pending (stall counted) or failed when no
 * attempts are left; resolving → completed. Returns null when the lease has not expired.
 */
export function expireLease(item: ItemRecord, now: number, changeSeq: number): Transition | null {
  if (item.leaseExpiresAt === null || item.leaseExpiresAt > now) return null;
  if (item.state === 'claimed')
    return { item: toPending(withChange(item, now, changeSeq), now), deadLetter: null };
  if (item.state === 'resolving') {
    const next = withChange(item, now, changeSeq);
    next.state = 'completed';
    next.owner = null;
    next.leaseExpiresAt = null;
    return { item: next, deadLetter: null };
  }
  if (item.state === 'running') {
    const error = {
      code: 'ROTA_LEASE_EXPIRED',
      message: 'the lease of the running attempt expired (stalled)',
    };
    const next = withChange(item, now, changeSeq);
    next.stalls = item.stalls + 1;
    next.error = error;
    if (item.attempt < item.maxAttempts) return { item: toPending(next, now), deadLetter: null };
    return { item: complete(next, 'failed', now), deadLetter: deadLetterItem(item, error) };
  }
  return null;
}

/** Claim `item` (already known runnable or completed) for `owner`. The token is `changeSeq`. */
export function claimItem(
  item: ItemRecord,
  request: { owner: string; leaseTtl: number; start?: boolean; from?: 'pending' | 'completed' },
  now: number,
  changeSeq: number,
): QueueItem {
  const next = withChange(item, now, changeSeq);
  next.owner = request.owner;
  next.token = changeSeq;
  next.leaseExpiresAt = now + request.leaseTtl;
  if (request.from === 'completed') {
    next.state = 'resolving';
    return next as QueueItem;
  }
  next.claimedAt = now;
  if (request.start) {
    next.state = 'running';
    next.attempt = item.attempt + 1;
    next.startedAt = now;
  } else {
    next.state = 'claimed';
  }
  return next as QueueItem;
}

/** Claim order for runnable items: priority desc, runAt asc, seq asc. Negative = a first. */
export function compareClaimOrder(a: ItemRecord, b: ItemRecord): number {
  return b.priority - a.priority || a.runAt - b.runAt || a.seq - b.seq;
}

function fence(item: ItemRecord, op: { token: number; owner: string }): SettleStatus | null {
  if (item.token === op.token) return null;
  const held = item.state === 'claimed' || item.state === 'running' || item.state === 'resolving';
  return held && item.owner !== null && item.owner !== op.owner ? 'wrong_owner' : 'stale';
}

function result(id: string, status: SettleStatus, item: ItemRecord | null): SettleResult {
  const live = item && item.state !== 'deleted' ? item : null;
  return { id, status, state: live ? (live.state as ItemState) : null, outcome: live ? live.outcome : null };
}

/**
 * Apply one settle op to the current record (null or a tombstone when absent).
 * Returns the result and, when something changed, the transition to store.
 */
export function settleItem(
  current: ItemRecord | null,
  op: SettleOp,
  now: number,
  changeSeq: number,
): { result: SettleResult; transition: Transition | null } {
  const refuse = (status: SettleStatus) => ({ result: result(op.id, status, current), transition: null });
  const live = current && current.state !== 'deleted' ? current : null;

  if (op.op === 'cancel' || op.op === 'abort') {
    if (!live) return refuse('not_found');
    if (live.state !== 'pending' && live.state !== 'claimed' && live.state !== 'running')
      return refuse('invalid_state');
    const next = withChange(live, now, changeSeq);
    next.leaseExpiresAt = null;
    if (op.op === 'cancel') {
      next.error = { code: 'ROTA_TASK_CANCELLED', message: op.reason ?? 'cancelled' };
      complete(next, 'cancelled', now);
    } else {
      next.error = storedError(op.error);
      complete(next, 'failed', now);
    }
    return { result: result(op.id, 'ok', next), transition: { item: next, deadLetter: null } };
  }

  if (!current) return refuse('not_found');
  const fenced = fence(current, op);
  if (fenced) return refuse(current.state === 'deleted' ? 'not_found' : fenced);

  const state = current.state;
  const next = withChange(current, now, changeSeq);
  const ok = (item: ItemRecord, deadLetter: NewItem | null = null) => ({
    result: result(op.id, 'ok', item),
    transition: { item, deadLetter },
  });

  switch (op.op) {
    case 'start':
      if (state === 'claimed') {
        next.state = 'running';
        next.attempt = current.attempt + 1;
        next.startedAt = now;
        return ok(next);
      }
      return refuse(state === 'running' ? 'noop' : 'stale');
    case 'complete':
      if (state === 'claimed' || state === 'running') {
        if (state === 'claimed') {
          next.attempt = current.attempt + 1;
          next.startedAt = now;
        }
        next.result = op.result ?? null;
        next.error = null;
        return ok(complete(next, 'succeeded', now));
      }
      return refuse(state === 'completed' && current.outcome === 'succeeded' ? 'noop' : 'stale');
    case 'retry':
      if (state === 'running') {
        if (op.error) next.error = storedError(op.error);
        if (op.refundAttempt) next.attempt = Math.max(0, current.attempt - 1);
        const runAt = op.retryAt ?? now + (op.retryIn ?? 0);
        return ok(toPending(next, runAt));
      }
      return refuse(state === 'pending' ? 'noop' : 'stale');
    case 'fail':
      if (state === 'claimed' || state === 'running') {
        const error = storedError(op.error);
        next.error = error;
        return ok(complete(next, 'failed', now), deadLetterItem(current, error));
      }
      return refuse(state === 'completed' && current.outcome === 'failed' ? 'noop' : 'stale');
    case 'release':
      if (state === 'claimed' || state === 'running') {
        if (op.refundAttempt && state === 'running') next.attempt = Math.max(0, current.attempt - 1);
        if (op.reject) {
          next.rejections = current.rejections + 1;
          next.lastRejection = op.reject.reason;
          if (next.rejections > op.reject.maxRejections) {
            next.error = storedError({ code: 'ROTA_TASK_REJECTED', message: op.reject.reason });
            return ok(complete(next, 'failed', now));
          }
        }
        return ok(toPending(next, now));
      }
      return refuse(state === 'pending' ? 'noop' : 'stale');
    case 'resolve':
      if (state === 'resolving') {
        next.state = 'deleted';
        next.leaseExpiresAt = null;
        return ok(next);
      }
      return refuse(state === 'deleted' ? 'noop' : 'stale');
    case 'unresolve':
      if (state === 'resolving') {
        next.state = 'completed';
        next.owner = null;
        next.leaseExpiresAt = null;
        return ok(next);
      }
      return refuse(state === 'completed' ? 'noop' : 'stale');
  }
}

/** Renew one entry's lease. Returns the new record when it changed. */
export function renewItem(
  current: ItemRecord | null,
  entry: RenewEntry,
  leaseTtl: number,
  now: number,
  changeSeq: number,
): { result: RenewResult; item: ItemRecord | null } {
  if (!current || current.state === 'deleted' || current.token !== entry.token) {
    return { result: { id: entry.id, status: 'stale', leaseExpiresAt: null }, item: null };
  }
  if (current.state === 'completed' && current.outcome === 'cancelled') {
    return { result: { id: entry.id, status: 'cancelled', leaseExpiresAt: null }, item: null };
  }
  if (current.state !== 'claimed' && current.state !== 'running' && current.state !== 'resolving') {
    return { result: { id: entry.id, status: 'stale', leaseExpiresAt: null }, item: null };
  }
  const next = withChange(current, now, changeSeq);
  next.leaseExpiresAt = now + leaseTtl;
  if (entry.progress !== undefined) next.progress = entry.progress;
  return { result: { id: entry.id, status: 'ok', leaseExpiresAt: next.leaseExpiresAt }, item: next };
}

/** Sweep rule: a claim older than `startTimeout` goes back to pending. */
export function unstartItem(item: ItemRecord, now: number, changeSeq: number): ItemRecord {
  return toPending(withChange(item, now, changeSeq), now);
}

/** Sweep rule: a running item past startedAt + timeout + grace fails its attempt with ROTA_TASK_TIMEOUT. */
export function timeoutItem(item: ItemRecord, now: number, changeSeq: number): Transition {
  const error = {
    code: 'ROTA_TASK_TIMEOUT',
    message: `the attempt ran longer than its timeout of ${item.timeout} ms`,
  };
  const next = withChange(item, now, changeSeq);
  next.error = error;
  if (item.attempt < item.maxAttempts) return { item: toPending(next, now), deadLetter: null };
  return { item: complete(next, 'failed', now), deadLetter: deadLetterItem(item, error) };
}

/** Sweep rule: a pending item unclaimed past runAt + claimTimeout fails with ROTA_TASK_UNCLAIMED. */
export function unclaimedItem(item: ItemRecord, now: number, changeSeq: number): ItemRecord {
  const next = withChange(item, now, changeSeq);
  next.error = {
    code: 'ROTA_TASK_UNCLAIMED',
    message: `not claimed within ${item.claimTimeout} ms of its run time`,
  };
  return complete(next, 'failed', now);
}

/** Sweep rule: a completed item past its retention becomes a tombstone. */
export function pruneItem(item: ItemRecord, now: number, changeSeq: number): ItemRecord {
  const next = withChange(item, now, changeSeq);
  next.state = 'deleted';
  return next;
}

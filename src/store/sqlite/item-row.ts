/** Conversion between `rota_items` rows and the queue model's records. */
import type { FeedState, ItemError, Outcome } from '../port.js';
import type { ItemRecord } from '../queue-model.js';
import type { ItemColumn } from './sql/items.js';

export type ItemRow = Record<ItemColumn, string | number | null>;

const str = (v: string | number | null): string | null => (v === null ? null : String(v));
const num = (v: string | number | null): number | null => (v === null ? null : Number(v));

export function rowToItem(row: ItemRow): ItemRecord {
  const error: ItemError | null =
    row.error_code === null
      ? null
      : { code: String(row.error_code), message: String(row.error_message ?? '') };
  return {
    id: String(row.id),
    queue: String(row.queue),
    state: row.state as FeedState,
    outcome: row.outcome as Outcome | null,
    payload: String(row.payload),
    priority: Number(row.priority),
    runAt: Number(row.run_at),
    seq: Number(row.seq),
    attempt: Number(row.attempt),
    maxAttempts: Number(row.max_attempts),
    owner: str(row.owner),
    token: num(row.token),
    leaseExpiresAt: num(row.lease_expires_at),
    claimedAt: num(row.claimed_at),
    startedAt: num(row.started_at),
    completedAt: num(row.completed_at),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    progress: str(row.progress),
    result: str(row.result),
    error,
    rejections: Number(row.rejections),
    lastRejection: str(row.last_rejection),
    stalls: Number(row.stalls),
    timeout: num(row.timeout),
    claimTimeout: num(row.claim_timeout),
    deadLetter: str(row.dead_letter),
    completedTtl: Number(row.completed_ttl),
    failedTtl: Number(row.failed_ttl),
    dedupKey: str(row.dedup_key),
    dedupUntil: num(row.dedup_until),
    expireAt: num(row.expire_at),
    meta: str(row.meta),
    opId: str(row.op_id),
    changeSeq: Number(row.change_seq),
  };
}

/**
 * Named parameters of UPSERT_ITEM for `item`. `ready` is storage-only: a pending item already due
 * at `now` goes straight to the ready index; a later one waits in the delayed index until a claim
 * promotes it.
 */
export function itemParams(item: ItemRecord, now: number): ItemRow {
  return {
    id: item.id,
    queue: item.queue,
    state: item.state,
    ready: item.state === 'pending' && item.runAt <= now ? 1 : 0,
    outcome: item.outcome,
    payload: item.payload,
    priority: item.priority,
    run_at: item.runAt,
    seq: item.seq,
    attempt: item.attempt,
    max_attempts: item.maxAttempts,
    owner: item.owner,
    token: item.token,
    lease_expires_at: item.leaseExpiresAt,
    claimed_at: item.claimedAt,
    started_at: item.startedAt,
    completed_at: item.completedAt,
    created_at: item.createdAt,
    updated_at: item.updatedAt,
    progress: item.progress,
    result: item.result,
    error_code: item.error?.code ?? null,
    error_message: item.error?.message ?? null,
    rejections: item.rejections,
    last_rejection: item.lastRejection,
    stalls: item.stalls,
    timeout: item.timeout,
    claim_timeout: item.claimTimeout,
    dead_letter: item.deadLetter,
    completed_ttl: item.completedTtl,
    failed_ttl: item.failedTtl,
    dedup_key: item.dedupKey,
    dedup_until: item.dedupUntil,
    expire_at: item.expireAt,
    meta: item.meta,
    op_id: item.opId,
    change_seq: item.changeSeq,
  };
}

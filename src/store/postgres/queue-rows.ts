/**
 * Wire forms of the queue: items come back as rows of the `items` table (snake_case columns), and
 * go out as JSON whose keys are the fields of the `q_new` and `q_op` types (02-queue-tables.sql).
 */
import { InvalidArgumentError } from '../../errors.js';
import { toSafeInteger } from '../keys.js';
import type { FeedItem, ItemError, NewItem, Outcome, SettleOp } from '../port.js';
import { ITEM_DEFAULTS } from '../port.js';
import { storedError } from '../queue-model.js';

/** An items row as node-postgres returns it: bigint and xid8 columns as decimal strings. */
export interface ItemRow {
  id: string;
  queue: string;
  state: FeedItem['state'];
  outcome: Outcome | null;
  payload: string;
  priority: number;
  run_at: string;
  seq: string;
  attempt: number;
  max_attempts: number;
  owner: string | null;
  token: string | null;
  lease_expires_at: string | null;
  claimed_at: string | null;
  started_at: string | null;
  completed_at: string | null;
  created_at: string;
  updated_at: string;
  progress: string | null;
  result: string | null;
  error_code: string | null;
  error_message: string | null;
  rejections: number;
  last_rejection: string | null;
  stalls: number;
  timeout: string | null;
  claim_timeout: string | null;
  dead_letter: string | null;
  completed_ttl: string;
  failed_ttl: string;
  dedup_key: string | null;
  dedup_until: string | null;
  expire_at: string | null;
  meta: string | null;
  op_id: string | null;
  change_xid: string;
}

const big = (value: string, what: string): number => toSafeInteger(value, what);
const bigOrNull = (value: string | null, what: string): number | null =>
  value === null ? null : toSafeInteger(value, what);

/** A row as the port's item (a tombstone keeps state `deleted`). */
export function itemOf(row: ItemRow): FeedItem {
  return {
    id: row.id,
    queue: row.queue,
    state: row.state,
    outcome: row.outcome,
    payload: row.payload,
    priority: row.priority,
    runAt: big(row.run_at, 'runAt'),
    seq: big(row.seq, 'seq'),
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    owner: row.owner,
    token: bigOrNull(row.token, 'token'),
    leaseExpiresAt: bigOrNull(row.lease_expires_at, 'leaseExpiresAt'),
    claimedAt: bigOrNull(row.claimed_at, 'claimedAt'),
    startedAt: bigOrNull(row.started_at, 'startedAt'),
    completedAt: bigOrNull(row.completed_at, 'completedAt'),
    createdAt: big(row.created_at, 'createdAt'),
    updatedAt: big(row.updated_at, 'updatedAt'),
    progress: row.progress,
    result: row.result,
    error: row.error_code === null ? null : { code: row.error_code, message: row.error_message ?? '' },
    rejections: row.rejections,
    lastRejection: row.last_rejection,
    stalls: row.stalls,
    timeout: bigOrNull(row.timeout, 'timeout'),
    claimTimeout: bigOrNull(row.claim_timeout, 'claimTimeout'),
    deadLetter: row.dead_letter,
    completedTtl: big(row.completed_ttl, 'completedTtl'),
    failedTtl: big(row.failed_ttl, 'failedTtl'),
    dedupKey: row.dedup_key,
    dedupUntil: bigOrNull(row.dedup_until, 'dedupUntil'),
    expireAt: bigOrNull(row.expire_at, 'expireAt'),
    meta: row.meta,
    opId: row.op_id,
    changeSeq: big(row.change_xid, 'changeSeq'),
  };
}

/**
 * PostgreSQL text cannot hold NUL, and the driver would silently turn a lone surrogate into
 * U+FFFD: user data with either is refused rather than stored altered.
 */
export function checkText(field: string, value: string | null | undefined): void {
  if (value === null || value === undefined) return;
  if (value.includes('\u0000')) {
    throw new InvalidArgumentError(`${field}: must not contain NUL (PostgreSQL text cannot store it)`, {
      detail: { field },
    });
  }
  if (!value.isWellFormed()) {
    throw new InvalidArgumentError(`${field}: must be well-formed Unicode (no lone surrogates)`, {
      detail: { field },
    });
  }
}

/** Diagnostic text (error messages, reasons) is stored with what cannot be stored replaced. */
function storable(text: string): string {
  return text.replaceAll('\u0000', '\ufffd').toWellFormed();
}

function storableError(error: ItemError): { code: string; message: string } {
  const stored = storedError(error);
  return { code: storable(stored.code), message: storable(stored.message) };
}

/** An item to enqueue as a `q_new` record: the port's defaults applied (all but runAt, which needs store time). */
export interface NewItemRecord {
  id: string;
  payload: string;
  [field: string]: string | number | null;
}

/**
 * The fields other than id and payload, when every record of the batch has the same ones (a
 * `q_new` record without id and payload), else null.
 */
export function uniformFields(records: NewItemRecord[]): Record<string, string | number | null> | null {
  const [first, ...rest] = records;
  if (!first) return null;
  const { id: _id, payload: _payload, ...common } = first;
  const fields = Object.keys(common);
  for (const r of rest) {
    for (const f of fields) if (r[f] !== common[f]) return null;
  }
  return common;
}

/** An item to enqueue, with the port's defaults applied (all but runAt, which needs store time). */
export function newItemJson(item: NewItem, i: number): NewItemRecord {
  const field = `items[${i}]`;
  checkText(`${field}.payload`, item.payload);
  checkText(`${field}.meta`, item.meta);
  checkText(`${field}.opId`, item.opId);
  return {
    id: item.id,
    queue: item.queue,
    payload: item.payload,
    priority: item.priority ?? ITEM_DEFAULTS.priority,
    run_at: item.runAt ?? null,
    delay: item.delay ?? 0,
    max_attempts: item.maxAttempts ?? ITEM_DEFAULTS.maxAttempts,
    timeout: item.timeout ?? null,
    claim_timeout: item.claimTimeout ?? null,
    dead_letter: item.deadLetter ?? null,
    completed_ttl: item.completedTtl ?? ITEM_DEFAULTS.completedTtl,
    failed_ttl: item.failedTtl ?? ITEM_DEFAULTS.failedTtl,
    dedup_key: item.dedup?.key ?? null,
    dedup_ttl: item.dedup?.ttl ?? null,
    dedup_mode: item.dedup ? (item.dedup.mode ?? 'keep') : null,
    meta: item.meta ?? null,
    op_id: item.opId ?? null,
  };
}

/** A settle op as a `q_op` record. Errors are stored truncated like the queue model does. */
export function settleOpJson(op: SettleOp, i: number): Record<string, unknown> {
  const out: Record<string, unknown> = { op: op.op, id: op.id };
  if ('token' in op) {
    checkText(`ops[${i}].owner`, op.owner);
    out.token = op.token;
    out.owner = op.owner;
  }
  switch (op.op) {
    case 'complete':
      checkText(`ops[${i}].result`, op.result);
      out.result = op.result ?? null;
      break;
    case 'retry':
      if (op.error) {
        const e = storableError(op.error);
        out.error_code = e.code;
        out.error_message = e.message;
      }
      out.retry_at = op.retryAt ?? null;
      out.retry_in = op.retryIn ?? null;
      out.refund = op.refundAttempt ?? false;
      break;
    case 'fail':
    case 'abort': {
      const e = storableError(op.error);
      out.error_code = e.code;
      out.error_message = e.message;
      break;
    }
    case 'release':
      out.refund = op.refundAttempt ?? false;
      if (op.reject) {
        out.reject_reason = storable(op.reject.reason);
        out.reject_message = storableError({ code: 'ROTA_TASK_REJECTED', message: op.reject.reason }).message;
        out.max_rejections = op.reject.maxRejections;
      }
      break;
    case 'cancel':
      out.reason = op.reason === undefined ? null : storable(op.reason);
      break;
  }
  return out;
}

/**
 * Store items ↔ tasks. The store keeps payload, result, progress and the module's `meta` as JSON
 * text it never parses; this file turns an item into a {@link Task} and says when a record cannot
 * be decoded (a malformed record, deleted by the converger).
 */
import type { FeedItem, QueueItem } from '../store/port.js';
import type { BackoffOptions, DeadLetterInfo, RemovedTask, Task, TaskResult } from './types.js';

/** Module-owned fields kept in the item's `meta` JSON. Only present fields are written. */
export interface TaskMeta {
  backoff?: BackoffOptions;
  heartbeatTimeout?: number;
  tags?: string[];
  annotation?: string;
  callbackUrl?: string;
  /** Written by the store on dead-letter copies. */
  deadLetter?: DeadLetterInfo;
}

/** Thrown by {@link toTask} for a record whose JSON fields do not decode. */
export class MalformedRecord extends Error {
  constructor(
    readonly id: string,
    readonly queue: string,
    reason: string,
  ) {
    super(reason);
  }
}

const EMPTY_TAGS: readonly string[] = Object.freeze([]);

function parse(item: FeedItem, field: string, text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new MalformedRecord(item.id, item.queue, `${field} is not valid JSON`);
  }
}

/** Decode `meta` (null when absent). */
export function decodeMeta(item: FeedItem): TaskMeta | null {
  if (item.meta === null) return null;
  const meta = parse(item, 'meta', item.meta);
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta))
    throw new MalformedRecord(item.id, item.queue, 'meta is not a JSON object');
  return meta as TaskMeta;
}

/** Turn a store item into a task. Throws {@link MalformedRecord} when it does not decode. */
export function toTask<P = unknown, R = unknown>(item: QueueItem): Task<P, R>;
export function toTask<P = unknown, R = unknown>(item: FeedItem): Task<P, R> | RemovedTask<P, R>;
export function toTask<P = unknown, R = unknown>(item: FeedItem): Task<P, R> | RemovedTask<P, R> {
  const meta = decodeMeta(item);
  return {
    id: item.id,
    queue: item.queue,
    payload: parse(item, 'payload', item.payload) as P,
    state: item.state as Task['state'],
    outcome: item.outcome,
    priority: item.priority,
    runAt: item.runAt,
    seq: item.seq,
    attempt: item.attempt,
    maxAttempts: item.maxAttempts,
    backoff: meta?.backoff ?? null,
    timeout: item.timeout,
    heartbeatTimeout: meta?.heartbeatTimeout ?? null,
    claimTimeout: item.claimTimeout,
    owner: item.owner,
    token: item.token,
    leaseExpiresAt: item.leaseExpiresAt,
    claimedAt: item.claimedAt,
    startedAt: item.startedAt,
    completedAt: item.completedAt,
    createdAt: item.createdAt,
    updatedAt: item.updatedAt,
    progress: parse(item, 'progress', item.progress),
    result: parse(item, 'result', item.result) as R | null,
    error: item.error,
    rejections: item.rejections,
    lastRejection: item.lastRejection,
    stalls: item.stalls,
    dedupKey: item.dedupKey,
    deadLetter: item.deadLetter,
    deadLettered: meta?.deadLetter ?? null,
    annotation: meta?.annotation ?? null,
    tags: meta?.tags ?? EMPTY_TAGS,
    callbackUrl: meta?.callbackUrl ?? null,
    completedTtl: item.completedTtl,
    failedTtl: item.failedTtl,
    expireAt: item.expireAt,
    changeSeq: item.changeSeq,
    opId: item.opId,
  } as Task<P, R>;
}

/** The outcome of a finished task (completed, resolving, or deleted after completing), else null. */
export function resultOf<R>(item: FeedItem): TaskResult<R> | null {
  if (item.outcome === null) return null;
  return {
    id: item.id,
    outcome: item.outcome,
    result: parse(item, 'result', item.result) as R | null,
    error: item.error,
  };
}

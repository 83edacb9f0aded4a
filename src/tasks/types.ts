/**
 * Public types of the tasks module (tasks.md): the task record, enqueue options, queue
 * configuration, watch events and results.
 */
import type { ItemError, ItemState, Outcome } from '../store/port.js';

/** Lifecycle state of a task (tasks.md §2.2). */
export type TaskState = ItemState;
/** How a completed task ended. */
export type TaskOutcome = Outcome;
/** A stored error: stable code plus message (at most 1 024 chars). */
export type TaskError = ItemError;

/** A retry backoff (tasks.md §2.4.5). Every field has a default. */
export interface BackoffOptions {
  /** `fixed`: always `delay`. `exponential` (default): `delay · factor^(attempt − 1)`. */
  type?: 'fixed' | 'exponential';
  /** Base delay in ms. Default 1 000. */
  delay?: number;
  /** Growth factor of `exponential`. Default 2. */
  factor?: number;
  /** Upper bound in ms. Default 3 600 000. */
  maxDelay?: number;
  /** Random reduction: the delay is multiplied by `1 − jitter · random()`. 0 … 1, default 0.2. */
  jitter?: number;
}

/** A custom backoff: receives the attempt that failed (1-based) and its error; returns ms. */
export type BackoffFunction = (attempt: number, error: unknown) => number;

/** Dedup options (tasks.md §2.5). */
export interface DedupOptions {
  /** The key; at most one task per queue holds an active key. */
  key: string;
  /** Keep the key active until `createdAt + ttl` even after the task completes. */
  ttl?: number;
  /** `keep` (default): return the holder. `replace`: replace a pending holder's payload, runAt, priority. */
  mode?: 'keep' | 'replace';
}

/** Where a dead-lettered task came from (set on tasks in a dead-letter queue). */
export interface DeadLetterInfo {
  readonly originalId: string;
  readonly queue: string;
  readonly error: TaskError;
  readonly attempts: number;
}

/** A task as read from the store. Instants are store-time epoch ms. */
export interface Task<P = unknown, R = unknown> {
  readonly id: string;
  readonly queue: string;
  readonly payload: P;
  readonly state: TaskState;
  readonly outcome: TaskOutcome | null;
  /** Higher runs first. */
  readonly priority: number;
  readonly runAt: number;
  /** Store-assigned enqueue order. */
  readonly seq: number;
  /** Attempts started so far. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** The task's own backoff (null: the worker's, then the queue's, then the default). */
  readonly backoff: BackoffOptions | null;
  /** Run timeout in ms (null: none). */
  readonly timeout: number | null;
  readonly heartbeatTimeout: number | null;
  readonly claimTimeout: number | null;
  readonly owner: string | null;
  /** Fencing token of the latest claim. */
  readonly token: number | null;
  readonly leaseExpiresAt: number | null;
  readonly claimedAt: number | null;
  readonly startedAt: number | null;
  readonly completedAt: number | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Latest progress reported by the handler (JSON), or null. */
  readonly progress: unknown;
  /** The handler's return value (JSON) once succeeded, else null. */
  readonly result: R | null;
  readonly error: TaskError | null;
  readonly rejections: number;
  readonly lastRejection: string | null;
  /** Lease expiries of running attempts so far. */
  readonly stalls: number;
  readonly dedupKey: string | null;
  readonly deadLetter: string | null;
  /** Set on a dead-letter copy: where it came from. */
  readonly deadLettered: DeadLetterInfo | null;
  readonly annotation: string | null;
  readonly tags: readonly string[];
  readonly callbackUrl: string | null;
  readonly completedTtl: number;
  readonly failedTtl: number;
  /** When a completed task is pruned. */
  readonly expireAt: number | null;
  /** Position of the task's latest change in the change feed. */
  readonly changeSeq: number;
  readonly opId: string | null;
}

/** Options of one task. Every option has a default (queue configuration, then the module's). */
export interface EnqueueOptions {
  /** `^[A-Za-z0-9_-]{1,128}$`. Default: a generated time-ordered id (UUIDv7). */
  id?: string;
  /** int32, higher first. Default 0. */
  priority?: number;
  /** Runnable this many ms after store now. Default 0. */
  delay?: number;
  /** Runnable at this instant (Date or epoch ms, store time). Wins over `delay`. */
  runAt?: Date | number;
  /** Total handler attempts (≥ 1). Default: queue config, else 3. */
  maxAttempts?: number;
  /** Retry backoff. Default: the worker's, then the queue's, then exponential 1 000 ms ×2, jitter 0.2. */
  backoff?: BackoffOptions;
  /** Run timeout in ms, `null` for none. Default: queue config, else 900 000. */
  timeout?: number | null;
  /** Abort when the handler does not heartbeat for this long. Default: worker/queue config, else none. */
  heartbeatTimeout?: number;
  /** Fail with ROTA_TASK_UNCLAIMED when not claimed this long after runAt. Default: none. */
  claimTimeout?: number | null;
  dedup?: DedupOptions;
  /** Queue receiving a copy when the task fails for good. Default: queue config, else none. */
  deadLetter?: string | null;
  /** Keep succeeded/cancelled tasks this long. Default: queue config, else 3 600 000. */
  completedTtl?: number;
  /** Keep failed tasks this long. Default: queue config, else 604 800 000. */
  failedTtl?: number;
  /** Names for your own filtering. Default []. */
  tags?: string[];
  /** Free text kept with the task. */
  annotation?: string;
  /** Absolute http(s) URL for the server's completion webhook. */
  callbackUrl?: string;
}

/** One item of `enqueueMany`. */
export interface EnqueueItem<P = unknown> extends EnqueueOptions {
  payload: P;
}

/** What `enqueue` returns. */
export interface TaskRef {
  readonly id: string;
  readonly queue: string;
  /** `created`, or `deduplicated`/`replaced` when an active dedup holder (`id`) exists. */
  readonly status: 'created' | 'deduplicated' | 'replaced';
  readonly deduplicated: boolean;
  readonly replaced: boolean;
}

/** Per-queue defaults stored under `tasks/queues/<queue>`; per-task options win. */
export interface QueueConfig {
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /** Run timeout in ms, null for none. */
  timeout?: number | null;
  heartbeatTimeout?: number;
  /** Default lease of workers on this queue. */
  leaseTtl?: number;
  deadLetter?: string | null;
  completedTtl?: number;
  failedTtl?: number;
  claimTimeout?: number | null;
}

/** A change seen by `watch`. `cursor` resumes the watch right after this event. */
export interface TaskEvent<P = unknown, R = unknown> {
  readonly type: 'created' | 'changed' | 'removed';
  /** The task after the change (for `removed`: its last state, with state `deleted`). */
  readonly task: Task<P, R> | RemovedTask<P, R>;
  readonly cursor: number;
}

/** The last known record of a deleted task. */
export type RemovedTask<P = unknown, R = unknown> = Omit<Task<P, R>, 'state'> & { readonly state: 'deleted' };

/** What `waitFor` resolves with. */
export interface TaskResult<R = unknown> {
  readonly id: string;
  readonly outcome: TaskOutcome;
  readonly result: R | null;
  readonly error: TaskError | null;
}

/** What one converger pass did (`converge:completed`). */
export interface ConvergeReport {
  /** Tasks moved by the pass (reclaimed, stalled, unstarted, timed out, unclaimed, unresolved). */
  readonly transitions: number;
  /** Tasks deleted (retention and malformed records). */
  readonly pruned: number;
  readonly durationMs: number;
  readonly reclaimed: number;
  readonly stalled: number;
  readonly unstarted: number;
  readonly timedOut: number;
  readonly unclaimed: number;
  readonly unresolved: number;
  readonly malformed: number;
}

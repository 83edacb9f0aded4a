/** What a pool worker runs: the job handler and the job object it receives. */

/** Why `stop` is called. */
export type StopReason = 'stopped' | 'rebalanced' | 'removed' | 'closed' | 'shutdown' | 'leaseLost';

/** A job as its worker sees it, for one ownership (one `token`). */
export interface PoolJob {
  readonly key: string;
  /** The dispatched payload (a fresh copy), or null. */
  readonly payload: Uint8Array | null;
  /** Store time of the dispatch. */
  readonly createdAt: number;
  /** False for the first start of the job, true for every later start (after a move or restart). */
  readonly requeued: boolean;
  /** 1 + the consecutive failed starts before this one. */
  readonly attempt: number;
  readonly workerId: string;
  /** Node id of the dispatcher. */
  readonly dispatchedBy: string;
  /**
   * Fencing token of this ownership: strictly greater for every later owner of the key. Stamp
   * external side effects with it and refuse lower ones, so a zombie owner cannot clobber its
   * successor.
   */
  readonly token: number;
  /** Aborts when the job is stopped, handed off, or its ownership is lost (lease loss). */
  readonly signal: AbortSignal;
}

/**
 * A worker's handler. `start` should return once the job is running (long-running work continues
 * in the background until `stop`); it must finish within `ackGracePeriod`. Throwing from `start`
 * fails the start (a `RequeueError` asks for a retry later, possibly elsewhere). All methods may be
 * async.
 */
export interface JobHandler {
  start(job: PoolJob): Promise<void> | void;
  stop(job: PoolJob, reason: StopReason): Promise<void> | void;
  /** Optional: receives `pool.notify(key, payload)` messages in order, while the job runs here. */
  notify?(job: PoolJob, payload: Uint8Array | null): Promise<void> | void;
}

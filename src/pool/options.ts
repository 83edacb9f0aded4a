/** Options of `rota.pool.join` and of the pool node's calls, with their documented defaults. */
import { isLogger, type Logger } from '../core/logger.js';
import {
  checkBoolean,
  checkDuration,
  checkFunction,
  checkInt,
  checkOptions,
  checkSignal,
  invalid,
} from '../validate.js';
import type { PlacementFn } from './placement.js';

/** Options of `rota.pool.join(name, options)`. Every option has a default. */
export interface PoolOptions {
  /** Dispatch, stop, notify and query only: no workers, no reconciling. Default false. */
  clientOnly?: boolean;
  /** TTL of the node's pool lease, in ms (≥ 1 000, rounded up to whole seconds). Default 10 000. */
  workerTtl?: number;
  /** Bound on stopping jobs in `removeWorker`, `close` and `shutdown`, in ms. Default 120 000. */
  workerShutdownTimeout?: number;
  /**
   * Start deadline; how long a job may stay unowned before the next-ranked worker may take it;
   * retry delay after a `RequeueError`. In ms (≥ 100). Default 20 000.
   */
  ackGracePeriod?: number;
  /** Deprecated alias of `ackGracePeriod` (Pulse's `WithPendingJobTTL`). */
  pendingJobTtl?: number;
  /** Admission bound: jobs dispatched but never started; more → `ROTA_QUEUE_FULL`. Default 1 000. */
  maxQueuedJobs?: number;
  /** Consecutive failed starts of a requeued job before it is marked `failed`. Default 5. */
  maxStartAttempts?: number;
  /** Period of the safety full reconcile, in ms (watches drive the rest). Default 5 000. */
  resyncInterval?: number;
  /** Coalescing delay before reconciling after a worker joins or leaves, in ms (≥ 0). Default 250. */
  rebalanceDelay?: number;
  /** Longest time a notification waits for an owner, in ms. Default 120 000. */
  notifyTtl?: number;
  /** Where this pool logs. Default: the node's logger. */
  logger?: Logger;
  /**
   * Test seam replacing rendezvous placement: `(key, activeWorkerIds oldestFirst, attempt) =>
   * workerId`. Every node of a pool must use the same function.
   */
  placement?: PlacementFn;
}

export interface ResolvedPoolOptions {
  readonly clientOnly: boolean;
  readonly workerTtl: number;
  readonly workerShutdownTimeout: number;
  readonly ackGracePeriod: number;
  readonly maxQueuedJobs: number;
  readonly maxStartAttempts: number;
  readonly resyncInterval: number;
  readonly rebalanceDelay: number;
  readonly notifyTtl: number;
  readonly logger: Logger | undefined;
  readonly placement: PlacementFn | undefined;
}

export const POOL_DEFAULTS = {
  clientOnly: false,
  workerTtl: 10_000,
  workerShutdownTimeout: 120_000,
  ackGracePeriod: 20_000,
  maxQueuedJobs: 1_000,
  maxStartAttempts: 5,
  resyncInterval: 5_000,
  rebalanceDelay: 250,
  notifyTtl: 120_000,
  /** Worker `concurrency`: keys whose control operations run at once (Pulse: one FIFO). */
  concurrency: 1,
  /** Producer schedules dispatch at most this many plan entries at once. */
  planParallelism: 16,
} as const;

const POOL_OPTION_KEYS = [
  'clientOnly',
  'workerTtl',
  'workerShutdownTimeout',
  'ackGracePeriod',
  'pendingJobTtl',
  'maxQueuedJobs',
  'maxStartAttempts',
  'resyncInterval',
  'rebalanceDelay',
  'notifyTtl',
  'logger',
  'placement',
] as const;

/** Validate join options and apply the defaults (throws `ROTA_INVALID_ARGUMENT`). */
export function resolvePoolOptions(options: PoolOptions | undefined): ResolvedPoolOptions {
  const o = checkOptions('options', options, POOL_OPTION_KEYS) as PoolOptions;
  if (o.logger !== undefined && !isLogger(o.logger)) {
    invalid('options.logger', 'must have debug, info, warn and error methods');
  }
  if (o.placement !== undefined) checkFunction('options.placement', o.placement);
  if (
    o.ackGracePeriod !== undefined &&
    o.pendingJobTtl !== undefined &&
    o.ackGracePeriod !== o.pendingJobTtl
  ) {
    invalid('options.pendingJobTtl', 'is an alias of ackGracePeriod; give one of them');
  }
  const ack = o.ackGracePeriod ?? o.pendingJobTtl ?? POOL_DEFAULTS.ackGracePeriod;
  return {
    clientOnly: checkBoolean('options.clientOnly', o.clientOnly ?? POOL_DEFAULTS.clientOnly),
    workerTtl: checkDuration('options.workerTtl', o.workerTtl ?? POOL_DEFAULTS.workerTtl, 1000),
    workerShutdownTimeout: checkDuration(
      'options.workerShutdownTimeout',
      o.workerShutdownTimeout ?? POOL_DEFAULTS.workerShutdownTimeout,
    ),
    ackGracePeriod: checkDuration(
      o.ackGracePeriod !== undefined ? 'options.ackGracePeriod' : 'options.pendingJobTtl',
      ack,
      100,
    ),
    maxQueuedJobs: checkInt('options.maxQueuedJobs', o.maxQueuedJobs ?? POOL_DEFAULTS.maxQueuedJobs, 1),
    maxStartAttempts: checkInt(
      'options.maxStartAttempts',
      o.maxStartAttempts ?? POOL_DEFAULTS.maxStartAttempts,
      1,
    ),
    resyncInterval: checkDuration('options.resyncInterval', o.resyncInterval ?? POOL_DEFAULTS.resyncInterval),
    rebalanceDelay: checkInt('options.rebalanceDelay', o.rebalanceDelay ?? POOL_DEFAULTS.rebalanceDelay, 0),
    notifyTtl: checkDuration('options.notifyTtl', o.notifyTtl ?? POOL_DEFAULTS.notifyTtl, 1000),
    logger: o.logger,
    placement: o.placement,
  };
}

/** Options of `pool.addWorker`. */
export interface WorkerOptions {
  /** Keys whose control operations (start/stop/notify) run at once on this worker. Default 1. */
  concurrency?: number;
}

/** Options of `pool.dispatch`. */
export interface DispatchOptions {
  /** Wait until a worker started the job (or its first start failed). Default true. */
  wait?: boolean;
  /** Bound on the wait, in ms → `ROTA_DISPATCH_TIMEOUT`. Default 2 × ackGracePeriod. */
  timeout?: number;
  signal?: AbortSignal;
}

/** Options of `pool.stopJob`. */
export interface StopJobOptions {
  /** Wait until the job was stopped and deleted. Default true. */
  wait?: boolean;
  signal?: AbortSignal;
}

/** Options of `pool.notify`. */
export interface NotifyOptions {
  /** Wait for the handler's outcome. Default false. */
  wait?: boolean;
  /** Bound on the wait, in ms → `ROTA_TIMEOUT`. Default notifyTtl. */
  timeout?: number;
  signal?: AbortSignal;
}

/** Options of `removeWorker`, `close` and `shutdown`. */
export interface StopOptions {
  /** Bound on stopping, in ms → `ROTA_STOP_TIMEOUT`. Default workerShutdownTimeout. */
  timeout?: number;
  signal?: AbortSignal;
}

export function checkWait(field: string, value: unknown, fallback: boolean): boolean {
  return value === undefined ? fallback : checkBoolean(field, value);
}

export function checkTimeout(field: string, value: unknown, fallback: number): number {
  return value === undefined ? fallback : checkDuration(field, value);
}

export { checkOptions, checkSignal };

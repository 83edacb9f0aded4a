/**
 * Rota's one error catalog.
 *
 * Every error Rota raises is a {@link RotaError} with a stable string `code`. Each code has its own
 * class, branded with `Symbol.for('rota.error.<CODE>')`, so `instanceof` keeps working when two
 * copies of the package are loaded (a library and an app each bundling Rota, say). Driver errors
 * are wrapped and kept as `cause`.
 */

/** Every stable error code, with the one-line meaning the docs repeat. */
export const ERROR_CODES = {
  ROTA_INVALID_ARGUMENT: 'An argument or option is missing, of the wrong type or out of range.',
  ROTA_PAYLOAD_TOO_LARGE: 'A value or payload is larger than the allowed size.',
  ROTA_UNKNOWN_STORE: 'The store URL names a scheme Rota does not know.',
  ROTA_STORE_UNAVAILABLE: 'The store could not be reached (transient; retried within storeTimeout).',
  ROTA_STORE_ERROR: 'The store rejected an operation for a non-transient reason.',
  ROTA_STORE_CORRUPT: 'The store holds data Rota cannot read (corrupt file, foreign schema).',
  ROTA_STORE_READONLY: 'The store cannot be written (read-only file or folder, replica).',
  ROTA_SCHEMA_TOO_NEW: 'The store was written by a newer Rota whose schema this version does not understand.',
  ROTA_UNSAFE_STORE_CONFIG: 'The store server is configured in a way that can lose Rota data.',
  ROTA_REVISION_OVERFLOW: 'A revision or fencing token exceeded Number.MAX_SAFE_INTEGER.',
  ROTA_COMPACTED: 'The requested revision or cursor was compacted; re-list and watch again.',
  ROTA_LEASE_NOT_FOUND: 'The lease does not exist (it expired or was revoked).',
  ROTA_CLOSED: 'The object was closed.',
  ROTA_ABORTED: "The caller's AbortSignal aborted the operation.",
  ROTA_TIMEOUT: 'The operation did not finish within its timeout.',
  ROTA_SESSION_LOST: "The node's session lease was lost.",
  ROTA_NODE_ID_IN_USE: 'Another live session already uses this node id.',
  ROTA_LOCK_BUSY: 'The lock is held by someone else and the wait budget ran out.',
  ROTA_LOCK_LOST: 'A held lock was lost (lease lost or forcibly unlocked).',
  ROTA_NOT_LEADER: 'This node does not hold the leadership.',
  ROTA_HOSTNAME_IN_USE: 'Another live node already offers this hostname.',
  ROTA_UNKNOWN_STRATEGY: 'No host strategy is registered under that kind.',
  ROTA_STRATEGY_VIOLATION: 'A host strategy returned an invalid decision.',
  ROTA_INVALID_CRON: 'A cron expression does not parse or never fires.',
  ROTA_INVALID_TRIGGER: 'A schedule trigger is invalid.',
  ROTA_SCHEDULE_NOT_FOUND: 'No schedule has that name.',
  ROTA_RUN_NOT_FOUND: 'No run has that id.',
  ROTA_INVALID_RUN_STATE: 'The run is not in a state that allows this operation.',
  ROTA_RUN_INTERRUPTED: 'The run was interrupted.',
  ROTA_RUN_TIMEOUT: 'The run exceeded its timeout.',
  ROTA_STOP_TIMEOUT: 'Stopping did not finish within its timeout.',
  ROTA_HANDLER_FAILED: 'A user handler threw or rejected.',
  ROTA_TASK_NOT_FOUND: 'No task has that id.',
  ROTA_TASK_EXISTS: 'A task with that id already exists.',
  ROTA_INVALID_TRANSITION: 'The task is not in a state that allows this transition.',
  ROTA_WRONG_OWNER: 'The task is claimed by another owner.',
  ROTA_STALE_TOKEN: 'The fencing token is not the current one.',
  ROTA_TASK_REJECTED: 'The task was rejected more often than maxRejections allows.',
  ROTA_TASK_UNCLAIMED: 'The task was not claimed within claimTimeout.',
  ROTA_TASK_TIMEOUT: 'The task handler exceeded its timeout.',
  ROTA_HEARTBEAT_TIMEOUT: 'The task handler stopped heartbeating.',
  ROTA_TASK_CANCELLED: 'The task was cancelled.',
  ROTA_LEASE_EXPIRED: 'A lease expired before it was renewed.',
  ROTA_LEASE_LOST: 'A lease was taken over by someone else.',
  ROTA_SHUTTING_DOWN: 'The worker is shutting down.',
  ROTA_UNRECOVERABLE: 'The handler declared the failure unrecoverable; no retry.',
  ROTA_RETRY_AT: 'The handler asked to run again at a given time.',
  ROTA_REJECTED: 'The handler rejected the task (back to pending).',
  ROTA_JOB_EXISTS: 'A pool job with that key already exists.',
  ROTA_JOB_NOT_FOUND: 'No active pool job has that key.',
  ROTA_QUEUE_FULL: 'The pool admitted maxQueuedJobs jobs that have not started yet.',
  ROTA_DISPATCH_TIMEOUT: 'The dispatched job did not start within the timeout (it stays dispatched).',
  ROTA_POOL_CLOSED: 'The pool node was closed.',
  ROTA_CLIENT_ONLY: 'The operation needs a full pool node, not a client-only one.',
  ROTA_POOL_SHUTTING_DOWN: 'The pool is shutting down.',
  ROTA_NOTIFY_UNSUPPORTED: "The job's handler has no notify method.",
  ROTA_REQUEUE: 'The pool handler asked to start the job later.',
  ROTA_SCHEDULE_STOP: 'The producer asked to end its schedule.',
  ROTA_UNAUTHORIZED: 'The HTTP request lacks the bearer token the server requires.',
  ROTA_ROUTE_NOT_FOUND: 'No HTTP endpoint matches the method and path.',
  ROTA_INTERNAL: 'An unexpected error inside Rota; the server log has the details.',
} as const;

export type RotaErrorCode = keyof typeof ERROR_CODES;

/** Options accepted by every Rota error constructor. */
export interface RotaErrorOptions {
  /** Structured facts about the failure (`field`, `from`, `to`, ...). Serialisable. */
  detail?: Record<string, unknown>;
  /** The underlying error, e.g. the driver's. */
  cause?: unknown;
}

const BRAND = Symbol.for('rota.error');

/**
 * Base class of every Rota error. `code` is stable; `message` is for people; `detail` carries
 * machine-readable facts; `cause` keeps the original error.
 */
export class RotaError extends Error {
  readonly code: RotaErrorCode;
  readonly detail: Record<string, unknown>;

  constructor(code: RotaErrorCode, message?: string, options: RotaErrorOptions = {}) {
    super(message ?? ERROR_CODES[code], options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.detail = options.detail ?? {};
    Object.defineProperty(this, BRAND, { value: true });
    Object.defineProperty(this, Symbol.for(`rota.error.${code}`), { value: true });
  }

  override get name(): string {
    return 'RotaError';
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  /** A plain `{ code, message, detail }` object for JSON APIs and logs. */
  toJSON(): { code: RotaErrorCode; message: string; detail: Record<string, unknown> } {
    return { code: this.code, message: this.message, detail: this.detail };
  }
}

type RotaErrorClass<C extends RotaErrorCode> = {
  new (message?: string, options?: RotaErrorOptions): RotaError & { readonly code: C };
  readonly code: C;
};

function defineError<C extends RotaErrorCode>(code: C, className: string): RotaErrorClass<C> {
  const brand = Symbol.for(`rota.error.${code}`);
  const cls = class extends RotaError {
    static readonly code = code;
    constructor(message?: string, options?: RotaErrorOptions) {
      super(code, message, options);
    }
    override get name(): string {
      return className;
    }
    static override [Symbol.hasInstance](value: unknown): boolean {
      return (
        typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true
      );
    }
  };
  Object.defineProperty(cls, 'name', { value: className });
  return cls as unknown as RotaErrorClass<C>;
}

export const InvalidArgumentError = defineError('ROTA_INVALID_ARGUMENT', 'InvalidArgumentError');
export const PayloadTooLargeError = defineError('ROTA_PAYLOAD_TOO_LARGE', 'PayloadTooLargeError');
export const UnknownStoreError = defineError('ROTA_UNKNOWN_STORE', 'UnknownStoreError');
export const StoreUnavailableError = defineError('ROTA_STORE_UNAVAILABLE', 'StoreUnavailableError');
export const StoreError = defineError('ROTA_STORE_ERROR', 'StoreError');
export const StoreCorruptError = defineError('ROTA_STORE_CORRUPT', 'StoreCorruptError');
export const StoreReadonlyError = defineError('ROTA_STORE_READONLY', 'StoreReadonlyError');
export const SchemaTooNewError = defineError('ROTA_SCHEMA_TOO_NEW', 'SchemaTooNewError');
export const UnsafeStoreConfigError = defineError('ROTA_UNSAFE_STORE_CONFIG', 'UnsafeStoreConfigError');
export const RevisionOverflowError = defineError('ROTA_REVISION_OVERFLOW', 'RevisionOverflowError');
export const CompactedError = defineError('ROTA_COMPACTED', 'CompactedError');
export const LeaseNotFoundError = defineError('ROTA_LEASE_NOT_FOUND', 'LeaseNotFoundError');
export const ClosedError = defineError('ROTA_CLOSED', 'ClosedError');
export const AbortedError = defineError('ROTA_ABORTED', 'AbortedError');
export const TimeoutError = defineError('ROTA_TIMEOUT', 'TimeoutError');
export const SessionLostError = defineError('ROTA_SESSION_LOST', 'SessionLostError');
export const NodeIdInUseError = defineError('ROTA_NODE_ID_IN_USE', 'NodeIdInUseError');
export const LockBusyError = defineError('ROTA_LOCK_BUSY', 'LockBusyError');
export const LockLostError = defineError('ROTA_LOCK_LOST', 'LockLostError');
export const NotLeaderError = defineError('ROTA_NOT_LEADER', 'NotLeaderError');
export const HostnameInUseError = defineError('ROTA_HOSTNAME_IN_USE', 'HostnameInUseError');
export const UnknownStrategyError = defineError('ROTA_UNKNOWN_STRATEGY', 'UnknownStrategyError');
export const StrategyViolationError = defineError('ROTA_STRATEGY_VIOLATION', 'StrategyViolationError');
export const InvalidCronError = defineError('ROTA_INVALID_CRON', 'InvalidCronError');
export const InvalidTriggerError = defineError('ROTA_INVALID_TRIGGER', 'InvalidTriggerError');
export const ScheduleNotFoundError = defineError('ROTA_SCHEDULE_NOT_FOUND', 'ScheduleNotFoundError');
export const RunNotFoundError = defineError('ROTA_RUN_NOT_FOUND', 'RunNotFoundError');
export const InvalidRunStateError = defineError('ROTA_INVALID_RUN_STATE', 'InvalidRunStateError');
export const RunInterruptedError = defineError('ROTA_RUN_INTERRUPTED', 'RunInterruptedError');
export const RunTimeoutError = defineError('ROTA_RUN_TIMEOUT', 'RunTimeoutError');
export const StopTimeoutError = defineError('ROTA_STOP_TIMEOUT', 'StopTimeoutError');
export const HandlerError = defineError('ROTA_HANDLER_FAILED', 'HandlerError');
export const TaskNotFoundError = defineError('ROTA_TASK_NOT_FOUND', 'TaskNotFoundError');
export const TaskExistsError = defineError('ROTA_TASK_EXISTS', 'TaskExistsError');
export const InvalidTransitionError = defineError('ROTA_INVALID_TRANSITION', 'InvalidTransitionError');
export const WrongOwnerError = defineError('ROTA_WRONG_OWNER', 'WrongOwnerError');
export const StaleTokenError = defineError('ROTA_STALE_TOKEN', 'StaleTokenError');
export const TaskRejectedError = defineError('ROTA_TASK_REJECTED', 'TaskRejectedError');
export const TaskUnclaimedError = defineError('ROTA_TASK_UNCLAIMED', 'TaskUnclaimedError');
export const TaskTimeoutError = defineError('ROTA_TASK_TIMEOUT', 'TaskTimeoutError');
export const HeartbeatTimeoutError = defineError('ROTA_HEARTBEAT_TIMEOUT', 'HeartbeatTimeoutError');
export const TaskCancelledError = defineError('ROTA_TASK_CANCELLED', 'TaskCancelledError');
export const LeaseExpiredError = defineError('ROTA_LEASE_EXPIRED', 'LeaseExpiredError');
export const LeaseLostError = defineError('ROTA_LEASE_LOST', 'LeaseLostError');
export const ShuttingDownError = defineError('ROTA_SHUTTING_DOWN', 'ShuttingDownError');
export const JobExistsError = defineError('ROTA_JOB_EXISTS', 'JobExistsError');
export const JobNotFoundError = defineError('ROTA_JOB_NOT_FOUND', 'JobNotFoundError');
export const QueueFullError = defineError('ROTA_QUEUE_FULL', 'QueueFullError');
export const DispatchTimeoutError = defineError('ROTA_DISPATCH_TIMEOUT', 'DispatchTimeoutError');
export const PoolClosedError = defineError('ROTA_POOL_CLOSED', 'PoolClosedError');
export const ClientOnlyError = defineError('ROTA_CLIENT_ONLY', 'ClientOnlyError');
export const PoolShuttingDownError = defineError('ROTA_POOL_SHUTTING_DOWN', 'PoolShuttingDownError');
export const NotifyUnsupportedError = defineError('ROTA_NOTIFY_UNSUPPORTED', 'NotifyUnsupportedError');
export const UnauthorizedError = defineError('ROTA_UNAUTHORIZED', 'UnauthorizedError');
export const RouteNotFoundError = defineError('ROTA_ROUTE_NOT_FOUND', 'RouteNotFoundError');
export const InternalError = defineError('ROTA_INTERNAL', 'InternalError');

/**
 * Control-flow errors a task handler may throw.
 * `UnrecoverableError`: fail now, no retry (BullMQ's name).
 */
export const UnrecoverableError = defineError('ROTA_UNRECOVERABLE', 'UnrecoverableError');
/** `RejectError`: give the task back to `pending` (Diego's RejectTask); counts a rejection. */
export const RejectError = defineError('ROTA_REJECTED', 'RejectError');
/** `RequeueError`: a pool handler says "not now"; retried after `ackGracePeriod`, maybe elsewhere. */
export const RequeueError = defineError('ROTA_REQUEUE', 'RequeueError');
/** `ScheduleStopError`: thrown by a pool producer's `plan` to end its schedule on every node. */
export const ScheduleStopError = defineError('ROTA_SCHEDULE_STOP', 'ScheduleStopError');

const RetryAtBase = defineError('ROTA_RETRY_AT', 'RetryAtError');
/** `RetryAtError(at)`: run the task again at `at` (Date or epoch ms) without consuming an attempt. */
export class RetryAtError extends RetryAtBase {
  readonly at: number;
  constructor(at: Date | number, message?: string) {
    const ms = at instanceof Date ? at.getTime() : at;
    super(message ?? `retry at ${new Date(ms).toISOString()}`, { detail: { at: ms } });
    this.at = ms;
  }
}

/** True if `err` is a RotaError with the given code (works across package copies). */
export function isRotaError(err: unknown, code?: RotaErrorCode): err is RotaError {
  if (!(err instanceof RotaError)) return false;
  return code === undefined || err.code === code;
}

/** Build the error for an aborted signal, keeping the signal's reason as `cause`. */
export function abortedError(signal?: AbortSignal, message = 'operation aborted'): RotaError {
  const reason = signal?.reason;
  if (reason instanceof RotaError && reason.code === 'ROTA_ABORTED') return reason;
  return new AbortedError(message, { cause: reason });
}

/** Throw `ROTA_ABORTED` if the signal has aborted. */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortedError(signal);
}

/** Wrap any thrown value as a RotaError with the given code unless it already is one. */
export function wrapError(err: unknown, code: RotaErrorCode, message?: string): RotaError {
  if (err instanceof RotaError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new RotaError(code, message ? `${message}: ${text}` : text, { cause: err });
}

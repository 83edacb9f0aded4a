/**
 * gocron's plug points as TypeScript interfaces (cluster.md §1): an `Elector` says whether this
 * node may run now; a `Locker` hands out `Lock`s. Rota ships implementations on any store
 * (`cluster.election(name).elector()`, `cluster.locker()`), and anything with these shapes can be
 * plugged in instead (see `adaptElector` / `adaptLocker`).
 */

/** The "may this node run now?" gate. A rejection counts as `false`. */
export interface Elector {
  isLeader(options?: { signal?: AbortSignal }): Promise<boolean>;
}

/** A held lock. `signal` aborts the moment the lock is lost. */
export interface Lock {
  readonly key: string;
  /** Fencing token: strictly greater for every later holder of the same key. */
  readonly token: number;
  readonly signal: AbortSignal;
  /** Idempotent; releasing a lost lock resolves without error. */
  release(options?: { signal?: AbortSignal }): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of `Locker.lock`. */
export interface LockerLockOptions {
  signal?: AbortSignal;
  /** `true` (wait forever), a budget in ms, or `0` / `false` (fail at once if held). */
  wait?: boolean | number;
  /** A dedicated lease TTL in ms instead of the session lease. */
  ttl?: number;
  /** Slot lockers: the instant whose slot to lock (default: store now). */
  slotAt?: number | Date;
}

/** Pluggable mutual exclusion. `lock` resolves only with a lock actually held, else rejects `ROTA_LOCK_BUSY`. */
export interface Locker {
  lock(key: string, options?: LockerLockOptions): Promise<Lock>;
  /** Stop background work and release held locks (optional). */
  close?(): Promise<void>;
}

/** Options of `cluster.lock`. */
export interface LockOptions {
  /** `true` (default: wait forever), a budget in ms, or `0` (fail at once if held). */
  wait?: boolean | number;
  /** Hold the lock on a dedicated lease of this TTL (ms) instead of the session lease. */
  ttl?: number;
  /** Keep the dedicated lease alive while the lock is held (default true). */
  autoExtend?: boolean;
  /** A JSON value stored with the contender key (visible to `holder()`). */
  value?: unknown;
  signal?: AbortSignal;
}

/**
 * The store retry policy (cluster.md §5): transient driver errors (`ROTA_STORE_UNAVAILABLE`) are
 * retried with full-jitter exponential backoff from 50 ms up to 5 s, until the caller's signal
 * aborts or `storeTimeout` runs out. Other errors surface at once.
 */
import { AbortedError, abortedError, isRotaError, StoreUnavailableError } from '../errors.js';
import { type Clock, sleep } from '../time/clock.js';

export interface RetryOptions {
  clock: Clock;
  random: () => number;
  /** Give up after this many ms (the node's `storeTimeout`). */
  timeout: number;
  signal?: AbortSignal;
  /** First backoff ceiling in ms (default 50). */
  baseDelay?: number;
  /** Largest backoff ceiling in ms (default 5 000). */
  maxDelay?: number;
}

/** True for errors worth retrying: the store was unreachable. */
export function isTransient(err: unknown): boolean {
  return isRotaError(err, 'ROTA_STORE_UNAVAILABLE');
}

/** Run `fn`, retrying transient store errors within the options' budget. */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const { clock, random, timeout, signal } = options;
  const base = options.baseDelay ?? 50;
  const max = options.maxDelay ?? 5000;
  const deadline = clock.monotonic() + timeout;
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw abortedError(signal);
    try {
      return await fn(attempt);
    } catch (err) {
      if (!isTransient(err)) throw err;
      const left = deadline - clock.monotonic();
      if (left <= 0) {
        throw new StoreUnavailableError(`the store stayed unreachable for ${timeout} ms`, {
          cause: err,
          detail: { attempts: attempt + 1, ...(isRotaError(err) ? err.detail : {}) },
        });
      }
      const ceiling = Math.min(max, base * 2 ** attempt);
      try {
        await sleep(clock, Math.min(left, random() * ceiling), signal);
      } catch {
        throw signal?.aborted ? abortedError(signal) : new AbortedError();
      }
    }
  }
}

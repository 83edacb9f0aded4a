/**
 * Retry delays (tasks.md §2.4.5): `delay_n = min(maxDelay, delay · factor^(n − 1))` (`fixed`:
 * `delay`), then `delay_n · (1 − jitter · random())`. A function backoff gets `(attempt, error)`.
 */
import type { BackoffFunction, BackoffOptions } from './types.js';

export const BACKOFF_DEFAULTS = {
  type: 'exponential',
  delay: 1000,
  factor: 2,
  maxDelay: 3_600_000,
  jitter: 0.2,
} as const;

/**
 * The delay in ms before the retry of `attempt` (1-based: the attempt that just failed).
 * A function returning something other than a finite number ≥ 0 falls back to the default backoff.
 */
export function backoffDelay(
  backoff: BackoffOptions | BackoffFunction | null | undefined,
  attempt: number,
  error: unknown,
  random: () => number,
): number {
  if (typeof backoff === 'function') {
    const ms = backoff(attempt, error);
    if (typeof ms === 'number' && Number.isFinite(ms) && ms >= 0) return Math.round(ms);
    return backoffDelay(null, attempt, error, random);
  }
  const b = backoff ?? {};
  const delay = b.delay ?? BACKOFF_DEFAULTS.delay;
  const maxDelay = b.maxDelay ?? BACKOFF_DEFAULTS.maxDelay;
  const jitter = b.jitter ?? BACKOFF_DEFAULTS.jitter;
  const n = Math.max(1, attempt);
  const base =
    (b.type ?? BACKOFF_DEFAULTS.type) === 'fixed'
      ? delay
      : delay * (b.factor ?? BACKOFF_DEFAULTS.factor) ** (n - 1);
  const capped = Math.min(maxDelay, base);
  return Math.max(0, Math.round(capped * (1 - jitter * random())));
}

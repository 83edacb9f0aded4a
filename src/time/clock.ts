/**
 * Time sources. Rota never reads `Date.now()` or `setTimeout` directly outside this file: every
 * component takes a {@link Clock}, so tests can drive time by hand and skew one node's wall clock.
 */

/** An opaque timer handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = { readonly __timer: unique symbol } | object;

/** A source of wall time, monotonic time and timers. */
export interface Clock {
  /** Wall-clock epoch milliseconds. Used only for information and, in the memory store, as store time. */
  now(): number;
  /** Monotonic milliseconds; only differences are meaningful. Used for local durations. */
  monotonic(): number;
  /** Run `fn` after `ms` milliseconds of this clock. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancel a timer; unknown handles are ignored. */
  clearTimeout(handle: TimerHandle | undefined): void;
}

/**
 * The real clock: `Date.now()`, `performance.now()` and Node timers. Timers keep the process alive
 * (an awaited retry must not let it exit); `close()` on Rota objects clears them.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout(fn, ms) {
    return setTimeout(fn, Math.max(0, ms));
  },
  clearTimeout(handle) {
    if (handle) clearTimeout(handle as NodeJS.Timeout);
  },
};

interface ManualTimer {
  at: number;
  order: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A clock that moves only when told to. `advance(ms)` fires due timers in time order, letting
 * promise callbacks settle between them so async code scheduled by one timer can arm the next.
 */
export class ManualClock implements Clock {
  #now: number;
  #mono = 0;
  #order = 0;
  #timers: ManualTimer[] = [];

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  monotonic(): number {
    return this.#mono;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: ManualTimer = {
      at: this.#mono + Math.max(0, ms),
      order: this.#order++,
      fn,
      cancelled: false,
    };
    this.#timers.push(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle) (handle as ManualTimer).cancelled = true;
  }

  /** Number of timers still armed. */
  get pendingTimers(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /** Move time forward by `ms`, firing every timer that comes due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const target = this.#mono + ms;
    for (;;) {
      await flushMicrotasks();
      this.#timers = this.#timers.filter((t) => !t.cancelled);
      let next: ManualTimer | undefined;
      for (const t of this.#timers) {
        if (t.at <= target && (!next || t.at < next.at || (t.at === next.at && t.order < next.order)))
          next = t;
      }
      if (!next) break;
      this.#now += next.at - this.#mono;
      this.#mono = next.at;
      next.cancelled = true;
      next.fn();
    }
    this.#now += target - this.#mono;
    this.#mono = target;
    await flushMicrotasks();
  }
}

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** A view of `base` whose wall clock is shifted by `offsetMs`; timers and monotonic time are unchanged. */
export function skewedClock(base: Clock, offsetMs: number): Clock {
  return {
    now: () => base.now() + offsetMs,
    monotonic: () => base.monotonic(),
    setTimeout: (fn, ms) => base.setTimeout(fn, ms),
    clearTimeout: (h) => base.clearTimeout(h),
  };
}

/** Resolve after `ms` of `clock`, or reject with the signal's abort error. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clock.clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

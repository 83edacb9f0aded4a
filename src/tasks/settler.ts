/**
 * Batched settles for workers (tasks.md §2.4.4). Ops queue up and go out in one `settle` call:
 * at the end of the current turn of the event loop when nothing is in flight, otherwise when the
 * call in flight returns, after at most 5 ms of linger, or at once when 100 are waiting.
 *
 * Transient store errors are retried until each op's lease deadline; a re-sent op that had been
 * applied comes back `noop` (a same-owner repeat), which counts as success.
 */
import type { RotaContext } from '../core/context.js';
import { isTransient } from '../core/retry.js';
import type { SettleOp, SettleResult } from '../store/port.js';
import type { TimerHandle } from '../time/clock.js';

export const SETTLE_LINGER_MS = 5;
export const SETTLE_MAX_BATCH = 100;

interface Pending<T> {
  op: SettleOp;
  /** Local monotonic time after which retrying is pointless. */
  deadline: number;
  ref: T;
  tries: number;
}

/** Called once per op: with its result, or with the error that ended its retries. */
export type SettleCallback<T> = (ref: T, op: SettleOp, result: SettleResult | null, error?: unknown) => void;

export class Settler<T> {
  #pending: Pending<T>[] = [];
  #inFlight = 0;
  #scheduled = false;
  #linger: TimerHandle | undefined;
  #retries = 0;
  #idle: (() => void)[] = [];

  constructor(
    private readonly ctx: RotaContext,
    private readonly onResult: SettleCallback<T>,
  ) {}

  /** Ops queued or in flight (including ones waiting to be retried). */
  get size(): number {
    return this.#pending.length + this.#inFlight + this.#retries;
  }

  push(op: SettleOp, deadline: number, ref: T): void {
    this.#pending.push({ op, deadline, ref, tries: 0 });
    this.#schedule();
  }

  #schedule(): void {
    if (this.#pending.length === 0) return;
    if (this.#pending.length >= SETTLE_MAX_BATCH) {
      this.#send();
      return;
    }
    if (this.#inFlight === 0) {
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#send();
        });
      }
      return;
    }
    if (this.#linger === undefined) {
      this.#linger = this.ctx.clock.setTimeout(() => {
        this.#linger = undefined;
        this.#send();
      }, SETTLE_LINGER_MS);
    }
  }

  #send(): void {
    if (this.#pending.length === 0) return;
    this.ctx.clock.clearTimeout(this.#linger);
    this.#linger = undefined;
    const batch =
      this.#pending.length <= SETTLE_MAX_BATCH ? this.#pending : this.#pending.slice(0, SETTLE_MAX_BATCH);
    this.#pending = batch === this.#pending ? [] : this.#pending.slice(SETTLE_MAX_BATCH);
    this.#inFlight += batch.length;
    const ops = batch.map((p) => p.op);
    this.ctx.store.settle(ops).then(
      (results) => {
        this.#inFlight -= batch.length;
        for (let i = 0; i < batch.length; i++) {
          const p = batch[i] as Pending<T>;
          this.#report(p, results[i] ?? null);
        }
        this.#after();
      },
      (err) => {
        this.#inFlight -= batch.length;
        if (isTransient(err)) this.#retry(batch, err);
        else for (const p of batch) this.#report(p, null, err);
        this.#after();
      },
    );
    if (this.#pending.length > 0) this.#schedule();
  }

  #report(p: Pending<T>, result: SettleResult | null, error?: unknown): void {
    try {
      this.onResult(p.ref, p.op, result, error);
    } catch (err) {
      this.ctx.logger.error('a settle callback threw', { error: err });
    }
  }

  #retry(batch: Pending<T>[], err: unknown): void {
    const now = this.ctx.clock.monotonic();
    const again: Pending<T>[] = [];
    for (const p of batch) {
      if (p.deadline > now && !this.ctx.closed) again.push(p);
      else this.#report(p, null, err);
    }
    if (again.length === 0) return;
    const tries = Math.max(...again.map((p) => ++p.tries));
    const wait = Math.min(1000, 50 * 2 ** Math.min(tries - 1, 5)) * (0.5 + this.ctx.random() / 2);
    this.#retries += again.length;
    this.ctx.clock.setTimeout(() => {
      this.#retries -= again.length;
      this.#pending.unshift(...again);
      this.#schedule();
      this.#after();
    }, wait);
  }

  #after(): void {
    if (this.#pending.length > 0 && this.#inFlight === 0) this.#send();
    if (this.size === 0) {
      const idle = this.#idle;
      this.#idle = [];
      for (const resolve of idle) resolve();
    }
  }

  /** Send what is queued now and resolve once nothing is queued, in flight or waiting for a retry. */
  drain(): Promise<void> {
    if (this.#pending.length > 0 && this.#inFlight === 0) this.#send();
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}

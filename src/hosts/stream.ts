/**
 * A conflating stream of decisions for one consumer (hosts.md §2.5): it yields only when the
 * filtered `hosts` differ from what the consumer last received, and a consumer that reads slowly
 * gets the newest decision only: intermediate ones are replaced, never queued.
 */
import type { HostDecision } from './types.js';

export class DecisionStream implements AsyncIterableIterator<HostDecision> {
  #pending: HostDecision | null = null;
  /** `hosts` of the last value handed to the consumer (null before the first). */
  #delivered: string | null = null;
  #waiters: { resolve: (r: IteratorResult<HostDecision>) => void; reject: (e: unknown) => void }[] = [];
  #done = false;
  #error: unknown = null;
  readonly #onEnd: () => void;

  constructor(onEnd: () => void = () => undefined) {
    this.#onEnd = onEnd;
  }

  get closed(): boolean {
    return this.#done;
  }

  /** Offer the latest decision; it replaces any value the consumer has not read yet. */
  offer(decision: HostDecision): void {
    if (this.#done) return;
    const key = JSON.stringify(decision.hosts);
    if (key === this.#delivered) {
      this.#pending = null;
      return;
    }
    const w = this.#waiters.shift();
    if (w) {
      this.#delivered = key;
      w.resolve({ value: decision, done: false });
      return;
    }
    this.#pending = decision;
  }

  /** End the stream: the next read gives `done` (a value not read yet is dropped). */
  end(): void {
    this.#finish(null);
  }

  /** End the stream with an error: the next read throws it. */
  fail(error: unknown): void {
    this.#finish(error);
  }

  #finish(error: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#pending = null;
    this.#error = error;
    this.#onEnd();
    const waiters = this.#waiters.splice(0);
    if (waiters.length === 0) return;
    this.#error = null;
    for (const w of waiters) {
      if (error !== null) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<HostDecision>> {
    if (this.#pending) {
      const value = this.#pending;
      this.#pending = null;
      this.#delivered = JSON.stringify(value.hosts);
      return Promise.resolve({ value, done: false });
    }
    if (this.#done) {
      if (this.#error !== null) {
        const error = this.#error;
        this.#error = null;
        return Promise.reject(error);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    });
  }

  return(): Promise<IteratorResult<HostDecision>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<HostDecision> {
    return this;
  }
}

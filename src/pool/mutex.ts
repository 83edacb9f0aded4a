/** A FIFO async mutex: one holder at a time; a waiter whose signal aborts leaves the queue. */
import { abortedError } from '../errors.js';

export class Mutex {
  #tail: Promise<void> = Promise.resolve();

  /** Run `fn` once every earlier holder finished. Rejects `ROTA_ABORTED` if `signal` aborts first. */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const previous = this.#tail;
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The next holder waits for both: an aborted waiter never lets it overtake a running holder.
    this.#tail = previous.then(() => mine);
    try {
      await untilAborted(previous, signal);
    } catch (err) {
      release();
      throw err;
    }
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

function untilAborted(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortedError(signal));
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(abortedError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

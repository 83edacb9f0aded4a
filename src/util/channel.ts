/**
 * A push-to-pull bridge: producers `push` values, one consumer iterates them with `for await`.
 * Used for watch streams and other event iterators. Ends on `end()`, on the consumer's
 * `return()`, or when the optional signal aborts; `fail(err)` makes the next read throw.
 */
export class Channel<T> implements AsyncIterableIterator<T> {
  #buffer: T[] = [];
  #head = 0;
  #waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null = null;
  #done = false;
  #error: unknown = undefined;
  #hasError = false;
  #onClose: (() => void) | undefined;
  #onPull: (() => void) | undefined;
  #signal: AbortSignal | undefined;
  #onAbort = () => this.end();

  constructor(options: { signal?: AbortSignal; onClose?: () => void; onPull?: () => void } = {}) {
    this.#onClose = options.onClose;
    this.#onPull = options.onPull;
    this.#signal = options.signal;
    if (this.#signal?.aborted) {
      // Born ended: nothing was registered yet, so there is nothing for onClose to undo.
      this.#done = true;
      this.#onClose = undefined;
    } else this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Number of values pushed but not yet read. */
  get size(): number {
    return this.#buffer.length - this.#head;
  }

  get closed(): boolean {
    return this.#done;
  }

  /** True while the consumer waits in `next()` with nothing buffered. */
  get waiting(): boolean {
    return this.#waiter !== null;
  }

  push(value: T): void {
    if (this.#done) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w.resolve({ value, done: false });
      return;
    }
    this.#buffer.push(value);
  }

  /** End the stream after the buffered values are read. */
  end(): void {
    if (this.#done) return;
    this.#finish();
  }

  /** Make the stream throw `error` once the buffered values are read. */
  fail(error: unknown): void {
    if (this.#done) return;
    this.#error = error;
    this.#hasError = true;
    this.#finish();
  }

  #finish(): void {
    this.#done = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    const close = this.#onClose;
    this.#onClose = undefined;
    close?.();
    if (this.#waiter && this.size === 0) {
      const w = this.#waiter;
      this.#waiter = null;
      if (this.#hasError) {
        this.#hasError = false;
        w.reject(this.#error);
      } else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.size > 0) {
      const value = this.#buffer[this.#head++] as T;
      if (this.#head > 1024 && this.#head * 2 > this.#buffer.length) {
        this.#buffer = this.#buffer.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.#done) {
      if (this.#hasError) {
        this.#hasError = false;
        return Promise.reject(this.#error);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    const pending = new Promise<IteratorResult<T>>((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
    this.#onPull?.();
    return pending;
  }

  return(): Promise<IteratorResult<T>> {
    this.#buffer = [];
    this.#head = 0;
    this.#hasError = false;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}

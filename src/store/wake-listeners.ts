/**
 * The queue wake-up listeners of one store client (`Store.subscribe`), shared by the backends:
 * listeners per queue plus `*` for every queue; a wake-up calls each interested listener once,
 * however many of its queues were woken together. A throwing listener never breaks the store
 * (listeners log their own errors).
 */
export class WakeListeners {
  readonly #byQueue = new Map<string, Set<() => void>>();
  #pending = new Set<string>();
  #scheduled = false;

  /**
   * Add `listener` for `queue` (`*`: every queue). `onFirst`/`onLast` run when the queue gains its
   * first listener and loses its last one (e.g. to (un)subscribe a server channel).
   */
  add(queue: string, listener: () => void, hooks: { onFirst?: () => void; onLast?: () => void } = {}) {
    let set = this.#byQueue.get(queue);
    if (!set) {
      set = new Set();
      this.#byQueue.set(queue, set);
      hooks.onFirst?.();
    }
    set.add(listener);
    return (): void => {
      if (!set.delete(listener) || set.size > 0 || this.#byQueue.get(queue) !== set) return;
      this.#byQueue.delete(queue);
      hooks.onLast?.();
    };
  }

  /** Any listener at all. */
  get size(): number {
    return this.#byQueue.size;
  }

  /** The queues with listeners (`*` included). */
  queues(): IterableIterator<string> {
    return this.#byQueue.keys();
  }

  /** Whether a wake-up of `queue` would reach anyone. */
  interested(queue: string): boolean {
    return this.#byQueue.has(queue) || this.#byQueue.has('*');
  }

  /** Wake `queue` in a microtask, coalesced with every other queue woken in the same tick. */
  wake(queue: string): void {
    if (!this.interested(queue)) return;
    this.#pending.add(queue);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      const queues = this.#pending;
      this.#pending = new Set();
      this.fireNow(queues);
    });
  }

  /** Call the listeners of `queues` (and of `*`) now, each listener once. */
  fireNow(queues: Iterable<string>): void {
    const fired = new Set<() => void>();
    for (const name of [...queues, '*']) {
      for (const fn of this.#byQueue.get(name) ?? []) {
        if (fired.has(fn)) continue;
        fired.add(fn);
        try {
          fn();
        } catch {
          // A listener must not break the store; listeners log their own errors.
        }
      }
    }
  }

  clear(): void {
    this.#byQueue.clear();
    this.#pending.clear();
  }
}

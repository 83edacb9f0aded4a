/**
 * A worker's control queues (pool.md §2.4 rule 4): the operations of one key (`start`, `stop`,
 * `notify`) run strictly in order, one at a time; operations of different keys run up to
 * `concurrency` at a time (default 1: Pulse's per-worker FIFO).
 *
 * An operation may give its concurrency permit back before it settles (a `start` past its
 * deadline keeps its key busy until the handler returns, without blocking the other keys).
 */

/** One operation: `release` frees the concurrency permit early; settling frees it too. */
export type ControlOp = (release: () => void) => Promise<void>;

interface Slot {
  readonly key: string;
  readonly ops: ControlOp[];
  running: boolean;
}

export class KeyQueues {
  readonly #slots = new Map<string, Slot>();
  readonly #ready: Slot[] = [];
  #active = 0;
  #idleWaiters: (() => void)[] = [];

  constructor(
    private readonly concurrency: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** True while `key` has an operation queued or running (including an abandoned, unsettled start). */
  busy(key: string): boolean {
    return this.#slots.has(key);
  }

  /** Keys with queued or running operations. */
  get size(): number {
    return this.#slots.size;
  }

  /** Append an operation for `key`. */
  enqueue(key: string, op: ControlOp): void {
    let slot = this.#slots.get(key);
    if (!slot) {
      slot = { key, ops: [], running: false };
      this.#slots.set(key, slot);
    }
    slot.ops.push(op);
    if (!slot.running && slot.ops.length === 1) this.#ready.push(slot);
    this.#pump();
  }

  /** Resolves when no key has work. */
  idle(): Promise<void> {
    if (this.#slots.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #pump(): void {
    while (this.#active < this.concurrency && this.#ready.length > 0) {
      const slot = this.#ready.shift() as Slot;
      const op = slot.ops.shift();
      if (!op) continue;
      slot.running = true;
      this.#active++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        this.#active--;
        this.#pump();
      };
      void (async () => {
        try {
          await op(release);
        } catch (err) {
          this.onError(err);
        } finally {
          release();
          slot.running = false;
          if (slot.ops.length > 0) this.#ready.push(slot);
          else this.#slots.delete(slot.key);
          this.#pump();
          if (this.#slots.size === 0) {
            const waiters = this.#idleWaiters;
            this.#idleWaiters = [];
            for (const w of waiters) w();
          }
        }
      })();
    }
  }
}

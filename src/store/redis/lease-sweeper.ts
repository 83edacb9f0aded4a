/**
 * Expires leases when nobody writes. Every KV script sweeps a bounded number of expired leases
 * first and reports the earliest lease expiry left; this timer fires at the earliest expiry the
 * client knows of (from its replies, and from grants published by other clients) and runs the
 * sweep, so an idle store still deletes the keys of a dead client's lease and emits the delete
 * events. Expiry itself is decided by the server's clock inside the script; the local timer only
 * decides when to ask.
 */
import { systemClock, type TimerHandle } from '../../time/clock.js';
import type { KvHead } from './codec.js';

export class LeaseSweeper {
  readonly #sweep: () => Promise<KvHead>;
  #timer: TimerHandle | undefined;
  /** Server time of the armed timer. */
  #at = Number.POSITIVE_INFINITY;
  /** Latest known server time and the local monotonic time it was seen at. */
  #serverNow = 0;
  #seenAt = 0;
  #stopped = false;

  constructor(sweep: () => Promise<KvHead>) {
    this.#sweep = sweep;
  }

  /** Learn from a KV script reply. */
  observe(head: KvHead): void {
    this.#serverNow = head.now;
    this.#seenAt = systemClock.monotonic();
    if (head.earliestLease !== null) this.learn(head.earliestLease);
  }

  /** A lease expires at `at` (server ms): make sure the timer fires by then. */
  learn(at: number): void {
    if (this.#stopped || (this.#timer !== undefined && this.#at <= at)) return;
    systemClock.clearTimeout(this.#timer);
    this.#at = at;
    const serverNow = this.#serverNow + (systemClock.monotonic() - this.#seenAt);
    // A little past the expiry, so the server sees it expired; the script decides anyway.
    const delay = Math.max(1, at - serverNow + 5);
    this.#timer = systemClock.setTimeout(() => this.#fire(), delay);
  }

  #fire(): void {
    this.#timer = undefined;
    this.#at = Number.POSITIVE_INFINITY;
    if (this.#stopped) return;
    this.#sweep().then(
      (head) => this.observe(head),
      // Unreachable or closing: try again shortly; the next reply re-arms precisely.
      () => {
        if (!this.#stopped) this.learn(this.#serverNow + (systemClock.monotonic() - this.#seenAt) + 1000);
      },
    );
  }

  stop(): void {
    this.#stopped = true;
    systemClock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

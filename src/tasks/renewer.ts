/**
 * One batched lease renewal loop (tasks.md §2.4.2): every `leaseTtl/2`, a single `renew` call for
 * all the leases a source holds (chunked at 1 000), carrying coalesced progress. A failed call is
 * retried sooner (every `leaseTtl/10`, at least 100 ms); callers judge their local deadlines from
 * the send time of the last acknowledged renewal. One timer per loop, none per task.
 */
import type { RotaContext } from '../core/context.js';
import { isRotaError } from '../errors.js';
import type { RenewEntry, RenewResult } from '../store/port.js';
import type { TimerHandle } from '../time/clock.js';

export interface RenewSource {
  /** The leases to renew now. */
  collect(): RenewEntry[];
  /** Results of one renew call whose request was sent at `sentAt` (local monotonic). */
  apply(entries: RenewEntry[], results: RenewResult[], sentAt: number): void;
}

const CHUNK = 1000;

export class RenewLoop {
  #timer: TimerHandle | undefined;
  #kickTimer: TimerHandle | undefined;
  #inFlight = false;
  #again = false;
  #lastKick = Number.NEGATIVE_INFINITY;
  #closed = false;

  /** Time between renewals: `leaseTtl/2` unless `interval` is given. */
  readonly interval: number;

  constructor(
    private readonly ctx: RotaContext,
    readonly leaseTtl: number,
    private readonly source: RenewSource,
    interval?: number,
  ) {
    this.interval = interval ?? leaseTtl / 2;
    this.#arm(this.interval);
  }

  #arm(ms: number): void {
    if (this.#closed) return;
    this.ctx.clock.clearTimeout(this.#timer);
    this.#timer = this.ctx.clock.setTimeout(() => void this.#tick(), ms);
  }

  /** Renew now (coalesced with a renewal in flight). */
  kick(): void {
    if (this.#closed) return;
    this.#lastKick = this.ctx.clock.monotonic();
    if (this.#inFlight) {
      this.#again = true;
      return;
    }
    void this.#tick();
  }

  /** Renew soon, at most once per `minGap` ms (used to notice cancellations quickly). */
  kickThrottled(minGap: number): void {
    if (this.#closed || this.#kickTimer !== undefined) return;
    const wait = this.#lastKick + minGap - this.ctx.clock.monotonic();
    if (wait <= 0) {
      this.kick();
      return;
    }
    this.#kickTimer = this.ctx.clock.setTimeout(() => {
      this.#kickTimer = undefined;
      this.kick();
    }, wait);
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    if (this.#inFlight) {
      this.#again = true;
      return;
    }
    this.#inFlight = true;
    let failed = false;
    try {
      const entries = this.source.collect();
      for (let i = 0; i < entries.length && !this.#closed; i += CHUNK) {
        const chunk = entries.length <= CHUNK ? entries : entries.slice(i, i + CHUNK);
        const sentAt = this.ctx.clock.monotonic();
        let results: RenewResult[];
        try {
          results = await this.ctx.store.renew(chunk, this.leaseTtl);
        } catch (err) {
          failed = true;
          if (isRotaError(err, 'ROTA_CLOSED')) {
            this.close();
            return;
          }
          this.ctx.logger.debug('lease renewal failed; retrying soon', { error: err });
          break;
        }
        if (!this.#closed) this.source.apply(chunk, results, sentAt);
      }
    } finally {
      this.#inFlight = false;
    }
    if (this.#again) {
      this.#again = false;
      void this.#tick();
      return;
    }
    this.#arm(failed ? Math.max(100, this.leaseTtl / 10) : this.interval);
  }

  close(): void {
    this.#closed = true;
    this.ctx.clock.clearTimeout(this.#timer);
    this.ctx.clock.clearTimeout(this.#kickTimer);
  }
}

/**
 * The node's estimate of store time (cluster.md §5): `storeNow ≈ monotonicNow + offset` with
 * `offset = now() − (tSend + tRecv) / 2`. Local timers wait for `target − estimate`; safety
 * decisions re-read `store.now()` or let the backend judge time. The local wall clock is never used,
 * except to report `clock:skew` when it is more than 5 s away from store time.
 */
import type { Store } from '../store/port.js';
import type { Clock } from '../time/clock.js';

export const SKEW_REPORT_MS = 5000;

export class StoreTime {
  #offset = 0;
  #synced = false;
  #lastSkewReported = false;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly onSkew: (skewMs: number) => void,
  ) {}

  /** True after the first successful sample. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Estimated store time now, in epoch ms. */
  now(): number {
    return Math.round(this.clock.monotonic() + this.#offset);
  }

  /** Milliseconds of local monotonic time until store time reaches `storeMs` (≥ 0). */
  until(storeMs: number): number {
    return Math.max(0, storeMs - this.now());
  }

  /** Take `samples` readings and keep the one with the shortest round trip. */
  async sync(samples = 3): Promise<void> {
    let best: { rtt: number; offset: number } | null = null;
    for (let i = 0; i < samples; i++) {
      const sent = this.clock.monotonic();
      const storeNow = await this.store.now();
      const received = this.clock.monotonic();
      const rtt = received - sent;
      const offset = storeNow - (sent + received) / 2;
      if (!best || rtt < best.rtt) best = { rtt, offset };
    }
    if (!best) return;
    this.#offset = best.offset;
    this.#synced = true;
    const skew = this.clock.now() - this.now();
    const skewed = Math.abs(skew) > SKEW_REPORT_MS;
    if (skewed && !this.#lastSkewReported) this.onSkew(skew);
    this.#lastSkewReported = skewed;
  }
}

/**
 * Background upkeep of one client: expire leases at their expiry by store time (deleting their
 * keys with delete events) and compact the watch history beyond `historyRevisions`. Every client
 * runs it; the server-side function skips the work when another writer holds the revision counter
 * (every writer expires due leases first), so clients do not queue up behind each other.
 */
import { isRotaError } from '../../errors.js';
import type { Db } from './db.js';
import { query } from './sql.js';

/** Leases one upkeep run expires at most. */
const SWEEP_LIMIT = 256;
/** Timers fire a little after the expiry, so the server's clock has passed it. */
const SLACK_MS = 2;

export class Maintenance {
  readonly #db: Db;
  readonly #interval: number;
  readonly #history: number;
  readonly #written: () => void;
  #timer: NodeJS.Timeout | undefined;
  #at = Number.POSITIVE_INFINITY;
  #running = false;
  #rerun = false;
  #closed = false;

  /** `written` is told when the upkeep may have deleted keys (watchers read again). */
  constructor(db: Db, options: { interval: number; history: number; written: () => void }) {
    this.#db = db;
    this.#interval = options.interval;
    this.#history = options.history;
    this.#written = options.written;
  }

  start(): void {
    this.#schedule(0);
  }

  /** A lease of this client expires in `ms`: make sure the sweep runs by then. */
  expiresIn(ms: number): void {
    this.#schedule(ms + SLACK_MS);
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    const at = Date.now() + ms;
    if (this.#timer && at >= this.#at) return;
    clearTimeout(this.#timer);
    this.#at = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#at = Number.POSITIVE_INFINITY;
      void this.#run();
    }, ms);
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    if (this.#running) {
      this.#rerun = true;
      return;
    }
    this.#running = true;
    let next = this.#interval;
    try {
      const res = await this.#db.run<{ published: boolean; next_in: string | null }>(
        query('kv-maintain'),
        [SWEEP_LIMIT, this.#history],
        { write: true },
      );
      if (res.rows[0]?.published) this.#written();
      const nextIn = res.rows[0]?.next_in;
      if (nextIn !== null && nextIn !== undefined) {
        // Due already (a writer held the counter, or more than one run's worth): soon again.
        next = Math.min(this.#interval, Math.max(Number(nextIn) + SLACK_MS, 10));
      }
    } catch (err) {
      if (isRotaError(err, 'ROTA_CLOSED')) return;
    } finally {
      this.#running = false;
    }
    if (this.#rerun) {
      this.#rerun = false;
      next = 0;
    }
    this.#schedule(next);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

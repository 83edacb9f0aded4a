/**
 * Queue wake-ups. Subscribers of this client are called (coalesced, in a microtask) after its own
 * writes and on NOTIFY from other processes. A client tells the others with one NOTIFY per burst:
 * the first after a quiet spell goes out at once; while one is in flight, and for BURST_GAP_MS
 * after it, further queues accumulate and go out together in the next. Busy workers settling many
 * small batches thus send about a hundred NOTIFYs a second, not one per batch (each costs a round
 * trip and takes the server's notification lock).
 */
import { WakeListeners } from '../wake-listeners.js';
import type { Db } from './db.js';
import { query } from './sql.js';

/** NOTIFY payloads must stay under 8 000 bytes. */
const MAX_PAYLOAD = 7_000;
/** Least time between two NOTIFYs of one client. */
const BURST_GAP_MS = 10;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class QueueWake {
  readonly #db: Db;
  readonly #channel: string;
  readonly #start: () => void;
  readonly #listeners = new WakeListeners();
  #toSend = new Set<string>();
  #sending = false;
  #lastSent = 0;
  #closed = false;

  /** `start` opens the LISTEN connection (idempotent). */
  constructor(db: Db, channel: string, start: () => void) {
    this.#db = db;
    this.#channel = channel;
    this.#start = start;
  }

  subscribe(queue: string, listener: () => void): () => void {
    const remove = this.#listeners.add(queue, listener);
    this.#start();
    return remove;
  }

  /** Queues this client just made runnable or completed something in. */
  written(queues: Iterable<string>): void {
    let any = false;
    for (const queue of queues) {
      any = true;
      this.#toSend.add(queue);
      this.#fire(queue);
    }
    if (any) void this.#send();
  }

  /** A NOTIFY from another client (index.ts drops this client's own): a JSON array of queue names. */
  notified(payload: string): void {
    let queues: unknown;
    try {
      queues = JSON.parse(payload);
    } catch {
      return;
    }
    if (!Array.isArray(queues)) return;
    for (const queue of queues) if (typeof queue === 'string') this.#fire(queue);
  }

  /** The LISTEN connection was (re)established: anything may have happened meanwhile. */
  reconnected(): void {
    for (const queue of this.#listeners.queues()) this.#fire(queue);
  }

  #fire(queue: string): void {
    if (!this.#closed) this.#listeners.wake(queue);
  }

  async #send(): Promise<void> {
    if (this.#sending) return;
    this.#sending = true;
    try {
      while (this.#toSend.size > 0 && !this.#closed) {
        const wait = this.#lastSent + BURST_GAP_MS - Date.now();
        if (wait > 0) await sleep(wait);
        this.#lastSent = Date.now();
        const batch: string[] = [];
        let size = 2;
        for (const queue of this.#toSend) {
          const cost = JSON.stringify(queue).length * 3 + 1;
          if (batch.length > 0 && size + cost > MAX_PAYLOAD) break;
          batch.push(queue);
          size += cost;
        }
        for (const queue of batch) this.#toSend.delete(queue);
        try {
          await this.#db.run(query('queue-notify'), [this.#channel, JSON.stringify(batch)], { write: false });
        } catch {
          // Best effort: subscribers also poll (nextRunAt, their own timers).
        }
      }
    } finally {
      this.#sending = false;
    }
  }

  close(): void {
    this.#closed = true;
    this.#listeners.clear();
    this.#toSend.clear();
  }
}

/**
 * Hand-off to this client's idle workers (docs/stores.md, PostgreSQL "Hand-off"). A claim with
 * `park` that came back short leaves a parked claim here, in the client's memory; the next enqueue
 * of this client into that queue runs the parked claim in its own transaction
 * (`q_enqueue_*_claim`) and hands what it claimed to the mailbox's listener. The task is then
 * claimed with the enqueue's commit, one round trip and one WAL flush, instead of after a wake-up,
 * a second round trip and a second flush.
 *
 * Parks are not shared between clients (no table: nothing to clean up after a crash, no lock held
 * through commits). Another process's enqueue wakes the worker by NOTIFY and its claim runs as
 * before.
 */
import { randomHex } from '../../core/ids.js';
import type { ClaimRequest, Mailbox, QueueItem } from '../port.js';

/** A parked claim: the claim to run for `mailbox` at the next enqueue into its queue. */
export interface Park {
  readonly mailbox: string;
  readonly owner: string;
  /** How many items the worker takes. */
  readonly limit: number;
  readonly leaseTtl: number;
  readonly start: boolean;
  /** Date.now() after which the park is dropped unused. */
  readonly until: number;
  /** An enqueue is claiming for it right now (another enqueue passes it over). */
  busy: boolean;
}

interface Box {
  readonly listener: (items: QueueItem[]) => void;
  /** Enqueues claiming for this mailbox right now (unpark waits for them). */
  readonly inFlight: Set<Promise<unknown>>;
}

export class LocalHandoff {
  readonly #boxes = new Map<string, Box>();
  /** Parks per queue, oldest first: the order enqueues serve them in. */
  readonly #parks = new Map<string, Park[]>();

  mailbox(listener: (items: QueueItem[]) => void): Mailbox {
    const id = randomHex(8);
    const box: Box = { listener, inFlight: new Set() };
    this.#boxes.set(id, box);
    return {
      id,
      unpark: async (queue: string) => {
        this.#withdraw(queue, id);
        await Promise.allSettled([...box.inFlight]);
      },
      close: () => {
        this.#boxes.delete(id);
        for (const queue of [...this.#parks.keys()]) this.#withdraw(queue, id);
      },
    };
  }

  /** After a claim: a short one with `park` leaves (or renews) its park, a full one withdraws it. */
  claimed(request: ClaimRequest, got: number): void {
    const park = request.park;
    if (!park || request.ids !== undefined || (request.from ?? 'pending') !== 'pending') return;
    this.#withdraw(request.queue, park.mailbox);
    if (got >= request.limit || !this.#boxes.has(park.mailbox)) return;
    const parks = this.#parks.get(request.queue) ?? [];
    parks.push({
      mailbox: park.mailbox,
      owner: request.owner,
      limit: request.limit - got,
      leaseTtl: request.leaseTtl,
      start: request.start ?? false,
      until: Date.now() + park.ttl,
      busy: false,
    });
    this.#parks.set(request.queue, parks);
  }

  /**
   * Run `write` (an enqueue into `queue`) with the oldest live park of that queue, or with null,
   * and hand what it claimed to the park's mailbox before returning. A park that was handed items
   * is used up, as on Redis (the worker claims again, and parks again, when woken); one handed
   * nothing, or whose write failed, stays. A park withdrawn (or renewed by a new claim) meanwhile
   * is not touched.
   */
  async serve<T>(
    queue: string | null,
    write: (park: Park | null) => Promise<{ result: T; claimed: QueueItem[] }>,
  ): Promise<T> {
    const park = queue === null ? null : this.#take(queue);
    const box = park ? this.#boxes.get(park.mailbox) : undefined;
    if (queue === null || !park || !box) return (await write(null)).result;
    park.busy = true;
    const run = write(park);
    box.inFlight.add(run);
    try {
      const { result, claimed } = await run;
      if (claimed.length > 0) this.#remove(queue, park);
      // A mailbox closed meanwhile: its worker is gone, the items come back when their lease ends.
      if (claimed.length > 0 && this.#boxes.get(park.mailbox) === box) box.listener(claimed);
      return result;
    } finally {
      park.busy = false;
      box.inFlight.delete(run);
    }
  }

  close(): void {
    this.#boxes.clear();
    this.#parks.clear();
  }

  /** The oldest park of `queue` that is live and not being served; expired ones are dropped. */
  #take(queue: string): Park | null {
    const parks = this.#parks.get(queue);
    if (!parks) return null;
    const now = Date.now();
    const live = parks.filter((p) => p.until > now && this.#boxes.has(p.mailbox));
    if (live.length > 0) this.#parks.set(queue, live);
    else this.#parks.delete(queue);
    return live.find((p) => !p.busy) ?? null;
  }

  #remove(queue: string, park: Park): void {
    const parks = this.#parks.get(queue);
    const at = parks?.indexOf(park) ?? -1;
    if (!parks || at < 0) return;
    parks.splice(at, 1);
    if (parks.length === 0) this.#parks.delete(queue);
  }

  #withdraw(queue: string, mailbox: string): void {
    const parks = this.#parks.get(queue);
    if (!parks) return;
    const kept = parks.filter((p) => p.mailbox !== mailbox);
    if (kept.length > 0) this.#parks.set(queue, kept);
    else this.#parks.delete(queue);
  }
}

/**
 * The in-memory queue: items in a map, heaps per queue for claim order, delays, leases and
 * completions, and global heaps for the converger's sweep. Heap entries are never updated: a new
 * entry is pushed on each change and stale ones are skipped when they reach the top, so every
 * operation costs O(log n) regardless of queue depth.
 */
import { CompactedError, TaskExistsError } from '../../errors.js';
import type { Clock } from '../../time/clock.js';
import { Heap } from '../../util/heap.js';
import type {
  ChangesQuery,
  ChangesResult,
  ClaimRequest,
  ClaimResult,
  EnqueueResult,
  FeedItem,
  ItemState,
  ListQuery,
  ListResult,
  NewItem,
  QueueCounts,
  QueueItem,
  RenewEntry,
  RenewResult,
  SettleOp,
  SettleResult,
  SweepOptions,
  SweepResult,
} from '../port.js';
import { ITEM_DEFAULTS } from '../port.js';
import {
  claimItem,
  compareClaimOrder,
  createItem,
  dedupActive,
  expireLease,
  type ItemRecord,
  isRunnable,
  pruneItem,
  renewItem,
  settleItem,
  type Transition,
  timeoutItem,
  unclaimedItem,
  unstartItem,
} from '../queue-model.js';
import { WakeListeners } from '../wake-listeners.js';

interface Entry {
  id: string;
  /** The record this entry was pushed for; the entry is live while the map still holds it. */
  rec: ItemRecord;
  key: number;
}

const byKey = (a: Entry, b: Entry) => a.key - b.key || a.rec.seq - b.rec.seq;
const byCompletion = (a: ItemRecord, b: ItemRecord) =>
  (a.completedAt ?? 0) - (b.completedAt ?? 0) || a.seq - b.seq;

interface QueueIndex {
  /** Due pending items in claim order. */
  ready: Heap<Entry>;
  /** Pending items by runAt. */
  delayed: Heap<Entry>;
  /** Claimed, running and resolving items by lease expiry. */
  leased: Heap<Entry>;
  /** Completed items by completedAt, for resolution claims. */
  completed: Heap<Entry>;
  counts: QueueCounts;
}

function emptyCounts(): QueueCounts {
  return { pending: 0, claimed: 0, running: 0, completed: 0, resolving: 0 };
}

export class QueueEngine {
  readonly #clock: Clock;
  #items = new Map<string, ItemRecord>();
  #queues = new Map<string, QueueIndex>();
  #dedup = new Map<string, string>();
  #feed: { seq: number; id: string }[] = [];
  #horizon = 0;
  #seq = 0;
  #tombstones: Entry[] = [];
  #tombHead = 0;
  // Global sweep heaps.
  #claimedAt = new Heap<Entry>(byKey);
  #deadline = new Heap<Entry>(byKey);
  #unclaimedAt = new Heap<Entry>(byKey);
  #expireAt = new Heap<Entry>(byKey);
  readonly #listeners = new WakeListeners();
  #writes = 0;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  #index(queue: string): QueueIndex {
    let q = this.#queues.get(queue);
    if (!q) {
      q = {
        ready: new Heap<Entry>((a, b) => compareClaimOrder(a.rec, b.rec)),
        delayed: new Heap<Entry>(byKey),
        leased: new Heap<Entry>(byKey),
        completed: new Heap<Entry>(byKey),
        counts: emptyCounts(),
      };
      this.#queues.set(queue, q);
    }
    return q;
  }

  #live = (e: Entry) => this.#items.get(e.id) === e.rec;
  #stale = (e: Entry) => this.#items.get(e.id) !== e.rec;

  /** Store `next` as the item's record and index it. The single choke point for every write. */
  #write(next: ItemRecord): void {
    const prev = this.#items.get(next.id);
    const q = this.#index(next.queue);
    if (prev && prev.state !== 'deleted') {
      const pq = this.#index(prev.queue);
      pq.counts[prev.state as ItemState]--;
    }
    // Re-inserting keeps Map order == seq order for listing after an id is reused.
    if (prev && prev.seq !== next.seq) this.#items.delete(next.id);
    this.#items.set(next.id, next);
    this.#feed.push({ seq: next.changeSeq, id: next.id });
    const entry = (key: number): Entry => ({ id: next.id, rec: next, key });
    switch (next.state) {
      case 'pending':
        if (next.runAt <= this.#clock.now()) q.ready.push(entry(0));
        else q.delayed.push(entry(next.runAt));
        if (next.claimTimeout !== null) this.#unclaimedAt.push(entry(next.runAt + next.claimTimeout));
        this.#wake(next.queue);
        break;
      case 'claimed':
        q.leased.push(entry(next.leaseExpiresAt ?? 0));
        this.#claimedAt.push(entry(next.claimedAt ?? 0));
        break;
      case 'running':
        q.leased.push(entry(next.leaseExpiresAt ?? 0));
        if (next.timeout !== null && next.startedAt !== null)
          this.#deadline.push(entry(next.startedAt + next.timeout));
        break;
      case 'resolving':
        q.leased.push(entry(next.leaseExpiresAt ?? 0));
        break;
      case 'completed':
        q.completed.push(entry(next.completedAt ?? 0));
        this.#expireAt.push(entry(next.expireAt ?? 0));
        this.#wake(next.queue);
        break;
      case 'deleted':
        this.#tombstones.push(entry(next.updatedAt));
        this.#wake(next.queue);
        break;
    }
    if (next.state !== 'deleted') q.counts[next.state]++;
    this.#compactFeed();
    if (++this.#writes % 65_536 === 0) this.#collectGarbage();
  }

  /** Drop stale heap entries (renewals push new ones; some heaps only pop when a rule is enabled). */
  #collectGarbage(): void {
    for (const heap of [this.#claimedAt, this.#deadline, this.#unclaimedAt, this.#expireAt])
      heap.retain(this.#live);
    for (const q of this.#queues.values()) {
      for (const heap of [q.ready, q.delayed, q.leased, q.completed]) heap.retain(this.#live);
    }
  }

  #apply(t: Transition): void {
    this.#write(t.item);
    if (t.deadLetter) this.#insertDeadLetter(t.deadLetter);
  }

  #insertDeadLetter(item: NewItem): void {
    const existing = this.#items.get(item.id);
    if (existing && existing.state !== 'deleted') return;
    this.#write(createItem(item, this.#clock.now(), ++this.#seq));
  }

  #nextSeq(): number {
    return ++this.#seq;
  }

  // ---------------------------------------------------------------------------------------------

  enqueue(items: NewItem[]): EnqueueResult[] {
    const now = this.#clock.now();
    // Check every id before writing anything: the batch is all-or-nothing.
    const seen = new Set<string>();
    for (const item of items) {
      const existing = this.#items.get(item.id);
      const live = existing && existing.state !== 'deleted' ? existing : null;
      if (seen.has(item.id) || (live && !(item.opId && live.opId === item.opId))) {
        throw new TaskExistsError(`task ${item.id} already exists`, { detail: { id: item.id } });
      }
      seen.add(item.id);
    }
    const results: EnqueueResult[] = [];
    for (const item of items) {
      const existing = this.#items.get(item.id);
      if (existing && existing.state !== 'deleted') {
        results.push({ id: existing.id, seq: existing.seq, status: 'created' });
        continue;
      }
      if (item.dedup) {
        const dkey = `${item.queue}\u0000${item.dedup.key}`;
        const holderId = this.#dedup.get(dkey);
        const holder = holderId !== undefined ? this.#items.get(holderId) : undefined;
        if (holder && holder.dedupKey === item.dedup.key && dedupActive(holder, now)) {
          if (item.dedup.mode === 'replace' && holder.state === 'pending') {
            const seq = this.#nextSeq();
            this.#write({
              ...holder,
              payload: item.payload,
              priority: item.priority ?? ITEM_DEFAULTS.priority,
              runAt: item.runAt ?? now + (item.delay ?? 0),
              meta: item.meta ?? holder.meta,
              updatedAt: now,
              changeSeq: seq,
            });
            results.push({ id: holder.id, seq: holder.seq, status: 'replaced' });
          } else {
            results.push({ id: holder.id, seq: holder.seq, status: 'deduplicated' });
          }
          continue;
        }
        this.#dedup.set(dkey, item.id);
      }
      const rec = createItem(item, now, this.#nextSeq());
      this.#write(rec);
      results.push({ id: rec.id, seq: rec.seq, status: 'created' });
    }
    return results;
  }

  /** Apply expired leases of one queue (claim-time reclaim). */
  #expireQueue(q: QueueIndex, now: number, limit = Number.POSITIVE_INFINITY): number {
    let n = 0;
    for (;;) {
      const top = q.leased.peekLive(this.#stale);
      if (!top || top.key > now || n >= limit) return n;
      q.leased.pop();
      const t = expireLease(top.rec, now, this.#nextSeq());
      if (t) {
        this.#apply(t);
        n++;
      }
    }
  }

  claim(request: ClaimRequest): ClaimResult {
    const now = this.#clock.now();
    const q = this.#index(request.queue);
    this.#expireQueue(q, now);
    const items: QueueItem[] = [];
    const from = request.from ?? 'pending';
    if (request.ids) {
      const wanted: ItemRecord[] = [];
      for (const id of request.ids) {
        const rec = this.#items.get(id);
        if (!rec || rec.queue !== request.queue) continue;
        if (from === 'pending' ? isRunnable(rec, now) : rec.state === 'completed') wanted.push(rec);
      }
      wanted.sort(from === 'pending' ? compareClaimOrder : byCompletion);
      for (const rec of wanted.slice(0, request.limit)) {
        const claimed = claimItem(rec, request, now, this.#nextSeq());
        this.#write(claimed);
        items.push(claimed);
      }
      return { items, nextRunAt: null };
    }
    if (from === 'pending') {
      for (;;) {
        const top = q.delayed.peekLive(this.#stale);
        if (!top || top.key > now) break;
        q.delayed.pop();
        q.ready.push({ id: top.id, rec: top.rec, key: 0 });
      }
      while (items.length < request.limit) {
        const top = q.ready.peekLive(this.#stale);
        if (!top) break;
        q.ready.pop();
        if (!isRunnable(top.rec, now)) continue;
        const claimed = claimItem(top.rec, request, now, this.#nextSeq());
        this.#write(claimed);
        items.push(claimed);
      }
    } else {
      while (items.length < request.limit) {
        const top = q.completed.peekLive(this.#stale);
        if (!top) break;
        q.completed.pop();
        const claimed = claimItem(top.rec, request, now, this.#nextSeq());
        this.#write(claimed);
        items.push(claimed);
      }
    }
    let nextRunAt: number | null = null;
    if (items.length < request.limit) {
      const delayed = from === 'pending' ? q.delayed.peekLive(this.#stale) : undefined;
      const leased = q.leased.peekLive(this.#stale);
      const candidates = [delayed?.key, leased?.key].filter((x): x is number => x !== undefined);
      nextRunAt = candidates.length > 0 ? Math.min(...candidates) : null;
    }
    return { items, nextRunAt };
  }

  renew(entries: RenewEntry[], leaseTtl: number): RenewResult[] {
    const now = this.#clock.now();
    return entries.map((entry) => {
      const current = this.#items.get(entry.id) ?? null;
      // An expired lease is not renewable: someone may already be allowed to take the item.
      if (
        current &&
        current.leaseExpiresAt !== null &&
        current.leaseExpiresAt <= now &&
        current.state !== 'completed'
      ) {
        const t = expireLease(current, now, this.#nextSeq());
        if (t) this.#apply(t);
      }
      const { result, item } = renewItem(
        this.#items.get(entry.id) ?? null,
        entry,
        leaseTtl,
        now,
        this.#nextSeq(),
      );
      if (item) this.#write(item);
      return result;
    });
  }

  settle(ops: SettleOp[]): SettleResult[] {
    const now = this.#clock.now();
    return ops.map((op) => {
      let current = this.#items.get(op.id) ?? null;
      // A lease that expired is applied first, so a late settle from the old owner is fenced off
      // exactly as if someone had already re-claimed the item.
      if (
        current &&
        current.leaseExpiresAt !== null &&
        current.leaseExpiresAt <= now &&
        current.state !== 'completed'
      ) {
        const t = expireLease(current, now, this.#nextSeq());
        if (t) {
          this.#apply(t);
          current = this.#items.get(op.id) ?? null;
        }
      }
      const { result, transition } = settleItem(current, op, now, this.#nextSeq());
      if (transition) this.#apply(transition);
      return result;
    });
  }

  getItem(id: string): QueueItem | null {
    const rec = this.#items.get(id);
    return rec && rec.state !== 'deleted' ? (rec as QueueItem) : null;
  }

  listItems(query: ListQuery): ListResult {
    const limit = query.limit ?? ITEM_DEFAULTS.listLimit;
    const after = query.afterSeq ?? 0;
    const items: QueueItem[] = [];
    for (const rec of this.#items.values()) {
      if (rec.seq <= after || rec.state === 'deleted') continue;
      if (query.queue !== undefined && rec.queue !== query.queue) continue;
      if (query.state !== undefined && rec.state !== query.state) continue;
      if (query.owner !== undefined && rec.owner !== query.owner) continue;
      if (items.length >= limit) return { items, nextAfterSeq: items[items.length - 1]?.seq ?? null };
      items.push(rec as QueueItem);
    }
    return { items, nextAfterSeq: null };
  }

  countItems(queue?: string): Record<string, QueueCounts> {
    const out: Record<string, QueueCounts> = {};
    for (const [name, q] of this.#queues) {
      if (queue !== undefined && name !== queue) continue;
      const total = Object.values(q.counts).reduce((a, b) => a + b, 0);
      if (total > 0 || name === queue) out[name] = { ...q.counts };
    }
    if (queue !== undefined && !out[queue]) out[queue] = emptyCounts();
    return out;
  }

  changes(query: ChangesQuery): ChangesResult {
    if (query.after < this.#horizon) {
      throw new CompactedError(
        `change cursor ${query.after} is older than the retained feed (${this.#horizon})`,
        {
          detail: { cursor: query.after, horizon: this.#horizon },
        },
      );
    }
    const limit = query.limit ?? ITEM_DEFAULTS.changesLimit;
    let lo = 0;
    let hi = this.#feed.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.#feed[mid]?.seq ?? 0) <= query.after) lo = mid + 1;
      else hi = mid;
    }
    const items: FeedItem[] = [];
    let cursor = query.after;
    for (let i = lo; i < this.#feed.length && items.length < limit; i++) {
      const entry = this.#feed[i] as { seq: number; id: string };
      cursor = entry.seq;
      const rec = this.#items.get(entry.id);
      if (!rec || rec.changeSeq !== entry.seq) continue;
      if (query.queue !== undefined && rec.queue !== query.queue) continue;
      items.push(rec);
    }
    return { items, cursor };
  }

  #compactFeed(): void {
    if (this.#feed.length < 4096 || this.#feed.length < 2 * this.#items.size) return;
    this.#feed = this.#feed.filter((e) => this.#items.get(e.id)?.changeSeq === e.seq);
  }

  sweep(options: SweepOptions = {}): SweepResult {
    const now = this.#clock.now();
    const limit = options.limit ?? ITEM_DEFAULTS.sweepLimit;
    const tombstoneTtl = options.tombstoneTtl ?? ITEM_DEFAULTS.tombstoneTtl;
    const counts = {
      reclaimed: 0,
      stalled: 0,
      unstarted: 0,
      timedOut: 0,
      unclaimed: 0,
      unresolved: 0,
      pruned: 0,
      purged: 0,
    };
    let more = false;

    let expired = 0;
    for (const q of this.#queues.values()) {
      for (;;) {
        const top = q.leased.peekLive(this.#stale);
        if (!top || top.key > now) break;
        if (expired >= limit) {
          more = true;
          break;
        }
        q.leased.pop();
        const state = top.rec.state;
        const t = expireLease(top.rec, now, this.#nextSeq());
        if (!t) continue;
        this.#apply(t);
        expired++;
        if (state === 'claimed') counts.reclaimed++;
        else if (state === 'running') counts.stalled++;
        else counts.unresolved++;
      }
    }

    const drain = (heap: Heap<Entry>, due: (e: Entry) => boolean, act: (e: Entry) => void): void => {
      let n = 0;
      for (;;) {
        const top = heap.peekLive(this.#stale);
        if (!top || !due(top)) return;
        if (n >= limit) {
          more = true;
          return;
        }
        heap.pop();
        act(top);
        n++;
      }
    };

    if (options.startTimeout !== undefined) {
      const startTimeout = options.startTimeout;
      drain(
        this.#claimedAt,
        (e) => e.key + startTimeout <= now,
        (e) => {
          if (e.rec.state !== 'claimed') return;
          this.#write(unstartItem(e.rec, now, this.#nextSeq()));
          counts.unstarted++;
        },
      );
    }
    const grace = options.abortGrace ?? 0;
    drain(
      this.#deadline,
      (e) => e.key + grace <= now,
      (e) => {
        if (e.rec.state !== 'running') return;
        this.#apply(timeoutItem(e.rec, now, this.#nextSeq()));
        counts.timedOut++;
      },
    );
    drain(
      this.#unclaimedAt,
      (e) => e.key <= now,
      (e) => {
        if (e.rec.state !== 'pending') return;
        this.#write(unclaimedItem(e.rec, now, this.#nextSeq()));
        counts.unclaimed++;
      },
    );
    drain(
      this.#expireAt,
      (e) => e.key <= now,
      (e) => {
        if (e.rec.state !== 'completed') return;
        this.#write(pruneItem(e.rec, now, this.#nextSeq()));
        counts.pruned++;
      },
    );
    // Tombstones are appended in time order; purge from the front.
    while (this.#tombHead < this.#tombstones.length) {
      const e = this.#tombstones[this.#tombHead] as Entry;
      if (this.#live(e) && e.key + tombstoneTtl > now) break;
      if (counts.purged >= limit) {
        more = true;
        break;
      }
      this.#tombHead++;
      if (!this.#live(e)) continue;
      this.#items.delete(e.id);
      this.#horizon = Math.max(this.#horizon, e.rec.changeSeq);
      if (e.rec.dedupKey !== null) {
        const dkey = `${e.rec.queue}\u0000${e.rec.dedupKey}`;
        if (this.#dedup.get(dkey) === e.id) this.#dedup.delete(dkey);
      }
      counts.purged++;
    }
    if (this.#tombHead > 1024 && this.#tombHead * 2 > this.#tombstones.length) {
      this.#tombstones = this.#tombstones.slice(this.#tombHead);
      this.#tombHead = 0;
    }
    return { ...counts, more };
  }

  // ---------------------------------------------------------------------------------------------
  // Wake-up signal

  subscribe(queue: string, listener: () => void): () => void {
    return this.#listeners.add(queue, listener);
  }

  #wake(queue: string): void {
    this.#listeners.wake(queue);
  }
}

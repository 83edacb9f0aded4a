/**
 * The Queue half on SQLite. Writes run inside one `BEGIN IMMEDIATE` transaction each and apply
 * the shared state machine (`queue-model.ts`) to rows read by index; reads are single statements
 * or one snapshot. Tokens, seq and changeSeq come from one counter, allocated under the write lock,
 * so they are in commit order across processes (which makes the feed gap-free).
 */
import { CompactedError, TaskExistsError } from '../../errors.js';
import type {
  ChangesQuery,
  ChangesResult,
  ClaimRequest,
  ClaimResult,
  EnqueueResult,
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
  createItem,
  dedupActive,
  expireLease,
  type ItemRecord,
  pruneItem,
  renewItem,
  settleItem,
  type Transition,
  timeoutItem,
  unclaimedItem,
  unstartItem,
} from '../queue-model.js';
import type { Connection, Counters } from './connection.js';
import { type ItemRow, itemParams, rowToItem } from './item-row.js';
import type { ItemColumn } from './sql/items.js';
import {
  COMPLETED_HEAD,
  COUNT_ALL,
  COUNT_QUEUE,
  DEDUP_HOLDER,
  DELETE_ITEM,
  FEED_ALL,
  FEED_QUEUE,
  GET_ITEM,
  GET_LIVE_ITEM,
  IDS_COMPLETED,
  IDS_EXPIRED_LEASES,
  IDS_READY,
  LIST_ALL,
  LIST_QUEUE,
  NEXT_DELAYED,
  NEXT_LEASE_EXPIRY,
  PROMOTE_DUE,
  QUEUE_EXPIRED_LEASES,
  READY_HEAD,
  SWEEP_EXPIRED_LEASES,
  SWEEP_EXPIRED_RETENTION,
  SWEEP_TIMED_OUT,
  SWEEP_TOMBSTONES,
  SWEEP_UNCLAIMED,
  SWEEP_UNSTARTED,
  UPSERT_ITEM,
  updateItemSql,
} from './sql/items.js';

/** Expired leases applied per claim at most (the rest on the next claim or sweep). */
const CLAIM_EXPIRE_BATCH = 10_000;

function emptyCounts(): QueueCounts {
  return { pending: 0, claimed: 0, running: 0, completed: 0, resolving: 0 };
}

/** One queue write transaction: the clock reading, the counter, and row access. */
export class QueueTx {
  readonly conn: Connection;
  readonly now: number;
  readonly #counters: Counters;
  /** UPDATE statements by changed-column set (few distinct sets: one per kind of transition). */
  static readonly #updateSql = new Map<string, string>();
  readonly #updates = QueueTx.#updateSql;
  /** True once an item row was written (the hub then looks for wake-ups). */
  wrote = false;

  constructor(conn: Connection, counters: Counters, now: number) {
    this.conn = conn;
    this.#counters = counters;
    this.now = now;
  }

  nextSeq(): number {
    this.#counters.seq += 1;
    return this.#counters.seq;
  }

  load(id: string): ItemRecord | null {
    const row = this.conn.stmt<ItemRow>(GET_ITEM).get(id);
    return row ? rowToItem(row) : null;
  }

  rows(sql: string, ...params: unknown[]): ItemRecord[] {
    return this.conn
      .stmt<ItemRow>(sql)
      .all(...params)
      .map(rowToItem);
  }

  /**
   * Store `item`. With `prev` (the stored record it replaces, same id and incarnation), only the
   * changed columns are written.
   */
  write(item: ItemRecord, prev?: ItemRecord | null): void {
    const next = itemParams(item, this.now);
    this.wrote = true;
    if (!prev || prev.seq !== item.seq) {
      this.conn.stmt(UPSERT_ITEM).run(next);
      return;
    }
    const old = itemParams(prev, this.now);
    const changed: ItemColumn[] = [];
    const params: Partial<ItemRow> = { id: item.id };
    for (const column of Object.keys(next) as ItemColumn[]) {
      if (next[column] !== old[column]) {
        changed.push(column);
        params[column] = next[column];
      }
    }
    if (changed.length === 0) return;
    const key = changed.join(',');
    let sql = this.#updates.get(key);
    if (!sql) {
      sql = updateItemSql(changed);
      this.#updates.set(key, sql);
    }
    this.conn.stmt(sql).run(params);
  }

  apply(t: Transition, prev: ItemRecord | null): void {
    this.write(t.item, prev);
    if (t.deadLetter) {
      const existing = this.load(t.deadLetter.id);
      if (!existing || existing.state === 'deleted')
        this.write(createItem(t.deadLetter, this.now, this.nextSeq()));
    }
  }

  /** Apply the item's expired lease first, so a late settle or renew is fenced off. */
  expireIfDue(current: ItemRecord | null): ItemRecord | null {
    if (!current || current.leaseExpiresAt === null || current.leaseExpiresAt > this.now) return current;
    if (current.state === 'completed') return current;
    const t = expireLease(current, this.now, this.nextSeq());
    if (!t) return current;
    this.apply(t, current);
    return t.item;
  }

  purge(id: string, changeSeq: number): void {
    this.conn.stmt(DELETE_ITEM).run(id);
    this.#counters.feedHorizon = Math.max(this.#counters.feedHorizon, changeSeq);
  }
}

export function enqueue(tx: QueueTx, items: NewItem[]): EnqueueResult[] {
  const { now } = tx;
  // Check every id before writing anything: the batch is all-or-nothing.
  const seen = new Set<string>();
  for (const item of items) {
    const existing = tx.load(item.id);
    const live = existing && existing.state !== 'deleted' ? existing : null;
    if (seen.has(item.id) || (live && !(item.opId && live.opId === item.opId))) {
      throw new TaskExistsError(`task ${item.id} already exists`, { detail: { id: item.id } });
    }
    seen.add(item.id);
  }
  const results: EnqueueResult[] = [];
  for (const item of items) {
    const existing = tx.load(item.id);
    if (existing && existing.state !== 'deleted') {
      results.push({ id: existing.id, seq: existing.seq, status: 'created' });
      continue;
    }
    if (item.dedup) {
      const row = tx.conn.stmt<ItemRow>(DEDUP_HOLDER).get(item.queue, item.dedup.key);
      const holder = row ? rowToItem(row) : null;
      if (holder && dedupActive(holder, now)) {
        if (item.dedup.mode === 'replace' && holder.state === 'pending') {
          tx.write(
            {
              ...holder,
              payload: item.payload,
              priority: item.priority ?? ITEM_DEFAULTS.priority,
              runAt: item.runAt ?? now + (item.delay ?? 0),
              meta: item.meta ?? holder.meta,
              updatedAt: now,
              changeSeq: tx.nextSeq(),
            },
            holder,
          );
          results.push({ id: holder.id, seq: holder.seq, status: 'replaced' });
        } else {
          results.push({ id: holder.id, seq: holder.seq, status: 'deduplicated' });
        }
        continue;
      }
    }
    const rec = createItem(item, now, tx.nextSeq());
    tx.write(rec);
    results.push({ id: rec.id, seq: rec.seq, status: 'created' });
  }
  return results;
}

export function claim(tx: QueueTx, request: ClaimRequest): ClaimResult {
  const { now } = tx;
  for (const rec of tx.rows(QUEUE_EXPIRED_LEASES, request.queue, now, CLAIM_EXPIRE_BATCH)) {
    const t = expireLease(rec, now, tx.nextSeq());
    if (t) tx.apply(t, rec);
  }
  const from = request.from ?? 'pending';
  if (request.ids) return claimIds(tx, request, request.ids);
  let candidates: ItemRecord[];
  if (from === 'pending') {
    tx.conn.stmt(PROMOTE_DUE).run(request.queue, now);
    candidates = tx.rows(READY_HEAD, request.queue, request.limit);
  } else {
    candidates = tx.rows(COMPLETED_HEAD, request.queue, request.limit);
  }
  const items: QueueItem[] = [];
  for (const rec of candidates) {
    const claimed = claimItem(rec, request, now, tx.nextSeq());
    tx.write(claimed, rec);
    items.push(claimed);
  }
  let nextRunAt: number | null = null;
  if (items.length < request.limit) {
    const delayed =
      from === 'pending' ? (tx.conn.stmt(NEXT_DELAYED).pluck().get(request.queue) as number | null) : null;
    const leased = tx.conn.stmt(NEXT_LEASE_EXPIRY).pluck().get(request.queue) as number | null;
    const times = [delayed, leased].filter((x): x is number => x !== null && x !== undefined);
    nextRunAt = times.length > 0 ? Math.min(...times) : null;
  }
  return { items, nextRunAt };
}

/** A claim restricted to `ids` (after the queue's expired leases were applied): no nextRunAt. */
function claimIds(tx: QueueTx, request: ClaimRequest, ids: string[]): ClaimResult {
  const { now } = tx;
  const json = JSON.stringify(ids);
  for (const rec of tx.rows(IDS_EXPIRED_LEASES, json, request.queue, now)) {
    const t = expireLease(rec, now, tx.nextSeq());
    if (t) tx.apply(t, rec);
  }
  const candidates =
    (request.from ?? 'pending') === 'pending'
      ? tx.rows(IDS_READY, json, request.queue, now, request.limit)
      : tx.rows(IDS_COMPLETED, json, request.queue, request.limit);
  const items: QueueItem[] = [];
  for (const rec of candidates) {
    const claimed = claimItem(rec, request, now, tx.nextSeq());
    tx.write(claimed, rec);
    items.push(claimed);
  }
  return { items, nextRunAt: null };
}

export function renew(tx: QueueTx, entries: RenewEntry[], leaseTtl: number): RenewResult[] {
  return entries.map((entry) => {
    // An expired lease is not renewable: someone may already be allowed to take the item.
    const current = tx.expireIfDue(tx.load(entry.id));
    const { result, item } = renewItem(current, entry, leaseTtl, tx.now, tx.nextSeq());
    if (item) tx.write(item, current);
    return result;
  });
}

export function settle(tx: QueueTx, ops: SettleOp[]): SettleResult[] {
  return ops.map((op) => {
    const current = tx.expireIfDue(tx.load(op.id));
    const { result, transition } = settleItem(current, op, tx.now, tx.nextSeq());
    if (transition) tx.apply(transition, current);
    return result;
  });
}

export function sweep(tx: QueueTx, options: SweepOptions = {}): SweepResult {
  const { now } = tx;
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
  /** Rows due for one rule, at most `limit`; `more` when another was waiting. */
  const due = (sql: string, bound: number): ItemRecord[] => {
    const rows = tx.rows(sql, bound, limit + 1);
    if (rows.length > limit) {
      more = true;
      rows.length = limit;
    }
    return rows;
  };

  for (const rec of due(SWEEP_EXPIRED_LEASES, now)) {
    const t = expireLease(rec, now, tx.nextSeq());
    if (!t) continue;
    tx.apply(t, rec);
    if (rec.state === 'claimed') counts.reclaimed++;
    else if (rec.state === 'running') counts.stalled++;
    else counts.unresolved++;
  }
  if (options.startTimeout !== undefined) {
    for (const rec of due(SWEEP_UNSTARTED, now - options.startTimeout)) {
      tx.write(unstartItem(rec, now, tx.nextSeq()), rec);
      counts.unstarted++;
    }
  }
  for (const rec of due(SWEEP_TIMED_OUT, now - (options.abortGrace ?? 0))) {
    tx.apply(timeoutItem(rec, now, tx.nextSeq()), rec);
    counts.timedOut++;
  }
  for (const rec of due(SWEEP_UNCLAIMED, now)) {
    tx.write(unclaimedItem(rec, now, tx.nextSeq()), rec);
    counts.unclaimed++;
  }
  for (const rec of due(SWEEP_EXPIRED_RETENTION, now)) {
    tx.write(pruneItem(rec, now, tx.nextSeq()), rec);
    counts.pruned++;
  }
  const tombstones = tx.conn
    .stmt<{ id: string; change_seq: number }>(SWEEP_TOMBSTONES)
    .all(now - tombstoneTtl, limit + 1);
  if (tombstones.length > limit) {
    more = true;
    tombstones.length = limit;
  }
  for (const t of tombstones) {
    tx.purge(t.id, t.change_seq);
    counts.purged++;
  }
  return { ...counts, more };
}

// ------------------------------------------------------------------------------------------------
// Reads

export function getItem(conn: Connection, id: string): QueueItem | null {
  const row = conn.stmt<ItemRow>(GET_LIVE_ITEM).get(id);
  return row ? (rowToItem(row) as QueueItem) : null;
}

export function listItems(conn: Connection, query: ListQuery): ListResult {
  const limit = query.limit ?? ITEM_DEFAULTS.listLimit;
  const params = {
    queue: query.queue ?? null,
    state: query.state ?? null,
    owner: query.owner ?? null,
    after: query.afterSeq ?? 0,
    limit: limit + 1,
  };
  const rows = conn.stmt<ItemRow>(query.queue !== undefined ? LIST_QUEUE : LIST_ALL).all(params);
  const items = rows.slice(0, limit).map((r) => rowToItem(r) as QueueItem);
  return { items, nextAfterSeq: rows.length > limit ? (items[items.length - 1]?.seq ?? null) : null };
}

export function countItems(conn: Connection, queue?: string): Record<string, QueueCounts> {
  const out: Record<string, QueueCounts> = {};
  if (queue !== undefined) {
    const counts = emptyCounts();
    for (const row of conn.stmt<{ state: ItemState; n: number }>(COUNT_QUEUE).all(queue))
      counts[row.state] = row.n;
    out[queue] = counts;
    return out;
  }
  for (const row of conn.stmt<{ queue: string; state: ItemState; n: number }>(COUNT_ALL).all()) {
    const counts = out[row.queue] ?? emptyCounts();
    counts[row.state] = row.n;
    out[row.queue] = counts;
  }
  return out;
}

export function changes(conn: Connection, query: ChangesQuery): ChangesResult {
  return conn.read(() => {
    const horizon = conn.counters().feedHorizon;
    if (query.after < horizon) {
      throw new CompactedError(`change cursor ${query.after} is older than the retained feed (${horizon})`, {
        detail: { cursor: query.after, horizon },
      });
    }
    const limit = query.limit ?? ITEM_DEFAULTS.changesLimit;
    // Every transition takes its own changeSeq, so a page can never split a group sharing one.
    const rows =
      query.queue !== undefined
        ? conn.stmt<ItemRow>(FEED_QUEUE).all(query.queue, query.after, limit)
        : conn.stmt<ItemRow>(FEED_ALL).all(query.after, limit);
    const items = rows.map(rowToItem);
    return {
      items,
      cursor: items.length > 0 ? (items[items.length - 1]?.changeSeq ?? query.after) : query.after,
    };
  });
}

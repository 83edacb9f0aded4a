/**
 * The Queue half of the port over PostgreSQL. Every call is one round trip to a server-side
 * function (sql/migrations/1/06-queue-writes.sql, 07-queue-reads.sql; claims restricted to ids:
 * sql/migrations/2/01-claim-ids.sql; enqueue and claims as version 3 rewrote them:
 * sql/migrations/3/; enqueue and hand-off as version 4 has them: sql/migrations/4/; the enqueue
 * entry points in PL/pgSQL: sql/migrations/5/; settle planned by primary key whatever the
 * statistics: sql/migrations/6/) that implements the queue model of
 * src/store/queue-model.ts in SQL.
 */
import { toSafeInteger } from '../keys.js';
import type {
  ChangesQuery,
  ChangesResult,
  ClaimRequest,
  ClaimResult,
  EnqueueResult,
  ItemState,
  ListQuery,
  ListResult,
  Mailbox,
  NewItem,
  QueueCounts,
  QueueItem,
  RenewEntry,
  RenewResult,
  SettleOp,
  SettleResult,
  SettleStatus,
  SweepOptions,
  SweepResult,
} from '../port.js';
import { ITEM_DEFAULTS } from '../port.js';
import type { Db } from './db.js';
import { LocalHandoff } from './handoff.js';
import {
  checkText,
  type ItemRow,
  itemOf,
  type NewItemRecord,
  newItemJson,
  settleOpJson,
  uniformFields,
} from './queue-rows.js';
import { query } from './sql.js';

/** How long `changes` waits for transactions in flight before it reads (see 07-queue-reads.sql). */
const FEED_WAIT_MS = 1_000;

/** States after which subscribers are woken (work became runnable, or something finished). */
const WAKING = new Set(['pending', 'completed', 'deleted']);

/** The one queue of a batch, or null when it has items of several. */
function singleQueue(records: NewItemRecord[]): string | null {
  const queue = records[0]?.queue;
  if (typeof queue !== 'string') return null;
  return records.every((r) => r.queue === queue) ? queue : null;
}

function emptyCounts(): QueueCounts {
  return { pending: 0, claimed: 0, running: 0, completed: 0, resolving: 0 };
}

export class PgQueue {
  readonly #db: Db;
  readonly #written: (queues: Iterable<string>) => void;
  readonly #handoff = new LocalHandoff();

  /** `written` is told the queues this client changed in a way subscribers care about. */
  constructor(db: Db, written: (queues: Iterable<string>) => void) {
    this.#db = db;
    this.#written = written;
  }

  async enqueue(items: NewItem[]): Promise<EnqueueResult[]> {
    const records = items.map(newItemJson);
    // Most batches differ only in id and payload: those go as two text arrays and one record, which
    // the server decodes in a fraction of the time a JSON array of records takes.
    const common = uniformFields(records);
    const queue = common ? (common.queue as string) : singleQueue(records);
    const args: unknown[] = common
      ? [records.map((r) => r.id), records.map((r) => r.payload), JSON.stringify(common)]
      : [JSON.stringify(records)];
    return this.#handoff.serve(queue, async (park) => {
      if (common && !park)
        return { result: await this.#enqueueUniform(records, args, queue as string), claimed: [] };
      // Answered row by row: a batch of any shape, or one with a claim for a parked worker.
      const res = await this.#db.run<{
        r_ord: number | null;
        r_id: string;
        r_seq: string;
        r_status: string;
        r_queue: string;
        // A claimed row as JSON (row_to_json): bigints arrive as numbers, which itemOf also takes.
        r_item?: ItemRow | null;
      }>(
        park ? query(common ? 'queue-enqueue-uniform-claim' : 'queue-enqueue-claim') : query('queue-enqueue'),
        park
          ? [...args, queue, park.owner, Math.min(park.limit, items.length), park.leaseTtl, park.start]
          : args,
        // A concurrent enqueue of the same id: run again, the duplicate check then decides.
        { write: true, rerunOn: ['23505'] },
      );
      const claimed: QueueItem[] = [];
      const rows: typeof res.rows = [];
      for (const row of res.rows) {
        if (row.r_item) claimed.push(itemOf(row.r_item) as QueueItem);
        else rows.push(row);
      }
      rows.sort((a, b) => (a.r_ord as number) - (b.r_ord as number));
      // Items the hand-off claimed went straight to running: nobody needs waking for them (a
      // one-item enqueue to an idle worker sends no NOTIFY and wakes no local subscriber).
      const started = new Set(claimed.map((item) => item.id));
      this.#written(
        new Set(
          rows.filter((r) => r.r_status !== 'deduplicated' && !started.has(r.r_id)).map((r) => r.r_queue),
        ),
      );
      const result = rows.map((r) => ({
        id: r.r_id,
        seq: toSafeInteger(r.r_seq, 'seq'),
        status: r.r_status as EnqueueResult['status'],
      }));
      return { result, claimed };
    });
  }

  /** A uniform batch without hand-off: one answer row (seqs; ids and statuses unless all were created). */
  async #enqueueUniform(records: NewItemRecord[], args: unknown[], queue: string): Promise<EnqueueResult[]> {
    type Answer = { seqs: string[]; ids: string[] | null; statuses: string[] | null };
    const res = await this.#db.run<Answer>(query('queue-enqueue-uniform'), args, {
      write: true,
      rerunOn: ['23505'],
    });
    const { seqs, ids, statuses } = res.rows[0] as Answer;
    if (statuses === null || statuses.some((s) => s !== 'deduplicated')) this.#written([queue]);
    return records.map((r, i) => ({
      id: ids === null ? r.id : (ids[i] as string),
      seq: toSafeInteger(seqs[i] as string, 'seq'),
      status: statuses === null ? 'created' : (statuses[i] as EnqueueResult['status']),
    }));
  }

  /** See {@link Store.handoff}: only this client's enqueues hand off (LocalHandoff). */
  handoff(listener: (items: QueueItem[]) => void): Mailbox {
    return this.#handoff.mailbox(listener);
  }

  close(): void {
    this.#handoff.close();
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const from = request.from ?? 'pending';
    // The row without an id only carries nextRunAt (see 06-queue-writes.sql).
    type ClaimRow = ItemRow | { id: null; run_at: string | null };
    const params = [
      request.queue,
      request.owner,
      request.limit,
      request.leaseTtl,
      request.start ?? false,
      from,
    ];
    // A claim restricted to ids has a function of its own (and no nextRunAt row).
    const res = await this.#db.run<ClaimRow>(
      query(request.ids === undefined ? 'queue-claim' : 'queue-claim-ids'),
      request.ids === undefined ? params : [...params, request.ids],
      { write: true },
    );
    const items: QueueItem[] = [];
    let nextRunAt: number | null = null;
    for (const row of res.rows) {
      if (row.id === null) nextRunAt = row.run_at === null ? null : toSafeInteger(row.run_at, 'time');
      else items.push(itemOf(row) as QueueItem);
    }
    this.#handoff.claimed(request, items.length);
    return { items, nextRunAt };
  }

  async renew(entries: RenewEntry[], leaseTtl: number): Promise<RenewResult[]> {
    entries.forEach((e, i) => {
      checkText(`entries[${i}].progress`, e.progress);
    });
    const res = await this.#db.run<{
      r_ord: number;
      r_status: RenewResult['status'];
      r_lease_expires_at: string | null;
      r_state: string | null;
      r_queue: string | null;
      r_changed: boolean;
    }>(
      query('queue-renew'),
      [
        entries.map((e) => e.id),
        entries.map((e) => e.token),
        entries.map((e) => e.progress ?? null),
        entries.map((e) => e.progress !== undefined),
        leaseTtl,
      ],
      { write: true },
    );
    const rows = [...res.rows].sort((a, b) => a.r_ord - b.r_ord);
    this.#wake(rows);
    return rows.map((r, i) => ({
      id: entries[i]?.id as string,
      status: r.r_status,
      leaseExpiresAt: r.r_lease_expires_at === null ? null : toSafeInteger(r.r_lease_expires_at, 'time'),
    }));
  }

  async settle(ops: SettleOp[]): Promise<SettleResult[]> {
    const json = JSON.stringify(ops.map(settleOpJson));
    const res = await this.#db.run<{
      r_ord: number;
      r_status: SettleStatus;
      r_state: string | null;
      r_outcome: SettleResult['outcome'];
      r_queue: string | null;
      r_changed: boolean;
    }>(query('queue-settle'), [json], { write: true });
    const rows = [...res.rows].sort((a, b) => a.r_ord - b.r_ord);
    this.#wake(rows);
    return rows.map((r, i) => {
      const live = r.r_state !== null && r.r_state !== 'deleted';
      return {
        id: ops[i]?.id as string,
        status: r.r_status,
        state: live ? (r.r_state as ItemState) : null,
        outcome: live ? r.r_outcome : null,
      };
    });
  }

  #wake(rows: { r_state: string | null; r_queue: string | null; r_changed: boolean }[]): void {
    const queues = new Set<string>();
    for (const r of rows) {
      if (r.r_changed && r.r_queue !== null && r.r_state !== null && WAKING.has(r.r_state))
        queues.add(r.r_queue);
    }
    if (queues.size > 0) this.#written(queues);
  }

  async getItem(id: string): Promise<QueueItem | null> {
    const res = await this.#db.run<ItemRow>(query('queue-get'), [id], { write: false });
    const row = res.rows[0];
    return row ? (itemOf(row) as QueueItem) : null;
  }

  async listItems(q: ListQuery): Promise<ListResult> {
    const limit = q.limit ?? ITEM_DEFAULTS.listLimit;
    const res = await this.#db.run<ItemRow>(
      query('queue-list'),
      [q.afterSeq ?? 0, q.queue ?? null, q.state ?? null, q.owner ?? null, limit + 1],
      { write: false },
    );
    const items = res.rows.map((r) => itemOf(r) as QueueItem);
    if (items.length > limit) {
      items.length = limit;
      return { items, nextAfterSeq: items[items.length - 1]?.seq ?? null };
    }
    return { items, nextAfterSeq: null };
  }

  async countItems(queue?: string): Promise<Record<string, QueueCounts>> {
    const res = await this.#db.run<{ queue: string; state: ItemState; n: number }>(
      queue === undefined ? query('queue-count') : query('queue-count-queue'),
      queue === undefined ? [] : [queue],
      { write: false },
    );
    const out: Record<string, QueueCounts> = {};
    for (const row of res.rows) {
      const counts = out[row.queue] ?? emptyCounts();
      // The per-queue query counts ready and delayed pending items apart.
      counts[row.state] += row.n;
      out[row.queue] = counts;
    }
    if (queue !== undefined && !out[queue]) out[queue] = emptyCounts();
    return out;
  }

  async changes(q: ChangesQuery): Promise<ChangesResult> {
    const limit = q.limit ?? ITEM_DEFAULTS.changesLimit;
    const res = await this.#db.run<ItemRow>(
      query('queue-changes'),
      [q.after, q.queue ?? null, limit, FEED_WAIT_MS],
      { write: false },
    );
    const items = res.rows.map(itemOf);
    return { items, cursor: items.length > 0 ? (items[items.length - 1]?.changeSeq ?? q.after) : q.after };
  }

  async sweep(options: SweepOptions = {}): Promise<SweepResult> {
    const res = await this.#db.run<{
      reclaimed: number;
      stalled: number;
      unstarted: number;
      timed_out: number;
      unclaimed: number;
      unresolved: number;
      pruned: number;
      purged: number;
      more: boolean;
      queues: string[];
    }>(
      query('queue-sweep'),
      [
        options.startTimeout ?? null,
        options.abortGrace ?? 0,
        options.tombstoneTtl ?? ITEM_DEFAULTS.tombstoneTtl,
        options.limit ?? ITEM_DEFAULTS.sweepLimit,
      ],
      { write: true },
    );
    const row = res.rows[0];
    if (row && row.queues.length > 0) this.#written(row.queues);
    return {
      reclaimed: row?.reclaimed ?? 0,
      stalled: row?.stalled ?? 0,
      unstarted: row?.unstarted ?? 0,
      timedOut: row?.timed_out ?? 0,
      unclaimed: row?.unclaimed ?? 0,
      unresolved: row?.unresolved ?? 0,
      pruned: row?.pruned ?? 0,
      purged: row?.purged ?? 0,
      more: row?.more ?? false,
    };
  }
}

/**
 * Enqueue: ids and dedup keys are checked and items created in one atomic txn per chunk, guarded
 * by the modRevision of every record, dedup key and the seq counter it relies on. A batch larger
 * than one etcd txn (see `chunkGroups`) is written chunk by chunk: every id is checked before the
 * first chunk, and a later chunk that meets a concurrently created id turns the chunks already
 * written into tombstones before failing with `ROTA_TASK_EXISTS`.
 */
import { StoreError, TaskExistsError } from '../../../errors.js';
import type { EnqueueResult, NewItem } from '../../port.js';
import { ITEM_DEFAULTS } from '../../port.js';
import { createItem, dedupActive, type ItemRecord, pruneItem } from '../../queue-model.js';
import { num } from '../codec.js';
import type { QueueContext } from './context.js';
import { decodeRecord, type Observed, PENDING_REVISION } from './record.js';
import {
  atomicTxn,
  chunkGroups,
  modIs,
  putOp,
  readKeysTxn,
  transitionGroup,
  type WriteGroup,
} from './requests.js';

const MAX_ATTEMPTS = 100;

function exists(id: string): never {
  throw new TaskExistsError(`task ${id} already exists`, { detail: { id } });
}

const live = (o: Observed | undefined): ItemRecord | null =>
  o?.rec && o.rec.state !== 'deleted' ? o.rec : null;

interface DedupSlot {
  mod: number;
  holder: string | null;
  changed: boolean;
}

export async function enqueue(ctx: QueueContext, items: NewItem[]): Promise<EnqueueResult[]> {
  // Every id first, before anything is written: the batch is all-or-nothing.
  const seen = new Set<string>();
  for (const item of items) {
    if (seen.has(item.id)) exists(item.id);
    seen.add(item.id);
  }
  const current = await ctx.readRecords('enqueue', seen);
  for (const item of items) {
    const rec = live(current.get(item.id));
    if (rec && !(item.opId && rec.opId === item.opId)) exists(item.id);
  }

  // Chunk by a conservative estimate of each item's writes (record + indexes + dedup).
  const estimates: WriteGroup[] = items.map((item) => ({
    compares: new Array(item.dedup ? 3 : 1).fill(null),
    ops: new Array(item.dedup ? 9 : 6).fill(null),
    size: 512 + item.payload.length * 3 + (item.meta?.length ?? 0) * 3,
  }));
  const byEstimate = new Map(estimates.map((e, i) => [e, items[i] as NewItem]));
  const chunks = chunkGroups(estimates, {
    maxTxnOps: ctx.maxTxnOps,
    maxBytes: ctx.maxBytes,
    reserve: 8,
    atomic: true,
  }).map((chunk) => chunk.map((e) => byEstimate.get(e) as NewItem));

  const results: EnqueueResult[] = [];
  const written: { id: string; revision: number }[] = [];
  try {
    for (const chunk of chunks) {
      const { results: chunkResults, created, revision } = await enqueueChunk(ctx, chunk);
      results.push(...chunkResults);
      for (const id of created) written.push({ id, revision });
    }
  } catch (err) {
    if (written.length > 0) await rollBack(ctx, written);
    throw err;
  }
  return results;
}

async function enqueueChunk(
  ctx: QueueContext,
  chunk: NewItem[],
): Promise<{ results: EnqueueResult[]; created: string[]; revision: number }> {
  const keys = ctx.keys;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const now = ctx.now();
    // One snapshot: the chunk's records, its dedup keys and the seq counter.
    const dedupKeys = [...new Set(chunk.flatMap((i) => (i.dedup ? [keys.dedup(i.queue, i.dedup.key)] : [])))];
    const snapshot = await ctx.conn.read('enqueue', () =>
      ctx.conn.client.kv.txn(
        readKeysTxn([keys.counter, ...dedupKeys, ...chunk.map((i) => keys.record(i.id))]),
      ),
    );
    const kvAt = (i: number) => snapshot.responses[i]?.response_range?.kvs[0];
    const counterKv = kvAt(0);
    const counterMod = counterKv ? num(counterKv.mod_revision) : 0;
    let seq = counterKv ? num(counterKv.value.toString(), 'seq') : 0;
    const firstSeq = seq;
    const dedup = new Map<string, DedupSlot>();
    dedupKeys.forEach((k, i) => {
      const kv = kvAt(1 + i);
      dedup.set(k, {
        mod: kv ? num(kv.mod_revision) : 0,
        holder: kv ? kv.value.toString() : null,
        changed: false,
      });
    });
    const observed = new Map<string, Observed>();
    chunk.forEach((item, i) => {
      const kv = kvAt(1 + dedupKeys.length + i);
      observed.set(
        item.id,
        kv ? { mod: num(kv.mod_revision), rec: decodeRecord(kv) } : { mod: 0, rec: null },
      );
    });
    // Dedup holders outside the chunk are read now (same round trip count as any other read).
    const holderIds = [...dedup.values()].flatMap((d) =>
      d.holder && !observed.has(d.holder) ? [d.holder] : [],
    );
    if (holderIds.length > 0) {
      for (const [id, o] of await ctx.readRecords('enqueue', holderIds)) observed.set(id, o);
    }

    // Apply the batch in order on a local overlay, exactly as the memory engine would.
    const next = new Map<string, ItemRecord>();
    const stateOf = (id: string): ItemRecord | null => next.get(id) ?? observed.get(id)?.rec ?? null;
    const results: EnqueueResult[] = [];
    const created: string[] = [];
    for (const item of chunk) {
      const existing = stateOf(item.id);
      if (existing && existing.state !== 'deleted') {
        if (!(item.opId && existing.opId === item.opId)) exists(item.id);
        results.push({ id: existing.id, seq: existing.seq, status: 'created' });
        continue;
      }
      if (item.dedup) {
        const slot = dedup.get(keys.dedup(item.queue, item.dedup.key)) as DedupSlot;
        const holder = slot.holder ? stateOf(slot.holder) : null;
        if (
          holder &&
          holder.queue === item.queue &&
          holder.dedupKey === item.dedup.key &&
          dedupActive(holder, now)
        ) {
          if (item.dedup.mode === 'replace' && holder.state === 'pending') {
            next.set(holder.id, {
              ...holder,
              payload: item.payload,
              priority: item.priority ?? ITEM_DEFAULTS.priority,
              runAt: item.runAt ?? now + (item.delay ?? 0),
              meta: item.meta ?? holder.meta,
              updatedAt: now,
              changeSeq: PENDING_REVISION,
            });
            results.push({ id: holder.id, seq: holder.seq, status: 'replaced' });
          } else {
            results.push({ id: holder.id, seq: holder.seq, status: 'deduplicated' });
          }
          continue;
        }
        slot.holder = item.id;
        slot.changed = true;
      }
      const rec = createItem(item, now, ++seq);
      next.set(item.id, rec);
      created.push(item.id);
      results.push({ id: rec.id, seq: rec.seq, status: 'created' });
    }
    if (next.size === 0) return { results, created, revision: 0 };

    const groups = [...next].map(([id, rec]) =>
      transitionGroup(keys, id, observed.get(id) ?? { mod: 0, rec: null }, rec, now),
    );
    const sharedOps = [...new Set(chunk.map((i) => i.queue))].map((q) => putOp(keys.queueEntry(q)));
    const sharedCompares = [];
    for (const [k, slot] of dedup) {
      if (!slot.changed) continue;
      sharedCompares.push(modIs(k, slot.mod));
      sharedOps.push(putOp(k, Buffer.from(slot.holder as string)));
    }
    if (seq > firstSeq) {
      sharedCompares.push(modIs(keys.counter, counterMod));
      sharedOps.push(putOp(keys.counter, Buffer.from(String(seq))));
    }
    const res = await ctx.write(
      'enqueue',
      atomicTxn(groups, { compares: sharedCompares, ops: sharedOps, size: 0 }),
    );
    if (res.succeeded) return { results, created, revision: num(res.header.revision) };
  }
  throw new StoreError('enqueue: the items kept changing under concurrent writers; try again');
}

/** Turn items created by earlier chunks of a failed batch into tombstones (if nobody moved them since). */
async function rollBack(ctx: QueueContext, written: { id: string; revision: number }[]): Promise<void> {
  const observed = await ctx.readRecords(
    'enqueue',
    written.map((w) => w.id),
  );
  const now = ctx.now();
  const plans = written.flatMap((w) => {
    const o = observed.get(w.id);
    if (!o?.rec || o.mod !== w.revision) return [];
    return [{ id: w.id, observed: o, after: pruneItem(o.rec, now, PENDING_REVISION) }];
  });
  await ctx.commit('enqueue', plans);
}

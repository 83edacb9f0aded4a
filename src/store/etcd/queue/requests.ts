/**
 * The etcd requests behind the queue. Two write shapes:
 * - independent: each item is a nested txn guarded by its record's modRevision, so one stale item
 *   fails alone and the rest of the batch still applies (claims, settles, renews, the sweep);
 * - atomic: every guard at the top level, all or nothing (enqueue, dead-letter copies).
 * etcd evaluates all compares of a txn, nested ones too, against the state before the txn, and
 * applies every write of one txn at one revision.
 */
import type { ICompare, IRangeRequest, IRequestOp, ITxnRequest } from 'etcd3';
import type { ItemRecord } from '../../queue-model.js';
import { bytes, prefixEnd } from '../codec.js';
import { pad, type QueueKeys } from './keys.js';
import { encodeRecord, type Observed } from './record.js';

const EMPTY = Buffer.alloc(0);
/** Per-op overhead of a request beyond its key and value bytes (protobuf framing, generous). */
const OP_OVERHEAD = 48;

/** A guarded group of writes: one item's transition, or one index move. */
export interface WriteGroup {
  compares: ICompare[];
  ops: IRequestOp[];
  /** Estimated request bytes. */
  size: number;
}

const put = (key: string, value: Buffer = EMPTY): IRequestOp => ({ request_put: { key: bytes(key), value } });
const del = (key: string): IRequestOp => ({ request_delete_range: { key: bytes(key) } });

export const modIs = (key: string, mod: number): ICompare => ({
  key: bytes(key),
  target: 'Mod',
  result: 'Equal',
  mod_revision: mod,
});

/**
 * The writes taking an item from `observed` to `after` (null: purge the record): the record itself
 * and the difference of its index keys, guarded by the record's modRevision.
 */
export function transitionGroup(
  keys: QueueKeys,
  id: string,
  observed: Observed,
  after: ItemRecord | null,
  now: number,
  extraOps: IRequestOp[] = [],
): WriteGroup {
  const before = observed.rec;
  const ops: IRequestOp[] = [];
  let size = 0;
  const record = keys.record(id);
  if (after) {
    const value = encodeRecord(after);
    ops.push(put(record, value));
    size += value.length;
  } else ops.push(del(record));
  const target = new Set(after ? keys.targetKeys(after, now) : []);
  const certain = new Set(before ? keys.certainKeys(before) : []);
  for (const k of new Set(before ? keys.possibleKeys(before) : [])) if (!target.has(k)) ops.push(del(k));
  for (const k of target) if (!certain.has(k)) ops.push(put(k));
  ops.push(...extraOps);
  for (const op of ops)
    size += OP_OVERHEAD + (op.request_put?.key?.length ?? op.request_delete_range?.key?.length ?? 64);
  return { compares: [modIs(record, observed.mod)], ops, size };
}

/** Move a due pending item's index key from `delayed` to `ready`, if it is still there. */
export function promotionGroup(from: string, to: string): WriteGroup {
  return {
    compares: [{ key: bytes(from), target: 'Version', result: 'Greater', version: 0 }],
    ops: [del(from), put(to)],
    size: 2 * OP_OVERHEAD + from.length + to.length,
  };
}

/** Delete a purged item's dedup key if it still names the item. */
export function releaseDedupOp(dedupKey: string, id: string): IRequestOp {
  return {
    request_txn: {
      compare: [{ key: bytes(dedupKey), target: 'Value', result: 'Equal', value: bytes(id) }],
      success: [del(dedupKey)],
      failure: [],
    },
  };
}

export const putOp = put;

/** Independent groups: each applies iff its own compares hold. */
export function independentTxn(groups: WriteGroup[], shared: WriteGroup | null = null): ITxnRequest {
  return {
    compare: shared?.compares ?? [],
    success: [
      ...groups.map((g) => ({ request_txn: { compare: g.compares, success: g.ops, failure: [] } })),
      ...(shared?.ops ?? []),
    ],
    failure: [],
  };
}

/** All groups or none: every compare at the top level (groups stay nested to spread etcd's op limit). */
export function atomicTxn(groups: WriteGroup[], shared: WriteGroup | null = null): ITxnRequest {
  return {
    compare: [...(shared?.compares ?? []), ...groups.flatMap((g) => g.compares)],
    success: [
      ...groups.map((g) => ({ request_txn: { compare: [], success: g.ops, failure: [] } })),
      ...(shared?.ops ?? []),
    ],
    failure: [],
  };
}

/**
 * Split groups into txns that respect etcd's `--max-txn-ops` (per level: a nested txn may hold
 * `maxTxnOps` minus the width of its parent) and `--max-request-bytes`. `reserve` leaves room for
 * shared ops and compares; `atomic` counts every group's compares at the top level.
 */
export function chunkGroups(
  groups: WriteGroup[],
  limits: { maxTxnOps: number; maxBytes: number; reserve?: number; atomic?: boolean },
): WriteGroup[][] {
  const reserve = limits.reserve ?? 2;
  const chunks: WriteGroup[][] = [];
  let current: WriteGroup[] = [];
  let size = 0;
  let widest = 0;
  let compares = 0;
  for (const g of groups) {
    const nested = limits.atomic ? g.ops.length : Math.max(g.ops.length, g.compares.length);
    const top = Math.max(current.length + 1, limits.atomic ? compares + g.compares.length : 0) + reserve;
    const fits =
      current.length === 0 ||
      (top + Math.max(widest, nested) <= limits.maxTxnOps && size + g.size <= limits.maxBytes);
    if (!fits) {
      chunks.push(current);
      current = [];
      size = 0;
      widest = 0;
      compares = 0;
    }
    current.push(g);
    size += g.size;
    widest = Math.max(widest, nested);
    compares += g.compares.length;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** Read several single keys in one snapshot. */
export function readKeysTxn(keys: string[]): ITxnRequest {
  return { compare: [], success: keys.map((k) => ({ request_range: { key: bytes(k) } })) };
}

/** An ordered, keys-only range of an index prefix, up to and including time `upTo`. */
export function indexUpTo(prefix: string, upTo: number | null, limit: number): IRangeRequest {
  const start = bytes(prefix);
  return {
    key: start,
    range_end: upTo === null ? prefixEnd(start) : bytes(prefix + pad(upTo + 1)),
    limit,
    keys_only: true,
  };
}

/** The first key of an index prefix whose time is after `after`. */
export function indexAfter(prefix: string, after: number): IRangeRequest {
  return {
    key: bytes(prefix + pad(after + 1)),
    range_end: prefixEnd(bytes(prefix)),
    limit: 1,
    keys_only: true,
  };
}

/** How many keys an index prefix holds. */
export function indexCount(prefix: string): IRangeRequest {
  const start = bytes(prefix);
  return { key: start, range_end: prefixEnd(start), count_only: true };
}

/** Records whose latest write is after `after`, oldest first. */
export function changedRecords(keys: QueueKeys, after: number, limit: number): IRangeRequest {
  const start = bytes(keys.records);
  return {
    key: start,
    range_end: prefixEnd(start),
    min_mod_revision: after + 1,
    sort_order: 'Ascend',
    sort_target: 'Mod',
    limit,
  };
}

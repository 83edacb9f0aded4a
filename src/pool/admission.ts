/**
 * Admission accounting (`maxQueuedJobs`): how many admitted jobs never started. A single counter
 * would be the hottest key of the pool (every dispatch and every first start would write it), so
 * the count is split in two:
 *
 * - `meta` holds `admitted`: incremented by the dispatch txn, which compares it (admission of one
 *   job is one txn);
 * - `meta/retired/<shard>` (16 shards by key hash) count jobs that left the never-started state (a
 *   first start, a failed first start, a deleted unstarted job), each written in the txn of that
 *   transition.
 *
 * queued = admitted − Σ retired. A dispatch compares only `admitted`: retired counts only grow, so a
 * stale (low) sum over-estimates `queued` and can never admit too many; before refusing, the
 * dispatcher re-reads the shards.
 */
import { decodeJson, encodeJson } from '../core/context.js';
import type { Compare, KeyValue, TxnOp } from '../store/port.js';
import { unchanged } from './cas.js';
import { hash64 } from './hash.js';
import type { MetaRecord, RetiredRecord } from './records.js';

export const RETIRED_SHARDS = 16;

/** The shard of `key` (0 … 15). */
export function retiredShard(key: string): number {
  return hash64(key).lo % RETIRED_SHARDS;
}

/** Admitted count of a `meta` record (0 when absent). */
export function admittedOf(kv: KeyValue | null): number {
  return kv ? (decodeJson<MetaRecord>(kv.value).admitted ?? 0) : 0;
}

/** The `meta` put that admits `count` more jobs. */
export function admit(metaKey: string, kv: KeyValue | null, opId: string, count = 1): TxnOp {
  const meta: MetaRecord = { admitted: admittedOf(kv) + count, opId };
  return { type: 'put', key: metaKey, value: encodeJson(meta) };
}

/** Compare and put that count one job out of the never-started state in shard `shardKey`. */
export function retire(shardKey: string, kv: KeyValue | null): { compare: Compare; put: TxnOp } {
  const count = kv ? decodeJson<RetiredRecord>(kv.value).count : 0;
  const record: RetiredRecord = { count: count + 1 };
  return { compare: unchanged(shardKey, kv), put: { type: 'put', key: shardKey, value: encodeJson(record) } };
}

/** Sum of retired counts of the given shard records. */
export function retiredTotal(kvs: Iterable<KeyValue>): number {
  let total = 0;
  for (const kv of kvs) total += decodeJson<RetiredRecord>(kv.value).count;
  return total;
}

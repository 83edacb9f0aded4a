/** Queue reads: one item, listings in seq order, counts per state, and the change feed. */
import { CompactedError } from '../../../errors.js';
import type {
  ChangesQuery,
  ChangesResult,
  FeedItem,
  ItemState,
  ListQuery,
  ListResult,
  QueueCounts,
  QueueItem,
} from '../../port.js';
import { ITEM_DEFAULTS } from '../../port.js';
import { bytes, keyAfter, num, prefixEnd } from '../codec.js';
import type { QueueContext } from './context.js';
import { idOfIndexKey, pad } from './keys.js';
import { decodeRecord } from './record.js';
import { changedRecords, indexCount } from './requests.js';

const LIST_PAGE = 512;
const FEED_PAGE = 256;

export async function getItem(ctx: QueueContext, id: string): Promise<QueueItem | null> {
  const rec = (await ctx.readRecords('getItem', [id])).get(id)?.rec;
  return rec && rec.state !== 'deleted' ? (rec as QueueItem) : null;
}

/** Walk the seq index from `afterSeq`, filtering records, until `limit` items and one more are seen. */
export async function listItems(ctx: QueueContext, query: ListQuery): Promise<ListResult> {
  const limit = query.limit ?? ITEM_DEFAULTS.listLimit;
  const prefix = bytes(ctx.keys.seqIndex);
  let from = bytes(ctx.keys.seqIndex + pad((query.afterSeq ?? 0) + 1));
  const items: QueueItem[] = [];
  for (;;) {
    const res = await ctx.conn.read('listItems', () =>
      ctx.conn.client.kv.range({
        key: from,
        range_end: prefixEnd(prefix),
        limit: LIST_PAGE,
        keys_only: true,
      }),
    );
    const keys = res.kvs.map((kv) => kv.key);
    const records = await ctx.readRecords(
      'listItems',
      keys.map((k) => idOfIndexKey(k.toString('utf8'))),
    );
    for (const key of keys) {
      const rec = records.get(idOfIndexKey(key.toString('utf8')))?.rec;
      if (!rec || rec.state === 'deleted') continue;
      if (query.queue !== undefined && rec.queue !== query.queue) continue;
      if (query.state !== undefined && rec.state !== query.state) continue;
      if (query.owner !== undefined && rec.owner !== query.owner) continue;
      if (items.length >= limit) return { items, nextAfterSeq: items[items.length - 1]?.seq ?? null };
      items.push(rec as QueueItem);
    }
    const last = keys[keys.length - 1];
    if (!res.more || !last) return { items, nextAfterSeq: null };
    from = keyAfter(last);
  }
}

const STATE_INDEXES: [ItemState, 'r' | 'd' | 'c' | 'n' | 'o' | 's'][] = [
  ['pending', 'r'],
  ['pending', 'd'],
  ['claimed', 'c'],
  ['running', 'n'],
  ['completed', 'o'],
  ['resolving', 's'],
];

/** Counts from the per-queue state indexes (count-only ranges, one snapshot per batch of queues). */
export async function countItems(ctx: QueueContext, queue?: string): Promise<Record<string, QueueCounts>> {
  let queues: string[];
  if (queue !== undefined) queues = [queue];
  else {
    const start = bytes(ctx.keys.registry);
    const res = await ctx.conn.read('countItems', () =>
      ctx.conn.client.kv.range({ key: start, range_end: prefixEnd(start), keys_only: true }),
    );
    queues = res.kvs.map((kv) => ctx.keys.queueOf(kv.key.toString('utf8')));
  }
  const ranges = queues.flatMap((q) =>
    STATE_INDEXES.map(([, kind]) => indexCount(ctx.keys.queueIndex(q, kind))),
  );
  const res = await ctx.ranges('countItems', ranges);
  const out: Record<string, QueueCounts> = {};
  queues.forEach((q, i) => {
    const counts: QueueCounts = { pending: 0, claimed: 0, running: 0, completed: 0, resolving: 0 };
    STATE_INDEXES.forEach(([state], j) => {
      counts[state] += num(res[i * STATE_INDEXES.length + j]?.count, 'count');
    });
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    if (total > 0 || q === queue) out[q] = counts;
  });
  return out;
}

/**
 * The feed: records whose modRevision (their changeSeq) is after the cursor, oldest first. etcd
 * revisions are assigned in commit order, so nothing can later appear at or below a returned
 * cursor. Items written by one txn share a revision; a page never ends inside such a group.
 */
export async function changes(ctx: QueueContext, query: ChangesQuery): Promise<ChangesResult> {
  const limit = query.limit ?? ITEM_DEFAULTS.changesLimit;
  const items: FeedItem[] = [];
  let cursor = query.after;
  let checkedHorizon = false;
  for (;;) {
    const page = Math.max(limit, FEED_PAGE) + ctx.maxTxnOps;
    const [horizonRes, res] = await ctx.ranges('changes', [
      { key: bytes(ctx.keys.horizon) },
      changedRecords(ctx.keys, cursor, page),
    ]);
    if (!checkedHorizon) {
      const kv = horizonRes?.kvs[0];
      const horizon = kv ? num(kv.value.toString(), 'horizon') : 0;
      if (query.after < horizon) {
        throw new CompactedError(
          `change cursor ${query.after} is older than the retained feed (${horizon})`,
          {
            detail: { cursor: query.after, horizon },
          },
        );
      }
      checkedHorizon = true;
    }
    const kvs = res?.kvs ?? [];
    // With more to come, the last revision group may be cut short: leave it for the next page.
    const lastRev = kvs.length > 0 ? num(kvs[kvs.length - 1]?.mod_revision) : 0;
    const whole = res?.more ? kvs.filter((kv) => num(kv.mod_revision) < lastRev) : kvs;
    // A page holds more records than one txn can write, so `whole` is empty only in theory.
    const usable = whole.length > 0 ? whole : kvs;
    for (let i = 0; i < usable.length; i++) {
      const kv = usable[i] as (typeof usable)[number];
      const rev = num(kv.mod_revision);
      if (items.length >= limit && rev !== cursor) return { items, cursor };
      cursor = rev;
      const rec = decodeRecord(kv);
      if (query.queue === undefined || rec.queue === query.queue) items.push(rec);
    }
    if (!res?.more || items.length >= limit) return { items, cursor };
  }
}

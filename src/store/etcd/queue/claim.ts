/**
 * Claim: read the head of the queue's indexes (expired leases, due delayed items, the ready index
 * in claim order) in one snapshot, read those records, apply the queue model locally, then write
 * each claim as a nested txn guarded by the record's modRevision. Items another claimer took in
 * between fail their guard alone; the claim then reads again for the rest. A claim costs three
 * round trips (index, records, write) whatever the depth of the queue.
 *
 * A claim restricted to `ids` reads those records directly (alongside the expired-lease index of
 * the queue) instead of the queue's indexes: two round trips (records, write), three when leases
 * of the queue have expired.
 */
import type { IRangeResponse } from 'etcd3';
import type { ClaimRequest, ClaimResult, QueueItem } from '../../port.js';
import { claimItem, compareClaimOrder, expireLease, type ItemRecord, isRunnable } from '../../queue-model.js';
import type { Plan, Promotion, QueueContext } from './context.js';
import { idOfIndexKey, timeOfIndexKey } from './keys.js';
import { ABSENT, type Observed, PENDING_REVISION } from './record.js';
import { indexAfter, indexUpTo } from './requests.js';

const MAX_ROUNDS = 50;
/** Expired leases applied per state and round. */
const EXPIRED_BATCH = 64;
/** Due delayed items considered (and moved to the ready index) per round. */
const DUE_BATCH = 256;
/** Extra ready keys read beyond the wanted count. */
const SLACK = 8;

interface Candidate {
  id: string;
  observed: Observed;
  /** The record to claim (after applying an expired lease, if any). */
  current: ItemRecord;
  /** The expiry turned it into `current` (must be written even if not claimed). */
  expired: boolean;
  deadLetter: Plan['deadLetter'];
  /** A due delayed item: its index key may move to ready when not claimed. */
  promotion: Promotion | null;
}

interface Scan {
  expired: string[];
  due: string[];
  head: string[];
  more: boolean;
  nextTimes: number[];
}

const keysOf = (r: IRangeResponse | undefined): string[] =>
  (r?.kvs ?? []).map((kv) => kv.key.toString('utf8'));

async function scan(ctx: QueueContext, req: ClaimRequest, want: number, now: number): Promise<Scan> {
  const k = ctx.keys;
  const q = req.queue;
  const leased = (['c', 'n', 's'] as const).map((kind) => k.queueIndex(q, kind));
  const pending = (req.from ?? 'pending') === 'pending';
  const headPrefix = pending ? k.queueIndex(q, 'r') : k.queueIndex(q, 'o');
  const delayed = k.queueIndex(q, 'd');
  const ranges = [
    ...leased.map((p) => indexUpTo(p, now, EXPIRED_BATCH)),
    indexUpTo(headPrefix, null, want + SLACK),
    ...leased.map((p) => indexAfter(p, now)),
    ...(pending ? [indexUpTo(delayed, now, DUE_BATCH), indexAfter(delayed, now)] : []),
  ];
  const res = await ctx.ranges('claim', ranges);
  const expired = leased.flatMap((_, i) => keysOf(res[i]).map(idOfIndexKey));
  const head = keysOf(res[3]).map(idOfIndexKey);
  const nextTimes = leased.flatMap((p, i) => keysOf(res[4 + i]).map((key) => timeOfIndexKey(key, p)));
  const due = pending ? keysOf(res[7]).map(idOfIndexKey) : [];
  if (pending) nextTimes.push(...keysOf(res[8]).map((key) => timeOfIndexKey(key, delayed)));
  const more = [0, 1, 2, 3, ...(pending ? [7] : [])].some((i) => res[i]?.more === true);
  return { expired, due, head, more, nextTimes };
}

export async function claim(ctx: QueueContext, req: ClaimRequest): Promise<ClaimResult> {
  if (req.ids) return claimIds(ctx, req, req.ids);
  const pending = (req.from ?? 'pending') === 'pending';
  const items: QueueItem[] = [];
  let nextTimes: number[] = [];
  for (let round = 0; round < MAX_ROUNDS && items.length < req.limit; round++) {
    const now = ctx.now();
    const want = req.limit - items.length;
    const s = await scan(ctx, req, want, now);
    nextTimes = s.nextTimes;
    const ids = new Set([...s.expired, ...s.due, ...s.head]);
    if (ids.size === 0) break;
    const observed = await ctx.readRecords('claim', ids);

    const plans: Plan[] = [];
    const candidates = new Map<string, Candidate>();
    for (const id of s.expired) {
      const o = observed.get(id) ?? ABSENT;
      if (!o.rec || candidates.has(id)) continue;
      const t = expireLease(o.rec, now, PENDING_REVISION);
      if (!t) continue;
      const claimable = pending ? t.item.state === 'pending' : t.item.state === 'completed';
      if (claimable)
        candidates.set(id, {
          id,
          observed: o,
          current: t.item,
          expired: true,
          deadLetter: t.deadLetter,
          promotion: null,
        });
      else plans.push({ id, observed: o, after: t.item, deadLetter: t.deadLetter });
    }
    for (const id of [...s.due, ...s.head]) {
      const o = observed.get(id) ?? ABSENT;
      if (!o.rec || candidates.has(id)) continue;
      const ok = pending ? o.rec.state === 'pending' && isRunnable(o.rec, now) : o.rec.state === 'completed';
      if (!ok) continue;
      const promotion =
        pending && s.due.includes(id) ? { from: ctx.keys.delayed(o.rec), to: ctx.keys.ready(o.rec) } : null;
      candidates.set(id, { id, observed: o, current: o.rec, expired: false, deadLetter: null, promotion });
    }

    const ordered = [...candidates.values()].sort((a, b) =>
      pending
        ? compareClaimOrder(a.current, b.current)
        : (a.current.completedAt ?? 0) - (b.current.completedAt ?? 0) || a.current.seq - b.current.seq,
    );
    const chosen = ordered.slice(0, want);
    const promotions: Promotion[] = [];
    for (const c of chosen) {
      plans.push({
        id: c.id,
        observed: c.observed,
        after: claimItem(c.current, req, now, PENDING_REVISION),
        deadLetter: c.deadLetter,
      });
    }
    for (const c of ordered.slice(want)) {
      if (c.expired)
        plans.push({ id: c.id, observed: c.observed, after: c.current, deadLetter: c.deadLetter });
      else if (c.promotion) promotions.push(c.promotion);
    }
    const written = await ctx.commit('claim', plans, promotions);
    let conflicts = false;
    for (const c of chosen) {
      const revision = written.get(c.id);
      if (revision === null || revision === undefined) {
        conflicts = true;
        continue;
      }
      const plan = plans.find((p) => p.id === c.id) as Plan;
      items.push({ ...(plan.after as ItemRecord), token: revision, changeSeq: revision } as QueueItem);
    }
    if (!conflicts && !s.more) break;
    // Another claimer won some items: give it a moment so the next read sees its writes settled.
    if (conflicts) await new Promise((r) => setTimeout(r, Math.random() * 5));
  }
  let nextRunAt: number | null = null;
  if (items.length < req.limit) {
    const times = [...nextTimes, ...items.map((i) => i.leaseExpiresAt ?? Number.POSITIVE_INFINITY)];
    const earliest = Math.min(...times);
    nextRunAt = Number.isFinite(earliest) ? earliest : null;
  }
  return { items, nextRunAt };
}

/** The ids of expired leases of the queue (claimed, running, resolving), one batch per state. */
async function expiredLeases(ctx: QueueContext, queue: string, now: number): Promise<string[]> {
  const ranges = (['c', 'n', 's'] as const).map((kind) =>
    indexUpTo(ctx.keys.queueIndex(queue, kind), now, EXPIRED_BATCH),
  );
  const res = await ctx.ranges('claim', ranges);
  return res.flatMap((r) => keysOf(r).map(idOfIndexKey));
}

/**
 * A claim of only the listed items. Expired leases of the queue are applied as in any claim; of the
 * listed ids, items of the queue that are claimable (after their own expired lease, if any) are
 * claimed in claim order, at most `limit`. Unknown ids and items of other queues are skipped. An
 * item another claimer took in between fails its guard alone and is read again.
 */
async function claimIds(ctx: QueueContext, req: ClaimRequest, wanted: string[]): Promise<ClaimResult> {
  const pending = (req.from ?? 'pending') === 'pending';
  const items: QueueItem[] = [];
  let ids = wanted;
  for (let round = 0; round < MAX_ROUNDS && items.length < req.limit && ids.length > 0; round++) {
    const now = ctx.now();
    const want = req.limit - items.length;
    const [expired, observed] = await Promise.all([
      round === 0 ? expiredLeases(ctx, req.queue, now) : [],
      ctx.readRecords('claim', ids),
    ]);
    const unread = expired.filter((id) => !observed.has(id));
    if (unread.length > 0) for (const [id, o] of await ctx.readRecords('claim', unread)) observed.set(id, o);

    const listed = new Set(ids);
    const plans: Plan[] = [];
    const candidates: Candidate[] = [];
    for (const [id, o] of observed) {
      const rec = o.rec;
      if (!rec || rec.queue !== req.queue) continue;
      const t = expireLease(rec, now, PENDING_REVISION);
      const current = t ? t.item : rec;
      const claimable =
        listed.has(id) && (pending ? isRunnable(current, now) : current.state === 'completed');
      if (claimable)
        candidates.push({
          id,
          observed: o,
          current,
          expired: t !== null,
          deadLetter: t?.deadLetter ?? null,
          promotion: null,
        });
      else if (t) plans.push({ id, observed: o, after: t.item, deadLetter: t.deadLetter });
    }

    candidates.sort((a, b) =>
      pending
        ? compareClaimOrder(a.current, b.current)
        : (a.current.completedAt ?? 0) - (b.current.completedAt ?? 0) || a.current.seq - b.current.seq,
    );
    const chosen = candidates.slice(0, want);
    for (const c of chosen)
      plans.push({
        id: c.id,
        observed: c.observed,
        after: claimItem(c.current, req, now, PENDING_REVISION),
        deadLetter: c.deadLetter,
      });
    for (const c of candidates.slice(want))
      if (c.expired)
        plans.push({ id: c.id, observed: c.observed, after: c.current, deadLetter: c.deadLetter });
    if (plans.length === 0) break;

    const written = await ctx.commit('claim', plans);
    const lost: string[] = [];
    for (const c of chosen) {
      const revision = written.get(c.id);
      if (revision === null || revision === undefined) {
        lost.push(c.id);
        continue;
      }
      const plan = plans.find((p) => p.id === c.id) as Plan;
      items.push({ ...(plan.after as ItemRecord), token: revision, changeSeq: revision } as QueueItem);
    }
    if (lost.length === 0) break;
    // Another claimer wrote some chosen items: read the listed items not yet claimed again (the
    // lost ones may be gone, and then the next ones in claim order are wanted).
    const taken = new Set(items.map((i) => i.id));
    ids = ids.filter((id) => !taken.has(id));
    await new Promise((r) => setTimeout(r, Math.random() * 5));
  }
  const claimOrder = pending
    ? compareClaimOrder
    : (a: ItemRecord, b: ItemRecord) => (a.completedAt ?? 0) - (b.completedAt ?? 0) || a.seq - b.seq;
  items.sort(claimOrder);
  return { items, nextRunAt: null };
}

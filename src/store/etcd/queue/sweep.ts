/**
 * The converger's store-side rules, by the store clock (the local one on etcd). Each rule reads
 * its global index up to its due time in one snapshot; each item gets the first rule that applies
 * to its current record (the order of the memory engine) and is written as its own guarded txn, so
 * a worker's concurrent transition wins or loses atomically. Purging tombstones also raises the
 * feed horizon in the same txn.
 */

import type { SweepOptions, SweepResult } from '../../port.js';
import { ITEM_DEFAULTS } from '../../port.js';
import type { ItemRecord } from '../../queue-model.js';
import { expireLease, pruneItem, timeoutItem, unclaimedItem, unstartItem } from '../../queue-model.js';
import { num } from '../codec.js';
import type { Plan, QueueContext } from './context.js';
import { idOfIndexKey } from './keys.js';
import { ABSENT, PENDING_REVISION } from './record.js';
import {
  chunkGroups,
  independentTxn,
  indexUpTo,
  modIs,
  putOp,
  releaseDedupOp,
  transitionGroup,
} from './requests.js';

type Counter = Exclude<keyof SweepResult, 'more'>;

interface Rule {
  index: 'lease' | 'claimed' | 'deadline' | 'unclaimed' | 'expire' | 'tomb';
  /** Read the index up to this time (null: rule disabled). */
  upTo: number | null;
  /** The transition, or null when the rule does not apply to this record. */
  apply(rec: ItemRecord, now: number): { plan: Omit<Plan, 'id' | 'observed'>; counter: Counter } | null;
}

export async function sweep(ctx: QueueContext, options: SweepOptions = {}): Promise<SweepResult> {
  const now = ctx.now();
  const limit = options.limit ?? ITEM_DEFAULTS.sweepLimit;
  const tombstoneTtl = options.tombstoneTtl ?? ITEM_DEFAULTS.tombstoneTtl;
  const grace = options.abortGrace ?? 0;
  const startTimeout = options.startTimeout;
  const rules: Rule[] = [
    {
      index: 'lease',
      upTo: now,
      apply: (rec) => {
        const t = expireLease(rec, now, PENDING_REVISION);
        if (!t) return null;
        const counter: Counter =
          rec.state === 'claimed' ? 'reclaimed' : rec.state === 'running' ? 'stalled' : 'unresolved';
        return { plan: { after: t.item, deadLetter: t.deadLetter }, counter };
      },
    },
    {
      index: 'claimed',
      upTo: startTimeout === undefined ? null : now - startTimeout,
      apply: (rec) =>
        startTimeout !== undefined && rec.state === 'claimed' && (rec.claimedAt ?? 0) + startTimeout <= now
          ? { plan: { after: unstartItem(rec, now, PENDING_REVISION) }, counter: 'unstarted' }
          : null,
    },
    {
      index: 'deadline',
      upTo: now - grace,
      apply: (rec) => {
        if (rec.state !== 'running' || rec.timeout === null || rec.startedAt === null) return null;
        if (rec.startedAt + rec.timeout + grace > now) return null;
        const t = timeoutItem(rec, now, PENDING_REVISION);
        return { plan: { after: t.item, deadLetter: t.deadLetter }, counter: 'timedOut' };
      },
    },
    {
      index: 'unclaimed',
      upTo: now,
      apply: (rec) =>
        rec.state === 'pending' && rec.claimTimeout !== null && rec.runAt + rec.claimTimeout <= now
          ? { plan: { after: unclaimedItem(rec, now, PENDING_REVISION) }, counter: 'unclaimed' }
          : null,
    },
    {
      index: 'expire',
      upTo: now,
      apply: (rec) =>
        rec.state === 'completed' && rec.expireAt !== null && rec.expireAt <= now
          ? { plan: { after: pruneItem(rec, now, PENDING_REVISION) }, counter: 'pruned' }
          : null,
    },
    {
      index: 'tomb',
      upTo: now - tombstoneTtl,
      apply: (rec) =>
        rec.state === 'deleted' && rec.updatedAt + tombstoneTtl <= now
          ? {
              plan: {
                after: null,
                extraOps:
                  rec.dedupKey === null
                    ? []
                    : [releaseDedupOp(ctx.keys.dedup(rec.queue, rec.dedupKey), rec.id)],
              },
              counter: 'purged',
            }
          : null,
    },
  ];

  const counts: Record<Counter, number> = {
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
  const active = rules.filter((r) => r.upTo !== null && r.upTo >= 0);
  const ranges = await ctx.ranges('sweep', [
    ...active.map((r) => indexUpTo(ctx.keys.global(r.index), r.upTo as number, limit + 1)),
    { key: Buffer.from(ctx.keys.horizon) },
  ]);
  const listed = active.map((_rule, i) => {
    const ids = (ranges[i]?.kvs ?? []).map((kv) => idOfIndexKey(kv.key.toString('utf8')));
    if (ids.length > limit) more = true;
    return ids.slice(0, limit);
  });
  const horizonKv = ranges[active.length]?.kvs[0];
  const ids = new Set(listed.flat());
  if (ids.size === 0) return { ...counts, more };
  const observed = await ctx.readRecords('sweep', ids);

  const plans: (Plan & { counter: Counter })[] = [];
  const purges: (Plan & { changeSeq: number })[] = [];
  for (const id of ids) {
    const o = observed.get(id) ?? ABSENT;
    if (!o.rec) continue;
    for (const rule of active) {
      const hit = rule.apply(o.rec, now);
      if (!hit) continue;
      if (hit.counter === 'purged') purges.push({ id, observed: o, ...hit.plan, changeSeq: o.rec.changeSeq });
      else plans.push({ id, observed: o, ...hit.plan, counter: hit.counter });
      break;
    }
  }

  const written = await ctx.commit('sweep', plans);
  for (const p of plans) {
    if (written.get(p.id) === null) more = true;
    else counts[p.counter]++;
  }
  if (purges.length > 0) {
    const purged = await purge(ctx, purges, horizonKv ? num(horizonKv.mod_revision) : 0, horizonKv);
    counts.purged = purged.count;
    if (purged.conflicts) more = true;
  }
  return { ...counts, more };
}

/**
 * Delete tombstones and raise the horizon (the newest purged changeSeq) in the same txn, guarded
 * by the horizon's modRevision so concurrent sweeps cannot lower it.
 */
async function purge(
  ctx: QueueContext,
  purges: (Plan & { changeSeq: number })[],
  horizonMod: number,
  horizonKv: { value: Buffer } | undefined,
): Promise<{ count: number; conflicts: boolean }> {
  const now = ctx.now();
  let horizon = horizonKv ? num(horizonKv.value.toString(), 'horizon') : 0;
  let mod = horizonMod;
  let count = 0;
  let conflicts = false;
  const groups = purges.map((p) => transitionGroup(ctx.keys, p.id, p.observed, null, now, p.extraOps));
  const byGroup = new Map(groups.map((g, i) => [g, purges[i] as Plan & { changeSeq: number }]));
  for (const chunk of chunkGroups(groups, { maxTxnOps: ctx.maxTxnOps, maxBytes: ctx.maxBytes })) {
    const top = Math.max(horizon, ...chunk.map((g) => (byGroup.get(g) as { changeSeq: number }).changeSeq));
    const res = await ctx.write(
      'sweep',
      independentTxn(chunk, {
        compares: [modIs(ctx.keys.horizon, mod)],
        ops: [putOp(ctx.keys.horizon, Buffer.from(String(top)))],
        size: 0,
      }),
    );
    if (!res.succeeded) {
      // Another sweep moved the horizon: leave the rest to the next pass.
      conflicts = true;
      break;
    }
    horizon = top;
    mod = num(res.header.revision);
    chunk.forEach((_, i) => {
      if (res.responses[i]?.response_txn?.succeeded) count++;
      else conflicts = true;
    });
  }
  return { count, conflicts };
}

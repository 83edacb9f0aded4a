/**
 * Settle and renew: read the records, apply the queue model (an expired lease first, then each op
 * of the item in batch order), write every changed item as its own guarded nested txn. An item
 * written by someone else in between is read and decided again, so each result reflects the state
 * it was actually applied to.
 */
import { StoreError } from '../../../errors.js';
import type { RenewEntry, RenewResult, SettleOp, SettleResult } from '../../port.js';
import { expireLease, type ItemRecord, renewItem, settleItem } from '../../queue-model.js';
import type { Plan, QueueContext } from './context.js';
import { ABSENT, PENDING_REVISION } from './record.js';

const MAX_ROUNDS = 100;

/** An expired lease is applied before anything else touches the item (by store time). */
function applyExpiry(
  rec: ItemRecord | null,
  now: number,
  plan: { changed: boolean; deadLetter: Plan['deadLetter'] },
) {
  if (!rec || rec.leaseExpiresAt === null || rec.leaseExpiresAt > now || rec.state === 'completed')
    return rec;
  const t = expireLease(rec, now, PENDING_REVISION);
  if (!t) return rec;
  plan.changed = true;
  plan.deadLetter ??= t.deadLetter;
  return t.item;
}

/** Group entry indexes by item id, keeping batch order within an item. */
function byId<T extends { id: string }>(entries: T[]): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  entries.forEach((e, i) => {
    const list = groups.get(e.id);
    if (list) list.push(i);
    else groups.set(e.id, [i]);
  });
  return groups;
}

async function rounds(
  ctx: QueueContext,
  what: string,
  ids: string[],
  decide: (
    id: string,
    current: ItemRecord | null,
    now: number,
  ) => { after: ItemRecord | null; changed: boolean; deadLetter: Plan['deadLetter'] },
): Promise<void> {
  let open = ids;
  for (let round = 0; round < MAX_ROUNDS && open.length > 0; round++) {
    const now = ctx.now();
    const observed = await ctx.readRecords(what, open);
    const plans: Plan[] = [];
    for (const id of open) {
      const o = observed.get(id) ?? ABSENT;
      const d = decide(id, o.rec, now);
      if (d.changed) plans.push({ id, observed: o, after: d.after, deadLetter: d.deadLetter });
    }
    const written = await ctx.commit(what, plans);
    open = plans.filter((p) => written.get(p.id) === null).map((p) => p.id);
  }
  if (open.length > 0)
    throw new StoreError(`${what}: items kept changing under concurrent writers; try again`);
}

export async function settle(ctx: QueueContext, ops: SettleOp[]): Promise<SettleResult[]> {
  const results: SettleResult[] = new Array(ops.length);
  const groups = byId(ops);
  await rounds(ctx, 'settle', [...groups.keys()], (id, rec, now) => {
    const plan = { changed: false, deadLetter: null as Plan['deadLetter'] };
    let current = rec;
    for (const i of groups.get(id) ?? []) {
      current = applyExpiry(current, now, plan);
      const { result, transition } = settleItem(current, ops[i] as SettleOp, now, PENDING_REVISION);
      results[i] = result;
      if (transition) {
        current = transition.item;
        plan.changed = true;
        plan.deadLetter ??= transition.deadLetter;
      }
    }
    return { after: current, ...plan };
  });
  return results;
}

export async function renew(
  ctx: QueueContext,
  entries: RenewEntry[],
  leaseTtl: number,
): Promise<RenewResult[]> {
  const results: RenewResult[] = new Array(entries.length);
  const groups = byId(entries);
  await rounds(ctx, 'renew', [...groups.keys()], (id, rec, now) => {
    const plan = { changed: false, deadLetter: null as Plan['deadLetter'] };
    let current = rec;
    for (const i of groups.get(id) ?? []) {
      // An expired lease is not renewable: someone may already be allowed to take the item.
      current = applyExpiry(current, now, plan);
      const { result, item } = renewItem(current, entries[i] as RenewEntry, leaseTtl, now, PENDING_REVISION);
      results[i] = result;
      if (item) {
        current = item;
        plan.changed = true;
      }
    }
    return { after: current, ...plan };
  });
  return results;
}

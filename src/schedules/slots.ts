/**
 * Slot arithmetic (schedules.md §2.4): pure functions, identical on every node. Every slot is
 * computed from the stored definition (trigger, time zone, anchor, stopAt) and a previous instant,
 * never from a node's start time, so all nodes agree on slot identities.
 *
 * - `every`: `origin + k·every` (origin = the user's `anchor`, else the stored anchor).
 * - `cron`: croner's next-after in the definition's time zone.
 * - `daily` / `weekly` / `monthly`: the next at-time after the previous slot in the current
 *   period, else the first slot of the period `interval` periods later, periods counted from the
 *   anchor's period; monthly days missing from a month are skipped.
 * - `once`: the next listed instant.
 * - `everyRandom` and `dynamic` have no fixed lattice: their next slot is decided by the claimer or
 *   at completion (see the runner).
 */
import { Cron } from 'croner';
import { dayNumber, daysInMonth, localDay, localFields, localToInstant, weekdayOf } from './tz.js';

/** A trigger after validation and normalization (what is stored and hashed). */
export type Trigger =
  | { kind: 'every'; every: number; origin: number | null }
  | { kind: 'everyRandom'; min: number; max: number }
  | { kind: 'cron'; expr: string; seconds: boolean | null }
  | { kind: 'daily'; interval: number; at: number[] }
  | { kind: 'weekly'; interval: number; weekdays: number[]; at: number[] }
  | { kind: 'monthly'; interval: number; days: number[]; at: number[] }
  | { kind: 'once'; at: (number | 'now')[] }
  | { kind: 'dynamic'; firstRunIn: number };

/** What slot arithmetic needs from a definition. */
export interface SlotBasis {
  readonly trigger: Trigger;
  readonly timezone: string;
  /** Store time before which no slot exists (startAt, or registration time). */
  readonly anchor: number;
  /** No slot after this instant (inclusive bound), or null. */
  readonly stopAt: number | null;
}

/** Triggers whose slots form a fixed lattice that every node can enumerate. */
export function hasFixedSlots(trigger: Trigger): boolean {
  return trigger.kind !== 'everyRandom' && trigger.kind !== 'dynamic';
}

/** How far ahead a calendar trigger is searched before it counts as never firing (8 years). */
export const SEARCH_HORIZON_MS = 8 * 366 * 86_400_000;

// ------------------------------------------------------------------------------------------------
// Cron

const cronCache = new Map<string, Cron>();

function cronMode(seconds: boolean | null, expr: string): '5-part' | '6-part' | '5-or-6-parts' {
  if (expr.trim().startsWith('@')) return '5-or-6-parts';
  if (seconds === true) return '6-part';
  if (seconds === false) return '5-part';
  return '5-or-6-parts';
}

/** A compiled (paused, never scheduling) croner instance; throws croner's error on a bad pattern. */
export function compileCron(expr: string, seconds: boolean | null, timezone: string): Cron {
  const key = `${timezone}\u0000${seconds}\u0000${expr}`;
  let cron = cronCache.get(key);
  if (!cron) {
    cron = new Cron(expr, { paused: true, timezone, mode: cronMode(seconds, expr) });
    if (cronCache.size > 1000) cronCache.clear();
    cronCache.set(key, cron);
  }
  return cron;
}

function cronAfter(trigger: Extract<Trigger, { kind: 'cron' }>, timezone: string, t: number): number | null {
  const next = compileCron(trigger.expr, trigger.seconds, timezone).nextRun(new Date(t));
  return next ? next.getTime() : null;
}

// ------------------------------------------------------------------------------------------------
// Calendar triggers

/** Safety bound on the number of periods scanned for one answer. */
const MAX_PERIODS = 5000;

function firstAt(times: number[], day: number, timezone: string, after: number, notBefore: number) {
  for (const second of times) {
    const at = localToInstant(day, second, timezone);
    if (at > after && at >= notBefore) return at;
  }
  return null;
}

/** First period index ≥ `p` of the form `p0 + k·interval`. */
function alignPeriod(p: number, p0: number, interval: number): number {
  if (p <= p0) return p0;
  const r = (p - p0) % interval;
  return r === 0 ? p : p + interval - r;
}

function dailyAfter(t: Extract<Trigger, { kind: 'daily' }>, b: SlotBasis, after: number): number | null {
  const d0 = localDay(b.anchor, b.timezone);
  let day = alignPeriod(localDay(Math.max(after, b.anchor), b.timezone), d0, t.interval);
  for (let i = 0; i < MAX_PERIODS; i++, day += t.interval) {
    const at = firstAt(t.at, day, b.timezone, after, b.anchor);
    if (at !== null) return at;
  }
  return null;
}

/** Week index with weeks starting on Sunday. */
function weekOf(day: number): number {
  return (day - weekdayOf(day)) / 7;
}

function weeklyAfter(t: Extract<Trigger, { kind: 'weekly' }>, b: SlotBasis, after: number): number | null {
  const w0 = weekOf(localDay(b.anchor, b.timezone));
  let week = alignPeriod(weekOf(localDay(Math.max(after, b.anchor), b.timezone)), w0, t.interval);
  for (let i = 0; i < MAX_PERIODS; i++, week += t.interval) {
    const sunday = week * 7;
    for (const weekday of t.weekdays) {
      const at = firstAt(t.at, sunday + weekday, b.timezone, after, b.anchor);
      if (at !== null) return at;
    }
  }
  return null;
}

function monthIndex(ms: number, timezone: string): number {
  const f = localFields(ms, timezone);
  return f.year * 12 + (f.month - 1);
}

/** The day numbers of `days` (1..31, −1..−31) that exist in a month, ascending. */
export function monthDays(year: number, month: number, days: number[]): number[] {
  const last = daysInMonth(year, month);
  const out = new Set<number>();
  for (const d of days) {
    const dom = d > 0 ? d : last + 1 + d;
    if (dom >= 1 && dom <= last) out.add(dom);
  }
  return [...out].sort((a, b) => a - b);
}

function monthlyAfter(t: Extract<Trigger, { kind: 'monthly' }>, b: SlotBasis, after: number): number | null {
  const m0 = monthIndex(b.anchor, b.timezone);
  let m = alignPeriod(monthIndex(Math.max(after, b.anchor), b.timezone), m0, t.interval);
  for (let i = 0; i < MAX_PERIODS; i++, m += t.interval) {
    const year = Math.floor(m / 12);
    const month = (m % 12) + 1;
    for (const dom of monthDays(year, month, t.days)) {
      const at = firstAt(t.at, dayNumber(year, month, dom), b.timezone, after, b.anchor);
      if (at !== null) return at;
    }
  }
  return null;
}

// ------------------------------------------------------------------------------------------------
// The public functions

/**
 * The first slot strictly after `after` (and not before the anchor, not after stopAt), or null
 * when the trigger has no more slots. `everyRandom` and `dynamic` return null: their next slot is
 * not a function of the definition alone.
 */
export function slotAfter(b: SlotBasis, after: number): number | null {
  const t = b.trigger;
  let next: number | null;
  switch (t.kind) {
    case 'every': {
      const origin = t.origin ?? b.anchor;
      const lo = Math.max(after + 1, b.anchor);
      next = origin + Math.ceil((lo - origin) / t.every) * t.every;
      break;
    }
    case 'cron':
      next = cronAfter(t, b.timezone, Math.max(after, b.anchor - 1));
      break;
    case 'daily':
      next = dailyAfter(t, b, after);
      break;
    case 'weekly':
      next = weeklyAfter(t, b, after);
      break;
    case 'monthly':
      next = monthlyAfter(t, b, after);
      break;
    case 'once': {
      next = null;
      for (const entry of t.at) {
        const at = entry === 'now' ? b.anchor : entry;
        if (at > after && at >= b.anchor && (next === null || at < next)) next = at;
      }
      break;
    }
    default:
      return null;
  }
  if (next !== null && b.stopAt !== null && next > b.stopAt) return null;
  return next;
}

/** The first slot at or after the anchor (fixed triggers), or null. */
export function firstSlot(b: SlotBasis): number | null {
  return slotAfter(b, b.anchor - 1);
}

/** Up to `n` slots strictly after `after`. */
export function slotsAfter(b: SlotBasis, after: number, n: number): number[] {
  const out: number[] = [];
  let t = after;
  while (out.length < n) {
    const next = slotAfter(b, t);
    if (next === null) break;
    out.push(next);
    t = next;
  }
  return out;
}

/** Enumeration cap for due slots (schedules.md §2.5 step 2). */
export const MAX_ENUMERATED_SLOTS = 100_000;

/** The due slots of a fixed trigger: `first` and every later slot ≤ `until`. */
export interface DueSlots {
  /** The slots, ascending (at most {@link MAX_ENUMERATED_SLOTS}). */
  readonly slots: number[];
  /** Exact number of due slots, or a lower bound when `truncated`. */
  readonly count: number;
  readonly truncated: boolean;
}

/**
 * Due slots in `[first, until]` where `first` is the stored `nextRunAt` (itself a slot, or an
 * instant pulled forward by `pullForward`). `every` is counted arithmetically.
 */
export function dueSlots(b: SlotBasis, first: number, until: number): DueSlots {
  if (first > until) return { slots: [], count: 0, truncated: false };
  const slots = [first];
  let t = first;
  while (slots.length < MAX_ENUMERATED_SLOTS) {
    const next = slotAfter(b, t);
    if (next === null || next > until) return { slots, count: slots.length, truncated: false };
    slots.push(next);
    t = next;
  }
  let count = slots.length;
  if (b.trigger.kind === 'every') {
    const last = slots[slots.length - 1] as number;
    const stop = b.stopAt === null ? until : Math.min(until, b.stopAt);
    count += Math.max(0, Math.floor((stop - last) / b.trigger.every));
    return { slots, count, truncated: true };
  }
  return { slots, count, truncated: true };
}

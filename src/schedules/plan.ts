/**
 * Pure decisions of the runner (schedules.md §2.5): what a claim does with a definition at a given
 * store time (due check, catch-up, overlap, exhaustion), and how a run's terminal transition changes
 * the definition (retry, re-run after interruption, dynamic next run, history bound). Everything
 * here is deterministic given its inputs, so every node decides alike.
 */
import { InvalidArgumentError } from '../errors.js';
import {
  baseOf,
  basisOf,
  type CurrentRun,
  type DefRecord,
  type PendingItem,
  type RequestRecord,
  type RunRecord,
  runIdOf,
  type StoredOptions,
} from './records.js';
import { dueSlots, hasFixedSlots, slotAfter } from './slots.js';
import { type BackoffFunction, DEF_DEFAULTS, type RunError, type RunProgress } from './types.js';

/** Definition options after the claimer's defaults and the built-in ones were applied. */
export interface Effective {
  overlap: 'skip' | 'wait' | 'allow';
  catchUp: 'latest' | 'all';
  catchUpWindow: number;
  timeout: number | null;
  stallTimeout: number | null;
  maxAttempts: number;
  backoff: NonNullable<StoredOptions['retry']>['backoff'];
  backoffFn: BackoffFunction | undefined;
  maxInterruptions: number;
  keepRuns: number;
  failureBackoff: { delay: number; maxDelay: number };
  defaultNextRunIn: number;
}

export function effective(
  o: StoredOptions,
  defaults: Partial<StoredOptions> = {},
  backoffFn?: BackoffFunction,
  defaultBackoffFn?: BackoffFunction,
): Effective {
  const retry = o.retry ?? defaults.retry ?? null;
  return {
    overlap: o.overlap ?? defaults.overlap ?? DEF_DEFAULTS.overlap,
    catchUp: o.catchUp ?? defaults.catchUp ?? DEF_DEFAULTS.catchUp,
    catchUpWindow: o.catchUpWindow ?? defaults.catchUpWindow ?? DEF_DEFAULTS.catchUpWindow,
    timeout: o.timeout ?? defaults.timeout ?? null,
    stallTimeout: o.stallTimeout ?? defaults.stallTimeout ?? null,
    maxAttempts: retry?.maxAttempts ?? DEF_DEFAULTS.retryMaxAttempts,
    backoff: retry?.backoff ?? null,
    backoffFn: o.retry ? backoffFn : (backoffFn ?? defaultBackoffFn),
    maxInterruptions: o.maxInterruptions ?? defaults.maxInterruptions ?? DEF_DEFAULTS.maxInterruptions,
    keepRuns: o.keepRuns ?? defaults.keepRuns ?? DEF_DEFAULTS.keepRuns,
    failureBackoff: o.failureBackoff ?? DEF_DEFAULTS.failureBackoff,
    defaultNextRunIn: o.defaultNextRunIn ?? DEF_DEFAULTS.defaultNextRunIn,
  };
}

/** A slot or item a claim starts. */
export interface PlannedRun {
  runId: string;
  slotAt: number;
  attempt: number;
  kind: 'slot' | 'retry' | 'manual';
  interruptions: number;
  /** The pending item consumed, if any. */
  pending: PendingItem | null;
  /** The request consumed, if any. */
  request: RequestRecord | null;
}

export interface SkipRange {
  from: number;
  to: number;
  count: number;
  reason: string;
}

/** What one claim txn writes. */
export interface Plan {
  run: PlannedRun | null;
  skip: SkipRange | null;
  /** The definition after the claim (without history bookkeeping of the skip record). */
  def: DefRecord;
  /** Set when this claim exhausts the schedule. */
  exhausted: 'limit' | 'stop' | 'once' | null;
}

/** Random gap of `everyRandom`: `min + U[0, max − min)`. */
export function drawRandom(min: number, max: number, random: () => number): number {
  return min + Math.floor(random() * (max - min));
}

/** The next slot of a non-lattice trigger after a run that started at `from` (claim time). */
function nextLoose(def: DefRecord, from: number, storeNow: number, random: () => number): number | null {
  const t = def.trigger;
  let next: number | null = null;
  if (t.kind === 'everyRandom') {
    next = from + drawRandom(t.min, t.max, random);
    if (next <= storeNow) next = storeNow + drawRandom(t.min, t.max, random);
  }
  if (next !== null && def.options.stopAt !== null && next > def.options.stopAt) return null;
  return next;
}

function blocked(def: DefRecord, eff: Effective): boolean {
  return def.currentRuns.length > 0 && eff.overlap !== 'allow';
}

/** The earliest store time at which this definition has something to claim, or null. */
export function dueAt(def: DefRecord, eff: Effective, requests: RequestRecord[]): number | null {
  if (def.state === 'paused') return null;
  let due: number | null = null;
  const consider = (t: number) => {
    if (due === null || t < due) due = t;
  };
  if (!blocked(def, eff)) {
    for (const p of def.pending) consider(p.at);
    for (const r of requests) consider(r.at);
  }
  if (def.state === 'active' && def.nextRunAt !== null) {
    if (!(def.currentRuns.length > 0 && eff.overlap === 'wait')) consider(def.nextRunAt);
  }
  return due;
}

/**
 * Decide the claim for `def` at `storeNow`: a due pending item first (retries and re-runs of a
 * slot), then a manual request, then the slot itself with catch-up and overlap rules. Returns null
 * when nothing is due.
 */
export function planClaim(
  def: DefRecord,
  storeNow: number,
  eff: Effective,
  requests: RequestRecord[],
  random: () => number,
): Plan | null {
  if (def.state === 'paused') return null;
  const isBlocked = blocked(def, eff);
  if (!isBlocked) {
    const pending = [...def.pending].filter((p) => p.at <= storeNow).sort((a, b) => a.at - b.at)[0];
    if (pending) {
      return {
        run: {
          runId: pending.runId,
          slotAt: pending.slotAt,
          attempt: pending.attempt,
          kind: pending.kind,
          interruptions: pending.interruptions,
          pending,
          request: null,
        },
        skip: null,
        def: { ...def, pending: def.pending.filter((p) => p !== pending) },
        exhausted: null,
      };
    }
    const request = [...requests].filter((r) => r.at <= storeNow).sort((a, b) => a.at - b.at)[0];
    if (request) {
      return {
        run: {
          runId: `m-${request.id}`,
          slotAt: storeNow,
          attempt: 1,
          kind: 'manual',
          interruptions: 0,
          pending: null,
          request,
        },
        skip: null,
        def: { ...def },
        exhausted: null,
      };
    }
  }
  if (def.state !== 'active' || def.nextRunAt === null || def.nextRunAt > storeNow) return null;
  if (def.currentRuns.length > 0 && eff.overlap === 'wait') return null;
  const b = basisOf(def);
  const fixed = hasFixedSlots(def.trigger);
  let runSlot: number | null;
  let skip: SkipRange | null = null;
  let nextRunAt: number | null;
  if (fixed) {
    const due = dueSlots(b, def.nextRunAt, storeNow);
    const slots = due.slots;
    const last = slots[slots.length - 1] as number;
    if (def.currentRuns.length > 0 && eff.overlap === 'skip') {
      runSlot = null;
      skip = { from: slots[0] as number, to: last, count: due.count, reason: 'overlap' };
      nextRunAt = slotAfter(b, Math.max(last, storeNow));
    } else {
      const horizon = storeNow - eff.catchUpWindow;
      const fresh = slots.filter((s) => s >= horizon);
      if (fresh.length === 0) {
        runSlot = null;
        skip = { from: slots[0] as number, to: last, count: due.count, reason: 'missed' };
        nextRunAt = slotAfter(b, Math.max(last, storeNow));
      } else if (eff.catchUp === 'latest') {
        runSlot = fresh[fresh.length - 1] as number;
        let before = slots[slots.length - 2] ?? (slots[0] as number);
        if (due.truncated && def.trigger.kind === 'every') {
          // Past the enumeration cap: the newest slot is known arithmetically.
          const origin = def.trigger.origin ?? def.anchor;
          const stop = Math.min(storeNow, def.options.stopAt ?? storeNow);
          runSlot = origin + Math.floor((stop - origin) / def.trigger.every) * def.trigger.every;
          before = runSlot - def.trigger.every;
        }
        if (due.count > 1)
          skip = { from: slots[0] as number, to: before, count: due.count - 1, reason: 'missed' };
        nextRunAt = slotAfter(b, Math.max(runSlot, storeNow));
      } else {
        runSlot = fresh[0] as number;
        const old = slots.filter((s) => s < horizon);
        if (old.length > 0) {
          skip = {
            from: old[0] as number,
            to: old[old.length - 1] as number,
            count: old.length,
            reason: 'missed',
          };
        }
        nextRunAt = slotAfter(b, runSlot);
      }
    }
  } else {
    runSlot = def.nextRunAt;
    if (def.currentRuns.length > 0 && eff.overlap === 'skip') {
      skip = { from: runSlot, to: runSlot, count: 1, reason: 'overlap' };
      runSlot = null;
    }
    const fromCompletion = def.trigger.kind === 'dynamic' || def.options.intervalFromCompletion;
    nextRunAt = fromCompletion && runSlot !== null ? null : nextLoose(def, def.nextRunAt, storeNow, random);
    if (fromCompletion && runSlot === null) nextRunAt = def.nextRunAt > storeNow ? def.nextRunAt : null;
  }
  const next: DefRecord = { ...def, nextRunAt, updatedAt: storeNow };
  let exhausted: Plan['exhausted'] = null;
  if (runSlot !== null) {
    next.runsStarted = def.runsStarted + 1;
    const limit = def.options.limitRuns;
    if (limit !== null && next.runsStarted >= limit) exhausted = 'limit';
  }
  const fromCompletion = def.trigger.kind === 'dynamic' || def.options.intervalFromCompletion;
  if (exhausted === null && nextRunAt === null && !(fromCompletion && runSlot !== null)) {
    exhausted = def.trigger.kind === 'once' ? 'once' : 'stop';
  }
  if (exhausted) {
    next.state = 'exhausted';
    next.exhaustedBy = exhausted;
    next.nextRunAt = null;
  }
  return {
    run:
      runSlot === null
        ? null
        : {
            runId: String(runSlot),
            slotAt: runSlot,
            attempt: 1,
            kind: 'slot',
            interruptions: 0,
            pending: null,
            request: null,
          },
    skip,
    def: next,
    exhausted,
  };
}

/** Add terminal run ids to the history; returns the ids pushed out (to delete in the same txn). */
export function pushHistory(def: DefRecord, runIds: string[], keepRuns: number): string[] {
  const history = [...def.history.filter((id) => !runIds.includes(id)), ...runIds];
  const drop = history.length > keepRuns ? history.splice(0, history.length - keepRuns) : [];
  def.history = history;
  return drop;
}

/** Retry backoff (tasks.md §2.4): `min(maxDelay, delay · factor^(n−1)) · (1 − jitter · random())`. */
export function retryDelay(eff: Effective, attempt: number, error: unknown, random: () => number): number {
  if (eff.backoffFn) {
    const ms = eff.backoffFn(attempt, error);
    return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? Math.round(ms) : 1000;
  }
  const b = eff.backoff ?? { type: 'exponential', delay: 1000, factor: 2, maxDelay: 3_600_000, jitter: 0.2 };
  const base = b.type === 'fixed' ? b.delay : Math.min(b.maxDelay, b.delay * b.factor ** (attempt - 1));
  return Math.max(0, Math.round(base * (1 - b.jitter * random())));
}

/** Failure backoff of dynamic triggers: `delay · 2^(failures−1)` up to `maxDelay`. */
export function failureDelay(eff: Effective, failures: number): number {
  return Math.min(eff.failureBackoff.maxDelay, eff.failureBackoff.delay * 2 ** Math.max(0, failures - 1));
}

/** How a run ends. */
export interface Outcome {
  status: 'succeeded' | 'failed' | 'interrupted' | 'skipped';
  error: RunError | null;
  /** Interruption reason, or the skip reason. */
  reason: string | null;
  /** A dynamic handler's `nextRunIn` (already validated), or null. */
  nextRunIn: number | null;
  progress: RunProgress | null;
  /** The error object for custom backoff functions. */
  cause?: unknown;
}

/**
 * Apply a run's terminal transition to its definition and record (the complete / interrupt /
 * skip txns share this): leave `currentRuns`, bound the history, queue a retry or a re-run, set the
 * next run of dynamic and interval-from-completion triggers.
 */
export function applyTerminal(
  def: DefRecord,
  run: RunRecord,
  outcome: Outcome,
  storeNow: number,
  eff: Effective,
  random: () => number,
): { def: DefRecord; run: RunRecord; drop: string[]; requeued: PendingItem | null } {
  const next: DefRecord = {
    ...def,
    currentRuns: def.currentRuns.filter((c) => c.runId !== run.runId),
    updatedAt: storeNow,
  };
  const rec: RunRecord = {
    ...run,
    status: outcome.status,
    error: outcome.error,
    reason: outcome.reason,
    progress: outcome.progress ?? run.progress,
    endedAt: storeNow,
    updatedAt: storeNow,
  };
  let requeued: PendingItem | null = null;
  const base = baseOf(run.runId);
  const rerunKind: PendingItem['kind'] = run.kind === 'manual' ? 'manual' : 'retry';
  if (outcome.status === 'interrupted') {
    const interruptions = run.interruptions + 1;
    rec.interruptions = interruptions;
    if (interruptions <= eff.maxInterruptions) {
      requeued = {
        runId: runIdOf(base, run.attempt + 1),
        slotAt: run.slotAt,
        attempt: run.attempt + 1,
        kind: rerunKind,
        at: storeNow,
        interruptions,
      };
    } else {
      rec.status = 'failed';
      rec.error = {
        code: 'ROTA_RUN_INTERRUPTED',
        message: `interrupted ${interruptions} times (${outcome.reason ?? 'unknown'})`,
      };
    }
  } else if (outcome.status === 'failed' && run.attempt < eff.maxAttempts) {
    requeued = {
      runId: runIdOf(base, run.attempt + 1),
      slotAt: run.slotAt,
      attempt: run.attempt + 1,
      kind: rerunKind,
      at: storeNow + retryDelay(eff, run.attempt, outcome.cause, random),
      interruptions: run.interruptions,
    };
  }
  if (requeued) next.pending = [...next.pending.filter((p) => p.runId !== requeued?.runId), requeued];
  if (outcome.status === 'skipped') {
    // beforeRun refused: the start does not count and the schedule is not exhausted by it.
    if (run.kind === 'slot') next.runsStarted = Math.max(0, def.runsStarted - 1);
    if (def.exhaustedBy === 'limit' && run.kind === 'slot') {
      next.state = 'active';
      next.exhaustedBy = null;
      next.nextRunAt = hasFixedSlots(def.trigger)
        ? slotAfter(basisOf(def), Math.max(run.slotAt, storeNow))
        : storeNow;
    }
  } else {
    next.lastRun = {
      runId: run.runId,
      slotAt: run.slotAt,
      status: rec.status,
      startedAt: run.startedAt,
      endedAt: storeNow,
    };
  }
  const settled = requeued === null && rec.status !== 'skipped';
  if (settled) next.failures = rec.status === 'succeeded' ? 0 : def.failures + 1;
  // Dynamic and interval-from-completion triggers decide their next slot now.
  const fromCompletion = def.trigger.kind === 'dynamic' || def.options.intervalFromCompletion;
  if (
    settled &&
    fromCompletion &&
    run.kind !== 'manual' &&
    def.state === 'active' &&
    def.nextRunAt === null
  ) {
    let at: number;
    if (def.trigger.kind === 'dynamic') {
      at =
        rec.status === 'succeeded'
          ? storeNow + (outcome.nextRunIn ?? eff.defaultNextRunIn)
          : storeNow + failureDelay(eff, next.failures);
    } else if (def.trigger.kind === 'every') {
      at = storeNow + def.trigger.every;
    } else if (def.trigger.kind === 'everyRandom') {
      at = storeNow + drawRandom(def.trigger.min, def.trigger.max, random);
    } else at = storeNow;
    if (def.options.stopAt !== null && at > def.options.stopAt) {
      next.state = 'exhausted';
      next.exhaustedBy = 'stop';
      next.nextRunAt = null;
    } else next.nextRunAt = at;
  }
  const drop = pushHistory(next, [run.runId], eff.keepRuns);
  return { def: next, run: rec, drop, requeued };
}

/** A new running run record. */
export function newRunRecord(
  def: DefRecord,
  p: PlannedRun,
  owner: string,
  sessionId: string,
  storeNow: number,
  opId: string,
): RunRecord {
  return {
    v: 1,
    name: def.name,
    runId: p.runId,
    slotAt: p.slotAt,
    attempt: p.attempt,
    kind: p.kind,
    owner,
    sessionId,
    status: 'running',
    progress: null,
    startedAt: storeNow,
    updatedAt: storeNow,
    lastReportAt: storeNow,
    endedAt: null,
    error: null,
    reason: null,
    skipped: null,
    interruptions: p.interruptions,
    opId,
  };
}

/** A terminal `skipped` range record. */
export function skipRecord(def: DefRecord, skip: SkipRange, storeNow: number, opId: string): RunRecord {
  return {
    v: 1,
    name: def.name,
    runId: `s-${skip.from}-${skip.to}`,
    slotAt: skip.from,
    attempt: 1,
    kind: 'skipped',
    owner: null,
    sessionId: null,
    status: 'skipped',
    progress: null,
    startedAt: storeNow,
    updatedAt: storeNow,
    lastReportAt: storeNow,
    endedAt: storeNow,
    error: null,
    reason: skip.reason,
    skipped: { ...skip },
    interruptions: 0,
    opId,
  };
}

/** The `currentRuns` entry of a claimed run. */
export function currentOf(
  p: PlannedRun,
  owner: string,
  sessionId: string,
  storeNow: number,
  timeout: number | null,
): CurrentRun {
  return {
    runId: p.runId,
    slotAt: p.slotAt,
    attempt: p.attempt,
    kind: p.kind,
    owner,
    sessionId,
    startedAt: storeNow,
    timeout,
  };
}

/** Validate a progress report (integers ≥ 0, completed ≤ total). */
export function checkProgress(p: unknown): RunProgress {
  const bad = (message: string): never => {
    throw new InvalidArgumentError(`progress: ${message}`, { detail: { field: 'progress' } });
  };
  if (typeof p !== 'object' || p === null) bad('must be { completed, total, retries? }');
  const o = p as Record<string, unknown>;
  const int = (k: string, v: unknown) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
      bad(`${k} must be an integer ≥ 0, got ${String(v)}`);
    return v as number;
  };
  const completed = int('completed', o.completed);
  const total = int('total', o.total);
  const retries = o.retries === undefined ? 0 : int('retries', o.retries);
  if (completed > total) bad(`completed (${completed}) must not exceed total (${total})`);
  return { completed, total, retries };
}

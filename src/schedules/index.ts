/**
 * `rota.schedules` (schedules.md): persisted recurring jobs that run once per slot across the
 * cluster. Definitions are data in the store (`register`, `update`, `remove`, `list`, ...);
 * handlers are functions registered on the nodes that can run them; `start()` starts this node's
 * runner. See docs/schedules.md.
 */
import type { Cluster } from '../cluster/index.js';
import { encodeJson, type RotaContext } from '../core/context.js';
import { EventBus } from '../core/events.js';
import { uuidv7 } from '../core/ids.js';
import { ClosedError, InvalidRunStateError, RunNotFoundError, ScheduleNotFoundError } from '../errors.js';
import type { KeyValue } from '../store/port.js';
import { checkInt, checkName, checkOptions, checkSignal, invalid } from '../validate.js';
import { type LocalSchedule, LocalSchedules } from './local.js';
import { drawRandom } from './plan.js';
import {
  basisOf,
  type DefRecord,
  decodeDef,
  decodeRequest,
  decodeRun,
  type RunRecord,
  ScheduleKeys,
} from './records.js';
import { Runner } from './runner.js';
import { firstSlot, hasFixedSlots, type SlotBasis, slotAfter, slotsAfter, type Trigger } from './slots.js';
import { defTxn } from './txn.js';
import {
  type EffectiveStartOptions,
  type RunHandler,
  type RunInfo,
  type ScheduleDef,
  type ScheduleEventMap,
  type ScheduleInfo,
  type SchedulePatch,
  START_DEFAULTS,
  type StartOptions,
} from './types.js';
import {
  checkTimes,
  type LocalParts,
  type NormalizedDef,
  normalizeDef,
  resolveStart,
  TRIGGER_KEYS,
} from './validate.js';

declare module '../core/events.js' {
  interface RotaEventMap extends ScheduleEventMap {}
}

/** Anchor and first slot of a new (or re-triggered) definition at `storeNow`. */
function initialSlots(
  n: NormalizedDef,
  storeNow: number,
  random: () => number,
): { anchor: number; nextRunAt: number | null } {
  const t = n.spec.trigger;
  const startAt = n.spec.options.startAt;
  if (startAt !== null) {
    const anchor = startAt === 'now' ? storeNow : startAt;
    const basis: SlotBasis = { trigger: t, timezone: n.spec.timezone, anchor, stopAt: n.spec.options.stopAt };
    return { anchor, nextRunAt: hasFixedSlots(t) ? firstSlot(basis) : anchor };
  }
  let anchor = storeNow;
  if (t.kind === 'every' && t.origin === null) anchor = storeNow + t.every;
  if (t.kind === 'everyRandom') anchor = storeNow + drawRandom(t.min, t.max, random);
  if (t.kind === 'dynamic') anchor = storeNow + t.firstRunIn;
  const basis: SlotBasis = { trigger: t, timezone: n.spec.timezone, anchor, stopAt: n.spec.options.stopAt };
  let nextRunAt = hasFixedSlots(t) ? firstSlot(basis) : anchor;
  if (nextRunAt !== null && n.spec.options.stopAt !== null && nextRunAt > n.spec.options.stopAt)
    nextRunAt = null;
  return { anchor, nextRunAt };
}

function sameTrigger(a: DefRecord, n: NormalizedDef): boolean {
  return (
    JSON.stringify(a.trigger) === JSON.stringify(n.spec.trigger) &&
    a.timezone === n.spec.timezone &&
    JSON.stringify(a.options.startAt) === JSON.stringify(n.spec.options.startAt)
  );
}

function infoOf(def: DefRecord): ScheduleInfo {
  return {
    name: def.name,
    description: def.description,
    tags: [...def.tags],
    trigger: def.trigger,
    timezone: def.timezone,
    scope: 'cluster',
    state: def.state,
    nextRunAt: def.nextRunAt,
    anchor: def.anchor,
    lastRun: def.lastRun ? { ...def.lastRun } : null,
    runsStarted: def.runsStarted,
    currentRuns: def.currentRuns.map((c) => ({
      runId: c.runId,
      slotAt: c.slotAt,
      owner: c.owner,
      startedAt: c.startedAt,
    })),
    pending: def.pending.map((p) => ({ runId: p.runId, slotAt: p.slotAt, attempt: p.attempt, at: p.at })),
    hash: def.hash,
    createdAt: def.createdAt,
    updatedAt: def.updatedAt,
  };
}

function localInfo(s: LocalSchedule): ScheduleInfo {
  return {
    name: s.n.spec.name,
    description: s.n.description,
    tags: [...s.n.spec.tags],
    trigger: s.n.spec.trigger,
    timezone: s.n.spec.timezone,
    scope: 'local',
    state: s.state,
    nextRunAt: s.nextRunAt,
    anchor: s.basis.anchor,
    lastRun: s.lastRun ? { ...s.lastRun } : null,
    runsStarted: s.runsStarted,
    currentRuns: [],
    pending: [],
    hash: s.n.hash,
    createdAt: s.createdAt,
    updatedAt: s.createdAt,
  };
}

function runInfoOf(r: RunRecord, kv: KeyValue): RunInfo {
  return {
    name: r.name,
    runId: r.runId,
    slotAt: r.slotAt,
    attempt: r.attempt,
    kind: r.kind,
    status: r.status,
    owner: r.owner,
    sessionId: r.sessionId,
    progress: r.progress ? { ...r.progress } : null,
    startedAt: r.startedAt,
    updatedAt: r.updatedAt,
    lastReportAt: r.lastReportAt,
    endedAt: r.endedAt,
    error: r.error ? { ...r.error } : null,
    reason: r.reason,
    skipped: r.skipped ? { ...r.skipped } : null,
    token: kv.createRevision,
  };
}

/** The inverse of normalization: a stored definition as a `ScheduleDef` (for `update`). */
function defOf(d: DefRecord): ScheduleDef {
  const out: ScheduleDef = {
    name: d.name,
    description: d.description,
    tags: [...d.tags],
    timezone: d.timezone,
  };
  const at = (secs: number[]) =>
    secs.map((s) => ({ hour: Math.floor(s / 3600), minute: Math.floor(s / 60) % 60, second: s % 60 }));
  const t: Trigger = d.trigger;
  switch (t.kind) {
    case 'every':
      out.every = t.every;
      if (t.origin !== null) out.anchor = t.origin;
      break;
    case 'everyRandom':
      out.everyRandom = { min: t.min, max: t.max };
      break;
    case 'cron':
      out.cron = t.expr;
      if (t.seconds !== null) out.seconds = t.seconds;
      break;
    case 'daily':
      out.daily = { interval: t.interval, at: at(t.at) };
      break;
    case 'weekly':
      out.weekly = { interval: t.interval, weekdays: [...t.weekdays], at: at(t.at) };
      break;
    case 'monthly':
      out.monthly = { interval: t.interval, days: [...t.days], at: at(t.at) };
      break;
    case 'once':
      out.once = t.at.map((x) => (x === 'now' ? 'now' : x)) as ScheduleDef['once'];
      break;
    case 'dynamic':
      out.dynamic = { firstRunIn: t.firstRunIn };
      break;
  }
  const o = d.options;
  if (o.overlap !== null) out.overlap = o.overlap;
  if (o.catchUp !== null) out.catchUp = o.catchUp;
  if (o.catchUpWindow !== null) out.catchUpWindow = o.catchUpWindow;
  if (o.timeout !== null) out.timeout = o.timeout;
  if (o.stallTimeout !== null) out.stallTimeout = o.stallTimeout;
  if (o.retry !== null)
    out.retry = {
      maxAttempts: o.retry.maxAttempts,
      ...(o.retry.backoff ? { backoff: { ...o.retry.backoff } } : {}),
    };
  if (o.maxInterruptions !== null) out.maxInterruptions = o.maxInterruptions;
  if (o.keepRuns !== null) out.keepRuns = o.keepRuns;
  if (o.limitRuns !== null) out.limitRuns = o.limitRuns;
  if (o.intervalFromCompletion) out.intervalFromCompletion = true;
  if (o.startAt !== null) out.startAt = o.startAt;
  if (o.allowPastStart) out.allowPastStart = true;
  if (o.stopAt !== null) out.stopAt = o.stopAt;
  if (o.failureBackoff !== null) out.failureBackoff = { ...o.failureBackoff };
  if (o.defaultNextRunIn !== null) out.defaultNextRunIn = o.defaultNextRunIn;
  return out;
}

export class Schedules {
  /** Events of this module (also forwarded to `rota.events`). */
  readonly events: EventBus;
  readonly #ctx: RotaContext;
  readonly #cluster: Cluster;
  readonly #keys: ScheduleKeys;
  readonly #registry = new Map<string, LocalParts>();
  readonly #runner: Runner;
  readonly #local: LocalSchedules;
  #closed = false;
  #closing: Promise<void> | null = null;

  constructor(ctx: RotaContext, cluster: Cluster) {
    this.#ctx = ctx;
    this.#cluster = cluster;
    this.#keys = new ScheduleKeys(ctx.keys);
    this.events = new EventBus(ctx.logger, ctx.events as EventBus<object>);
    this.#runner = new Runner({
      ctx,
      cluster,
      keys: this.#keys,
      events: this.events,
      registry: this.#registry,
    });
    this.#local = new LocalSchedules(ctx, this.events);
    ctx.onClose(() =>
      this.close().catch((err) => ctx.logger.warn('schedules: close failed', { error: err })),
    );
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('the schedules module is closed');
    this.#ctx.assertOpen();
  }

  /** Effective runner options (defaults until `start()`). */
  get options(): EffectiveStartOptions {
    return this.#runner.options?.options ?? START_DEFAULTS;
  }

  /** Due slots this node holds back in `concurrency.mode: 'wait'`. */
  waiting(): number {
    return this.#runner.waitingCount;
  }

  #now(): Promise<number> {
    return this.#ctx.retry(() => this.#ctx.store.now());
  }

  async #updateCapabilities(): Promise<void> {
    const names = [...this.#registry].filter(([, l]) => l.handler).map(([n]) => n);
    await this.#cluster.session.setCapabilities('schedules', names);
  }

  // ----------------------------------------------------------------------------------------------
  // Definitions

  /**
   * Upsert a definition (schedules.md §2.3) and register `handler` on this node. Same definition
   * again: only the description is refreshed, `nextRunAt` is untouched. A changed one replaces the
   * stored definition (`schedule:definition-changed`); history and running runs are kept.
   */
  async register(def: ScheduleDef, handler?: RunHandler): Promise<ScheduleInfo> {
    this.#assertOpen();
    const n = normalizeDef(def, handler);
    if (n.scope === 'local') {
      if (!n.local.handler) invalid('handler', 'a local schedule needs a handler');
      checkTimes(n, this.#ctx.time.now());
      return localInfo(this.#local.register(n));
    }
    const info = await this.#upsert(n, 'register');
    this.#setLocal(n);
    await this.#updateCapabilities();
    this.#runner.rescan();
    return info;
  }

  #setLocal(n: NormalizedDef): void {
    const prev = this.#registry.get(n.spec.name);
    this.#registry.set(n.spec.name, { ...n.local, handler: n.local.handler ?? prev?.handler });
  }

  async #upsert(n: NormalizedDef, via: 'register' | 'update', timeChecks = true): Promise<ScheduleInfo> {
    const { store } = this.#ctx;
    const key = this.#keys.def(n.spec.name);
    for (let attempt = 0; attempt < 20; attempt++) {
      const [{ kv }, storeNow] = await this.#ctx.retry(() => Promise.all([store.get(key), store.now()]));
      const existing = kv ? decodeDef(kv) : undefined;
      if (via === 'update' && !existing) {
        throw new ScheduleNotFoundError(`no schedule named ${n.spec.name}`, {
          detail: { name: n.spec.name },
        });
      }
      if (existing && kv && existing.hash === n.hash) {
        if (existing.description === n.description) return infoOf(existing);
        const res = await defTxn(this.#ctx, this.#keys, n.spec.name, (d) =>
          d.hash === n.hash ? { ...d, description: n.description } : null,
        );
        if (res.status === 'ok') return infoOf(res.def);
        continue;
      }
      if (timeChecks) checkTimes(n, storeNow);
      if (!existing || !kv) {
        const { anchor, nextRunAt } = initialSlots(n, storeNow, this.#ctx.random);
        const record: DefRecord = {
          v: 1,
          ...n.spec,
          description: n.description,
          hash: n.hash,
          anchor,
          state: nextRunAt === null ? 'exhausted' : 'active',
          exhaustedBy: nextRunAt === null ? (n.spec.trigger.kind === 'once' ? 'once' : 'stop') : null,
          nextRunAt,
          pending: [],
          currentRuns: [],
          runsStarted: 0,
          lastRun: null,
          failures: 0,
          history: [],
          createdAt: storeNow,
          updatedAt: storeNow,
          opId: uuidv7(),
        };
        const res = await this.#ctx.retry(() =>
          store.txn({
            compare: [{ key, target: 'createRevision', op: '==', value: 0 }],
            success: [{ type: 'put', key, value: encodeJson(record) }],
            failure: [{ type: 'get', key }],
          }),
        );
        if (!res.succeeded) {
          const f = res.results[0];
          const mine = f?.type === 'get' && f.kv ? decodeDef(f.kv) : undefined;
          if (mine?.opId === record.opId) return infoOf(mine);
          continue;
        }
        this.events.emit('schedule:registered', { name: record.name, nextRunAt: record.nextRunAt });
        return infoOf(record);
      }
      const res = await defTxn(this.#ctx, this.#keys, n.spec.name, (d) => this.#replaced(d, n, storeNow));
      if (res.status !== 'ok') continue;
      this.events.emit(via === 'register' ? 'schedule:definition-changed' : 'schedule:updated', {
        name: res.def.name,
        nextRunAt: res.def.nextRunAt,
      });
      return infoOf(res.def);
    }
    throw new InvalidRunStateError(`schedule ${n.spec.name} kept changing while registering`);
  }

  /** A stored definition replaced by a changed one (§2.3): history, runs and counters kept. */
  #replaced(d: DefRecord, n: NormalizedDef, storeNow: number): DefRecord {
    const triggerSame = sameTrigger(d, n);
    let anchor = d.anchor;
    let nextRunAt: number | null;
    if (triggerSame) {
      const basis: SlotBasis = {
        trigger: n.spec.trigger,
        timezone: n.spec.timezone,
        anchor,
        stopAt: n.spec.options.stopAt,
      };
      if (d.nextRunAt !== null && d.nextRunAt <= storeNow) nextRunAt = d.nextRunAt;
      else if (hasFixedSlots(n.spec.trigger)) nextRunAt = slotAfter(basis, storeNow);
      else nextRunAt = d.nextRunAt;
    } else {
      const first = initialSlots(n, storeNow, this.#ctx.random);
      anchor = first.anchor;
      nextRunAt = first.nextRunAt;
      if (
        !hasFixedSlots(n.spec.trigger) &&
        d.currentRuns.length > 0 &&
        (n.spec.trigger.kind === 'dynamic' || n.spec.options.intervalFromCompletion)
      ) {
        nextRunAt = null;
      }
    }
    const limit = n.spec.options.limitRuns;
    const limitReached = limit !== null && d.runsStarted >= limit;
    const next: DefRecord = {
      ...d,
      ...n.spec,
      description: n.description,
      hash: n.hash,
      anchor,
      nextRunAt,
      updatedAt: storeNow,
    };
    if (d.state === 'paused') next.nextRunAt = null;
    else if (limitReached || (nextRunAt === null && hasFixedSlots(n.spec.trigger))) {
      next.state = 'exhausted';
      next.exhaustedBy = limitReached ? 'limit' : n.spec.trigger.kind === 'once' ? 'once' : 'stop';
      next.nextRunAt = null;
    } else {
      next.state = 'active';
      next.exhaustedBy = null;
    }
    return next;
  }

  /** Change a stored definition (a trigger key in `patch` replaces the trigger). */
  async update(name: string, patch: SchedulePatch, handler?: RunHandler): Promise<ScheduleInfo> {
    this.#assertOpen();
    checkName('name', name);
    if (typeof patch !== 'object' || patch === null || Array.isArray(patch))
      invalid('patch', 'must be an object');
    if ('name' in patch) invalid('patch.name', 'the name cannot be changed');
    const local = this.#local.defs.get(name);
    const { kv } = local
      ? { kv: null }
      : await this.#ctx.retry(() => this.#ctx.store.get(this.#keys.def(name)));
    const stored = kv ? decodeDef(kv) : undefined;
    if (!local && !stored) throw new ScheduleNotFoundError(`no schedule named ${name}`, { detail: { name } });
    const merged: ScheduleDef = local ? this.#localDef(local) : defOf(stored as DefRecord);
    if (TRIGGER_KEYS.some((k) => (patch as ScheduleDef)[k] !== undefined)) {
      for (const k of [...TRIGGER_KEYS, 'anchor', 'seconds'] as const) delete merged[k];
    }
    Object.assign(merged, patch);
    const prevLocal = this.#registry.get(name);
    if (merged.hooks === undefined && prevLocal?.hooks) merged.hooks = prevLocal.hooks;
    if (merged.locker === undefined && prevLocal?.locker) merged.locker = prevLocal.locker;
    const n = normalizeDef(merged, handler);
    if (local) {
      n.local.handler ??= local.n.local.handler;
      return localInfo(this.#local.register(n));
    }
    const timeKeys = ['once', 'startAt', 'stopAt', 'cron', 'daily', 'weekly', 'monthly'];
    const info = await this.#upsert(
      n,
      'update',
      timeKeys.some((k) => k in patch),
    );
    this.#setLocal(n);
    if (handler) await this.#updateCapabilities();
    this.#runner.rescan();
    return info;
  }

  #localDef(s: LocalSchedule): ScheduleDef {
    const d = defOf({ ...s.n.spec, description: s.n.description } as DefRecord);
    return { ...d, scope: 'local' };
  }

  /** Delete a schedule with its runs and requests; running runs are aborted by their owners. */
  async remove(name: string): Promise<void> {
    this.#assertOpen();
    checkName('name', name);
    if (this.#local.remove(name)) {
      this.events.emit('schedule:removed', { name });
      return;
    }
    const removed = await this.#delete(name);
    if (!removed) throw new ScheduleNotFoundError(`no schedule named ${name}`, { detail: { name } });
  }

  async #delete(name: string): Promise<boolean> {
    const key = this.#keys.def(name);
    const res = await this.#ctx.retry(() =>
      this.#ctx.store.txn({
        compare: [{ key, target: 'version', op: '>', value: 0 }],
        success: [
          { type: 'delete', key },
          { type: 'delete', key: this.#keys.runs(name), prefix: true },
          { type: 'delete', key: this.#keys.requests(name), prefix: true },
        ],
      }),
    );
    if (!res.succeeded) return false;
    if (this.#registry.delete(name)) await this.#updateCapabilities();
    if (this.#runner.started) {
      // Let the local runner see the delete (it aborts local runs of the schedule) before returning.
      await this.#runner.defs.waitFor(res.revision, this.#ctx.closing);
    }
    this.events.emit('schedule:removed', { name });
    return true;
  }

  /** Remove every schedule having any of `tags`; resolves with the number removed. */
  async removeByTags(tags: string[]): Promise<number> {
    this.#assertOpen();
    if (!Array.isArray(tags) || tags.length === 0) invalid('tags', 'must be a non-empty array of names');
    for (const [i, t] of tags.entries()) checkName(`tags[${i}]`, t);
    let count = 0;
    for (const [name, s] of [...this.#local.defs]) {
      if (s.n.spec.tags.some((t) => tags.includes(t)) && this.#local.remove(name)) {
        count++;
        this.events.emit('schedule:removed', { name });
      }
    }
    const { kvs } = await this.#ctx.retry(() => this.#ctx.store.range(this.#keys.defs));
    for (const kv of kvs) {
      const d = decodeDef(kv);
      if (d?.tags.some((t) => tags.includes(t)) && (await this.#delete(d.name))) count++;
    }
    return count;
  }

  /** One schedule (`ROTA_SCHEDULE_NOT_FOUND` when absent). */
  async get(name: string): Promise<ScheduleInfo> {
    this.#assertOpen();
    checkName('name', name);
    const local = this.#local.defs.get(name);
    if (local) return localInfo(local);
    const { kv } = await this.#ctx.retry(() => this.#ctx.store.get(this.#keys.def(name)));
    const d = kv ? decodeDef(kv) : undefined;
    if (!d) throw new ScheduleNotFoundError(`no schedule named ${name}`, { detail: { name } });
    return infoOf(d);
  }

  /** Schedules by name prefix and tags (any), sorted by name; `limit` caps the result. */
  async list(options: { prefix?: string; tags?: string[]; limit?: number } = {}): Promise<ScheduleInfo[]> {
    this.#assertOpen();
    const o = checkOptions('options', options, ['prefix', 'tags', 'limit']);
    const prefix =
      o.prefix === undefined
        ? ''
        : typeof o.prefix === 'string'
          ? o.prefix
          : invalid('prefix', 'must be a string');
    const tags = o.tags;
    if (tags !== undefined) {
      if (!Array.isArray(tags)) invalid('tags', 'must be an array of names');
      for (const [i, t] of tags.entries()) checkName(`tags[${i}]`, t);
    }
    const limit = o.limit === undefined ? Number.POSITIVE_INFINITY : checkInt('limit', o.limit, 1);
    const match = (name: string, t: string[]) =>
      name.startsWith(prefix) && (!tags || t.some((x) => tags.includes(x)));
    const out: ScheduleInfo[] = [];
    for (const s of this.#local.defs.values())
      if (match(s.n.spec.name, s.n.spec.tags)) out.push(localInfo(s));
    const { kvs } = await this.#ctx.retry(() =>
      this.#ctx.store.range(this.#keys.defs + encodeURIComponent(prefix)),
    );
    for (const kv of kvs) {
      const d = decodeDef(kv);
      if (d && match(d.name, d.tags)) out.push(infoOf(d));
    }
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return out.slice(0, limit);
  }

  /** Stop scheduling new slots (`nextRunAt: null`) until `resume`. */
  async pause(name: string): Promise<ScheduleInfo> {
    this.#assertOpen();
    checkName('name', name);
    const res = await defTxn(this.#ctx, this.#keys, name, (d) =>
      d.state === 'active' ? { ...d, state: 'paused', nextRunAt: null } : null,
    );
    if (res.status === 'gone')
      throw new ScheduleNotFoundError(`no schedule named ${name}`, { detail: { name } });
    if (res.status === 'ok') this.events.emit('schedule:paused', { name });
    return infoOf(res.def);
  }

  /** Resume a paused schedule from its next slot after now. */
  async resume(name: string): Promise<ScheduleInfo> {
    this.#assertOpen();
    checkName('name', name);
    const storeNow = await this.#now();
    const res = await defTxn(this.#ctx, this.#keys, name, (d) => {
      if (d.state !== 'paused') return null;
      const t = d.trigger;
      let next: number | null;
      if (hasFixedSlots(t)) next = slotAfter(basisOf(d), storeNow);
      else if (t.kind === 'everyRandom') next = storeNow + drawRandom(t.min, t.max, this.#ctx.random);
      else next = d.currentRuns.length > 0 ? null : storeNow;
      if (next === null && hasFixedSlots(t))
        return { ...d, state: 'exhausted', exhaustedBy: 'stop', nextRunAt: null };
      return { ...d, state: 'active', nextRunAt: next };
    });
    if (res.status === 'gone')
      throw new ScheduleNotFoundError(`no schedule named ${name}`, { detail: { name } });
    if (res.status === 'ok') this.events.emit('schedule:resumed', { name, nextRunAt: res.def.nextRunAt });
    this.#runner.rescan();
    return infoOf(res.def);
  }

  /**
   * Boundary's `UpdateJobNextRunInAtLeast`: `nextRunAt = min(nextRunAt, storeNow + inMs)`, never
   * later. `inMs = 0` makes it due now; `{ runNow: true }` also rescans this node at once.
   */
  async pullForward(name: string, inMs: number, options: { runNow?: boolean } = {}): Promise<ScheduleInfo> {
    this.#assertOpen();
    checkName('name', name);
    checkInt('inMs', inMs, 0);
    const o = checkOptions('options', options, ['runNow']);
    const storeNow = await this.#now();
    const target = storeNow + inMs;
    const res = await defTxn(this.#ctx, this.#keys, name, (d) => {
      if (d.state !== 'active') return null;
      if (d.nextRunAt !== null && d.nextRunAt <= target) return null;
      if (d.nextRunAt === null && d.currentRuns.length > 0) return null;
      return { ...d, nextRunAt: target };
    });
    if (res.status === 'gone')
      throw new ScheduleNotFoundError(`no schedule named ${name}`, { detail: { name } });
    if (o.runNow) this.#runner.rescan();
    return infoOf(res.def);
  }

  /** gocron's `Job.RunNow()`: one extra `manual` run now (overlap rules apply; the schedule is not shifted). */
  async trigger(name: string): Promise<RunInfo> {
    this.#assertOpen();
    checkName('name', name);
    const id = uuidv7(this.#ctx.time.now());
    const storeNow = await this.#now();
    const defKey = this.#keys.def(name);
    const record = { v: 1 as const, name, id, at: storeNow, opId: id };
    const res = await this.#ctx.retry(() =>
      this.#ctx.store.txn({
        compare: [{ key: defKey, target: 'version', op: '>', value: 0 }],
        success: [{ type: 'put', key: this.#keys.request(name, id), value: encodeJson(record) }],
      }),
    );
    if (!res.succeeded) throw new ScheduleNotFoundError(`no schedule named ${name}`, { detail: { name } });
    return requestInfo(name, id, storeNow);
  }

  /** Re-evaluate this node's cache now (runs are timer/watch driven anyway). Coalesced. */
  rescan(): void {
    this.#assertOpen();
    this.#runner.rescan();
  }

  /** The next `n` slots (store ms). `everyRandom` entries after the first are samples. */
  async nextRuns(name: string, n: number): Promise<number[]> {
    this.#assertOpen();
    checkName('name', name);
    checkInt('n', n, 1, 10_000);
    const local = this.#local.defs.get(name);
    let basis: SlotBasis;
    let next: number | null;
    if (local) {
      basis = local.basis;
      next = local.nextRunAt;
    } else {
      const { kv } = await this.#ctx.retry(() => this.#ctx.store.get(this.#keys.def(name)));
      const d = kv ? decodeDef(kv) : undefined;
      if (!d) throw new ScheduleNotFoundError(`no schedule named ${name}`, { detail: { name } });
      basis = basisOf(d);
      next = d.nextRunAt;
    }
    if (next === null) return [];
    const t = basis.trigger;
    if (hasFixedSlots(t)) return [next, ...slotsAfter(basis, next, n - 1)];
    if (t.kind === 'everyRandom') {
      const out = [next];
      while (out.length < n)
        out.push((out[out.length - 1] as number) + drawRandom(t.min, t.max, this.#ctx.random));
      return out;
    }
    return [next];
  }

  /** Run records of a schedule, newest first (requests not yet converted are not included). */
  async runs(name: string, options: { limit?: number; owner?: string } = {}): Promise<RunInfo[]> {
    this.#assertOpen();
    checkName('name', name);
    const o = checkOptions('options', options, ['limit', 'owner']);
    const limit = o.limit === undefined ? Number.POSITIVE_INFINITY : checkInt('limit', o.limit, 1);
    if (o.owner !== undefined) checkName('owner', o.owner);
    const res = await this.#ctx.retry(() =>
      this.#ctx.store.txn({
        compare: [],
        success: [
          { type: 'get', key: this.#keys.def(name) },
          { type: 'range', prefix: this.#keys.runs(name) },
        ],
      }),
    );
    const [d, r] = res.results;
    if (d?.type !== 'get' || !d.kv)
      throw new ScheduleNotFoundError(`no schedule named ${name}`, { detail: { name } });
    const out: RunInfo[] = [];
    for (const kv of r?.type === 'range' ? r.kvs : []) {
      const run = decodeRun(kv);
      if (run && (o.owner === undefined || run.owner === o.owner)) out.push(runInfoOf(run, kv));
    }
    out.sort(
      (a, b) =>
        (b.startedAt ?? 0) - (a.startedAt ?? 0) || b.slotAt - a.slotAt || (a.runId < b.runId ? 1 : -1),
    );
    return out.slice(0, limit);
  }

  /** One run (`ROTA_RUN_NOT_FOUND` when absent; a pending `trigger()` request is `requested`). */
  async run(name: string, runId: string): Promise<RunInfo> {
    this.#assertOpen();
    checkName('name', name);
    checkName('runId', runId);
    const { kv } = await this.#ctx.retry(() => this.#ctx.store.get(this.#keys.run(name, runId)));
    const run = kv ? decodeRun(kv) : undefined;
    if (run && kv) return runInfoOf(run, kv);
    if (runId.startsWith('m-')) {
      const req = await this.#ctx.retry(() => this.#ctx.store.get(this.#keys.request(name, runId.slice(2))));
      const r = req.kv ? decodeRequest(req.kv) : undefined;
      if (r) return requestInfo(name, r.id, r.at);
    }
    throw new RunNotFoundError(`no run ${runId} of ${name}`, { detail: { name, runId } });
  }

  // ----------------------------------------------------------------------------------------------
  // Runner lifecycle

  /** Start this node's runner (idempotent; options are validated on every call). */
  async start(options?: StartOptions): Promise<void> {
    this.#assertOpen();
    const resolved = resolveStart(options);
    if (this.#runner.started) return;
    await this.#cluster.session.waitLive(resolved.signal);
    await this.#runner.start(resolved);
    this.#local.start({ hooks: resolved.defaults.hooks, stored: resolved.defaults.stored as never });
    this.events.emit('scheduler:started', { nodeId: this.#ctx.nodeId });
  }

  /**
   * Stop claiming and abort local runs (reason `shutdown`); waits up to `timeout` (default
   * `stopTimeout`), then records the rest `interrupted` and rejects `ROTA_STOP_TIMEOUT`. Restartable.
   */
  async stop(options: { signal?: AbortSignal; timeout?: number } = {}): Promise<void> {
    const o = checkOptions('options', options, ['signal', 'timeout']);
    checkSignal('options.signal', o.signal);
    const timeout = o.timeout === undefined ? undefined : checkInt('options.timeout', o.timeout, 1);
    if (!this.#runner.started) return;
    this.#local.stop();
    try {
      await this.#runner.stop(timeout);
    } finally {
      this.events.emit('scheduler:stopped', { nodeId: this.#ctx.nodeId });
    }
  }

  /** Stop, unregister handlers and capabilities; later calls fail `ROTA_CLOSED`. Idempotent. */
  close(options: { signal?: AbortSignal } = {}): Promise<void> {
    checkOptions('options', options, ['signal']);
    this.#closing ??= (async () => {
      try {
        await this.stop({ ...(options.signal ? { signal: options.signal } : {}) });
      } finally {
        this.#closed = true;
        for (const name of [...this.#local.defs.keys()]) this.#local.remove(name);
        const had = this.#registry.size > 0;
        this.#registry.clear();
        if (had && !this.#ctx.closed) await this.#updateCapabilities().catch(() => undefined);
        this.events.emit('scheduler:closed', { nodeId: this.#ctx.nodeId });
      }
    })();
    return this.#closing;
  }

  /** @internal Run one sweep now on this node (tests; normally the sweeper leader does it). */
  async sweepNow(): Promise<number> {
    const sweeper = this.#runner.sweeper;
    if (!sweeper) throw new InvalidRunStateError('the runner is not started');
    return sweeper.sweep();
  }
}

function requestInfo(name: string, id: string, at: number): RunInfo {
  return {
    name,
    runId: `m-${id}`,
    slotAt: at,
    attempt: 1,
    kind: 'manual',
    status: 'requested',
    owner: null,
    sessionId: null,
    progress: null,
    startedAt: null,
    updatedAt: null,
    lastReportAt: null,
    endedAt: null,
    error: null,
    reason: null,
    skipped: null,
    token: 0,
  };
}

export type { Trigger } from './slots.js';
export { dueSlots, firstSlot, type SlotBasis, slotAfter, slotsAfter } from './slots.js';
export * from './types.js';

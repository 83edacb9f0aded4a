/**
 * `scope: 'local'` schedules (gocron's `WithDisabledDistributedJobLocker`): the definition lives in
 * this node's memory only and every node that registers it runs it on its own timers (store-time
 * estimate). Overlap is applied locally, nothing is written to the store, no locker or elector is
 * consulted; events are emitted as for cluster schedules.
 */
import type { RotaContext } from '../core/context.js';
import type { EventBus } from '../core/events.js';
import { HandlerError, RunInterruptedError, RunTimeoutError } from '../errors.js';
import type { TimerHandle } from '../time/clock.js';
import { checkProgress, drawRandom } from './plan.js';
import { firstSlot, hasFixedSlots, type SlotBasis, slotAfter } from './slots.js';
import type { RunContext, ScheduleDefaults, ScheduleHooks } from './types.js';
import type { NormalizedDef } from './validate.js';

export interface LocalSchedule {
  n: NormalizedDef;
  basis: SlotBasis;
  nextRunAt: number | null;
  state: 'active' | 'paused' | 'exhausted';
  runsStarted: number;
  running: Set<AbortController>;
  waiting: boolean;
  lastRun: {
    runId: string;
    slotAt: number;
    status: 'succeeded' | 'failed';
    startedAt: number;
    endedAt: number;
  } | null;
  createdAt: number;
  timer: TimerHandle | undefined;
}

export class LocalSchedules {
  readonly defs = new Map<string, LocalSchedule>();
  #started = false;
  #defaults: { hooks: ScheduleHooks; stored: Partial<ScheduleDefaults> } = { hooks: {}, stored: {} };

  constructor(
    private readonly ctx: RotaContext,
    private readonly events: EventBus,
  ) {}

  register(n: NormalizedDef): LocalSchedule {
    const existing = this.defs.get(n.spec.name);
    if (existing && existing.n.hash === n.hash) {
      existing.n = { ...n, local: { ...n.local, handler: n.local.handler ?? existing.n.local.handler } };
      return existing;
    }
    if (existing) this.#clear(existing);
    const now = this.ctx.time.now();
    const t = n.spec.trigger;
    const startAt = n.spec.options.startAt;
    let anchor = startAt === 'now' ? now : (startAt ?? now);
    if (startAt === null && t.kind === 'every' && t.origin === null) anchor = now + t.every;
    if (startAt === null && t.kind === 'everyRandom')
      anchor = now + drawRandom(t.min, t.max, this.ctx.random);
    if (startAt === null && t.kind === 'dynamic') anchor = now + t.firstRunIn;
    const basis: SlotBasis = { trigger: t, timezone: n.spec.timezone, anchor, stopAt: n.spec.options.stopAt };
    const s: LocalSchedule = {
      n: { ...n, local: { ...n.local, handler: n.local.handler ?? existing?.n.local.handler } },
      basis,
      nextRunAt: hasFixedSlots(t) ? firstSlot(basis) : anchor,
      state: 'active',
      runsStarted: 0,
      running: new Set(),
      waiting: false,
      lastRun: null,
      createdAt: now,
      timer: undefined,
    };
    if (s.nextRunAt === null) s.state = 'exhausted';
    this.defs.set(n.spec.name, s);
    this.#arm(s);
    return s;
  }

  remove(name: string): boolean {
    const s = this.defs.get(name);
    if (!s) return false;
    this.#clear(s);
    for (const c of s.running)
      c.abort(new RunInterruptedError(`schedule ${name} was removed`, { detail: { reason: 'removed' } }));
    this.defs.delete(name);
    return true;
  }

  start(defaults: { hooks: ScheduleHooks; stored: Partial<ScheduleDefaults> }): void {
    this.#started = true;
    this.#defaults = defaults;
    for (const s of this.defs.values()) this.#arm(s);
  }

  stop(): void {
    this.#started = false;
    for (const s of this.defs.values()) {
      this.#clear(s);
      for (const c of s.running)
        c.abort(new RunInterruptedError('the runner is stopping', { detail: { reason: 'shutdown' } }));
    }
  }

  #clear(s: LocalSchedule): void {
    this.ctx.clock.clearTimeout(s.timer);
    s.timer = undefined;
  }

  #arm(s: LocalSchedule): void {
    this.#clear(s);
    if (!this.#started || s.state !== 'active' || s.nextRunAt === null || !s.n.local.handler) return;
    s.timer = this.ctx.clock.setTimeout(() => this.#fire(s), this.ctx.time.until(s.nextRunAt));
  }

  #overlap(s: LocalSchedule): 'skip' | 'wait' | 'allow' {
    return s.n.spec.options.overlap ?? this.#defaults.stored.overlap ?? 'skip';
  }

  #fire(s: LocalSchedule): void {
    s.timer = undefined;
    if (!this.#started || s.state !== 'active' || s.nextRunAt === null) return;
    const now = this.ctx.time.now();
    if (now < s.nextRunAt) {
      this.#arm(s);
      return;
    }
    const slotAt = s.nextRunAt;
    const overlap = this.#overlap(s);
    if (s.running.size > 0 && overlap === 'wait') {
      s.waiting = true;
      return;
    }
    const t = s.basis.trigger;
    if (s.n.spec.options.intervalFromCompletion) s.nextRunAt = null;
    else if (hasFixedSlots(t)) s.nextRunAt = slotAfter(s.basis, Math.max(slotAt, now));
    else if (t.kind === 'everyRandom' && !s.n.spec.options.intervalFromCompletion)
      s.nextRunAt = now + drawRandom(t.min, t.max, this.ctx.random);
    else s.nextRunAt = null;
    if (s.running.size > 0 && overlap === 'skip') {
      this.events.emit('schedule:skipped', {
        name: s.n.spec.name,
        runId: `s-${slotAt}-${slotAt}`,
        from: slotAt,
        to: slotAt,
        count: 1,
        reason: 'overlap',
      });
    } else {
      s.runsStarted++;
      void this.#run(s, slotAt);
    }
    const limit = s.n.spec.options.limitRuns;
    if (
      (limit !== null && s.runsStarted >= limit) ||
      (s.nextRunAt === null && hasFixedSlots(t) && !s.n.spec.options.intervalFromCompletion)
    ) {
      s.state = 'exhausted';
      s.nextRunAt = null;
      this.events.emit('schedule:exhausted', {
        name: s.n.spec.name,
        reason: limit !== null && s.runsStarted >= limit ? 'limit' : t.kind === 'once' ? 'once' : 'stop',
      });
    }
    this.#arm(s);
  }

  async #run(s: LocalSchedule, slotAt: number): Promise<void> {
    const name = s.n.spec.name;
    const runId = String(slotAt);
    const controller = new AbortController();
    s.running.add(controller);
    const hooks: ScheduleHooks = { ...this.#defaults.hooks, ...s.n.local.hooks };
    const startedAt = this.ctx.time.now();
    const runCtx: RunContext = {
      name,
      runId,
      slotAt,
      attempt: 1,
      kind: 'slot',
      token: 0,
      signal: controller.signal,
      interruptThreshold: 0,
      nodeId: this.ctx.nodeId,
      progress: (p) => {
        const progress = checkProgress(p);
        this.events.emit('run:progress', { name, runId, progress });
        return Promise.resolve();
      },
      heartbeat: () => undefined,
    };
    this.events.emit('run:starting', { name, runId, slotAt, attempt: 1, kind: 'slot' });
    let status: 'succeeded' | 'failed' = 'succeeded';
    let nextRunIn: number | null = null;
    try {
      try {
        await hooks.beforeRun?.(runCtx);
      } catch {
        this.events.emit('schedule:skipped', {
          name,
          runId,
          from: slotAt,
          to: slotAt,
          count: 1,
          reason: 'hook',
        });
        s.runsStarted--;
        return;
      }
      this.events.emit('run:started', { name, runId, slotAt, startedAt, delayMs: startedAt - slotAt });
      const timeout = s.n.spec.options.timeout ?? this.#defaults.stored.timeout;
      const timer =
        timeout !== undefined && timeout !== null
          ? this.ctx.clock.setTimeout(
              () => controller.abort(new RunTimeoutError(`run of ${name} exceeded ${timeout} ms`)),
              timeout,
            )
          : undefined;
      try {
        const result = await Promise.resolve().then(() => s.n.local.handler?.(runCtx));
        const v =
          typeof result === 'object' && result !== null
            ? (result as { nextRunIn?: unknown }).nextRunIn
            : undefined;
        if (typeof v === 'number' && Number.isInteger(v) && v >= 0) nextRunIn = v;
        this.events.emit('run:completed', {
          name,
          runId,
          slotAt,
          durationMs: this.ctx.time.now() - startedAt,
        });
        await hooks.afterRun?.(runCtx);
      } catch (err) {
        status = 'failed';
        const error =
          err instanceof Error
            ? err
            : new HandlerError(`handler of ${name} failed: ${String(err)}`, { cause: err });
        this.events.emit('run:failed', { name, runId, slotAt, error });
        await Promise.resolve(hooks.afterRunError?.(runCtx, error)).catch(() => undefined);
      } finally {
        this.ctx.clock.clearTimeout(timer);
      }
    } catch (err) {
      this.ctx.logger.warn(`local schedule ${name}: a hook threw`, { error: err });
    } finally {
      s.running.delete(controller);
      const endedAt = this.ctx.time.now();
      s.lastRun = { runId, slotAt, status, startedAt, endedAt };
      const t = s.basis.trigger;
      if (s.state === 'active' && s.nextRunAt === null && !hasFixedSlots(t)) {
        if (t.kind === 'dynamic')
          s.nextRunAt = endedAt + (nextRunIn ?? s.n.spec.options.defaultNextRunIn ?? 60_000);
        else if (t.kind === 'everyRandom') s.nextRunAt = endedAt + drawRandom(t.min, t.max, this.ctx.random);
      } else if (s.state === 'active' && s.nextRunAt === null && t.kind === 'every')
        s.nextRunAt = endedAt + t.every;
      if (s.waiting) {
        s.waiting = false;
        if (s.nextRunAt === null || s.nextRunAt > endedAt)
          s.nextRunAt = Math.min(s.nextRunAt ?? endedAt, endedAt);
      }
      this.#arm(s);
    }
  }
}

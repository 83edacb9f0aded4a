/**
 * The worker (tasks.md §2.4): `tasks.work(queue, handler, opts)` and `tasks.workBatch(...)`.
 *
 * Fast path:
 * - **Claim** in batches with `start: true` (one round trip claims and starts), and prefetch up to
 *   one more batch while handlers are short, so free slots refill without waiting for the store.
 * - **Wake-ups** come from `store.subscribe` and from the claim's `nextRunAt`; `pollInterval` is only
 *   a fallback. On stores with hand-off (Redis, PostgreSQL) an idle worker's short claim stays
 *   parked and the next enqueue delivers the claimed task straight to it: no wake-up → claim.
 * - **Settle** in batches (see {@link Settler}): a finished handler frees its slot at once.
 * - **Renew** all held leases in one call every `leaseTtl/2` (see {@link RenewLoop}).
 * - **One timer** per worker watches every task's timeout, heartbeat and local lease deadline; no
 *   per-task timers and no per-task store round trips.
 *
 * Timeouts are measured from the claim that started the task (the store's `startedAt`), on the
 * local monotonic clock, so they fire before the converger's store-time rule.
 */

import { localMargin } from '../cluster/lease-keeper.js';
import { randomHex } from '../core/ids.js';
import type { Logger } from '../core/logger.js';
import {
  HeartbeatTimeoutError,
  InvalidArgumentError,
  isRotaError,
  LeaseExpiredError,
  LeaseLostError,
  type RotaError,
  ShuttingDownError,
  StopTimeoutError,
  StoreCorruptError,
  TaskCancelledError,
  TaskTimeoutError,
} from '../errors.js';
import type {
  ClaimResult,
  Mailbox,
  QueueItem,
  RenewEntry,
  RenewResult,
  SettleOp,
  SettleResult,
} from '../store/port.js';
import type { TimerHandle } from '../time/clock.js';
import { toJsonText } from '../validate.js';
import { failureOp, taskError } from './failures.js';
import type { TasksHost } from './host.js';
import { TASK_DEFAULTS } from './options.js';
import { MalformedRecord, toTask } from './record.js';
import { RenewLoop } from './renewer.js';
import { Settler } from './settler.js';
import type { BackoffFunction, BackoffOptions, Task } from './types.js';

/** What a handler receives besides its task. */
export interface TaskContext<P = unknown> {
  /** Aborts on timeout, heartbeat timeout, cancel, lost lease, or a timed-out `close`. */
  readonly signal: AbortSignal;
  /** This attempt (1-based). */
  readonly attempt: number;
  /** The claim's fencing token. */
  readonly token: number;
  readonly task: Task<P>;
  readonly logger: Logger;
  /** Report progress (JSON ≤ 4 KiB); sent with the next renewal, at once with `flush: true`. Counts as a heartbeat. */
  progress(value: unknown, options?: { flush?: boolean }): void;
  /** Tell the worker the handler is alive (for `heartbeatTimeout`). */
  heartbeat(): void;
}

/** What a batch handler receives besides its tasks. */
export interface BatchContext {
  /** One signal for the whole batch. */
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** Progress of one task of the batch (`id`), or of all of them. */
  progress(value: unknown, options?: { flush?: boolean; id?: string }): void;
  heartbeat(): void;
}

export type TaskHandler<P = unknown, R = unknown> = (task: Task<P>, ctx: TaskContext<P>) => R | Promise<R>;
/** Returns one entry per task: a result, or an `Error` that fails only that task. */
export type BatchHandler<P = unknown, R = unknown> = (
  tasks: Task<P>[],
  ctx: BatchContext,
) => (R | Error)[] | Promise<(R | Error)[]>;

/** Options of `work` and `workBatch`. */
export interface WorkerOptions {
  /** Handler calls running at once. Default 1. */
  concurrency?: number;
  /**
   * Most tasks per claim (`work`, default `4 × concurrency`, `2 × concurrency` on etcd: with
   * prefetching, fewer and larger claims) / per handler call (`workBatch`, default 10).
   */
  batchSize?: number;
  /**
   * Tasks claimed ahead of free slots. Default `'auto'`: one batch while handlers take under
   * 10 ms on average, none otherwise (slow tasks stay available to other workers).
   */
  prefetch?: number | 'auto';
  /** Lease of each claim, renewed every `leaseTtl/2`. Default: queue config, else 30 000. */
  leaseTtl?: number;
  /** Fallback poll when no wake-up arrives. Default 5 000. */
  pollInterval?: number;
  /** How long an aborted handler may keep its slot before it is a zombie. Default 5 000. */
  abortGrace?: number;
  /** Default `heartbeatTimeout` for tasks without their own. Default: queue config, else none. */
  heartbeatTimeout?: number;
  /** Backoff for tasks without their own (may be a function). Default: queue config, else exponential. */
  backoff?: BackoffOptions | BackoffFunction;
  /** Rejections allowed per task. Default: the module's `maxRejections` (3). */
  maxRejections?: number;
  /** Aborting it closes the worker. */
  signal?: AbortSignal;
}

export interface ResolvedWorkerOptions {
  concurrency: number;
  batchSize: number;
  prefetch: number | 'auto';
  leaseTtl: number | undefined;
  pollInterval: number;
  abortGrace: number;
  heartbeatTimeout: number | undefined;
  backoff: BackoffOptions | BackoffFunction | undefined;
  maxRejections: number;
  signal: AbortSignal | undefined;
}

/** Handlers faster than this on average let the worker prefetch (`prefetch: 'auto'`). */
const PREFETCH_MAX_HANDLER_MS = 10;
/** At most this often, a wake-up renews held leases to notice cancellations. */
const CANCEL_CHECK_MS = 250;
/** A parked claim outlives the idle wait it stands for by this much (the worker re-parks sooner). */
const PARK_SLACK_MS = 1000;

const BUFFERED = 0;
const RUNNING = 1;
const DONE = 2;

class Slot {
  state = BUFFERED;
  unit: Unit | null = null;
  /** Send time (local monotonic) of the latest acknowledged claim or renewal. */
  ackSent: number;
  /** Local monotonic deadline of the run timeout (from the claim that started the task). */
  readonly deadline: number;
  hbDeadline = Number.POSITIVE_INFINITY;
  progress: string | undefined = undefined;
  result: unknown = undefined;
  readonly token: number;
  readonly id: string;

  constructor(
    readonly item: QueueItem,
    readonly task: Task,
    sentAt: number,
    readonly hbTimeout: number,
  ) {
    this.id = item.id;
    this.token = item.token as number;
    this.ackSent = sentAt;
    this.deadline = item.timeout === null ? Number.POSITIVE_INFINITY : sentAt + item.timeout;
  }
}

/** One handler call: the context handed to the handler. */
class Unit implements TaskContext, BatchContext {
  #controller: AbortController | null = null;
  finished = false;
  /** The concurrency slot was given back (handler finished, or it became a zombie). */
  freed = false;
  grace: TimerHandle | undefined = undefined;
  readonly t0: number;

  constructor(
    private readonly worker: Worker,
    readonly slots: Slot[],
    t0: number,
  ) {
    this.t0 = t0;
  }

  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }
  get aborted(): boolean {
    return this.#controller?.signal.aborted ?? false;
  }
  abort(reason: Error): void {
    this.#controller ??= new AbortController();
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }
  get attempt(): number {
    return (this.slots[0] as Slot).item.attempt;
  }
  get token(): number {
    return (this.slots[0] as Slot).token;
  }
  get task(): Task {
    return (this.slots[0] as Slot).task;
  }
  get logger(): Logger {
    return this.worker.logger;
  }
  progress(value: unknown, options: { flush?: boolean; id?: string } = {}): void {
    this.worker.reportProgress(this, value, options);
  }
  heartbeat(): void {
    this.worker.heartbeat(this);
  }
}

export class Worker {
  /** Random id of this worker (in `worker:*` events). */
  readonly id = randomHex(4);
  readonly #host: TasksHost;
  readonly #owner: string;
  readonly #handler: TaskHandler | BatchHandler;
  readonly #batch: boolean;
  readonly #o: ResolvedWorkerOptions;
  readonly #unitSize: number;
  #leaseTtl: number = TASK_DEFAULTS.leaseTtl;
  #margin = localMargin(TASK_DEFAULTS.leaseTtl);

  readonly #slots = new Map<string, Slot>();
  #buffer: Slot[] = [];
  #bufHead = 0;
  #runningUnits = 0;
  readonly #units = new Set<Unit>();
  #ewma = Number.POSITIVE_INFINITY;

  /** The store declares a high-throughput queue (capabilities), which pipelined claims suit. */
  readonly #highThroughput: boolean;
  /** Claims in flight (two at most, and only while prefetching). */
  readonly #claims = new Set<Promise<void>>();
  #claimsInFlight = 0;
  /** The latest claim came back full: the queue is busy, a second claim in flight pays off. */
  #busy = false;
  /** Tasks the claims in flight may bring. */
  #reserved = 0;
  /** Bumped by every wake-up: a short claim that saw none since it was sent means "nothing left". */
  #wakes = 0;
  #idle = false;
  #claimFailures = 0;
  #earlyWait = 0;
  #waitTimer: TimerHandle | undefined;
  #deadlineTimer: TimerHandle | undefined;
  #deadlineAt = Number.POSITIVE_INFINITY;
  #pumpScheduled = false;
  #started = false;
  #paused = false;
  #closing: Promise<void> | null = null;
  #stopping = false;
  #unitWaiters: (() => void)[] = [];
  #unsubscribe: (() => void) | null = null;
  /** Where the store hands this worker tasks while it is idle (stores with hand-off only). */
  #mailbox: Mailbox | null = null;
  #renew: RenewLoop | null = null;
  readonly #settler: Settler<Slot>;
  readonly #onAbort = () => void this.close().catch(() => undefined);

  constructor(
    host: TasksHost,
    readonly queue: string,
    handler: TaskHandler | BatchHandler,
    batch: boolean,
    options: ResolvedWorkerOptions,
    private readonly onClosed: (worker: Worker) => void,
  ) {
    this.#host = host;
    this.#owner = host.ctx.nodeId;
    this.#handler = handler;
    this.#batch = batch;
    this.#o = options;
    this.#highThroughput = host.ctx.store.capabilities.queueThroughput === 'high';
    this.#unitSize = batch ? options.batchSize : 1;
    this.#settler = new Settler<Slot>(host.ctx, (slot, op, result, error) =>
      this.#settled(slot, op, result, error),
    );
    options.signal?.addEventListener('abort', this.#onAbort, { once: true });
    void this.#start();
    if (options.signal?.aborted) this.#onAbort();
  }

  get logger(): Logger {
    return this.#host.ctx.logger;
  }

  /** Handler calls running now. */
  get running(): number {
    return this.#runningUnits;
  }

  /** Tasks held by this worker (running or claimed ahead). */
  get held(): number {
    return this.#slots.size;
  }

  get paused(): boolean {
    return this.#paused;
  }

  get closed(): boolean {
    return this.#closing !== null;
  }

  async #start(): Promise<void> {
    try {
      await this.#host.configs.ready();
    } catch (err) {
      this.logger.warn('queue configuration unavailable; using defaults', { error: err });
    }
    if (this.#stopping) return;
    const cfg = this.#host.configs.get(this.queue);
    this.#leaseTtl = this.#o.leaseTtl ?? cfg.leaseTtl ?? TASK_DEFAULTS.leaseTtl;
    this.#margin = localMargin(this.#leaseTtl);
    // Every leaseTtl/2, but early enough that an acknowledged renewal always lands before the local
    // deadline (leaseTtl − max(500, leaseTtl/10)), which matters for short leases.
    const interval = Math.min(this.#leaseTtl / 2, (this.#leaseTtl - this.#margin) * 0.6);
    this.#renew = new RenewLoop(
      this.#host.ctx,
      this.#leaseTtl,
      {
        collect: () => this.#collectRenewals(),
        apply: (entries, results, sentAt) => this.#applyRenewals(entries, results, sentAt),
      },
      interval,
    );
    this.#unsubscribe = this.#host.ctx.store.subscribe(this.queue, this.#onWake);
    this.#mailbox = this.#host.ctx.store.handoff?.((items) => this.#onHandoff(items)) ?? null;
    this.#started = true;
    this.#pump();
  }

  // ----------------------------------------------------------------------------------------------
  // Claiming

  #onWake = (): void => {
    if (this.#stopping) return;
    this.#wakes++;
    if (this.#idle) {
      this.#idle = false;
      this.#host.ctx.clock.clearTimeout(this.#waitTimer);
      this.#waitTimer = undefined;
    }
    this.#schedulePump();
    if (this.#slots.size > 0) this.#renew?.kickThrottled(CANCEL_CHECK_MS);
  };

  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  get #buffered(): number {
    return this.#buffer.length - this.#bufHead;
  }

  #prefetch(): number {
    const p = this.#o.prefetch;
    if (p !== 'auto') return p;
    return this.#ewma < PREFETCH_MAX_HANDLER_MS ? this.#o.batchSize : 0;
  }

  #pump(): void {
    if (this.#stopping || !this.#started) return;
    while (this.#runningUnits < this.#o.concurrency && this.#buffered > 0) this.#startUnit();
    const prefetch = this.#prefetch();
    // A second claim in flight hides round-trip latency on high-throughput stores; on a low one
    // (etcd) two claims of one worker only contend for the same items and come back short.
    const pipelined = prefetch > 0 && this.#busy && this.#highThroughput;
    const maxClaims = pipelined ? 2 : 1;
    while (
      !this.#paused &&
      !this.#idle &&
      this.#waitTimer === undefined &&
      this.#claimsInFlight < maxClaims
    ) {
      const room = this.#o.concurrency * this.#unitSize + prefetch - this.#slots.size - this.#reserved;
      if (room <= 0) return;
      const starving = this.#buffered === 0 && this.#runningUnits < this.#o.concurrency;
      if (room < this.#o.batchSize && !(starving && this.#claimsInFlight === 0)) return;
      const limit = Math.min(room, this.#o.batchSize, 10_000);
      this.#reserved += limit;
      this.#claimsInFlight++;
      const claim: Promise<void> = this.#claim(limit).finally(() => {
        this.#claims.delete(claim);
      });
      this.#claims.add(claim);
    }
  }

  async #claim(limit: number): Promise<void> {
    const wakes = this.#wakes;
    const ctx = this.#host.ctx;
    const sent = ctx.clock.monotonic();
    let res: ClaimResult;
    try {
      res = await ctx.store.claim({
        queue: this.queue,
        owner: this.#owner,
        limit,
        leaseTtl: this.#leaseTtl,
        start: true,
        park:
          this.#mailbox && !this.#paused
            ? { mailbox: this.#mailbox.id, ttl: this.#o.pollInterval + PARK_SLACK_MS }
            : undefined,
      });
    } catch (err) {
      this.#reserved -= limit;
      this.#claimsInFlight--;
      if (this.#stopping || isRotaError(err, 'ROTA_CLOSED')) return;
      this.#claimFailures++;
      const level = isRotaError(err, 'ROTA_STORE_UNAVAILABLE') ? 'debug' : 'warn';
      if (this.#claimFailures === 1 || this.#claimFailures % 20 === 0)
        this.logger[level](`claim on ${this.queue} failed; retrying`, { error: err });
      const wait = Math.min(5000, 50 * 2 ** Math.min(this.#claimFailures, 7)) * (0.5 + ctx.random() / 2);
      this.#sleep(Math.min(wait, this.#o.pollInterval));
      return;
    }
    this.#reserved -= limit;
    this.#claimsInFlight--;
    this.#claimFailures = 0;
    this.#busy = res.items.length === limit;
    if (res.items.length > 0) {
      const cfg = this.#host.configs.get(this.queue);
      const hb = this.#o.heartbeatTimeout ?? cfg.heartbeatTimeout ?? 0;
      for (const item of res.items) this.#adopt(item, sent, hb);
    }
    if (res.items.length < limit && this.#wakes === wakes) this.#goIdle(res.nextRunAt);
    else this.#earlyWait = 0;
    this.#pump();
  }

  /** Tasks the store claimed for this worker's parked claim: held from the store's claim time. */
  #onHandoff(items: QueueItem[]): void {
    if (items.length === 0) return;
    const { clock, time } = this.#host.ctx;
    const now = clock.monotonic();
    const storeNow = time.now();
    const cfg = this.#host.configs.get(this.queue);
    const hb = this.#o.heartbeatTimeout ?? cfg.heartbeatTimeout ?? 0;
    for (const item of items) {
      const age = item.claimedAt === null ? 0 : Math.max(0, storeNow - item.claimedAt);
      this.#adopt(item, now - age, hb);
    }
    // Closing: they stay buffered and are given back with the rest. Paused: they run, like a
    // claim that was in flight when the worker paused.
    this.#onWake();
    this.#pump();
  }

  /** Nothing runnable: sleep until a wake-up, the next due time, or the poll interval. */
  #goIdle(nextRunAt: number | null): void {
    let wait = this.#o.pollInterval;
    if (nextRunAt !== null) {
      const until = this.#host.ctx.time.until(nextRunAt);
      if (until <= 0) {
        // Our estimate of store time runs a little ahead: back off gently instead of spinning.
        this.#earlyWait = Math.min(50, Math.max(1, this.#earlyWait * 2));
        wait = Math.min(wait, this.#earlyWait);
      } else {
        this.#earlyWait = 0;
        wait = Math.min(wait, until + 1);
      }
    }
    this.#idle = true;
    this.#sleep(wait);
  }

  #sleep(ms: number): void {
    if (this.#stopping) return;
    const clock = this.#host.ctx.clock;
    clock.clearTimeout(this.#waitTimer);
    this.#waitTimer = clock.setTimeout(() => {
      this.#waitTimer = undefined;
      this.#idle = false;
      this.#pump();
    }, ms);
  }

  #adopt(item: QueueItem, sentAt: number, defaultHeartbeat: number): void {
    this.#host.observeChangeSeq(item.changeSeq);
    let task: Task;
    try {
      task = toTask(item);
    } catch (err) {
      if (!(err instanceof MalformedRecord)) throw err;
      this.#host.reportMalformed(item.id, item.queue, err.message);
      const error = new StoreCorruptError(`task ${item.id} cannot be decoded: ${err.message}`);
      this.#settler.push(
        { op: 'fail', id: item.id, token: item.token as number, owner: this.#owner, error: taskError(error) },
        sentAt + this.#leaseTtl - this.#margin,
        new Slot(item, null as unknown as Task, sentAt, 0),
      );
      return;
    }
    const slot = new Slot(item, task, sentAt, task.heartbeatTimeout ?? defaultHeartbeat);
    this.#slots.set(slot.id, slot);
    this.#buffer.push(slot);
    this.#armDeadline(Math.min(slot.deadline, sentAt + this.#leaseTtl - this.#margin));
    const events = this.#host.events;
    if (events.has('task:claimed'))
      events.emit('task:claimed', {
        id: slot.id,
        queue: this.queue,
        owner: this.#owner,
        token: slot.token,
        attempt: item.attempt,
      });
    if (events.has('task:started'))
      events.emit('task:started', {
        id: slot.id,
        queue: this.queue,
        owner: this.#owner,
        token: slot.token,
        attempt: item.attempt,
      });
  }

  // ----------------------------------------------------------------------------------------------
  // Running

  #takeBuffered(): Slot | undefined {
    while (this.#bufHead < this.#buffer.length) {
      const slot = this.#buffer[this.#bufHead++] as Slot;
      if (this.#bufHead > 256 && this.#bufHead * 2 > this.#buffer.length) {
        this.#buffer = this.#buffer.slice(this.#bufHead);
        this.#bufHead = 0;
      }
      if (slot.state === BUFFERED) return slot;
    }
    return undefined;
  }

  #startUnit(): void {
    const slots: Slot[] = [];
    while (slots.length < this.#unitSize) {
      const slot = this.#takeBuffered();
      if (!slot) break;
      slots.push(slot);
    }
    if (slots.length === 0) return;
    const now = this.#host.ctx.clock.monotonic();
    const unit = new Unit(this, slots, now);
    this.#runningUnits++;
    this.#units.add(unit);
    for (const slot of slots) {
      slot.state = RUNNING;
      slot.unit = unit;
      if (slot.hbTimeout > 0) {
        slot.hbDeadline = now + slot.hbTimeout;
        this.#armDeadline(slot.hbDeadline);
      }
    }
    let ret: unknown;
    try {
      ret = this.#batch
        ? (this.#handler as BatchHandler)(
            slots.map((s) => s.task),
            unit,
          )
        : (this.#handler as TaskHandler)((slots[0] as Slot).task, unit);
    } catch (err) {
      this.#finish(unit, undefined, err, true);
      return;
    }
    if (ret !== null && typeof ret === 'object' && typeof (ret as Promise<unknown>).then === 'function') {
      (ret as Promise<unknown>).then(
        (value) => this.#finish(unit, value, undefined, false),
        (err) => this.#finish(unit, undefined, err, true),
      );
    } else this.#finish(unit, ret, undefined, false);
  }

  #finish(unit: Unit, value: unknown, error: unknown, threw: boolean): void {
    unit.finished = true;
    const clock = this.#host.ctx.clock;
    const took = clock.monotonic() - unit.t0;
    this.#ewma = this.#ewma === Number.POSITIVE_INFINITY ? took : this.#ewma * 0.8 + took * 0.2;
    clock.clearTimeout(unit.grace);
    this.#units.delete(unit);
    if (!unit.freed) {
      unit.freed = true;
      this.#runningUnits--;
    }
    if (!this.#batch) {
      const slot = unit.slots[0] as Slot;
      if (threw) this.#fail(slot, error);
      else this.#complete(slot, value);
    } else if (threw) {
      for (const slot of unit.slots) this.#fail(slot, error);
    } else if (!Array.isArray(value) || value.length !== unit.slots.length) {
      const err = new InvalidArgumentError(
        `a batch handler must return an array of ${unit.slots.length} results (one per task)`,
      );
      for (const slot of unit.slots) this.#fail(slot, err);
    } else {
      unit.slots.forEach((slot, i) => {
        const r = value[i];
        if (r instanceof Error) this.#fail(slot, r);
        else this.#complete(slot, r);
      });
    }
    if (this.#units.size === 0) this.#notifyUnits();
    this.#schedulePump();
  }

  #complete(slot: Slot, value: unknown): void {
    if (slot.state === DONE) return;
    let text: string | null = null;
    if (value !== undefined) {
      try {
        text = toJsonText('result', value, this.#host.ctx.options.maxPayloadBytes);
      } catch (err) {
        this.#fail(slot, err);
        return;
      }
    }
    slot.result = value === undefined ? null : value;
    this.#settle(slot, { op: 'complete', id: slot.id, token: slot.token, owner: this.#owner, result: text });
  }

  #fail(slot: Slot, err: unknown): void {
    if (slot.state === DONE) return;
    this.#settle(slot, this.#failureOp(slot, err));
  }

  #failureOp(slot: Slot, err: unknown): SettleOp {
    const cfg = this.#host.configs.get(this.queue);
    return failureOp(
      {
        id: slot.id,
        token: slot.token,
        owner: this.#owner,
        attempt: slot.item.attempt,
        maxAttempts: slot.item.maxAttempts,
        started: true,
      },
      err,
      {
        backoff: slot.task.backoff ?? this.#o.backoff ?? cfg.backoff,
        maxRejections: this.#o.maxRejections,
        random: this.#host.ctx.random,
      },
    );
  }

  #settle(slot: Slot, op: SettleOp): void {
    this.#drop(slot);
    this.#settler.push(op, slot.ackSent + this.#leaseTtl - this.#margin, slot);
  }

  /** Stop holding `slot` (no more renewals); it keeps its concurrency slot until its unit ends. */
  #drop(slot: Slot): void {
    slot.state = DONE;
    this.#slots.delete(slot.id);
  }

  #settled(slot: Slot, op: SettleOp, result: SettleResult | null, error: unknown): void {
    const events = this.#host.events;
    const queue = this.queue;
    if (!result || (result.status !== 'ok' && result.status !== 'noop')) {
      if (error) this.logger.warn(`settle of task ${slot.id} failed`, { error, op: op.op });
      if (events.has('task:settle-rejected'))
        events.emit('task:settle-rejected', {
          id: slot.id,
          queue,
          op: op.op,
          status: result?.status ?? 'error',
          token: slot.token,
        });
      return;
    }
    const attempt = slot.item.attempt;
    switch (op.op) {
      case 'complete':
        if (events.has('task:completed'))
          events.emit('task:completed', { id: slot.id, queue, attempt, result: slot.result });
        break;
      case 'retry':
        if (events.has('task:retrying'))
          events.emit('task:retrying', {
            id: slot.id,
            queue,
            attempt,
            error: op.error ?? { code: 'ROTA_HANDLER_FAILED', message: '' },
            ...(op.retryAt !== undefined ? { runAt: op.retryAt } : { delay: op.retryIn ?? 0 }),
          });
        break;
      case 'fail':
        if (events.has('task:failed'))
          events.emit('task:failed', { id: slot.id, queue, attempt, error: op.error });
        if (slot.item.deadLetter && events.has('task:dead-lettered'))
          events.emit('task:dead-lettered', {
            id: slot.id,
            queue,
            deadLetter: slot.item.deadLetter,
            error: op.error,
          });
        break;
      case 'release':
        if (op.reject && result.state === 'completed' && events.has('task:failed'))
          events.emit('task:failed', {
            id: slot.id,
            queue,
            attempt,
            error: { code: 'ROTA_TASK_REJECTED', message: op.reject.reason },
          });
        break;
      default:
        break;
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Heartbeats, progress, deadlines, renewals

  reportProgress(unit: Unit, value: unknown, options: { flush?: boolean; id?: string }): void {
    const text = toJsonText('progress', value, TASK_DEFAULTS.progressBytes);
    const now = this.#host.ctx.clock.monotonic();
    for (const slot of unit.slots) {
      if (options.id !== undefined && slot.id !== options.id) continue;
      if (slot.state !== RUNNING) continue;
      slot.progress = text;
      if (slot.hbTimeout > 0) slot.hbDeadline = now + slot.hbTimeout;
      if (this.#host.events.has('task:progress'))
        this.#host.events.emit('task:progress', { id: slot.id, queue: this.queue, progress: value });
    }
    if (options.flush) this.#renew?.kick();
  }

  heartbeat(unit: Unit): void {
    const now = this.#host.ctx.clock.monotonic();
    for (const slot of unit.slots) if (slot.hbTimeout > 0) slot.hbDeadline = now + slot.hbTimeout;
  }

  #armDeadline(at: number): void {
    if (at >= this.#deadlineAt || this.#stoppedTimers) return;
    const clock = this.#host.ctx.clock;
    clock.clearTimeout(this.#deadlineTimer);
    this.#deadlineAt = at;
    this.#deadlineTimer = clock.setTimeout(() => this.#checkDeadlines(), Math.max(0, at - clock.monotonic()));
  }

  #stoppedTimers = false;

  #checkDeadlines(): void {
    this.#deadlineAt = Number.POSITIVE_INFINITY;
    this.#deadlineTimer = undefined;
    const now = this.#host.ctx.clock.monotonic();
    let next = Number.POSITIVE_INFINITY;
    for (const slot of [...this.#slots.values()]) {
      const lease = slot.ackSent + this.#leaseTtl - this.#margin;
      if (lease <= now) {
        this.#lose(slot, new LeaseExpiredError(`the lease of task ${slot.id} was not renewed in time`));
      } else if (slot.deadline <= now) {
        this.#timeout(slot, new TaskTimeoutError(`task ${slot.id} ran longer than its timeout`));
      } else if (slot.hbDeadline <= now) {
        this.#timeout(slot, new HeartbeatTimeoutError(`task ${slot.id} stopped heartbeating`));
      } else next = Math.min(next, lease, slot.deadline, slot.hbDeadline);
    }
    if (next !== Number.POSITIVE_INFINITY) this.#armDeadline(next);
  }

  #timeout(slot: Slot, err: RotaError): void {
    if (this.#host.events.has('task:timeout'))
      this.#host.events.emit('task:timeout', {
        id: slot.id,
        queue: this.queue,
        code: err.code as 'ROTA_TASK_TIMEOUT' | 'ROTA_HEARTBEAT_TIMEOUT',
      });
    const unit = slot.unit;
    this.#settle(slot, this.#failureOp(slot, err));
    if (unit) this.#abortIfDone(unit, err);
  }

  /** The task is no longer ours (lease lost or expired, cancelled): abort its handler, never settle it. */
  #lose(slot: Slot, err: Error): void {
    if (slot.state === DONE) return;
    const unit = slot.unit;
    this.#drop(slot);
    if (unit) this.#abortIfDone(unit, err);
  }

  /** Abort a unit once none of its tasks is still ours; a handler still running after `abortGrace` is a zombie. */
  #abortIfDone(unit: Unit, reason: Error): void {
    if (unit.finished || unit.aborted) return;
    if (unit.slots.some((s) => s.state !== DONE)) return;
    unit.abort(reason);
    unit.grace = this.#host.ctx.clock.setTimeout(() => {
      if (unit.finished) return;
      for (const slot of unit.slots) {
        if (this.#host.events.has('task:zombie'))
          this.#host.events.emit('task:zombie', { id: slot.id, queue: this.queue, token: slot.token });
      }
      this.logger.warn(`a handler on ${this.queue} ignored its abort signal for ${this.#o.abortGrace} ms`, {
        ids: unit.slots.map((s) => s.id),
      });
      if (!unit.freed) {
        unit.freed = true;
        this.#runningUnits--;
        this.#schedulePump();
      }
    }, this.#o.abortGrace);
  }

  /** Called by the module when this node cancelled or failed a task it holds. */
  abortTask(id: string, err: Error): boolean {
    const slot = this.#slots.get(id);
    if (!slot) return false;
    this.#lose(slot, err);
    return true;
  }

  #collectRenewals(): RenewEntry[] {
    const entries: RenewEntry[] = [];
    for (const slot of this.#slots.values()) {
      if (slot.progress !== undefined)
        entries.push({ id: slot.id, token: slot.token, progress: slot.progress });
      else entries.push({ id: slot.id, token: slot.token });
    }
    return entries;
  }

  #applyRenewals(entries: RenewEntry[], results: RenewResult[], sentAt: number): void {
    for (let i = 0; i < results.length; i++) {
      const r = results[i] as RenewResult;
      const entry = entries[i] as RenewEntry;
      const slot = this.#slots.get(r.id);
      if (!slot || slot.token !== entry.token) continue;
      if (r.status === 'ok') {
        if (sentAt > slot.ackSent) slot.ackSent = sentAt;
        if (entry.progress !== undefined && slot.progress === entry.progress) slot.progress = undefined;
      } else if (r.status === 'cancelled') {
        this.#lose(slot, new TaskCancelledError(`task ${slot.id} was cancelled`));
      } else {
        this.#lose(slot, new LeaseLostError(`task ${slot.id} was taken over (stale token ${slot.token})`));
      }
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Pause, resume, close

  /** Stop claiming (running and prefetched tasks go on). */
  pause(): void {
    if (this.#paused || this.#closing) return;
    this.#paused = true;
    // Withdraw the parked claim once the claims in flight (which may park again) are back.
    const mailbox = this.#mailbox;
    if (mailbox)
      void Promise.all([...this.#claims])
        .then(() => (this.#paused ? mailbox.unpark(this.queue) : undefined))
        .catch(() => undefined);
    this.#host.events.emit('worker:paused', { queue: this.queue, workerId: this.id });
  }

  /** Claim again after `pause()`. */
  resume(): void {
    if (!this.#paused || this.#closing) return;
    this.#paused = false;
    this.#host.events.emit('worker:resumed', { queue: this.queue, workerId: this.id });
    this.#pump();
  }

  #notifyUnits(): void {
    const waiters = this.#unitWaiters;
    this.#unitWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when no handler runs, or after `ms` (false then). */
  #unitsDone(ms: number): Promise<boolean> {
    if (this.#units.size === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const clock = this.#host.ctx.clock;
      const timer = clock.setTimeout(() => {
        this.#unitWaiters = this.#unitWaiters.filter((w) => w !== done);
        resolve(this.#units.size === 0);
      }, ms);
      const done = () => {
        clock.clearTimeout(timer);
        resolve(true);
      };
      this.#unitWaiters.push(done);
    });
  }

  /**
   * Stop claiming; give prefetched tasks back (no attempt used); wait for running handlers up to
   * `timeout` (default 30 000), then abort them (`ROTA_SHUTTING_DOWN`) and release their tasks to
   * pending without using an attempt. Rejects with `ROTA_STOP_TIMEOUT` when handlers still run
   * `abortGrace` after that.
   */
  close(options: { timeout?: number } = {}): Promise<void> {
    this.#closing ??= this.#close(options.timeout ?? TASK_DEFAULTS.closeTimeout);
    return this.#closing;
  }

  async #close(timeout: number): Promise<void> {
    const ctx = this.#host.ctx;
    this.#stopping = true;
    this.#o.signal?.removeEventListener('abort', this.#onAbort);
    this.#unsubscribe?.();
    ctx.clock.clearTimeout(this.#waitTimer);
    await Promise.all([...this.#claims]);
    // No claim runs any more: withdraw the parked one; what was handed off before is buffered now.
    if (this.#mailbox) {
      await this.#mailbox.unpark(this.queue).catch(() => undefined);
      this.#mailbox.close();
    }
    const release = (slot: Slot) => {
      this.#settle(slot, {
        op: 'release',
        id: slot.id,
        token: slot.token,
        owner: this.#owner,
        refundAttempt: true,
      });
    };
    for (let slot = this.#takeBuffered(); slot; slot = this.#takeBuffered()) release(slot);
    let stuck = false;
    if (!(await this.#unitsDone(timeout))) {
      const reason = new ShuttingDownError(`the worker on ${this.queue} is closing`);
      for (const unit of [...this.#units]) {
        for (const slot of unit.slots) if (slot.state !== DONE) release(slot);
        unit.abort(reason);
      }
      stuck = !(await this.#unitsDone(this.#o.abortGrace));
    }
    await this.#settler.drain();
    this.#renew?.close();
    this.#stoppedTimers = true;
    ctx.clock.clearTimeout(this.#deadlineTimer);
    for (const unit of this.#units) ctx.clock.clearTimeout(unit.grace);
    this.onClosed(this);
    this.#host.events.emit('worker:closed', { queue: this.queue, workerId: this.id });
    if (stuck) {
      throw new StopTimeoutError(
        `${this.#units.size} handler(s) on ${this.queue} still ran ${this.#o.abortGrace} ms after the close timeout`,
        { detail: { queue: this.queue, running: this.#units.size } },
      );
    }
  }
}

/**
 * The tasks module (tasks.md): `rota.tasks`. One-off tasks with Diego's lifecycle (desire, claim,
 * start, complete, resolving, resolve, convergence) and the worker API queue users expect
 * (retries with backoff, delays, priorities, dedup, timeouts, heartbeats, progress, results,
 * dead-letter queues, batch claims). Built on the store's Queue port; queue configuration lives
 * in KV under `tasks/queues/<queue>`.
 */
import { createHash } from 'node:crypto';
import type { Cluster } from '../cluster/index.js';
import type { RotaContext } from '../core/context.js';
import { EventBus } from '../core/events.js';
import { opId, uuidv7 } from '../core/ids.js';
import {
  isRotaError,
  StoreCorruptError,
  TaskCancelledError,
  TaskExistsError,
  UnrecoverableError,
} from '../errors.js';
import { utf8Length } from '../store/keys.js';
import type { NewItem, QueueCounts, QueueItem, SettleOp, SettleResult } from '../store/port.js';
import type { TimerHandle } from '../time/clock.js';
import {
  checkBoolean,
  checkDuration,
  checkEnum,
  checkFunction,
  checkInt,
  checkName,
  checkOptions,
  checkSignal,
  checkSize,
  checkString,
  invalid,
  toJsonText,
} from '../validate.js';
import { ClaimedTask, Resolution } from './claims.js';
import { type CompletionsOptions, completionStream } from './completions.js';
import { Converger, type ConvergerStats, claimForResolution } from './converger.js';
import { TaskEvents } from './events.js';
import { taskError } from './failures.js';
import { feedHead, ResultWaits, type WatchOptions, watchFeed } from './feed.js';
import { HeldLeases } from './held-leases.js';
import type { TasksHost } from './host.js';
import {
  checkBackoff,
  checkBackoffOrFunction,
  checkCallbackUrl,
  checkDedup,
  checkInstant,
  checkOptionalDuration,
  checkPriority,
  checkQueueConfig,
  checkTags,
  checkTaskId,
  type ResolvedTasksOptions,
  TASK_DEFAULTS,
} from './options.js';
import { QueueConfigs } from './queue-config.js';
import { decodeMeta, MalformedRecord, type TaskMeta, toTask } from './record.js';
import { invalidTransition, notFound, settleError } from './settle-errors.js';
import type {
  ConvergeReport,
  EnqueueItem,
  EnqueueOptions,
  QueueConfig,
  Task,
  TaskEvent,
  TaskRef,
  TaskResult,
} from './types.js';
import {
  type BatchHandler,
  type ResolvedWorkerOptions,
  type TaskHandler,
  Worker,
  type WorkerOptions,
} from './worker.js';

const ENQUEUE_KEYS = [
  'id',
  'priority',
  'delay',
  'runAt',
  'maxAttempts',
  'backoff',
  'timeout',
  'heartbeatTimeout',
  'claimTimeout',
  'dedup',
  'deadLetter',
  'completedTtl',
  'failedTtl',
  'tags',
  'annotation',
  'callbackUrl',
] as const;

const WORKER_KEYS = [
  'concurrency',
  'batchSize',
  'prefetch',
  'leaseTtl',
  'pollInterval',
  'abortGrace',
  'heartbeatTimeout',
  'backoff',
  'maxRejections',
  'signal',
] as const;

const STATES = ['pending', 'claimed', 'running', 'completed', 'resolving'] as const;
const FEED_STATES = [...STATES, 'deleted'] as const;
const MAX_BATCH = 100_000;

/** Query of `list` / `listPage`. */
export interface ListOptions {
  queue?: string;
  state?: Task['state'];
  owner?: string;
  /** Page size (1 … 10 000). Default 100. */
  limit?: number;
  /** Start after this cursor (a page's `cursor`). Default: the beginning. */
  cursor?: number;
}

/** A page of `listPage`. `cursor` is null on the last page. */
export interface TaskPage {
  readonly tasks: Task[];
  readonly cursor: number | null;
}

/** Options of `claim`. */
export interface ClaimOptions {
  /** Most tasks to claim (1 … 10 000). Default 1. */
  limit?: number;
  /** Lease of each claim, renewed in the background until settled. Default 30 000. */
  leaseTtl?: number;
  /** Go straight to `running`. Default false. */
  start?: boolean;
  signal?: AbortSignal;
}

export class Tasks {
  readonly #ctx: RotaContext;
  readonly #events: TaskEvents;
  readonly #configs: QueueConfigs;
  readonly #leases: HeldLeases;
  readonly #converger: Converger;
  readonly #waits: ResultWaits;
  readonly #workers = new Set<Worker>();
  readonly #host: TasksHost;
  #headHint = 0;
  #closing: Promise<void> | null = null;

  constructor(ctx: RotaContext, cluster: Cluster, options: ResolvedTasksOptions) {
    this.#ctx = ctx;
    this.#events = new TaskEvents(new EventBus(ctx.logger, ctx.events as EventBus<object>), ctx.events);
    this.#configs = new QueueConfigs(ctx);
    this.#leases = new HeldLeases(ctx);
    const self = this;
    this.#host = {
      ctx,
      events: this.#events,
      configs: this.#configs,
      options,
      reportMalformed: (id, queue, reason) => this.#converger.reportMalformed(id, queue, reason),
      observeChangeSeq: (seq) => {
        if (seq > this.#headHint) this.#headHint = seq;
      },
      get headHint() {
        return self.#headHint;
      },
    };
    this.#converger = new Converger(this.#host, cluster);
    this.#waits = new ResultWaits(this.#host);
    ctx.onClose(() => this.#close());
  }

  /** Task events (also emitted on `rota.events`). */
  get events(): EventBus {
    return this.#events.bus;
  }

  /** The module's options after defaults. */
  get options(): ResolvedTasksOptions {
    return this.#host.options;
  }

  /** Converger counters of this node (the `rota_task_converge_*` metrics). */
  get stats(): ConvergerStats {
    return this.#converger.stats;
  }

  #touch(): void {
    this.#ctx.assertOpen();
    this.#converger.start();
  }

  // ----------------------------------------------------------------------------------------------
  // Enqueue

  #newItem(
    queue: string,
    payload: unknown,
    options: EnqueueOptions | undefined,
    field: string,
    opFields: { opId: string },
  ): NewItem {
    const o = checkOptions(field, options, ENQUEUE_KEYS) as EnqueueOptions;
    const max = this.#ctx.options.maxPayloadBytes;
    const cfg = this.#configs.get(queue);
    const id = o.id !== undefined ? checkTaskId(`${field}.id`, o.id) : uuidv7(this.#ctx.time.now());
    const fieldOf = (name: string) => (field === 'options' ? name : `${field}.${name}`);
    const item: NewItem = {
      id,
      queue,
      payload: toJsonText(fieldOf('payload'), payload === undefined ? null : payload, max),
      opId: opFields.opId,
    };
    if (o.priority !== undefined) {
      const p = checkPriority(`${field}.priority`, o.priority);
      if (p !== 0) item.priority = p;
    }
    if (o.runAt !== undefined) item.runAt = Math.max(0, checkInstant(`${field}.runAt`, o.runAt));
    else if (o.delay !== undefined) {
      const d = checkInt(`${field}.delay`, o.delay, 0);
      if (d > 0) item.delay = d;
    }
    const maxAttempts =
      o.maxAttempts !== undefined ? checkInt(`${field}.maxAttempts`, o.maxAttempts, 1) : cfg.maxAttempts;
    if (maxAttempts !== undefined && maxAttempts !== TASK_DEFAULTS.maxAttempts)
      item.maxAttempts = maxAttempts;
    item.timeout =
      o.timeout !== undefined
        ? checkOptionalDuration(`${field}.timeout`, o.timeout)
        : cfg.timeout !== undefined
          ? cfg.timeout
          : TASK_DEFAULTS.timeout;
    const claimTimeout =
      o.claimTimeout !== undefined
        ? checkOptionalDuration(`${field}.claimTimeout`, o.claimTimeout)
        : (cfg.claimTimeout ?? null);
    if (claimTimeout !== null) item.claimTimeout = claimTimeout;
    const deadLetter =
      o.deadLetter !== undefined
        ? o.deadLetter === null
          ? null
          : checkName(`${field}.deadLetter`, o.deadLetter)
        : (cfg.deadLetter ?? null);
    if (deadLetter !== null) item.deadLetter = deadLetter;
    const completedTtl =
      o.completedTtl !== undefined
        ? checkDuration(`${field}.completedTtl`, o.completedTtl)
        : cfg.completedTtl;
    if (completedTtl !== undefined && completedTtl !== TASK_DEFAULTS.completedTtl)
      item.completedTtl = completedTtl;
    const failedTtl =
      o.failedTtl !== undefined ? checkDuration(`${field}.failedTtl`, o.failedTtl) : cfg.failedTtl;
    if (failedTtl !== undefined && failedTtl !== TASK_DEFAULTS.failedTtl) item.failedTtl = failedTtl;
    if (o.dedup !== undefined) item.dedup = checkDedup(`${field}.dedup`, o.dedup);
    let meta: TaskMeta | null = null;
    const m = (): TaskMeta => {
      meta ??= {};
      return meta;
    };
    if (o.backoff !== undefined) {
      if (typeof o.backoff === 'function')
        invalid(`${field}.backoff`, 'a function backoff cannot be stored: pass it to work() instead');
      m().backoff = checkBackoff(`${field}.backoff`, o.backoff);
    }
    if (o.heartbeatTimeout !== undefined)
      m().heartbeatTimeout = checkDuration(`${field}.heartbeatTimeout`, o.heartbeatTimeout);
    if (o.tags !== undefined) {
      const tags = checkTags(`${field}.tags`, o.tags);
      if (tags.length > 0) m().tags = tags;
    }
    if (o.annotation !== undefined) m().annotation = checkString(`${field}.annotation`, o.annotation);
    if (o.callbackUrl !== undefined)
      m().callbackUrl = checkCallbackUrl(`${field}.callbackUrl`, o.callbackUrl);
    if (meta !== null) {
      const text = JSON.stringify(meta);
      checkSize(field, utf8Length(text) + utf8Length(item.payload), max);
      item.meta = text;
    }
    return item;
  }

  #refs(items: NewItem[], results: Awaited<ReturnType<RotaContext['store']['enqueue']>>): TaskRef[] {
    const events = this.#events;
    return results.map((r, i) => {
      const queue = (items[i] as NewItem).queue;
      const ref: TaskRef = {
        id: r.id,
        queue,
        status: r.status,
        deduplicated: r.status !== 'created',
        replaced: r.status === 'replaced',
      };
      if (r.status === 'created') {
        if (events.has('task:enqueued')) events.emit('task:enqueued', { id: r.id, queue });
      } else if (events.has('task:deduplicated')) {
        events.emit('task:deduplicated', {
          id: r.id,
          queue,
          requestedId: (items[i] as NewItem).id,
          replaced: r.status === 'replaced',
        });
      }
      return ref;
    });
  }

  /**
   * Create a `pending` task in `queue` with a JSON payload. Resolves with its reference; with an
   * active dedup key, with the holder's (`deduplicated: true`). An existing `id` → ROTA_TASK_EXISTS.
   * Retried through store outages within `storeTimeout` without creating a duplicate.
   */
  async enqueue<P = unknown>(
    queue: string,
    payload: P,
    options?: EnqueueOptions & { signal?: AbortSignal },
  ): Promise<TaskRef> {
    checkName('queue', queue);
    const { signal, ...rest } = (checkOptions('options', options, [...ENQUEUE_KEYS, 'signal']) ??
      {}) as EnqueueOptions & { signal?: AbortSignal };
    checkSignal('options.signal', signal);
    this.#touch();
    await this.#configs.ready(signal);
    const item = this.#newItem(queue, payload, rest, 'options', { opId: opId() });
    const results = await this.#ctx.retry(() => this.#ctx.store.enqueue([item]), signal);
    return this.#refs([item], results)[0] as TaskRef;
  }

  /** Create many tasks in `queue` in one atomic write: all of them or, on any error, none. */
  async enqueueMany<P = unknown>(
    queue: string,
    items: EnqueueItem<P>[],
    options: { signal?: AbortSignal } = {},
  ): Promise<TaskRef[]> {
    checkName('queue', queue);
    if (!Array.isArray(items)) invalid('items', 'must be an array');
    if (items.length > MAX_BATCH) invalid('items', `must have at most ${MAX_BATCH} entries`);
    checkOptions('options', options, ['signal']);
    checkSignal('options.signal', options.signal);
    this.#touch();
    if (items.length === 0) return [];
    await this.#configs.ready(options.signal);
    const op = { opId: opId() };
    const newItems = items.map((entry, i) => {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
        invalid(`items[${i}]`, 'must be an object with a payload');
      const { payload, ...rest } = entry;
      return this.#newItem(queue, payload, rest, `items[${i}]`, op);
    });
    const results = await this.#ctx.retry(() => this.#ctx.store.enqueue(newItems), options.signal);
    return this.#refs(newItems, results);
  }

  // ----------------------------------------------------------------------------------------------
  // Reading

  #decode(item: QueueItem): Task | undefined {
    this.#host.observeChangeSeq(item.changeSeq);
    try {
      return toTask(item);
    } catch (err) {
      if (!(err instanceof MalformedRecord)) throw err;
      this.#host.reportMalformed(item.id, item.queue, err.message);
      return undefined;
    }
  }

  /** The task `id`, or `undefined` when there is none (an undecodable record counts as none). */
  async get<P = unknown, R = unknown>(id: string): Promise<Task<P, R> | undefined> {
    checkTaskId('id', id);
    this.#touch();
    const item = await this.#ctx.retry(() => this.#ctx.store.getItem(id));
    return item ? (this.#decode(item) as Task<P, R> | undefined) : undefined;
  }

  #checkList(query: ListOptions | undefined): ListOptions {
    const q = checkOptions('query', query, ['queue', 'state', 'owner', 'limit', 'cursor']) as ListOptions;
    if (q.queue !== undefined) checkName('query.queue', q.queue);
    if (q.state !== undefined) checkEnum('query.state', q.state, STATES);
    if (q.owner !== undefined) checkName('query.owner', q.owner);
    if (q.limit !== undefined) checkInt('query.limit', q.limit, 1, 10_000);
    if (q.cursor !== undefined) checkInt('query.cursor', q.cursor, 0);
    return q;
  }

  async #page(q: ListOptions): Promise<TaskPage> {
    const res = await this.#ctx.retry(() =>
      this.#ctx.store.listItems({
        ...(q.queue !== undefined ? { queue: q.queue } : {}),
        ...(q.state !== undefined ? { state: q.state } : {}),
        ...(q.owner !== undefined ? { owner: q.owner } : {}),
        limit: q.limit ?? 100,
        afterSeq: q.cursor ?? 0,
      }),
    );
    const tasks: Task[] = [];
    for (const item of res.items) {
      const t = this.#decode(item);
      if (t) tasks.push(t);
    }
    return { tasks, cursor: res.nextAfterSeq };
  }

  /** One page of tasks by queue / state / owner, in enqueue order. */
  listPage(query?: ListOptions): Promise<TaskPage> {
    const q = this.#checkList(query);
    this.#touch();
    return this.#page(q);
  }

  /** Every task matching the query, in enqueue order, fetched page by page (`limit` = page size). */
  list(query?: ListOptions): AsyncIterableIterator<Task> {
    const q = this.#checkList(query);
    this.#touch();
    const self = this;
    return (async function* () {
      let cursor: number | null = q.cursor ?? 0;
      while (cursor !== null) {
        const page: TaskPage = await self.#page({ ...q, cursor });
        yield* page.tasks;
        cursor = page.cursor;
      }
    })();
  }

  /** Task counts by state, per queue (or for the one queue asked): the `rota_tasks{queue,state}` gauge. */
  async counts(queue?: string): Promise<Record<string, QueueCounts>> {
    if (queue !== undefined) checkName('queue', queue);
    this.#touch();
    return this.#ctx.retry(() => this.#ctx.store.countItems(queue));
  }

  // ----------------------------------------------------------------------------------------------
  // Lifecycle (Diego's TaskBBS)

  /** Claim up to `limit` runnable tasks of `queue` for this node (priority, then run time, then FIFO). */
  async claim<P = unknown>(queue: string, options: ClaimOptions = {}): Promise<ClaimedTask<P>[]> {
    checkName('queue', queue);
    checkOptions('options', options, ['limit', 'leaseTtl', 'start', 'signal']);
    const limit = checkInt('options.limit', options.limit ?? 1, 1, 10_000);
    const leaseTtl = checkDuration('options.leaseTtl', options.leaseTtl ?? TASK_DEFAULTS.leaseTtl, 1000);
    const start = checkBoolean('options.start', options.start ?? false);
    checkSignal('options.signal', options.signal);
    this.#touch();
    const res = await this.#ctx.retry(
      () => this.#ctx.store.claim({ queue, owner: this.#ctx.nodeId, limit, leaseTtl, start }),
      options.signal,
    );
    const out: ClaimedTask<P>[] = [];
    for (const item of res.items) {
      const task = this.#decode(item);
      if (!task) {
        await this.#ctx.store
          .settle([
            {
              op: 'fail',
              id: item.id,
              token: item.token as number,
              owner: this.#ctx.nodeId,
              error: taskError(new StoreCorruptError(`task ${item.id} cannot be decoded`)),
            },
          ])
          .catch(() => undefined);
        continue;
      }
      const ref = {
        id: item.id,
        queue,
        owner: this.#ctx.nodeId,
        token: item.token as number,
        attempt: item.attempt,
      };
      if (this.#events.has('task:claimed')) this.#events.emit('task:claimed', ref);
      if (start && this.#events.has('task:started')) this.#events.emit('task:started', ref);
      out.push(new ClaimedTask<P>(this.#host, this.#leases, item, task as Task<P>, leaseTtl));
    }
    return out;
  }

  /**
   * A handle on an existing claim (for example one made by another process of the same owner).
   * It is not renewed in the background. Unknown id → ROTA_TASK_NOT_FOUND.
   */
  async claimed<P = unknown>(ref: { id: string; token: number; owner?: string }): Promise<ClaimedTask<P>> {
    checkOptions('ref', ref, ['id', 'token', 'owner']);
    const id = checkTaskId('ref.id', ref?.id);
    const token = checkInt('ref.token', ref.token, 0);
    const owner = ref.owner === undefined ? this.#ctx.nodeId : checkName('ref.owner', ref.owner);
    this.#touch();
    const item = await this.#ctx.retry(() => this.#ctx.store.getItem(id));
    if (!item) throw notFound(id);
    const task = this.#decode(item);
    if (!task) throw new StoreCorruptError(`task ${id} cannot be decoded`, { detail: { id } });
    const view: QueueItem = { ...item, token, owner };
    return new ClaimedTask<P>(this.#host, null, view, task as Task<P>, TASK_DEFAULTS.leaseTtl);
  }

  async #admin(op: SettleOp, to: string): Promise<SettleResult> {
    const [res] = await this.#ctx.retry(() => this.#ctx.store.settle([op]));
    if (!res) throw new Error('the store returned no settle result');
    if (res.status === 'ok' || res.status === 'noop') return res;
    if (res.status === 'invalid_state') throw invalidTransition(op.id, res.state, to);
    throw settleError(res, op.op, null);
  }

  /**
   * Cancel a `pending`, `claimed` or `running` task: it becomes `completed/cancelled` and a running
   * handler's signal aborts (`ROTA_TASK_CANCELLED`). Others → ROTA_INVALID_TRANSITION.
   */
  async cancel(id: string, options: { reason?: string } = {}): Promise<void> {
    checkTaskId('id', id);
    checkOptions('options', options, ['reason']);
    const reason = options.reason === undefined ? 'cancelled' : checkString('options.reason', options.reason);
    this.#touch();
    const res = await this.#admin({ op: 'cancel', id, reason }, 'completed');
    const err = new TaskCancelledError(`task ${id} was cancelled: ${reason}`);
    for (const w of this.#workers) w.abortTask(id, err);
    if (this.#events.has('task:cancelled') && res.status === 'ok') {
      const item = await this.#ctx.store.getItem(id).catch(() => null);
      this.#events.emit('task:cancelled', { id, queue: item?.queue ?? '', reason });
    }
  }

  /** Fail a `pending`, `claimed` or `running` task now: no retry, no dead-letter copy. */
  async fail(id: string, reason: string | Error): Promise<void> {
    checkTaskId('id', id);
    if (!(reason instanceof Error)) checkString('reason', reason);
    this.#touch();
    const error = reason instanceof Error ? taskError(reason) : taskError(new UnrecoverableError(reason));
    await this.#admin({ op: 'abort', id, error }, 'completed');
    const err = new UnrecoverableError(`task ${id} was failed: ${error.message}`);
    for (const w of this.#workers) w.abortTask(id, err);
  }

  /**
   * Take the completed task `id` for resolution (`completed → resolving`) under a lease of
   * `leaseTtl` (default `resolveLeaseTtl`). Another state → ROTA_INVALID_TRANSITION.
   */
  async resolving<P = unknown, R = unknown>(
    id: string,
    options: { leaseTtl?: number } = {},
  ): Promise<Resolution<P, R>> {
    checkTaskId('id', id);
    checkOptions('options', options, ['leaseTtl']);
    const leaseTtl = checkDuration(
      'options.leaseTtl',
      options.leaseTtl ?? this.#host.options.resolveLeaseTtl,
      1000,
    );
    this.#touch();
    for (let tries = 0; ; tries++) {
      const item = await this.#ctx.retry(() => this.#ctx.store.getItem(id));
      if (!item) throw notFound(id);
      if (item.state !== 'completed') throw invalidTransition(id, item.state, 'resolving');
      const claimed = await claimForResolution(this.#host, item.queue, id, leaseTtl);
      if (claimed) {
        let task: Task;
        try {
          task = toTask(claimed);
        } catch (err) {
          if (!(err instanceof MalformedRecord)) throw err;
          await this.#ctx.store
            .settle([{ op: 'unresolve', id, token: claimed.token as number, owner: this.#ctx.nodeId }])
            .catch(() => undefined);
          this.#host.reportMalformed(id, claimed.queue, err.message);
          throw new StoreCorruptError(`task ${id} cannot be decoded: ${err.message}`, { detail: { id } });
        }
        return new Resolution<P, R>(this.#host, this.#leases, claimed, task as Task<P, R>, leaseTtl);
      }
      if (tries >= 2) throw invalidTransition(id, item.state, 'resolving');
    }
  }

  /**
   * Completed tasks of `queue`, each taken into `resolving` for this consumer: every completion
   * goes to exactly one consumer across the cluster. Call `resolve()` (delete) or `release()`.
   */
  completions(queue: string, options: CompletionsOptions = {}): AsyncIterableIterator<Resolution> {
    checkName('queue', queue);
    checkOptions('options', options, ['concurrency', 'leaseTtl', 'pollInterval', 'signal']);
    const concurrency = checkInt('options.concurrency', options.concurrency ?? 10, 1, 10_000);
    const leaseTtl = checkDuration(
      'options.leaseTtl',
      options.leaseTtl ?? this.#host.options.resolveLeaseTtl,
      1000,
    );
    const pollInterval = checkDuration(
      'options.pollInterval',
      options.pollInterval ?? TASK_DEFAULTS.pollInterval,
    );
    checkSignal('options.signal', options.signal);
    this.#touch();
    return completionStream(this.#host, this.#leases, queue, {
      concurrency,
      leaseTtl,
      pollInterval,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  // ----------------------------------------------------------------------------------------------
  // Watches and results

  /** Task changes from the change feed: gap-free, resumable from an event's `cursor`. */
  watch(options: WatchOptions = {}): AsyncIterableIterator<TaskEvent> {
    checkOptions('options', options, ['queue', 'states', 'fromCursor', 'pollInterval', 'signal']);
    if (options.queue !== undefined) checkName('options.queue', options.queue);
    if (options.states !== undefined) {
      if (!Array.isArray(options.states)) invalid('options.states', 'must be an array of states');
      options.states.forEach((s, i) => {
        checkEnum(`options.states[${i}]`, s, FEED_STATES);
      });
    }
    if (options.fromCursor !== undefined && options.fromCursor !== 'now')
      checkInt('options.fromCursor', options.fromCursor, 0);
    if (options.pollInterval !== undefined) checkDuration('options.pollInterval', options.pollInterval);
    checkSignal('options.signal', options.signal);
    this.#touch();
    return watchFeed(this.#host, options);
  }

  /** The change feed's current position (pass as `watch({ fromCursor })` to see only later changes). */
  async cursor(options: { queue?: string } = {}): Promise<number> {
    checkOptions('options', options, ['queue']);
    if (options.queue !== undefined) checkName('options.queue', options.queue);
    this.#touch();
    return feedHead(this.#host, options.queue, this.#headHint);
  }

  /**
   * Resolve with the task's outcome once it completes (at once if it already has). Unknown or
   * pruned → ROTA_TASK_NOT_FOUND; `timeout` (ms) → ROTA_TIMEOUT; `signal` → ROTA_ABORTED.
   */
  waitFor<R = unknown>(
    id: string,
    options: { signal?: AbortSignal; timeout?: number } = {},
  ): Promise<TaskResult<R>> {
    checkTaskId('id', id);
    checkOptions('options', options, ['signal', 'timeout']);
    checkSignal('options.signal', options.signal);
    if (options.timeout !== undefined) checkDuration('options.timeout', options.timeout);
    this.#touch();
    return this.#waits.waitFor<R>(id, options);
  }

  // ----------------------------------------------------------------------------------------------
  // Dead letters

  /**
   * Move up to `limit` (default 1 000) dead-letter copies from `dlq` back into their original
   * queues as fresh tasks `rd-<originalId>-<n>` (attempts reset), completing each copy. Safe to
   * retry: the new ids are deterministic. Resolves with the number of tasks redriven.
   */
  async redrive(dlq: string, options: { limit?: number } = {}): Promise<number> {
    checkName('dlq', dlq);
    checkOptions('options', options, ['limit']);
    const limit = checkInt('options.limit', options.limit ?? 1000, 1, 1_000_000);
    this.#touch();
    await this.#configs.ready();
    const ctx = this.#ctx;
    const owner = ctx.nodeId;
    let moved = 0;
    while (moved < limit) {
      const res = await ctx.retry(() =>
        ctx.store.claim({
          queue: dlq,
          owner,
          limit: Math.min(1000, limit - moved),
          leaseTtl: 60_000,
          start: true,
        }),
      );
      if (res.items.length === 0) break;
      const copies: { copy: QueueItem; item: NewItem }[] = [];
      const skipped: QueueItem[] = [];
      for (const copy of res.items) {
        let meta: TaskMeta | null = null;
        try {
          meta = decodeMeta(copy);
        } catch {
          meta = null;
        }
        const info = meta?.deadLetter;
        if (!info || typeof info.originalId !== 'string' || typeof info.queue !== 'string') {
          skipped.push(copy);
          continue;
        }
        const cfg = this.#configs.get(info.queue);
        const item: NewItem = {
          id: redriveId(info.originalId, copy.seq),
          queue: info.queue,
          payload: copy.payload,
          timeout: cfg.timeout !== undefined ? cfg.timeout : TASK_DEFAULTS.timeout,
          opId: `redrive-${copy.id}`.slice(0, 64),
        };
        if (cfg.maxAttempts !== undefined) item.maxAttempts = cfg.maxAttempts;
        if (cfg.deadLetter) item.deadLetter = cfg.deadLetter;
        if (cfg.completedTtl !== undefined) item.completedTtl = cfg.completedTtl;
        if (cfg.failedTtl !== undefined) item.failedTtl = cfg.failedTtl;
        if (cfg.claimTimeout != null) item.claimTimeout = cfg.claimTimeout;
        copies.push({ copy, item });
      }
      if (copies.length > 0) {
        try {
          await ctx.retry(() => ctx.store.enqueue(copies.map((c) => c.item)));
        } catch (err) {
          if (!isRotaError(err, 'ROTA_TASK_EXISTS')) throw err;
          // Some were redriven before (an interrupted redrive): enqueue the others one by one.
          for (const c of copies) {
            await ctx
              .retry(() => ctx.store.enqueue([c.item]))
              .catch((e) => {
                if (!(e instanceof TaskExistsError)) throw e;
              });
          }
        }
        await ctx.retry(() =>
          ctx.store.settle(
            copies.map(({ copy, item }) => ({
              op: 'complete' as const,
              id: copy.id,
              token: copy.token as number,
              owner,
              result: JSON.stringify({ redrivenAs: item.id }),
            })),
          ),
        );
        moved += copies.length;
      }
      if (skipped.length > 0) {
        await ctx.retry(() =>
          ctx.store.settle(
            skipped.map((s) => ({
              op: 'release' as const,
              id: s.id,
              token: s.token as number,
              owner,
              refundAttempt: true,
            })),
          ),
        );
        ctx.logger.warn(
          `redrive: ${skipped.length} task(s) in ${dlq} are not dead-letter copies; left pending`,
        );
        if (copies.length === 0) break;
      }
    }
    return moved;
  }

  // ----------------------------------------------------------------------------------------------
  // Queue configuration and convergence

  /** Store the defaults of `queue` (replacing earlier ones). Per-task options win. */
  async configureQueue(queue: string, config: QueueConfig): Promise<void> {
    checkName('queue', queue);
    const c = checkQueueConfig('config', config);
    this.#touch();
    await this.#configs.set(queue, c);
  }

  /** The stored defaults of `queue` (`{}` when none). */
  async queueConfig(queue: string): Promise<QueueConfig> {
    checkName('queue', queue);
    this.#touch();
    await this.#configs.ready();
    return structuredClone(this.#configs.get(queue));
  }

  /** Run one converger pass now, on this node, whether or not it leads. */
  converge(): Promise<ConvergeReport> {
    this.#touch();
    return this.#converger.pass();
  }

  // ----------------------------------------------------------------------------------------------
  // Workers

  #workerOptions(options: WorkerOptions | undefined, batch: boolean): ResolvedWorkerOptions {
    const o = checkOptions('options', options, WORKER_KEYS) as WorkerOptions;
    const concurrency = checkInt('options.concurrency', o.concurrency ?? 1, 1, 10_000);
    // Larger claims spread a claim's round trip and commit over more tasks (a PostgreSQL worker at
    // concurrency 10 drained 28% faster with claims of 40 than of 20); on etcd they only split into
    // more transactions and came back slower.
    const claimFactor = this.#ctx.store.capabilities.queueThroughput === 'high' ? 4 : 2;
    const batchSize = checkInt(
      'options.batchSize',
      o.batchSize ?? (batch ? 10 : Math.min(claimFactor * concurrency, 10_000)),
      1,
      10_000,
    );
    let prefetch: number | 'auto' = 'auto';
    if (o.prefetch !== undefined && o.prefetch !== 'auto')
      prefetch = checkInt('options.prefetch', o.prefetch, 0, 10_000);
    return {
      concurrency,
      batchSize,
      prefetch,
      leaseTtl: o.leaseTtl === undefined ? undefined : checkDuration('options.leaseTtl', o.leaseTtl, 1000),
      pollInterval: checkDuration('options.pollInterval', o.pollInterval ?? TASK_DEFAULTS.pollInterval),
      abortGrace: checkInt('options.abortGrace', o.abortGrace ?? TASK_DEFAULTS.abortGrace, 0),
      heartbeatTimeout:
        o.heartbeatTimeout === undefined
          ? undefined
          : checkDuration('options.heartbeatTimeout', o.heartbeatTimeout),
      backoff: o.backoff === undefined ? undefined : checkBackoffOrFunction('options.backoff', o.backoff),
      maxRejections:
        o.maxRejections === undefined
          ? this.#host.options.maxRejections
          : checkInt('options.maxRejections', o.maxRejections, 0),
      signal: checkSignal('options.signal', o.signal),
    };
  }

  #startWorker(queue: string, handler: TaskHandler | BatchHandler, batch: boolean, options?: WorkerOptions) {
    checkName('queue', queue);
    checkFunction('handler', handler);
    const resolved = this.#workerOptions(options, batch);
    this.#touch();
    const worker = new Worker(this.#host, queue, handler, batch, resolved, (w) => this.#workers.delete(w));
    this.#workers.add(worker);
    return worker;
  }

  /**
   * Run `handler` for tasks of `queue`, `concurrency` at a time. The return value completes the
   * task; a throw fails the attempt (retried with backoff while attempts are left; see the
   * control-flow errors `UnrecoverableError`, `RetryAtError`, `RejectError`).
   */
  work<P = unknown, R = unknown>(queue: string, handler: TaskHandler<P, R>, options?: WorkerOptions): Worker {
    return this.#startWorker(queue, handler as TaskHandler, false, options);
  }

  /** Like `work`, with up to `batchSize` (default 10) tasks per handler call. */
  workBatch<P = unknown, R = unknown>(
    queue: string,
    handler: BatchHandler<P, R>,
    options?: WorkerOptions,
  ): Worker {
    return this.#startWorker(queue, handler as BatchHandler, true, options);
  }

  // ----------------------------------------------------------------------------------------------

  #close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#converger.close();
      this.#waits.close();
      await Promise.allSettled([...this.#workers].map((w) => w.close()));
      // Give back what the low-level API still holds, so nobody waits for those leases to expire.
      const held = this.#leases.all();
      this.#leases.close();
      let timer: TimerHandle | undefined;
      await Promise.race([
        Promise.allSettled(
          held.map((h) =>
            h instanceof Resolution ? h.release() : h instanceof ClaimedTask ? h.release() : undefined,
          ),
        ),
        new Promise<void>((resolve) => {
          timer = this.#ctx.clock.setTimeout(resolve, 1000);
        }),
      ]);
      this.#ctx.clock.clearTimeout(timer);
      this.#configs.close();
    })();
    return this.#closing;
  }
}

/** `rd-<originalId>-<n>`, shortened with a hash when it would exceed the 128-char id limit. */
function redriveId(originalId: string, n: number): string {
  const id = `rd-${originalId}-${n}`;
  if (id.length <= 128) return id;
  return `rd-${createHash('sha256').update(originalId).digest('hex').slice(0, 40)}-${n}`;
}

export { ClaimedTask, type FailOptions, Resolution } from './claims.js';
export type { CompletionsOptions } from './completions.js';
export type { ConvergerStats } from './converger.js';
export type { WatchOptions } from './feed.js';
export {
  type ResolvedTasksOptions,
  resolveTasksOptions,
  TASK_DEFAULTS,
  type TasksOptions,
} from './options.js';
export type * from './types.js';
export type {
  BatchContext,
  BatchHandler,
  TaskContext,
  TaskHandler,
  Worker,
  WorkerOptions,
} from './worker.js';

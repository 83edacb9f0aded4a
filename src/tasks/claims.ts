/**
 * The low-level lifecycle API (Diego's TaskBBS, tasks.md §1): a {@link ClaimedTask} returned by
 * `tasks.claim()` and a {@link Resolution} returned by `tasks.resolving()` / `completions()`.
 * Every operation is one token-fenced settle; a same-owner repeat of an applied transition
 * succeeds without a write. Leases are renewed in the background until the holder settles.
 */
import { LeaseLostError, RotaError, TaskCancelledError } from '../errors.js';
import type { QueueItem, SettleOp, SettleResult } from '../store/port.js';
import { toJsonText } from '../validate.js';
import { failureOp } from './failures.js';
import type { Held, HeldLeases } from './held-leases.js';
import type { TasksHost } from './host.js';
import { TASK_DEFAULTS } from './options.js';
import { settleError } from './settle-errors.js';
import type { BackoffFunction, BackoffOptions, Task } from './types.js';

/** Apply one fenced op; map refusals to the spec's errors (re-reading the task after `stale`). */
type FencedOp = Extract<SettleOp, { token: number }>;

async function applyFenced(host: TasksHost, op: FencedOp, held: boolean): Promise<SettleResult> {
  const { ctx } = host;
  const [result] = await ctx.retry(() => ctx.store.settle([op]));
  if (!result) throw new Error('the store returned no settle result');
  if (result.status === 'ok' || result.status === 'noop') return result;
  const current = result.status === 'stale' ? await ctx.retry(() => ctx.store.getItem(op.id)) : undefined;
  throw settleError(result, op.op, op.token, current, held);
}

abstract class Holding implements Held {
  readonly id: string;
  readonly token: number;
  readonly owner: string;
  pendingProgress: string | undefined = undefined;
  readonly #controller = new AbortController();
  #held = true;
  /** This holder ended the hold itself (settled): a refused repeat is an invalid transition. */
  #settled = false;

  /** Called once when the hold ends (settled, lost or refused). */
  onEnd: (() => void) | null = null;

  constructor(
    protected readonly host: TasksHost,
    protected readonly leases: HeldLeases | null,
    readonly item: QueueItem,
    readonly leaseTtl: number,
  ) {
    this.id = item.id;
    this.token = item.token as number;
    this.owner = item.owner as string;
    leases?.add(this);
  }

  #ended(): void {
    this.#held = false;
    this.leases?.remove(this);
    const onEnd = this.onEnd;
    this.onEnd = null;
    onEnd?.();
  }

  /** Aborts when the hold ends without us (lease lost, task cancelled). */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** True until this holder settled or lost the task. */
  get held(): boolean {
    return this.#held;
  }

  lost(status: 'stale' | 'cancelled'): void {
    this.#ended();
    this.#controller.abort(
      status === 'cancelled'
        ? new TaskCancelledError(`task ${this.id} was cancelled`)
        : new LeaseLostError(`the lease of task ${this.id} was lost`),
    );
  }

  protected async apply(op: FencedOp, ends: boolean): Promise<SettleResult> {
    try {
      const result = await applyFenced(this.host, op, !this.#settled);
      if (ends) {
        this.#settled = true;
        this.#ended();
      }
      return result;
    } catch (err) {
      if (err instanceof RotaError && err.code !== 'ROTA_STORE_UNAVAILABLE' && err.code !== 'ROTA_ABORTED')
        this.#ended();
      throw err;
    }
  }
}

export interface FailOptions {
  /** Retry per the attempts left and the backoff (default). `false` fails for good. */
  retry?: boolean;
  /** Backoff for this retry. Default: the task's, then the queue's, then the default. */
  backoff?: BackoffOptions | BackoffFunction;
}

/** A claimed task (from `tasks.claim`). Its lease is renewed until it is settled. */
export class ClaimedTask<P = unknown, R = unknown> extends Holding {
  #running: boolean;
  #attempt: number;

  constructor(
    host: TasksHost,
    leases: HeldLeases | null,
    item: QueueItem,
    readonly task: Task<P, R>,
    leaseTtl: number,
  ) {
    super(host, leases, item, leaseTtl);
    this.#running = item.state === 'running';
    this.#attempt = item.attempt;
  }

  get queue(): string {
    return this.item.queue;
  }

  get payload(): P {
    return this.task.payload;
  }

  /** Attempt number once started (0 while only claimed). */
  get attempt(): number {
    return this.#attempt;
  }

  #fenced() {
    return { id: this.id, token: this.token, owner: this.owner };
  }

  /** `claimed → running`. A repeat by the same owner resolves `{ started: false }` without a write. */
  async start(): Promise<{ started: boolean }> {
    const result = await this.apply({ op: 'start', ...this.#fenced() }, false);
    if (result.status === 'ok') {
      this.#running = true;
      this.#attempt += 1;
      const events = this.host.events;
      if (events.has('task:started'))
        events.emit('task:started', {
          id: this.id,
          queue: this.queue,
          owner: this.owner,
          token: this.token,
          attempt: this.#attempt,
        });
    }
    return { started: result.status === 'ok' };
  }

  /** `claimed|running → completed/succeeded` with `result` (JSON). */
  async complete(result?: R): Promise<void> {
    const text =
      result === undefined ? null : toJsonText('result', result, this.host.ctx.options.maxPayloadBytes);
    const res = await this.apply({ op: 'complete', ...this.#fenced(), result: text }, true);
    if (res.status === 'ok' && this.host.events.has('task:completed'))
      this.host.events.emit('task:completed', {
        id: this.id,
        queue: this.queue,
        attempt: this.#running ? this.#attempt : this.#attempt + 1,
        result: result ?? null,
      });
  }

  /**
   * Fail this attempt. A running task with attempts left goes back to pending after the backoff
   * (unless `retry: false` or the error is an `UnrecoverableError`); otherwise it fails for good.
   * Resolves with the task's state afterwards.
   */
  async fail(error: unknown, options: FailOptions = {}): Promise<{ state: 'pending' | 'completed' }> {
    const cfg = this.host.configs.get(this.queue);
    const op = failureOp(
      {
        ...this.#fenced(),
        attempt: this.#attempt,
        maxAttempts: this.item.maxAttempts,
        started: this.#running,
      },
      error,
      {
        backoff: options.backoff ?? this.task.backoff ?? cfg.backoff,
        maxRejections: this.host.options.maxRejections,
        random: this.host.ctx.random,
      },
      options.retry ?? true,
    );
    const res = await this.apply(op as FencedOp, true);
    return { state: res.state === 'pending' ? 'pending' : 'completed' };
  }

  /** Give the task back (`rejections + 1`); above `maxRejections` it fails with ROTA_TASK_REJECTED. */
  async reject(reason: string): Promise<{ state: 'pending' | 'completed' }> {
    const res = await this.apply(
      {
        op: 'release',
        ...this.#fenced(),
        refundAttempt: true,
        reject: { reason: String(reason), maxRejections: this.host.options.maxRejections },
      },
      true,
    );
    return { state: res.state === 'pending' ? 'pending' : 'completed' };
  }

  /** Give the task back to pending without using an attempt. */
  async release(): Promise<void> {
    await this.apply({ op: 'release', ...this.#fenced(), refundAttempt: true }, true);
  }

  /** Store progress (JSON ≤ 4 KiB) with an immediate renewal. */
  async progress(value: unknown): Promise<void> {
    const text = toJsonText('progress', value, TASK_DEFAULTS.progressBytes);
    const [r] = await this.host.ctx.retry(() =>
      this.host.ctx.store.renew([{ id: this.id, token: this.token, progress: text }], this.leaseTtl),
    );
    if (r?.status !== 'ok') {
      if (r) this.lost(r.status === 'cancelled' ? 'cancelled' : 'stale');
      throw settleError(
        { id: this.id, status: 'stale', state: null, outcome: null },
        'progress',
        this.token,
        await this.host.ctx.retry(() => this.host.ctx.store.getItem(this.id)),
      );
    }
    if (this.host.events.has('task:progress'))
      this.host.events.emit('task:progress', { id: this.id, queue: this.queue, progress: value });
  }
}

/** A completed task taken for resolution (`resolving`). */
export class Resolution<P = unknown, R = unknown> extends Holding {
  constructor(
    host: TasksHost,
    leases: HeldLeases | null,
    item: QueueItem,
    readonly task: Task<P, R>,
    leaseTtl: number,
  ) {
    super(host, leases, item, leaseTtl);
    if (host.events.has('task:resolving'))
      host.events.emit('task:resolving', {
        id: this.id,
        queue: item.queue,
        owner: this.owner,
        token: this.token,
      });
  }

  get queue(): string {
    return this.item.queue;
  }

  /** `resolving →` deleted (fenced). */
  async resolve(): Promise<void> {
    const res = await this.apply({ op: 'resolve', id: this.id, token: this.token, owner: this.owner }, true);
    if (res.status === 'ok' && this.host.events.has('task:resolved'))
      this.host.events.emit('task:resolved', { id: this.id, queue: this.queue });
  }

  /** Give the task back to `completed` for another resolver. */
  async release(): Promise<void> {
    await this.apply({ op: 'unresolve', id: this.id, token: this.token, owner: this.owner }, true);
  }
}

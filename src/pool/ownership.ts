/**
 * One ownership of a job by a local worker: from the acquire txn (owner record `starting`, token =
 * its createRevision) to the release. It runs the handler's `start` at most once, `stop` only after
 * a successful `start`, and notifications in between, all through the worker's queue for the key
 * (pool.md §2.4), and records each outcome with a txn fenced on the token.
 */
import { decodeJson, encodeJson } from '../core/context.js';
import { AbortedError, isRotaError, LeaseLostError, TimeoutError } from '../errors.js';
import type { KeyValue, TxnOp } from '../store/port.js';
import { sleep } from '../time/clock.js';
import { retire } from './admission.js';
import { abortable, cas, unchanged } from './cas.js';
import type { PoolJob, StopReason } from './handler.js';
import type { PoolHost } from './host.js';
import {
  decodePayload,
  type InboxRecord,
  type JobRecord,
  type OwnerRecord,
  type StoredError,
  storedError,
} from './records.js';
import type { WorkerImpl } from './worker.js';

export type OwnershipPhase = 'starting' | 'running' | 'ending' | 'ended';

/** Longest pause between retries of a failing `stop`. */
const STOP_RETRY_MAX = 30_000;
/** Longest backoff of a requeued job whose starts keep failing. */
const START_BACKOFF_MAX = 60_000;

/** The backoff after `failures` consecutive failed starts of a requeued job: 1 s, 2 s, 4 s … 60 s. */
export function startBackoff(failures: number): number {
  return Math.min(START_BACKOFF_MAX, 1000 * 2 ** Math.max(0, failures - 1));
}

type Reply = NonNullable<InboxRecord['reply']>;

export class Ownership {
  readonly job: PoolJob;
  readonly key: string;
  /** createRevision of the job record this ownership serves. */
  readonly jobRevision: number;
  phase: OwnershipPhase = 'starting';
  /** Inbox ids queued for delivery here (or waiting for a requeue retry). */
  readonly delivering = new Set<string>();
  readonly #controller = new AbortController();
  readonly #lostController = new AbortController();
  #started = false;
  #lost = false;
  #stopReason: StopReason | null = null;
  #stopDone: Promise<void> | null = null;
  readonly #ownerKey: string;
  readonly #jobKey: string;
  readonly #retiredKey: string;

  constructor(
    private readonly host: PoolHost,
    readonly worker: WorkerImpl,
    readonly token: number,
    readonly leaseId: string,
    jobKv: KeyValue,
    record: JobRecord,
    key: string,
  ) {
    this.key = key;
    this.jobRevision = jobKv.createRevision;
    this.#ownerKey = host.keys.owner(key);
    this.#jobKey = host.keys.job(key);
    this.#retiredKey = host.keys.retired(key);
    this.job = Object.freeze({
      key,
      payload: decodePayload(record.payload),
      createdAt: record.createdAt,
      requeued: record.requeued,
      attempt: record.startFailures + 1,
      workerId: worker.id,
      dispatchedBy: record.dispatchedBy,
      token,
      signal: this.#controller.signal,
    });
  }

  /** Started and neither stopping nor lost. */
  get running(): boolean {
    return this.phase === 'running' && !this.#lost && this.#stopReason === null;
  }

  /** The handler's start succeeded and the job is neither stopping nor lost (`worker.jobs()`). */
  get holding(): boolean {
    return (
      this.#started &&
      (this.phase === 'starting' || this.phase === 'running') &&
      !this.#lost &&
      this.#stopReason === null
    );
  }

  get lost(): boolean {
    return this.#lost;
  }

  /** The reason of the stop already requested, if any. */
  get stopReason(): StopReason | null {
    return this.#stopReason;
  }

  /** Queue the handler's `start` (called once, right after the acquire txn). */
  begin(): void {
    this.worker.queues.enqueue(this.key, (release) => this.#start(release));
  }

  /**
   * Queue `stop(job, reason)` and the release that goes with the reason. Idempotent: a second
   * request returns the first one's completion.
   */
  requestStop(reason: StopReason): Promise<void> {
    if (this.#stopDone) return this.#stopDone;
    if (this.phase === 'ended') return Promise.resolve();
    this.#stopReason = reason;
    this.#stopDone = new Promise<void>((resolve) => {
      this.worker.queues.enqueue(this.key, async () => {
        try {
          await this.#stop(reason);
        } finally {
          resolve();
        }
      });
    });
    return this.#stopDone;
  }

  /**
   * The ownership is gone (lease lost, or the owner record vanished): abort the job's signal now and
   * queue `stop(job, 'leaseLost')`. Resolves when that stop settled.
   */
  lose(reason: string): Promise<void> {
    if (this.#lost) return this.#stopDone ?? Promise.resolve();
    this.#lost = true;
    this.#controller.abort(new LeaseLostError(`job ownership lost: ${reason}`, { detail: { reason } }));
    this.#lostController.abort();
    if (this.phase === 'ended') return Promise.resolve();
    return this.requestStop('leaseLost');
  }

  /** Queue the delivery of inbox entry `id` (once). */
  deliver(id: string): void {
    if (this.delivering.has(id)) return;
    this.delivering.add(id);
    this.worker.queues.enqueue(this.key, () => this.#notify(id));
  }

  // ----------------------------------------------------------------------------------------------
  // start

  async #start(release: () => void): Promise<void> {
    if (this.#lost || this.phase !== 'starting' || this.#stopReason !== null) {
      // Lost (or told to stop) before the start ran: nothing was started.
      if (!this.#lost && this.#stopReason !== null) await this.#release(null);
      this.#end();
      return;
    }
    const { ctx, options } = this.host;
    const handler = this.worker.handler;
    const call = (async () => handler.start(this.job))();
    const settled = call.then(
      () => ({ ok: true as const, error: undefined }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    let timer: ReturnType<typeof ctx.clock.setTimeout> | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = ctx.clock.setTimeout(() => resolve('timeout'), options.ackGracePeriod);
    });
    const first = await Promise.race([settled, deadline]);
    ctx.clock.clearTimeout(timer);

    if (first === 'timeout') {
      const error = new TimeoutError(
        `start did not finish within ackGracePeriod (${options.ackGracePeriod} ms)`,
      );
      this.#controller.abort(error);
      release(); // the other keys of this worker go on; this key stays busy until start settles
      await this.#recordFailure(storedError(error), false);
      const late = await settled;
      // It started after all, but the ownership was given up: stop what it started (once).
      if (late.ok) await this.#callStop('leaseLost', false);
      this.#end();
      return;
    }
    if (!first.ok) {
      const requeue = isRotaError(first.error, 'ROTA_REQUEUE');
      this.#controller.abort(new AbortedError('the start failed'));
      await this.#recordFailure(storedError(first.error), requeue);
      this.#end();
      return;
    }
    this.#started = true;
    const outcome = this.#lost ? 'lost' : await this.#recordStart();
    this.phase = 'running';
    if (outcome === 'ok') {
      this.host.emit('job:started', {
        pool: this.host.pool,
        key: this.key,
        workerId: this.worker.id,
        nodeId: this.host.nodeId,
        token: this.token,
        requeued: this.job.requeued,
      });
      this.host.poke();
    } else if (outcome === 'lost') {
      void this.lose('the ownership ended while the job was starting');
    } else {
      // The job record vanished meanwhile (a shutdown, or an external delete).
      void this.requestStop(this.host.shuttingDown ? 'shutdown' : 'stopped');
    }
  }

  /** owner → running; job → requeued, failures reset; a first start leaves the admission count. */
  async #recordStart(): Promise<'ok' | 'lost' | 'gone'> {
    const { ctx } = this.host;
    try {
      const res = await cas<'ok' | 'lost' | 'gone'>(
        ctx,
        [this.#ownerKey, this.#jobKey, this.#retiredKey],
        (read) => {
          const owner = read(this.#ownerKey);
          const jobKv = read(this.#jobKey);
          if (!owner || owner.createRevision !== this.token) return { done: 'lost' as const };
          if (!jobKv || jobKv.createRevision !== this.jobRevision) return { done: 'gone' as const };
          const o = decodeJson<OwnerRecord>(owner.value);
          if (o.state === 'running') return { done: 'ok' as const };
          const j = decodeJson<JobRecord>(jobKv.value);
          const first = !j.requeued;
          const success: TxnOp[] = [
            {
              type: 'put',
              key: this.#ownerKey,
              value: encodeJson({ ...o, state: 'running' }),
              lease: this.leaseId,
            },
            {
              type: 'put',
              key: this.#jobKey,
              value: encodeJson({ ...j, requeued: true, startFailures: 0, retryAt: 0 } satisfies JobRecord),
            },
          ];
          const compare = [unchanged(this.#ownerKey, owner), unchanged(this.#jobKey, jobKv)];
          if (first) {
            const r = retire(this.#retiredKey, read(this.#retiredKey));
            compare.push(r.compare);
            success.push(r.put);
          }
          return { compare, success, result: 'ok' as const };
        },
        { signal: this.#lostController.signal },
      );
      return res.value;
    } catch (err) {
      if (!this.#lost) {
        this.host.logger.warn('could not record a started job; treating its ownership as lost', {
          error: err,
          key: this.key,
        });
      }
      return 'lost';
    }
  }

  /**
   * A failed start (throw, `RequeueError` or deadline): release the owner and bump `rankOffset`
   * in one txn; a first start turns the job `failed`; a requeued one backs off or, at
   * `maxStartAttempts`, turns `failed`.
   */
  async #recordFailure(error: StoredError, requeue: boolean): Promise<void> {
    if (this.#lost) return;
    const { ctx, options } = this.host;
    const now = ctx.time.now();
    let outcome: { failed: boolean; attempt: number } | null = null;
    try {
      type Outcome = { failed: boolean; attempt: number } | null;
      const res = await cas<Outcome>(
        ctx,
        [this.#ownerKey, this.#jobKey, this.#retiredKey],
        (read) => {
          const owner = read(this.#ownerKey);
          const jobKv = read(this.#jobKey);
          if (!owner || owner.createRevision !== this.token) return { done: null };
          if (!jobKv || jobKv.createRevision !== this.jobRevision) {
            return {
              compare: [unchanged(this.#ownerKey, owner)],
              success: [{ type: 'delete' as const, key: this.#ownerKey }],
              result: null,
            };
          }
          const j = decodeJson<JobRecord>(jobKv.value);
          const next: JobRecord = { ...j, rankOffset: j.rankOffset + 1 };
          let failed = false;
          let retired = false;
          const attempt = j.startFailures + 1;
          if (j.state === 'active') {
            next.lastError = error;
            if (requeue) {
              next.retryAt = now + options.ackGracePeriod;
            } else if (!j.requeued) {
              next.state = 'failed';
              next.failedAt = now;
              retired = true;
              failed = true;
            } else {
              next.startFailures = attempt;
              if (attempt >= options.maxStartAttempts) {
                next.state = 'failed';
                next.failedAt = now;
                failed = true;
              } else next.retryAt = now + startBackoff(attempt);
            }
          }
          const success: TxnOp[] = [
            { type: 'delete', key: this.#ownerKey },
            { type: 'put', key: this.#jobKey, value: encodeJson(next) },
          ];
          const compare = [unchanged(this.#ownerKey, owner), unchanged(this.#jobKey, jobKv)];
          if (retired) {
            const r = retire(this.#retiredKey, read(this.#retiredKey));
            compare.push(r.compare);
            success.push(r.put);
          }
          return { compare, success, result: requeue ? null : { failed, attempt } };
        },
        { signal: this.#lostController.signal },
      );
      outcome = res.value;
    } catch (err) {
      this.host.logger.warn('could not record a failed start', { error: err, key: this.key });
      return;
    }
    if (!outcome) return;
    this.host.emit('job:start-failed', {
      pool: this.host.pool,
      key: this.key,
      workerId: this.worker.id,
      error,
      attempt: outcome.attempt,
    });
    if (outcome.failed) this.host.emit('job:failed', { pool: this.host.pool, key: this.key, error });
  }

  // ----------------------------------------------------------------------------------------------
  // stop

  async #stop(reason: StopReason): Promise<void> {
    if (this.phase === 'ended') return;
    if (!this.#started) {
      // The start failed or never ran; the failure path released the owner already.
      this.#end();
      return;
    }
    this.phase = 'ending';
    if (!this.#controller.signal.aborted) {
      this.#controller.abort(new AbortedError(`the job is stopping (${reason})`, { detail: { reason } }));
    }
    const stopped = await this.#callStop(reason);
    if (stopped && !this.#lost) await this.#release(reason);
    if (stopped) {
      const payload = {
        pool: this.host.pool,
        key: this.key,
        workerId: this.worker.id,
        nodeId: this.host.nodeId,
      };
      if (reason === 'rebalanced' && !this.#lost)
        this.host.emit('job:rebalanced', { ...payload, token: this.token });
      else this.host.emit('job:stopped', { ...payload, reason: this.#lost ? 'leaseLost' : reason });
    }
    this.#end();
  }

  /**
   * Call the handler's `stop`, retrying a throwing one with backoff (1 s … 30 s) until it succeeds
   * or the ownership is lost (or just once when `retry` is false). Resolves whether it succeeded.
   */
  async #callStop(reason: StopReason, retry = true): Promise<boolean> {
    const { ctx } = this.host;
    let delay = 1000;
    for (;;) {
      const effective: StopReason = this.#lost ? 'leaseLost' : reason;
      try {
        await this.worker.handler.stop(this.job, effective);
        return true;
      } catch (err) {
        const error = storedError(err);
        this.host.emit('job:stop-failed', {
          pool: this.host.pool,
          key: this.key,
          workerId: this.worker.id,
          error,
          reason: effective,
        });
        this.host.logger.warn(`stop of pool job ${this.key} failed; retrying`, { error: err });
        if (effective === 'stopped') void this.#recordStopError(error);
        if (!retry || this.#lost || this.host.closedSignal.aborted) return false;
        try {
          await sleep(ctx.clock, delay, this.#lostController.signal);
        } catch {
          return false;
        }
        delay = Math.min(STOP_RETRY_MAX, delay * 2);
      }
    }
  }

  /** Publish a stop failure on the job record (a waiting `stopJob` rejects with it). */
  async #recordStopError(error: StoredError): Promise<void> {
    const { ctx } = this.host;
    try {
      await cas(
        ctx,
        [this.#jobKey],
        (read) => {
          const jobKv = read(this.#jobKey);
          if (!jobKv || jobKv.createRevision !== this.jobRevision) return { done: null };
          const j = decodeJson<JobRecord>(jobKv.value);
          return {
            compare: [unchanged(this.#jobKey, jobKv)],
            success: [{ type: 'put', key: this.#jobKey, value: encodeJson({ ...j, stopError: error }) }],
            result: null,
          };
        },
        { signal: this.#lostController.signal },
      );
    } catch (err) {
      this.host.logger.debug('could not record a stop failure', { error: err, key: this.key });
    }
  }

  /**
   * After a successful stop: `stopped` deletes owner, job, inbox and producer records (and the
   * job's `meta.queued` share if it never started); `shutdown` deletes owner and job; every other
   * reason (and a stop before any start, `null`) releases the owner only. All fenced on the token.
   */
  async #release(reason: StopReason | null): Promise<void> {
    const { ctx, keys, state } = this.host;
    try {
      if (reason === 'stopped') {
        const producerKeys = state.producerKeysOf(this.key);
        await cas(
          ctx,
          [this.#ownerKey, this.#jobKey, this.#retiredKey],
          (read) => {
            const owner = read(this.#ownerKey);
            const jobKv = read(this.#jobKey);
            if (!owner || owner.createRevision !== this.token) return { done: null };
            if (!jobKv || jobKv.createRevision !== this.jobRevision) {
              return {
                compare: [unchanged(this.#ownerKey, owner)],
                success: [{ type: 'delete' as const, key: this.#ownerKey }],
                result: null,
              };
            }
            const j = decodeJson<JobRecord>(jobKv.value);
            const compare = [unchanged(this.#ownerKey, owner), unchanged(this.#jobKey, jobKv)];
            const success: TxnOp[] = [
              { type: 'delete', key: this.#ownerKey },
              ...jobDeletes(keys, this.key, producerKeys),
            ];
            if (!j.requeued && j.state !== 'failed') {
              const r = retire(this.#retiredKey, read(this.#retiredKey));
              compare.push(r.compare);
              success.push(r.put);
            }
            return { compare, success, result: null };
          },
          { signal: this.#lostController.signal },
        );
        return;
      }
      const success: TxnOp[] = [{ type: 'delete', key: this.#ownerKey }];
      if (reason === 'shutdown') success.push({ type: 'delete', key: this.#jobKey });
      const signal = this.#lostController.signal;
      await ctx.retry(
        () =>
          abortable(
            ctx.store.txn({
              compare: [{ key: this.#ownerKey, target: 'createRevision', op: '==', value: this.token }],
              success,
            }),
            signal,
          ),
        signal,
      );
    } catch (err) {
      // The reconciler releases owner records of ours that no local ownership claims; a lost
      // ownership's record goes with its lease.
      if (!this.#lost) this.host.logger.warn(`could not release pool job ${this.key}`, { error: err });
    }
  }

  // ----------------------------------------------------------------------------------------------
  // notify

  async #notify(id: string): Promise<void> {
    const entry = this.host.state.inbox.get(this.key)?.get(id);
    if (!entry) {
      this.delivering.delete(id);
      return;
    }
    if (entry.value.reply) return; // answered; its delete is on the way
    if (!this.running) {
      // Not running here (any more): the next owner delivers it.
      this.delivering.delete(id);
      return;
    }
    if (entry.value.job !== this.jobRevision) {
      await this.#reply(entry.kv, entry.value, {
        ok: false,
        error: { code: 'ROTA_JOB_NOT_FOUND', message: 'the job the notification was sent to is gone' },
      });
      return;
    }
    const handler = this.worker.handler;
    if (typeof handler.notify !== 'function') {
      this.host.logger.warn(`pool ${this.host.pool}: the handler of job ${this.key} has no notify method`);
      this.host.emit('notification:unsupported', {
        pool: this.host.pool,
        key: this.key,
        workerId: this.worker.id,
      });
      await this.#reply(entry.kv, entry.value, {
        ok: false,
        unsupported: true,
        error: { code: 'ROTA_NOTIFY_UNSUPPORTED', message: "the job's handler has no notify method" },
      });
      return;
    }
    try {
      await handler.notify(this.job, decodePayload(entry.value.payload));
    } catch (err) {
      if (isRotaError(err, 'ROTA_REQUEUE')) {
        // Kept: delivered again after ackGracePeriod (here or on the next owner).
        this.host.ctx.clock.setTimeout(() => {
          this.delivering.delete(id);
          this.host.poke();
        }, this.host.options.ackGracePeriod);
        return;
      }
      await this.#reply(entry.kv, entry.value, { ok: false, error: storedError(err) });
      return;
    }
    await this.#reply(entry.kv, entry.value, { ok: true });
  }

  /** Write the outcome on the entry, then delete it. */
  async #reply(kv: KeyValue, value: InboxRecord, reply: Reply): Promise<void> {
    const { ctx } = this.host;
    try {
      const signal = this.#lostController.signal;
      const put = await ctx.retry(
        () =>
          abortable(
            ctx.store.txn({
              compare: [unchanged(kv.key, kv)],
              success: [
                {
                  type: 'put',
                  key: kv.key,
                  value: encodeJson({ ...value, reply } satisfies InboxRecord),
                  ...(kv.lease ? { lease: kv.lease } : {}),
                },
              ],
            }),
            signal,
          ),
        signal,
      );
      if (!put.succeeded) return;
      await ctx.retry(
        () =>
          abortable(
            ctx.store.txn({
              compare: [{ key: kv.key, target: 'modRevision', op: '==', value: put.revision }],
              success: [{ type: 'delete', key: kv.key }],
            }),
            signal,
          ),
        signal,
      );
    } catch (err) {
      // Most likely the entry's lease ran out meanwhile: it expired.
      this.host.logger.debug('could not answer a notification', { error: err, key: this.key });
    }
  }

  // ----------------------------------------------------------------------------------------------

  #end(): void {
    if (this.phase === 'ended') return;
    this.phase = 'ended';
    if (!this.#controller.signal.aborted) this.#controller.abort(new AbortedError('the job ownership ended'));
    this.host.released(this);
  }
}

/**
 * Deletes of a job record with its producer records. Its inbox entries are left to their lease:
 * each names the job incarnation it was sent to, so a later job of the same key answers them
 * `ROTA_JOB_NOT_FOUND` instead of delivering them.
 */
export function jobDeletes(
  keys: { job(key: string): string },
  key: string,
  producerKeys: readonly string[],
): TxnOp[] {
  return [
    { type: 'delete', key: keys.job(key) },
    ...producerKeys.map((k) => ({ type: 'delete' as const, key: k })),
  ];
}

/**
 * The job operations of a pool node (pool.md §2.5): `dispatch` (admission in one txn, then an
 * optional wait until started), `stopJob` and `notify`, with the waiters that follow a job's
 * records in the node's cache.
 */
import { combinedSignal } from '../cluster/contender.js';
import { decodeJson, encodeJson } from '../core/context.js';
import { opId, uuidv7 } from '../core/ids.js';
import {
  abortedError,
  DispatchTimeoutError,
  HandlerError,
  JobExistsError,
  JobNotFoundError,
  NotifyUnsupportedError,
  QueueFullError,
  type RotaError,
  TimeoutError,
} from '../errors.js';
import type { TxnOp } from '../store/port.js';
import type { TimerHandle } from '../time/clock.js';
import { checkName, checkSize, invalid } from '../validate.js';
import { admit, admittedOf, retire, retiredTotal } from './admission.js';
import { absent, cas, unchanged } from './cas.js';
import type { PoolHost } from './host.js';
import {
  checkOptions,
  checkSignal,
  checkTimeout,
  checkWait,
  type DispatchOptions,
  type NotifyOptions,
  type StopJobOptions,
} from './options.js';
import { jobDeletes } from './ownership.js';
import { deleteUnownedJob } from './reconciler.js';
import { encodePayload, type InboxRecord, type JobRecord, type StoredError } from './records.js';

/** A payload: bytes, a string (stored as UTF-8) or null. Zero-length is stored as null. */
export type Payload = Uint8Array | string | null;

/** What the job operations need from their pool node. */
export interface JobsNode {
  readonly closed: boolean;
  readonly shuttingDown: boolean;
  assertOpen(): void;
  shuttingDownError(): RotaError;
  closedError(): RotaError;
}

type AdmitOutcome = 'created' | 'exists' | 'full' | 'shutdown' | { mine: number };

/** One pending admission of `dispatch`. */
interface Admission {
  key: string;
  jobKey: string;
  record: JobRecord;
  signal: AbortSignal | undefined;
  resolve(result: { outcome: AdmitOutcome; revision: number }): void;
  reject(err: unknown): void;
}

/** Most jobs admitted by one txn. */
const ADMISSION_BATCH = 64;

interface Waiter {
  /** Re-evaluate; returns true once settled. */
  check(): boolean;
  fail(error: unknown): void;
}

const encoder = new TextEncoder();

export class JobClient {
  readonly #h: PoolHost;
  readonly #waiters = new Map<string, Set<Waiter>>();
  /** Admissions waiting for the next batch, and whether a batch is running. */
  #pending: Admission[] = [];
  #admitting = false;

  constructor(
    host: PoolHost,
    private readonly node: JobsNode,
  ) {
    this.#h = host;
  }

  /**
   * Dispatch job `key` with `payload`: admitted durably in one txn (`ROTA_JOB_EXISTS`,
   * `ROTA_QUEUE_FULL`, `ROTA_POOL_SHUTTING_DOWN`), then, with `wait` (default), resolves once a
   * worker started it, rejects `HandlerError` when its first start failed, or
   * `ROTA_DISPATCH_TIMEOUT` / `ROTA_ABORTED` (the job stays dispatched).
   */
  async dispatch(key: string, payload: Payload = null, options: DispatchOptions = {}): Promise<void> {
    checkName('key', key);
    const bytes = toPayload('payload', payload, this.#h.ctx.options.maxPayloadBytes);
    checkOptions('options', options, ['wait', 'timeout', 'signal']);
    const wait = checkWait('options.wait', options.wait, true);
    const timeout = checkTimeout('options.timeout', options.timeout, 2 * this.#h.options.ackGracePeriod);
    const signal = checkSignal('options.signal', options.signal);
    this.node.assertOpen();
    if (this.#h.state.shutdown) throw this.node.shuttingDownError();
    const ctx = this.#h.ctx;
    const keys = this.#h.keys;
    const jobKey = keys.job(key);
    const id = opId();
    const record: JobRecord = {
      payload: encodePayload(bytes),
      createdAt: ctx.time.now(),
      dispatchedBy: this.#h.nodeId,
      state: 'active',
      requeued: false,
      startFailures: 0,
      rankOffset: 0,
      retryAt: 0,
      lastError: null,
      failedAt: 0,
      stopError: null,
      opId: id,
    };
    const max = this.#h.options.maxQueuedJobs;
    const { outcome, revision } = await this.#admit({ key, jobKey, record, signal });
    if (outcome === 'shutdown') throw this.node.shuttingDownError();
    if (outcome === 'exists') {
      throw new JobExistsError(`pool ${this.#h.pool} already has a job ${key}`, {
        detail: { pool: this.#h.pool, key },
      });
    }
    if (outcome === 'full') {
      throw new QueueFullError(`pool ${this.#h.pool} has ${max} jobs waiting to start (maxQueuedJobs)`, {
        detail: { pool: this.#h.pool, key, maxQueuedJobs: max },
      });
    }
    const incarnation = typeof outcome === 'object' ? outcome.mine : revision;
    if (!wait) {
      await this.#caughtUp(incarnation, signal, timeout);
      return;
    }
    await this.#waitStarted(key, incarnation, timeout, signal);
  }

  #waitStarted(
    key: string,
    incarnation: number,
    timeout: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    let collecting = false;
    return this.#wait<void>(
      key,
      timeout,
      signal,
      () =>
        new DispatchTimeoutError(`job ${key} did not start within ${timeout} ms; it stays dispatched`, {
          detail: { pool: this.#h.pool, key, timeout },
        }),
      (settle) => {
        if (collecting || this.#h.state.revision < incarnation) return;
        const job = this.#h.state.jobs.get(key);
        if (!job || job.kv.createRevision !== incarnation) {
          settle.reject(
            this.#h.state.shutdown || this.node.shuttingDown
              ? this.node.shuttingDownError()
              : new JobNotFoundError(`job ${key} was stopped before it started`, {
                  detail: { pool: this.#h.pool, key },
                }),
          );
        } else if (job.value.requeued) {
          settle.resolve();
        } else if (job.value.state === 'failed') {
          // Collect the failed first start, then report it.
          collecting = true;
          const error = job.value.lastError ?? { code: null, message: 'the start failed' };
          void deleteUnownedJob(this.#h, key, incarnation, (j) => j.state === 'failed' && !j.requeued)
            .catch((err) => this.#h.logger.debug('could not delete a failed job', { error: err }))
            .finally(() => settle.reject(handlerError(error, this.#h.pool, key)));
        }
      },
    );
  }

  /**
   * Stop job `key` on whichever worker runs it (or delete it if nobody does). Resolves `false` when
   * there is no such job. With `wait` (default) it resolves once the job is stopped and deleted,
   * and rejects with the first `HandlerError` its `stop` throws (the stop keeps retrying).
   */
  async stopJob(key: string, options: StopJobOptions = {}): Promise<boolean> {
    checkName('key', key);
    checkOptions('options', options, ['wait', 'signal']);
    const wait = checkWait('options.wait', options.wait, true);
    const signal = checkSignal('options.signal', options.signal);
    this.node.assertOpen();
    const ctx = this.#h.ctx;
    const keys = this.#h.keys;
    const jobKey = keys.job(key);
    const ownerKey = keys.owner(key);
    const producerKeys = this.#h.state.producerKeysOf(key);
    type Outcome = { found: false } | { found: true; deleted: boolean; incarnation: number };
    const retiredKey = keys.retired(key);
    const res = await cas<Outcome>(
      ctx,
      [jobKey, ownerKey, retiredKey],
      (read) => {
        const jobKv = read(jobKey);
        if (!jobKv) return { done: { found: false } };
        const j = decodeJson<JobRecord>(jobKv.value);
        const owner = read(ownerKey);
        const incarnation = jobKv.createRevision;
        if (j.state === 'failed' || !owner) {
          const compare = [unchanged(jobKey, jobKv), absent(ownerKey)];
          const success = jobDeletes(keys, key, producerKeys);
          if (!j.requeued && j.state !== 'failed') {
            const r = retire(retiredKey, read(retiredKey));
            compare.push(r.compare);
            success.push(r.put);
          }
          return { compare, success, result: { found: true, deleted: true, incarnation } };
        }
        if (j.state === 'stopping') return { done: { found: true, deleted: false, incarnation } };
        return {
          compare: [unchanged(jobKey, jobKv), unchanged(ownerKey, owner)],
          success: [
            { type: 'put', key: jobKey, value: encodeJson({ ...j, state: 'stopping', stopError: null }) },
          ],
          result: { found: true, deleted: false, incarnation },
        };
      },
      { ...(signal ? { signal } : {}) },
    );
    const outcome = res.value;
    if (!outcome.found) return false;
    if (outcome.deleted) {
      await this.#caughtUp(res.revision, signal, this.#h.options.ackGracePeriod);
      return true;
    }
    if (!wait) return true;
    const since = res.revision;
    let ownerlessSeen = 0;
    return this.#wait<boolean>(key, undefined, signal, undefined, (settle) => {
      if (this.#h.state.revision < since) return;
      const job = this.#h.state.jobs.get(key);
      if (!job || job.kv.createRevision !== outcome.incarnation) settle.resolve(true);
      else if (job.value.stopError && job.kv.modRevision > since) {
        settle.reject(handlerError(job.value.stopError, this.#h.pool, key));
      } else if (!this.#h.state.owners.has(key) && this.#h.state.revision > ownerlessSeen) {
        // Its owner went away without stopping it (a dead node): delete it here too, so the
        // stop also completes where no full node is left to reconcile.
        ownerlessSeen = this.#h.state.revision;
        void deleteUnownedJob(this.#h, key, outcome.incarnation, (j) => j.state === 'stopping').catch((err) =>
          this.#h.logger.debug('could not delete a stopped job', { error: err }),
        );
      }
    });
  }

  /**
   * Send `payload` to the worker running job `key` (`ROTA_JOB_NOT_FOUND` unless the job is
   * active). Entries wait through ownership gaps for up to `notifyTtl`. With `wait`, resolves when
   * the handler's `notify` returned, and rejects `HandlerError`, `ROTA_NOTIFY_UNSUPPORTED` or
   * `ROTA_TIMEOUT` (default timeout: notifyTtl).
   */
  async notify(key: string, payload: Payload = null, options: NotifyOptions = {}): Promise<void> {
    checkName('key', key);
    const bytes = toPayload('payload', payload, this.#h.ctx.options.maxPayloadBytes);
    checkOptions('options', options, ['wait', 'timeout', 'signal']);
    const wait = checkWait('options.wait', options.wait, false);
    const timeout = checkTimeout('options.timeout', options.timeout, this.#h.options.notifyTtl);
    const signal = checkSignal('options.signal', options.signal);
    this.node.assertOpen();
    const ctx = this.#h.ctx;
    const jobKey = this.#h.keys.job(key);
    const notFound = () =>
      new JobNotFoundError(`pool ${this.#h.pool} has no active job ${key}`, {
        detail: { pool: this.#h.pool, key },
      });
    const { kv } = await ctx.retry(() => ctx.store.get(jobKey), signal);
    if (!kv || decodeJson<JobRecord>(kv.value).state !== 'active') throw notFound();
    const lease = await ctx.retry(() => ctx.store.grant(this.#h.options.notifyTtl), signal);
    const id = uuidv7(ctx.time.now());
    const entryKey = this.#h.keys.inbox(key, id);
    const res = await cas<boolean>(
      ctx,
      [jobKey],
      (read) => {
        const jobKv = read(jobKey);
        if (!jobKv || jobKv.createRevision !== kv.createRevision) return { done: false };
        if (decodeJson<JobRecord>(jobKv.value).state !== 'active') return { done: false };
        const entry: InboxRecord = {
          payload: encodePayload(bytes),
          from: this.#h.nodeId,
          job: jobKv.createRevision,
          wantReply: wait,
          expiresAt: ctx.time.now() + lease.ttl,
        };
        return {
          compare: [unchanged(jobKey, jobKv)],
          success: [{ type: 'put', key: entryKey, value: encodeJson(entry), lease: lease.id }],
          result: true,
        };
      },
      { ...(signal ? { signal } : {}) },
    );
    if (!res.value) {
      await ctx.store.revoke(lease.id).catch(() => undefined);
      throw notFound();
    }
    if (!wait) return;
    const since = res.revision;
    return this.#wait<void>(
      key,
      timeout,
      signal,
      () =>
        new TimeoutError(`notification to job ${key} got no answer within ${timeout} ms`, {
          detail: { key },
        }),
      (settle) => {
        if (this.#h.state.revision < since) return;
        const entry = this.#h.state.inbox.get(key)?.get(id);
        const reply = entry?.value.reply;
        if (reply) {
          if (reply.ok) settle.resolve();
          else if (reply.unsupported) {
            settle.reject(
              new NotifyUnsupportedError(`the handler of job ${key} has no notify method`, {
                detail: { pool: this.#h.pool, key },
              }),
            );
          } else if (reply.error.code === 'ROTA_JOB_NOT_FOUND') settle.reject(notFound());
          else settle.reject(handlerError(reply.error, this.#h.pool, key));
        } else if (!entry) {
          settle.reject(
            new TimeoutError(`notification to job ${key} expired undelivered after notifyTtl`, {
              detail: { pool: this.#h.pool, key },
            }),
          );
        }
      },
    );
  }

  /**
   * Register a waiter on `key`'s records. `evaluate` runs now and on every change of the key and
   * may settle it; `timeout` (ms, optional) rejects with `onTimeout()`, `signal` with
   * `ROTA_ABORTED`, closing the node with `ROTA_POOL_CLOSED`.
   */
  #wait<T>(
    key: string,
    timeout: number | undefined,
    signal: AbortSignal | undefined,
    onTimeout: (() => RotaError) | undefined,
    evaluate: (settle: { resolve(value: T): void; reject(err: unknown): void }) => void,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortedError(signal));
        return;
      }
      let done = false;
      let timer: TimerHandle | undefined;
      const finish = () => {
        done = true;
        this.#h.ctx.clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const set = this.#waiters.get(key);
        set?.delete(waiter);
        if (set?.size === 0) this.#waiters.delete(key);
      };
      const settle = {
        resolve: (value: T) => {
          if (done) return;
          finish();
          resolve(value);
        },
        reject: (err: unknown) => {
          if (done) return;
          finish();
          reject(err);
        },
      };
      const waiter: Waiter = {
        check: () => {
          if (!done) evaluate(settle);
          return done;
        },
        fail: (err) => settle.reject(err),
      };
      const onAbort = () => settle.reject(abortedError(signal));
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeout !== undefined && onTimeout) {
        timer = this.#h.ctx.clock.setTimeout(() => settle.reject(onTimeout()), timeout);
      }
      let set = this.#waiters.get(key);
      if (!set) {
        set = new Set();
        this.#waiters.set(key, set);
      }
      set.add(waiter);
      if (this.node.closed) settle.reject(this.node.closedError());
      else waiter.check();
    });
  }

  /** Re-evaluate the waiters of `key` (every waiter with `null`) after a cache change. */
  check(key: string | null): void {
    const sets = key === null ? [...this.#waiters.values()] : [this.#waiters.get(key)];
    for (const set of sets) {
      if (!set) continue;
      for (const waiter of [...set]) waiter.check();
    }
  }

  /**
   * Admit one job. Admissions of this node are batched (group commit): every admission writes
   * `meta`, so in parallel they would only conflict; instead one txn admits every pending job that
   * fits (each job's admission is still all-or-nothing within that txn).
   */
  #admit(
    request: Omit<Admission, 'resolve' | 'reject'>,
  ): Promise<{ outcome: AdmitOutcome; revision: number }> {
    if (request.signal?.aborted) return Promise.reject(abortedError(request.signal));
    return new Promise((resolve, reject) => {
      this.#pending.push({ ...request, resolve, reject });
      if (!this.#admitting) void this.#drainAdmissions();
    });
  }

  async #drainAdmissions(): Promise<void> {
    this.#admitting = true;
    try {
      while (this.#pending.length > 0) {
        const batch: Admission[] = [];
        for (const a of this.#pending.splice(0, ADMISSION_BATCH)) {
          if (a.signal?.aborted) a.reject(abortedError(a.signal));
          else batch.push(a);
        }
        if (batch.length === 0) continue;
        try {
          await this.#admitBatch(batch);
        } catch (err) {
          for (const a of batch) a.reject(err);
        }
      }
    } finally {
      this.#admitting = false;
    }
  }

  /**
   * One admission txn for `batch`: compares `meta` (admitted), the shutdown marker and each
   * admitted job's key; puts the jobs and `admitted + n`. queued = admitted − retired, with the
   * cached retired counts first (they only grow: a stale sum over-estimates queued); jobs refused
   * as full get a second round with the retired counts read fresh.
   */
  async #admitBatch(batch: Admission[]): Promise<void> {
    const { ctx, keys, state, options } = this.#h;
    let retired = retiredTotal([...state.retired.values()].map((c) => c.kv));
    let round = batch;
    for (let attempt = 0; round.length > 0; attempt++) {
      const jobKeys = round.map((a) => a.jobKey);
      const res = await cas<AdmitOutcome[]>(ctx, [keys.meta, keys.shutdown, ...jobKeys], (read) => {
        if (read(keys.shutdown)) return { done: round.map(() => 'shutdown' as const) };
        const metaKv = read(keys.meta);
        let queued = admittedOf(metaKv) - retired;
        const outcomes: AdmitOutcome[] = [];
        const compare = [unchanged(keys.meta, metaKv), absent(keys.shutdown)];
        const success: TxnOp[] = [];
        const taken = new Set<string>();
        for (const a of round) {
          const existing = read(a.jobKey);
          if (existing) {
            const j = decodeJson<JobRecord>(existing.value);
            if (j.opId === a.record.opId) {
              outcomes.push({ mine: existing.createRevision });
              continue;
            }
            if (j.state !== 'failed') {
              outcomes.push('exists');
              continue;
            }
          }
          if (taken.has(a.jobKey)) outcomes.push('exists');
          else if (queued >= options.maxQueuedJobs) outcomes.push('full');
          else {
            taken.add(a.jobKey);
            queued++;
            compare.push(unchanged(a.jobKey, existing));
            success.push({ type: 'put', key: a.jobKey, value: encodeJson(a.record) });
            outcomes.push('created');
          }
        }
        if (success.length === 0) return { done: outcomes };
        success.push(admit(keys.meta, metaKv, opId(), success.length));
        return { compare, success, result: outcomes };
      });
      const retry: Admission[] = [];
      round.forEach((a, i) => {
        const outcome = res.value[i] as AdmitOutcome;
        if (outcome === 'full' && attempt === 0) retry.push(a);
        else a.resolve({ outcome, revision: res.revision });
      });
      if (retry.length > 0) {
        const { kvs } = await ctx.retry(() => ctx.store.range(keys.retiredPrefix));
        retired = retiredTotal(kvs);
      }
      round = retry;
    }
  }

  /**
   * Read-your-writes: resolve once the cache applied `revision`, so this node's queries see the
   * write. Bounded by `ms` (a stalled watch must not hold up a write that is already durable).
   */
  async #caughtUp(revision: number, signal: AbortSignal | undefined, ms: number): Promise<void> {
    const bound = combinedSignal(this.#h.ctx, [signal], { ms, reason: () => undefined });
    try {
      await this.#h.state.waitFor(revision, bound.signal);
    } finally {
      bound.dispose();
    }
    if (signal?.aborted) throw abortedError(signal);
  }

  /** Reject every waiter (the node closed). */
  failAll(error: unknown): void {
    for (const set of this.#waiters.values()) for (const w of [...set]) w.fail(error);
    this.#waiters.clear();
  }
}

/** Normalise a payload argument to bytes (or null), enforcing the node's size limit. */
export function toPayload(field: string, payload: unknown, maxBytes: number): Uint8Array | null {
  if (payload === null || payload === undefined) return null;
  let bytes: Uint8Array;
  if (typeof payload === 'string') bytes = encoder.encode(payload);
  else if (payload instanceof Uint8Array) bytes = payload;
  else invalid(field, 'must be a Uint8Array, a string or null');
  checkSize(field, bytes.length, maxBytes);
  return bytes.length === 0 ? null : bytes;
}

export function handlerError(error: StoredError, pool: string, key: string): RotaError {
  return new HandlerError(error.message, { detail: { code: error.code ?? undefined, pool, key } });
}

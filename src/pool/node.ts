/**
 * A pool node (pool.md): this process's membership of one pool. It holds one **pool lease**
 * (TTL `workerTtl`, kept alive with the local-deadline rule) carrying its node record, its worker
 * records and the owner records of the jobs it runs, and a watch-fed cache of the whole pool. A
 * full node reconciles (reconciler.ts); a client-only node only dispatches, stops, notifies and
 * answers queries.
 */
import { combinedSignal } from '../cluster/contender.js';
import type { Cluster } from '../cluster/index.js';
import { LeaseKeeper } from '../cluster/lease-keeper.js';
import type { Ticker, TickerOptions } from '../cluster/ticker.js';
import { decodeJson, encodeJson, type RotaContext } from '../core/context.js';
import { EventBus } from '../core/events.js';
import { uuidv7 } from '../core/ids.js';
import type { Logger } from '../core/logger.js';
import {
  AbortedError,
  abortedError,
  ClientOnlyError,
  LeaseLostError,
  PoolClosedError,
  PoolShuttingDownError,
  type RotaError,
  StopTimeoutError,
} from '../errors.js';
import type { TxnOp } from '../store/port.js';
import { sleep } from '../time/clock.js';
import { checkFunction, checkInt, checkName, invalid } from '../validate.js';
import { abortable, absent } from './cas.js';
import type { PoolEventMap } from './events.js';
import type { JobHandler } from './handler.js';
import type { PoolHost } from './host.js';
import { JobClient, type Payload } from './jobs.js';
import {
  checkOptions,
  checkSignal,
  checkTimeout,
  type DispatchOptions,
  type NotifyOptions,
  type ResolvedPoolOptions,
  type StopJobOptions,
  type StopOptions,
  type WorkerOptions,
} from './options.js';
import type { Ownership } from './ownership.js';
import { Placement } from './placement.js';
import { Reconciler } from './reconciler.js';
import {
  decodePayload,
  type JobRecord,
  type NodeRecord,
  PoolKeys,
  type ShutdownRecord,
  type WorkerRecord,
} from './records.js';
import { type JobProducer, type PoolSchedule, startSchedule } from './schedule.js';
import { type PoolChange, PoolState } from './state.js';
import { type PoolWorker, type PoolWorkerInfo, WorkerImpl } from './worker.js';

/** How often `shutdown()` re-reads whether workers and owners are gone. */
const SHUTDOWN_POLL_MS = 100;
/** Bound on each store call that cleans up after the stops in `removeWorker` and `close`. */
const STORE_CLEANUP_MS = 5000;

/** One job as listed by {@link PoolNode.jobs}. */
export interface PoolJobInfo {
  readonly key: string;
  readonly state: 'active' | 'stopping' | 'failed';
  readonly createdAt: number;
  readonly dispatchedBy: string;
  readonly requeued: boolean;
  /** The owning worker, or null while the job waits for one. */
  readonly workerId: string | null;
  readonly nodeId: string | null;
  readonly ownerState: 'starting' | 'running' | null;
  /** The ownership's fencing token, or null without an owner. */
  readonly token: number | null;
}

export class PoolNode {
  readonly name: string;
  readonly nodeId: string;
  readonly clientOnly: boolean;
  /** This node's pool events (also emitted on `rota.events`). */
  readonly events: EventBus<PoolEventMap>;
  readonly #ctx: RotaContext;
  readonly #cluster: Cluster;
  readonly #options: ResolvedPoolOptions;
  readonly #logger: Logger;
  readonly #keys: PoolKeys;
  readonly #state: PoolState;
  readonly #placement: Placement;
  readonly #reconciler: Reconciler;
  readonly #host: PoolHost;
  readonly #owned = new Map<string, Ownership>();
  readonly #workers = new Map<string, WorkerImpl>();
  readonly #jobs: JobClient;
  readonly #schedules = new Set<PoolSchedule>();
  /** Aborts when the node closed for good: ends the cache, timers and waits. */
  readonly #stop = new AbortController();
  #lease: LeaseKeeper | null = null;
  #recovering = false;
  #closed = false;
  #closing: Promise<void> | null = null;
  #shuttingDown = false;
  #isShutdown = false;

  private constructor(
    ctx: RotaContext,
    cluster: Cluster,
    name: string,
    options: ResolvedPoolOptions,
    private readonly onClosed: () => void,
  ) {
    this.#ctx = ctx;
    this.#cluster = cluster;
    this.name = name;
    this.nodeId = ctx.nodeId;
    this.clientOnly = options.clientOnly;
    this.#options = options;
    this.#logger = options.logger ?? ctx.logger;
    this.events = new EventBus<PoolEventMap>(this.#logger, ctx.events as unknown as EventBus<object>);
    this.#keys = new PoolKeys(ctx.keys, name);
    this.#state = new PoolState(ctx, this.#keys, this.#logger, (change) => this.#onChange(change));
    this.#placement = new Placement(options.placement, (key, picked) =>
      this.#logger.warn(`pool ${name}: the placement option returned an unknown worker for ${key}`, {
        picked: String(picked),
      }),
    );
    const self = this;
    this.#host = {
      ctx,
      pool: name,
      nodeId: ctx.nodeId,
      keys: this.#keys,
      options,
      logger: this.#logger,
      state: this.#state,
      placement: this.#placement,
      owned: this.#owned,
      workers: this.#workers,
      lease: () => (this.#lease?.held ? this.#lease : null),
      get shuttingDown() {
        return self.#shuttingDown;
      },
      closedSignal: this.#stop.signal,
      emit: (event, payload) => this.events.emit(event, payload),
      released: (o) => {
        if (this.#owned.get(o.key) === o) this.#owned.delete(o.key);
        if (o.worker.owned.get(o.key) === o) o.worker.owned.delete(o.key);
        this.#reconciler.poke();
      },
      poke: (delay) => this.#reconciler.poke(delay),
    };
    this.#reconciler = new Reconciler(
      this.#host,
      () => !this.clientOnly && !this.#closed && !this.#recovering && this.#lease !== null,
    );
    this.#jobs = new JobClient(this.#host, {
      get closed() {
        return self.#closed;
      },
      get shuttingDown() {
        return self.#shuttingDown;
      },
      assertOpen: () => this.#assertOpen(),
      shuttingDownError: () => this.#shuttingDownError(),
      closedError: () => this.#closedError(),
    });
  }

  /** @internal Use `rota.pool.join(name, options)`. */
  static async join(
    ctx: RotaContext,
    cluster: Cluster,
    name: string,
    options: ResolvedPoolOptions,
    onClosed: () => void,
  ): Promise<PoolNode> {
    const node = new PoolNode(ctx, cluster, name, options, onClosed);
    try {
      await node.#join();
    } catch (err) {
      node.#closed = true;
      node.#stop.abort();
      node.#reconciler.stop();
      throw err;
    }
    return node;
  }

  async #join(): Promise<void> {
    const ctx = this.#ctx;
    const { kv } = await ctx.retry(() => ctx.store.get(this.#keys.shutdown));
    if (kv) throw this.#shuttingDownError();
    const lease = await this.#grantLease();
    try {
      const record: NodeRecord = { clientOnly: this.clientOnly, joinedAt: ctx.time.now() };
      const res = await ctx.retry(() =>
        ctx.store.txn({
          compare: [absent(this.#keys.shutdown)],
          success: [
            { type: 'put', key: this.#keys.node(this.nodeId), value: encodeJson(record), lease: lease.id },
          ],
        }),
      );
      if (!res.succeeded) throw this.#shuttingDownError();
      this.#lease = lease;
      if (!lease.held) throw new LeaseLostError(`pool ${this.name}: the pool lease was lost while joining`);
      await this.#state.start(this.#stop.signal);
      await this.#state.waitFor(res.revision, this.#stop.signal);
    } catch (err) {
      this.#lease = null;
      await lease.revoke();
      throw err;
    }
    this.events.emit('pool:joined', { pool: this.name, nodeId: this.nodeId, clientOnly: this.clientOnly });
    if (this.#state.shutdown) void this.#onShutdownMarker();
    else this.#reconciler.poke();
  }

  #grantLease(): Promise<LeaseKeeper> {
    let keeper: LeaseKeeper | undefined;
    return LeaseKeeper.grant(
      this.#ctx,
      this.#options.workerTtl,
      { onLost: (reason) => void this.#onLeaseLost(keeper, reason) },
      { signal: this.#stop.signal },
    ).then((k) => {
      keeper = k;
      return k;
    });
  }

  #shuttingDownError(): RotaError {
    return new PoolShuttingDownError(`pool ${this.name} is shutting down`, { detail: { pool: this.name } });
  }

  #closedError(): RotaError {
    return new PoolClosedError(`pool ${this.name} is closed on this node`, { detail: { pool: this.name } });
  }

  #assertOpen(): void {
    this.#ctx.assertOpen();
    if (this.#closed) throw this.#closedError();
  }

  // ----------------------------------------------------------------------------------------------
  // Queries

  /** True once `close()` (or a pool shutdown) closed this node. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** True once this node took part in a pool-wide shutdown. */
  get isShutdown(): boolean {
    return this.#isShutdown;
  }

  /** This node's live workers. */
  workers(): PoolWorker[] {
    return [...this.#workers.values()].filter((w) => !w.isStopped);
  }

  /** Every worker of the pool (from the cache), oldest first. */
  poolWorkers(): PoolWorkerInfo[] {
    return [...this.#state.workers.entries()]
      .map(([id, w]) => ({ id, nodeId: w.value.nodeId, createdAt: w.value.createdAt, state: w.value.state }))
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Keys of dispatched jobs (active or stopping), pool-wide, sorted. `fresh` reads the store. */
  async jobKeys(options: { fresh?: boolean } = {}): Promise<string[]> {
    checkOptions('options', options, ['fresh']);
    this.#assertOpen();
    if (options.fresh) {
      const prefix = `${this.#keys.prefix}jobs/`;
      const { kvs } = await this.#ctx.retry(() => this.#ctx.store.range(prefix));
      const keys: string[] = [];
      for (const kv of kvs) {
        const entry = this.#keys.decode(kv);
        if (entry?.kind === 'job' && entry.value.state !== 'failed') keys.push(entry.key);
      }
      return keys.sort();
    }
    return [...this.#state.jobs.entries()]
      .filter(([, j]) => j.value.state !== 'failed')
      .map(([k]) => k)
      .sort();
  }

  /**
   * Every dispatched job of the pool with its owner, from the watch-fed cache, sorted by key: for
   * admin views (`rota pool jobs`, the dashboard's jobs per worker). `workerId`/`nodeId` are null
   * while the job has no owner; `failed` jobs are included with their last error.
   */
  jobs(): PoolJobInfo[] {
    this.#assertOpen();
    return [...this.#state.jobs.entries()]
      .map(([key, j]) => {
        const owner = this.#state.owners.get(key);
        return {
          key,
          state: j.value.state,
          createdAt: j.value.createdAt,
          dispatchedBy: j.value.dispatchedBy,
          requeued: j.value.requeued,
          workerId: owner?.value.workerId ?? null,
          nodeId: owner?.value.nodeId ?? null,
          ownerState: owner?.value.state ?? null,
          token: owner?.kv.createRevision ?? null,
        };
      })
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /**
   * The payload of a dispatched job: bytes, `null` when it has none, `undefined` when there is no
   * such job (active or stopping). `fresh` reads the store.
   */
  async jobPayload(key: string, options: { fresh?: boolean } = {}): Promise<Uint8Array | null | undefined> {
    checkName('key', key);
    checkOptions('options', options, ['fresh']);
    this.#assertOpen();
    let record: JobRecord | undefined;
    if (options.fresh) {
      const { kv } = await this.#ctx.retry(() => this.#ctx.store.get(this.#keys.job(key)));
      record = kv ? decodeJson<JobRecord>(kv.value) : undefined;
    } else record = this.#state.jobs.get(key)?.value;
    if (!record || record.state === 'failed') return undefined;
    return decodePayload(record.payload);
  }

  // ----------------------------------------------------------------------------------------------
  // Workers

  /** Add a worker running `handler`; it is eligible for jobs as soon as its record exists. */
  async addWorker(handler: JobHandler, options: WorkerOptions = {}): Promise<PoolWorker> {
    if (typeof handler !== 'object' || handler === null)
      invalid('handler', 'must be an object with start and stop');
    checkFunction('handler.start', handler.start);
    checkFunction('handler.stop', handler.stop);
    if (handler.notify !== undefined) checkFunction('handler.notify', handler.notify);
    checkOptions('options', options, ['concurrency']);
    const concurrency = checkInt('options.concurrency', options.concurrency ?? 1, 1, 10_000);
    if (this.clientOnly) {
      throw new ClientOnlyError(`pool ${this.name}: a client-only node cannot host workers`, {
        detail: { pool: this.name },
      });
    }
    this.#assertOpen();
    if (this.#shuttingDown || this.#state.shutdown) throw this.#shuttingDownError();
    const ctx = this.#ctx;
    const worker = new WorkerImpl(uuidv7(), this.nodeId, ctx.time.now(), handler, concurrency, (err) =>
      this.#logger.error('a pool worker operation failed', { error: err, pool: this.name }),
    );
    this.#workers.set(worker.id, worker);
    const lease = this.#lease;
    if (lease) {
      try {
        const res = await ctx.retry(() =>
          ctx.store.txn({
            compare: [absent(this.#keys.shutdown)],
            success: [this.#workerPut(worker, lease.id)],
          }),
        );
        if (!res.succeeded) throw this.#shuttingDownError();
        await this.#state.waitFor(res.revision, this.#stop.signal);
      } catch (err) {
        this.#workers.delete(worker.id);
        worker.markStopped();
        throw err;
      }
    }
    // Without a lease (recovering), the record is written with the new lease.
    this.events.emit('worker:added', { pool: this.name, workerId: worker.id, nodeId: this.nodeId });
    this.#reconciler.poke();
    return worker;
  }

  #workerPut(worker: WorkerImpl, leaseId: string): TxnOp {
    const record: WorkerRecord = {
      nodeId: this.nodeId,
      createdAt: worker.createdAt,
      state: worker.draining ? 'draining' : 'active',
    };
    return { type: 'put', key: this.#keys.worker(worker.id), value: encodeJson(record), lease: leaseId };
  }

  /**
   * Remove a worker: mark it draining (no new jobs), stop and release each of its jobs (they
   * restart elsewhere), delete its record. `ROTA_STOP_TIMEOUT` after `timeout` (default
   * workerShutdownTimeout); jobs whose stop has not settled stay owned until it does.
   */
  async removeWorker(worker: PoolWorker, options: StopOptions = {}): Promise<void> {
    const w = worker instanceof WorkerImpl ? worker : undefined;
    if (!w || this.#workers.get(w.id) !== w) {
      if (w?.isStopped) return;
      invalid('worker', 'is not a worker of this pool node');
    }
    const { timeout, signal } = this.#stopOptions(options);
    this.#assertOpen();
    if (w.isStopped) return;
    await this.#removeWorker(w, 'removed', timeout, signal);
  }

  #stopOptions(options: StopOptions): { timeout: number; signal: AbortSignal | undefined } {
    checkOptions('options', options, ['timeout', 'signal']);
    return {
      timeout: checkTimeout('options.timeout', options.timeout, this.#options.workerShutdownTimeout),
      signal: checkSignal('options.signal', options.signal),
    };
  }

  async #removeWorker(
    w: WorkerImpl,
    reason: 'removed' | 'closed' | 'shutdown',
    timeout: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const ctx = this.#ctx;
    const bound = combinedSignal(ctx, [signal], {
      ms: timeout,
      reason: () =>
        new StopTimeoutError(`stopping the jobs of worker ${w.id} took longer than ${timeout} ms`, {
          detail: { pool: this.name, workerId: w.id, timeout },
        }),
    });
    try {
      w.draining = true;
      this.#reconciler.poke();
      const lease = this.#lease;
      if (lease && reason !== 'shutdown') {
        await ctx
          .retry(
            () =>
              ctx.store.txn({
                compare: [{ key: this.#keys.worker(w.id), target: 'version', op: '>', value: 0 }],
                success: [this.#workerPut(w, lease.id)],
              }),
            bound.signal,
          )
          .catch((err) => this.#logger.debug('could not mark a worker draining', { error: err }));
      }
      // Stop every job (again for jobs acquired while the draining mark spread), in parallel.
      while (w.owned.size > 0 && !bound.signal.aborted) {
        const stops = [...w.owned.values()].map((o) => o.requestStop(reason));
        await raceSignal(Promise.allSettled(stops), bound.signal);
      }
      // Its own bound: the stop budget may be spent, the record should still go.
      const deleting = combinedSignal(ctx, [], { ms: STORE_CLEANUP_MS, reason: () => new AbortedError() });
      await ctx
        .retry(() => abortable(ctx.store.delete(this.#keys.worker(w.id)), deleting.signal), deleting.signal)
        .catch((err) => this.#logger.debug('could not delete a worker record', { error: err }))
        .finally(() => deleting.dispose());
      if (bound.signal.aborted) {
        const reasonErr = bound.signal.reason;
        throw signal?.aborted ? abortedError(signal) : reasonErr;
      }
    } finally {
      bound.dispose();
      w.markStopped();
      this.#workers.delete(w.id);
      this.events.emit('worker:removed', { pool: this.name, workerId: w.id, nodeId: this.nodeId });
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Jobs (jobs.ts)

  /**
   * Dispatch job `key` with `payload`: admitted durably in one txn (`ROTA_JOB_EXISTS`,
   * `ROTA_QUEUE_FULL`, `ROTA_POOL_SHUTTING_DOWN`), then, with `wait` (default), resolves once a
   * worker started it, rejects `HandlerError` when its first start failed, or
   * `ROTA_DISPATCH_TIMEOUT` / `ROTA_ABORTED` (the job stays dispatched).
   */
  dispatch(key: string, payload: Payload = null, options: DispatchOptions = {}): Promise<void> {
    return this.#jobs.dispatch(key, payload, options);
  }

  /**
   * Stop job `key` on whichever worker runs it (or delete it if nobody does). Resolves `false` when
   * there is no such job. With `wait` (default) it resolves once the job is stopped and deleted,
   * and rejects with the first `HandlerError` its `stop` throws (the stop keeps retrying).
   */
  stopJob(key: string, options: StopJobOptions = {}): Promise<boolean> {
    return this.#jobs.stopJob(key, options);
  }

  /**
   * Send `payload` to the worker running job `key` (`ROTA_JOB_NOT_FOUND` unless the job is
   * active). Entries wait through ownership gaps for up to `notifyTtl`. With `wait`, resolves when
   * the handler's `notify` returned, and rejects `HandlerError`, `ROTA_NOTIFY_UNSUPPORTED` or
   * `ROTA_TIMEOUT` (default timeout: notifyTtl).
   */
  notify(key: string, payload: Payload = null, options: NotifyOptions = {}): Promise<void> {
    return this.#jobs.notify(key, payload, options);
  }

  // ----------------------------------------------------------------------------------------------
  // Cache changes

  #onChange(change: PoolChange): void {
    if (change.type === 'sync') {
      this.#reconciler.poke();
      this.#jobs.check(null);
      if (this.#state.shutdown) void this.#onShutdownMarker();
      return;
    }
    const entry = change.next ?? change.prev;
    if (!entry) return;
    switch (entry.kind) {
      case 'worker':
        this.#reconciler.poke(this.#options.rebalanceDelay);
        break;
      case 'job':
        if (change.type === 'delete') this.#placement.forget(entry.key);
        this.#reconciler.poke();
        this.#jobs.check(entry.key);
        break;
      case 'owner':
        this.#reconciler.poke();
        this.#jobs.check(entry.key);
        break;
      case 'inbox':
        this.#reconciler.poke();
        this.#jobs.check(entry.key);
        if (change.type === 'delete' && change.prev?.kind === 'inbox') {
          const prev = change.prev;
          if (!prev.value.reply && prev.value.from === this.nodeId) {
            this.events.emit('notification:expired', { pool: this.name, key: prev.key, id: prev.id });
          }
        }
        break;
      case 'shutdown':
        if (change.type === 'put') void this.#onShutdownMarker();
        break;
      default:
        break;
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Lease loss and recovery

  async #onLeaseLost(keeper: LeaseKeeper | undefined, reason: string): Promise<void> {
    if (!keeper || keeper !== this.#lease || this.#closed) return;
    const ctx = this.#ctx;
    this.#lease = null;
    this.#recovering = true;
    this.#logger.warn(`pool ${this.name}: the pool lease was lost; stopping local jobs`, { reason });
    this.events.emit('pool:lease-lost', { pool: this.name, nodeId: this.nodeId, reason });
    const stops = [...this.#owned.values()].map((o) => o.lose(`the pool lease was lost: ${reason}`));
    // Bounded by the time the store may still hold the lease.
    const left = Math.max(0, keeper.lastAckSent + keeper.ttl - ctx.clock.monotonic());
    await raceSignal(Promise.allSettled(stops), undefined, left, ctx);
    void keeper.revoke();
    await this.#recover();
  }

  /** Grant a new lease and register the node and its workers again. */
  async #recover(): Promise<void> {
    const ctx = this.#ctx;
    for (let attempt = 1; !this.#closed; attempt++) {
      try {
        const lease = await this.#grantLease();
        try {
          const record: NodeRecord = { clientOnly: this.clientOnly, joinedAt: ctx.time.now() };
          const res = await ctx.retry(
            () =>
              ctx.store.txn({
                compare: [absent(this.#keys.shutdown)],
                success: [
                  {
                    type: 'put',
                    key: this.#keys.node(this.nodeId),
                    value: encodeJson(record),
                    lease: lease.id,
                  },
                  ...[...this.#workers.values()].map((w) => this.#workerPut(w, lease.id)),
                ],
              }),
            this.#stop.signal,
          );
          if (this.#closed) {
            await lease.revoke();
            return;
          }
          if (!res.succeeded) {
            // A shutdown is in progress: take part in it.
            await lease.revoke();
            this.#recovering = false;
            void this.#onShutdownMarker();
            return;
          }
          this.#lease = lease;
          this.#recovering = false;
          this.events.emit('pool:recovered', { pool: this.name, nodeId: this.nodeId });
          this.#reconciler.poke();
          // Lost again before it was installed (its loss was ignored then): handle it now.
          if (!lease.held) void this.#onLeaseLost(lease, 'lost while registering');
          return;
        } catch (err) {
          await lease.revoke();
          throw err;
        }
      } catch (err) {
        if (this.#closed) return;
        if (attempt === 1 || attempt % 10 === 0) {
          this.#logger.warn(`pool ${this.name}: could not register again; retrying`, { error: err, attempt });
        }
        const delay = ctx.random() * Math.min(5000, 100 * 2 ** Math.min(attempt, 6));
        await sleep(ctx.clock, delay, this.#stop.signal).catch(() => undefined);
      }
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Close and shutdown

  /**
   * Leave the pool: stop this node's jobs (`stop(job, 'closed')`) and release them to other
   * nodes, delete the node's records and revoke its lease. Idempotent. Later calls on this node
   * fail with `ROTA_POOL_CLOSED`. `ROTA_STOP_TIMEOUT` after `timeout` (default
   * workerShutdownTimeout); the lease is revoked anyway.
   */
  close(options: StopOptions = {}): Promise<void> {
    const { timeout, signal } = this.#stopOptions(options);
    this.#closing ??= this.#close('closed', timeout, signal);
    return this.#closing;
  }

  async #close(
    reason: 'closed' | 'shutdown',
    timeout: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const ctx = this.#ctx;
    this.#closed = true;
    for (const s of this.#schedules) s.stop();
    const errors: unknown[] = [];
    await Promise.all(
      [...this.#workers.values()].map((w) =>
        this.#removeWorker(w, reason, timeout, signal).catch((err) => errors.push(err)),
      ),
    );
    this.#reconciler.stop();
    const lease = this.#lease;
    this.#lease = null;
    for (const o of this.#owned.values()) void o.lose('the pool node closed');
    if (lease) {
      const bound = combinedSignal(ctx, [], { ms: STORE_CLEANUP_MS, reason: () => new AbortedError() });
      await ctx
        .retry(() => abortable(ctx.store.delete(this.#keys.node(this.nodeId)), bound.signal), bound.signal)
        .catch((err) => this.#logger.debug('could not delete the pool node record', { error: err }));
      bound.dispose();
      // A store that does not answer must not hold up closing: the lease then expires by itself.
      await raceSignal(lease.revoke(), undefined, STORE_CLEANUP_MS, ctx);
    }
    this.#stop.abort();
    this.#jobs.failAll(this.#closedError());
    if (reason === 'shutdown') {
      this.#isShutdown = true;
      this.events.emit('pool:shutdown', { pool: this.name, nodeId: this.nodeId });
    } else this.events.emit('pool:closed', { pool: this.name, nodeId: this.nodeId });
    this.onClosed();
    if (errors.length > 0) throw errors[0];
  }

  /**
   * Shut the whole pool down: every node stops all its jobs (`stop(job, 'shutdown')`), removes
   * its workers and closes; then every key of the pool is deleted, so it can be joined again.
   * Resolves at once on a closed node; `ROTA_CLIENT_ONLY` on a client-only one. Honours `signal`
   * (`ROTA_ABORTED`) and `timeout` (default workerShutdownTimeout → `ROTA_STOP_TIMEOUT`); the
   * shutdown itself goes on.
   */
  async shutdown(options: StopOptions = {}): Promise<void> {
    const { timeout, signal } = this.#stopOptions(options);
    if (this.clientOnly) {
      throw new ClientOnlyError(`pool ${this.name}: a client-only node cannot shut the pool down`, {
        detail: { pool: this.name },
      });
    }
    if (this.#closed) return;
    this.#ctx.assertOpen();
    const ctx = this.#ctx;
    const bound = combinedSignal(ctx, [signal], {
      ms: timeout,
      reason: () =>
        new StopTimeoutError(`pool ${this.name} did not shut down within ${timeout} ms`, {
          detail: { pool: this.name, timeout },
        }),
    });
    try {
      const marker: ShutdownRecord = { by: this.nodeId, at: ctx.time.now() };
      await ctx.retry(
        () =>
          ctx.store.txn({
            compare: [absent(this.#keys.shutdown)],
            success: [{ type: 'put', key: this.#keys.shutdown, value: encodeJson(marker) }],
          }),
        bound.signal,
      );
      const local = this.#onShutdownMarker();
      for (;;) {
        if (await this.#finalizeShutdown(bound.signal)) break;
        await sleep(ctx.clock, SHUTDOWN_POLL_MS, bound.signal);
      }
      await raceSignal(local, bound.signal);
    } catch (err) {
      if (signal?.aborted) throw abortedError(signal);
      if (bound.signal.aborted) throw bound.signal.reason;
      throw err;
    } finally {
      bound.dispose();
    }
  }

  /** This node's part of a pool shutdown (once): stop and delete its jobs, close. */
  #onShutdownMarker(): Promise<void> {
    if (this.#shuttingDown) return this.#closing ?? Promise.resolve();
    this.#shuttingDown = true;
    if (this.#closing) return this.#closing;
    this.#closing = this.#close('shutdown', this.#options.workerShutdownTimeout, undefined);
    const closing = this.#closing;
    void closing
      .catch((err) => this.#logger.warn(`pool ${this.name}: shutdown did not finish cleanly`, { error: err }))
      .then(() => this.#finalizeShutdown())
      .catch((err) => this.#logger.debug('shutdown cleanup deferred', { error: err }));
    return closing.catch(() => undefined);
  }

  /**
   * If a shutdown marker exists and no worker or owner is left, delete every key of the pool and
   * then the marker. Resolves whether the pool is fully shut down.
   */
  async #finalizeShutdown(signal?: AbortSignal): Promise<boolean> {
    const ctx = this.#ctx;
    const p = this.#keys.prefix;
    const read = await ctx.retry(
      () =>
        ctx.store.txn({
          compare: [],
          success: [
            { type: 'get', key: this.#keys.shutdown },
            { type: 'range', prefix: `${p}workers/`, limit: 1 },
            { type: 'range', prefix: `${p}owners/`, limit: 1 },
          ],
        }),
      signal,
    );
    const [marker, workers, owners] = read.results;
    if (marker?.type !== 'get' || !marker.kv) return true; // finished (by us or another node)
    if (workers?.type === 'range' && workers.kvs.length > 0) return false;
    if (owners?.type === 'range' && owners.kvs.length > 0) return false;
    const markerRevision = marker.kv.modRevision;
    const cleared = await ctx.retry(
      () =>
        ctx.store.txn({
          compare: [{ key: this.#keys.shutdown, target: 'modRevision', op: '==', value: markerRevision }],
          success: ['jobs/', 'owners/', 'workers/', 'nodes/', 'inbox/', 'producers/']
            .map((sub) => ({ type: 'delete' as const, key: p + sub, prefix: true }))
            .concat([{ type: 'delete' as const, key: this.#keys.meta, prefix: true }]),
        }),
      signal,
    );
    if (!cleared.succeeded) return false;
    await ctx.retry(
      () =>
        ctx.store.txn({
          compare: [{ key: this.#keys.shutdown, target: 'modRevision', op: '==', value: markerRevision }],
          success: [{ type: 'delete', key: this.#keys.shutdown }],
        }),
      signal,
    );
    return true;
  }

  // ----------------------------------------------------------------------------------------------
  // Producers and tickers

  /**
   * Run `producer.plan()` every `intervalMs` on exactly one participating node per tick (the first
   * tick at once) and apply the plan: dispatch the `start` entries, stop the `stop` ones (or, with
   * `stopAll`, every recorded key not started by this plan). A `ScheduleStopError` from `plan` ends
   * the schedule on every node.
   */
  async schedule(
    producer: JobProducer,
    intervalMs: number,
    options: { signal?: AbortSignal } = {},
  ): Promise<PoolSchedule> {
    this.#assertOpen();
    const schedule = await startSchedule(
      {
        pool: this,
        cluster: this.#cluster,
        ctx: this.#ctx,
        keys: this.#keys,
        logger: this.#logger,
        emit: (event, payload) => this.events.emit(event, payload),
      },
      producer,
      intervalMs,
      options,
    );
    this.#schedules.add(schedule);
    void schedule.done.finally(() => this.#schedules.delete(schedule));
    return schedule;
  }

  /** A distributed ticker of this pool: `cluster.ticker('pool:<P>:' + name, …)`. */
  async ticker(name: string, intervalMs: number, options?: TickerOptions): Promise<Ticker> {
    checkName('name', name);
    this.#assertOpen();
    return this.#cluster.ticker(`pool:${this.name}:${name}`, intervalMs, options);
  }
}

/**
 * Wait for `promise`, or until `signal` aborts, or `ms` of `ctx.clock` pass (whichever first).
 * Never rejects because of the bound.
 */
async function raceSignal(
  promise: Promise<unknown>,
  signal: AbortSignal | undefined,
  ms?: number,
  ctx?: RotaContext,
): Promise<void> {
  if (signal?.aborted) return;
  let onAbort: (() => void) | undefined;
  let timer: ReturnType<RotaContext['clock']['setTimeout']> | undefined;
  await Promise.race([
    promise.then(
      () => undefined,
      () => undefined,
    ),
    new Promise<void>((resolve) => {
      onAbort = resolve;
      signal?.addEventListener('abort', onAbort, { once: true });
      if (ms !== undefined && ctx) timer = ctx.clock.setTimeout(resolve, ms);
    }),
  ]);
  if (onAbort) signal?.removeEventListener('abort', onAbort);
  if (timer !== undefined) ctx?.clock.clearTimeout(timer);
}

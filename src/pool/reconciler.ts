/**
 * The reconciler of a full node (pool.md §2.4). It runs on cache changes (coalesced), after its
 * own writes, at due times (backoffs, fallbacks) and every `resyncInterval`, and for each job in
 * the cache decides one of:
 *
 * 1. **Acquire**: an `active`, unowned, due job whose target (or, after `ackGracePeriod` unowned,
 *    next-ranked worker) is a local worker that can take it → txn: owner absent, job unchanged,
 *    no shutdown marker → owner `starting` on the pool lease; then the worker starts it.
 * 2. **Handoff**: a job running here whose target is another worker → `stop(job, 'rebalanced')`,
 *    then release. The new target acquires only after the release: stop before start.
 * 3. **Stop**: a `stopping` job owned here → `stop(job, 'stopped')` and delete; unowned → delete.
 * 4. Deliver inbox entries of jobs running here; delete failed first starts nobody collected.
 *
 * It also checks each local ownership against the store: an owner record that vanished (or a job
 * record that did) ends the local execution.
 */
import { setMaxListeners } from 'node:events';
import type { LeaseKeeper } from '../cluster/lease-keeper.js';
import { decodeJson, encodeJson } from '../core/context.js';
import { opId } from '../core/ids.js';
import { isRotaError } from '../errors.js';
import type { TxnOp } from '../store/port.js';
import type { TimerHandle } from '../time/clock.js';
import { retire } from './admission.js';
import { absent, cas, unchanged } from './cas.js';
import type { PoolHost } from './host.js';
import { jobDeletes, Ownership } from './ownership.js';
import type { JobRecord, OwnerRecord } from './records.js';
import type { Cached } from './state.js';
import type { WorkerImpl } from './worker.js';

/** Acquire txns in flight per node at most (the rest wait for the next pass). */
const MAX_ACQUIRING = 32;

export class Reconciler {
  #timer: TimerHandle | undefined;
  /** Local monotonic time the armed timer fires at. */
  #timerAt = Number.POSITIVE_INFINITY;
  /** Keys with a txn of ours in flight (acquire, delete, release). */
  readonly #inflight = new Set<string>();
  #acquiring = 0;
  /** When each eligible job was first seen unowned (local monotonic), per job modRevision. */
  readonly #unowned = new Map<string, { since: number; revision: number }>();
  #stopped = false;
  /** One abort signal per pool lease for the acquire txns (many listeners; see `#leaseSignal`). */
  #scope: { lease: LeaseKeeper; signal: AbortSignal } | null = null;

  constructor(
    private readonly host: PoolHost,
    /** False while the node may not reconcile (client-only, recovering, closing). */
    private readonly enabled: () => boolean,
  ) {}

  /** Run a pass after `delayMs` (coalesced with any earlier pass already planned). */
  poke(delayMs = 0): void {
    if (this.#stopped) return;
    const { clock } = this.host.ctx;
    const at = clock.monotonic() + Math.max(0, delayMs);
    if (at >= this.#timerAt) return;
    clock.clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = clock.setTimeout(() => {
      this.#timerAt = Number.POSITIVE_INFINITY;
      this.#timer = undefined;
      this.pass();
    }, delayMs);
  }

  stop(): void {
    this.#stopped = true;
    this.host.ctx.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  /** One reconcile pass (synchronous decisions; the writes run in the background). */
  pass(): void {
    if (this.#stopped) return;
    const { host } = this;
    let wake = host.options.resyncInterval;
    try {
      if (!this.enabled()) return;
      wake = Math.min(wake, this.#pass());
    } catch (err) {
      host.logger.error('pool reconcile pass failed', { error: err, pool: host.pool });
    } finally {
      this.poke(wake);
    }
  }

  /** Returns the delay until the next due time it saw. */
  #pass(): number {
    const { host } = this;
    const { state, placement, ctx, options } = host;
    const lease = host.lease();
    if (!lease) return options.resyncInterval;
    placement.setWorkers(
      [...state.workers.entries()]
        .filter(([id, w]) => w.value.state === 'active' && !host.workers.get(id)?.draining)
        .map(([id, w]) => ({ id, createdAt: w.value.createdAt })),
    );
    const now = ctx.time.now();
    const mono = ctx.clock.monotonic();
    let wake = Number.POSITIVE_INFINITY;

    // Local ownerships against the store's view.
    for (const o of host.owned.values()) {
      if (o.lost || o.phase === 'ended' || state.revision < o.token) continue;
      const owner = state.owners.get(o.key);
      if (!owner || owner.kv.createRevision !== o.token) {
        void o.lose('its owner record was deleted');
        continue;
      }
      const job = state.jobs.get(o.key);
      if (!job || job.kv.createRevision !== o.jobRevision) {
        void o.requestStop(host.shuttingDown ? 'shutdown' : 'stopped');
      }
    }

    for (const [key, job] of state.jobs) {
      const rec = job.value;
      const mine = host.owned.get(key);
      if (rec.state === 'stopping') {
        this.#unowned.delete(key);
        if (mine) {
          if (!mine.lost && mine.phase !== 'ended')
            void mine.requestStop(host.shuttingDown ? 'shutdown' : 'stopped');
        } else if (!state.owners.has(key) && !this.#inflight.has(key)) this.#deleteUnowned(key, job);
        continue;
      }
      if (rec.state === 'failed') {
        this.#unowned.delete(key);
        if (!rec.requeued && !mine && !this.#inflight.has(key)) {
          const due = rec.failedAt + options.ackGracePeriod;
          if (now >= due) this.#deleteFailed(key, job);
          else wake = Math.min(wake, due - now);
        }
        continue;
      }
      // active
      if (mine) {
        this.#unowned.delete(key);
        if (mine.running && !mine.worker.draining) {
          const { target } = placement.pick(key, rec.rankOffset);
          if (target !== null && target !== mine.worker.id) void mine.requestStop('rebalanced');
          else this.#deliver(mine);
        }
        continue;
      }
      if (state.owners.has(key) || this.#inflight.has(key)) {
        this.#unowned.delete(key);
        continue;
      }
      if (host.shuttingDown || state.shutdown) continue;
      if (rec.retryAt > now) {
        this.#unowned.delete(key);
        wake = Math.min(wake, rec.retryAt - now);
        continue;
      }
      const pick = placement.pick(key, rec.rankOffset);
      const target = pick.target === null ? undefined : host.workers.get(pick.target);
      if (target?.canTake(key)) {
        if (this.#acquiring < MAX_ACQUIRING) this.#acquire(key, job, target, false);
        continue;
      }
      // Not ours to take (yet): after ackGracePeriod unowned, the next-ranked worker may take it.
      let seen = this.#unowned.get(key);
      if (!seen || seen.revision !== job.kv.modRevision) {
        seen = { since: mono, revision: job.kv.modRevision };
        this.#unowned.set(key, seen);
      }
      const due = seen.since + options.ackGracePeriod;
      if (mono < due) {
        wake = Math.min(wake, due - mono);
        continue;
      }
      const next = pick.next === null ? undefined : host.workers.get(pick.next);
      if (next?.canTake(key) && this.#acquiring < MAX_ACQUIRING) this.#acquire(key, job, next, true);
    }
    for (const key of this.#unowned.keys()) if (!state.jobs.has(key)) this.#unowned.delete(key);

    // Owner records on our lease that no local ownership claims (a release that failed).
    for (const [key, owner] of state.owners) {
      if (owner.value.nodeId !== host.nodeId || owner.kv.lease !== lease.id) continue;
      if (host.owned.has(key) || this.#inflight.has(key)) continue;
      this.#releaseOrphan(key, owner);
    }
    return wake;
  }

  /** Queue the unanswered inbox entries of a job running here, oldest first. */
  #deliver(o: Ownership): void {
    const box = this.host.state.inbox.get(o.key);
    if (!box) return;
    const entries = [...box.entries()]
      .filter(([id, e]) => !e.value.reply && !o.delivering.has(id))
      .sort((a, b) => a[1].kv.createRevision - b[1].kv.createRevision);
    for (const [id] of entries) o.deliver(id);
  }

  #background(key: string, what: string, work: () => Promise<void>): void {
    this.#inflight.add(key);
    void work()
      .catch((err) => {
        if (isRotaError(err, 'ROTA_LEASE_NOT_FOUND')) {
          // The store expired our lease before we noticed: handle it as a lost lease now.
          this.host.lease()?.lose('the store reports the lease gone');
          return;
        }
        if (isRotaError(err, 'ROTA_ABORTED')) return; // the lease was lost meanwhile
        this.host.logger.warn(`pool ${this.host.pool}: ${what} of ${key} failed`, { error: err });
      })
      .finally(() => {
        this.#inflight.delete(key);
        this.poke();
      });
  }

  /** Aborts when `lease` is lost; shared by every acquire txn on it (so no listener-count warning). */
  #leaseSignal(lease: LeaseKeeper): AbortSignal {
    if (this.#scope?.lease !== lease) {
      const controller = new AbortController();
      setMaxListeners(0, controller.signal);
      if (lease.signal.aborted) controller.abort(lease.signal.reason);
      else
        lease.signal.addEventListener('abort', () => controller.abort(lease.signal.reason), { once: true });
      this.#scope = { lease, signal: controller.signal };
    }
    return this.#scope.signal;
  }

  #acquire(key: string, job: Cached<JobRecord>, worker: WorkerImpl, fallback: boolean): void {
    const { host } = this;
    const lease = host.lease();
    if (!lease) return;
    const { keys, ctx, state } = host;
    const ownerKey = keys.owner(key);
    const jobKey = keys.job(key);
    const id = opId();
    this.#acquiring++;
    this.#background(key, 'acquire', async () => {
      try {
        const initial = new Map([
          [ownerKey, null],
          [jobKey, job.kv],
          [keys.shutdown, state.shutdown?.kv ?? null],
        ]);
        const res = await cas<number | null>(
          ctx,
          [ownerKey, jobKey, keys.shutdown],
          (read) => {
            const owner = read(ownerKey);
            if (owner) {
              // Ours after all (an ambiguous retry that had committed)?
              const o = decodeJson<OwnerRecord>(owner.value);
              return { done: o.opId === id ? owner.createRevision : null };
            }
            const jobKv = read(jobKey);
            // Only the job version this pass decided on: anything newer gets a fresh decision.
            if (!jobKv || jobKv.modRevision !== job.kv.modRevision || read(keys.shutdown))
              return { done: null };
            const record: OwnerRecord = {
              workerId: worker.id,
              nodeId: host.nodeId,
              state: 'starting',
              opId: id,
            };
            const success: TxnOp[] = [
              { type: 'put', key: ownerKey, value: encodeJson(record), lease: lease.id },
            ];
            if (fallback) {
              const bumped: JobRecord = { ...job.value, rankOffset: job.value.rankOffset + 1 };
              success.push({ type: 'put', key: jobKey, value: encodeJson(bumped) });
            }
            return {
              compare: [absent(ownerKey), unchanged(jobKey, jobKv), absent(keys.shutdown)],
              success,
              result: 0,
            };
          },
          { initial, signal: this.#leaseSignal(lease) },
        );
        const token = res.wrote ? res.revision : res.value;
        if (!token) return;
        if (host.lease() !== lease || !lease.held || worker.isStopped || host.closedSignal.aborted) {
          // The lease went (or the worker) while acquiring: the record goes with the old lease,
          // or is released here; nothing starts.
          if (host.lease() === lease && lease.held) {
            await ctx.retry(() =>
              ctx.store.txn({
                compare: [{ key: ownerKey, target: 'createRevision', op: '==', value: token }],
                success: [{ type: 'delete', key: ownerKey }],
              }),
            );
          }
          return;
        }
        const latest =
          res.wrote && fallback ? { ...job.value, rankOffset: job.value.rankOffset + 1 } : job.value;
        const ownership = new Ownership(host, worker, token, lease.id, job.kv, latest, key);
        host.owned.set(key, ownership);
        worker.owned.set(key, ownership);
        this.#unowned.delete(key);
        ownership.begin();
      } finally {
        this.#acquiring--;
      }
    });
  }

  /** A `stopping` job nobody owns: delete it (compare: still unowned, unchanged). */
  #deleteUnowned(key: string, job: Cached<JobRecord>): void {
    const { host } = this;
    this.#background(key, 'delete', async () => {
      await deleteUnownedJob(host, key, job.kv.createRevision, (j) => j.state === 'stopping');
    });
  }

  /** A failed first start nobody collected within ackGracePeriod: delete it. */
  #deleteFailed(key: string, job: Cached<JobRecord>): void {
    const { host } = this;
    this.#background(key, 'cleanup', async () => {
      await deleteUnownedJob(host, key, job.kv.createRevision, (j) => j.state === 'failed' && !j.requeued);
    });
  }

  #releaseOrphan(key: string, owner: Cached<OwnerRecord>): void {
    const { ctx, keys } = this.host;
    this.#background(key, 'release', async () => {
      await ctx.retry(() =>
        ctx.store.txn({
          compare: [
            { key: keys.owner(key), target: 'createRevision', op: '==', value: owner.kv.createRevision },
          ],
          success: [{ type: 'delete', key: keys.owner(key) }],
        }),
      );
    });
  }
}

/**
 * Delete an unowned job record of incarnation `createRevision` when `when(record)` holds, with its
 * producer records (a job that never started leaves the admission count). Resolves whether it
 * deleted.
 */
export async function deleteUnownedJob(
  host: Pick<PoolHost, 'ctx' | 'keys' | 'state'>,
  key: string,
  createRevision: number,
  when: (record: JobRecord) => boolean,
): Promise<boolean> {
  const { ctx, keys, state } = host;
  const ownerKey = keys.owner(key);
  const jobKey = keys.job(key);
  const producerKeys = state.producerKeysOf(key);
  const retiredKey = keys.retired(key);
  const res = await cas<boolean>(ctx, [jobKey, ownerKey, retiredKey], (read) => {
    const jobKv = read(jobKey);
    if (!jobKv || jobKv.createRevision !== createRevision || read(ownerKey)) return { done: false };
    const j = decodeJson<JobRecord>(jobKv.value);
    if (!when(j)) return { done: false };
    const compare = [unchanged(jobKey, jobKv), absent(ownerKey)];
    const success = jobDeletes(keys, key, producerKeys);
    if (!j.requeued && j.state !== 'failed') {
      const r = retire(retiredKey, read(retiredKey));
      compare.push(r.compare);
      success.push(r.put);
    }
    return { compare, success, result: true };
  });
  return res.value;
}

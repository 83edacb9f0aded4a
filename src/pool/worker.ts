/** A local worker: its handler, its control queues and the jobs it owns. */
import type { JobHandler, PoolJob } from './handler.js';
import type { Ownership } from './ownership.js';
import { KeyQueues } from './queues.js';

/** A worker of this node (`pool.addWorker`). */
export interface PoolWorker {
  readonly id: string;
  readonly nodeId: string;
  /** Store time of `addWorker`. */
  readonly createdAt: number;
  /** Jobs running on this worker (started, not stopped), sorted by key. */
  jobs(): PoolJob[];
  /** True once the worker was removed (or its node closed). */
  readonly isStopped: boolean;
}

/** A worker of the pool as seen by every node (`pool.poolWorkers()`). */
export interface PoolWorkerInfo {
  readonly id: string;
  readonly nodeId: string;
  readonly createdAt: number;
  readonly state: 'active' | 'draining';
}

export class WorkerImpl implements PoolWorker {
  readonly queues: KeyQueues;
  /** Ownerships of this worker by key. */
  readonly owned = new Map<string, Ownership>();
  /** Set locally before the draining record is written: no new acquisitions, no handoffs. */
  draining = false;
  #stopped = false;

  constructor(
    readonly id: string,
    readonly nodeId: string,
    readonly createdAt: number,
    readonly handler: JobHandler,
    concurrency: number,
    onError: (err: unknown) => void,
  ) {
    this.queues = new KeyQueues(concurrency, onError);
  }

  jobs(): PoolJob[] {
    const out: PoolJob[] = [];
    for (const o of this.owned.values()) if (o.holding) out.push(o.job);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  get isStopped(): boolean {
    return this.#stopped;
  }

  markStopped(): void {
    this.#stopped = true;
  }

  /** May this worker take `key` now? */
  canTake(key: string): boolean {
    return !this.draining && !this.#stopped && !this.queues.busy(key);
  }
}

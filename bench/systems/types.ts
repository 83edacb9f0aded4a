/**
 * What the benchmark needs from a queue system. Every system (Rota on each store, BullMQ,
 * graphile-worker, pg-boss) is driven through this same interface with the same workload, so the
 * producer and worker set-up is identical across systems.
 */

/** A benchmark job: an id (checked for exactly-once execution) and its enqueue time. */
export interface BenchJob {
  id: string;
  /** Enqueue time, `performance.timeOrigin + performance.now()` in the producing process. */
  t: number;
}

export interface QueueSystem {
  /** Display name, e.g. `rota/redis`, `bullmq`. */
  readonly name: string;
  /** Which server it runs on (`redis`, `postgres`, `sqlite`, `memory`, `etcd`). */
  readonly engine: string;
  /** Prepare a fresh, empty queue (called before every measured run). */
  setup(): Promise<void>;
  /** Enqueue one chunk of jobs in the system's bulk call. */
  enqueueBulk(jobs: BenchJob[]): Promise<void>;
  /** Enqueue one job in the system's single-add call. */
  enqueue(job: BenchJob): Promise<void>;
  /**
   * Start a worker at `concurrency`; `onJob` is called when a job's handler starts (the handler
   * itself is a no-op). Resolves once the worker is running; the returned function stops it.
   */
  work(concurrency: number, onJob: (job: BenchJob) => void): Promise<() => Promise<void>>;
  /** Release everything (connections, workers, servers' state of this run). */
  teardown(): Promise<void>;
}

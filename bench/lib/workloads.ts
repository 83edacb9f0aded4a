/**
 * The workloads every queue system runs, identically: throughput (bulk enqueue, then drain),
 * pickup latency (one by one at a fixed rate to a running worker) and depth (drain rate behind a
 * deep backlog). Every run checks that each job ran exactly once.
 */
import type { BenchJob, QueueSystem } from '../systems/types.js';
import { nowMs, percentile } from './stats.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

export interface ExactlyOnce {
  /** Jobs that ran more than once. */
  duplicates: number;
  /** Jobs that never ran. */
  missing: number;
}

/** Counts executions per job id and resolves when `expected` distinct jobs ran. */
class Tally {
  readonly counts = new Map<string, number>();
  #resolve: (() => void) | null = null;
  readonly done: Promise<void>;

  constructor(private readonly expected: number) {
    this.done = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    if (expected === 0) this.#resolve?.();
  }

  record(id: string): void {
    const n = (this.counts.get(id) ?? 0) + 1;
    this.counts.set(id, n);
    if (n === 1 && this.counts.size === this.expected) this.#resolve?.();
  }

  check(ids: string[]): ExactlyOnce {
    let duplicates = 0;
    let missing = 0;
    for (const id of ids) {
      const n = this.counts.get(id) ?? 0;
      if (n === 0) missing++;
      else if (n > 1) duplicates++;
    }
    return { duplicates, missing };
  }
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

let counter = 0;
function makeJobs(n: number, prefix: string): BenchJob[] {
  const run = `${prefix}${(++counter).toString(36)}`;
  return Array.from({ length: n }, (_, i) => ({ id: `${run}-${i}`, t: 0 }));
}

async function enqueueInChunks(system: QueueSystem, jobs: BenchJob[], chunk: number): Promise<void> {
  for (let i = 0; i < jobs.length; i += chunk) {
    const part = jobs.slice(i, i + chunk);
    const t = nowMs();
    for (const j of part) j.t = t;
    await system.enqueueBulk(part);
  }
}

/** Push a few hundred jobs through, so connections, scripts and JIT are warm (not timed). */
export async function warmUp(system: QueueSystem, jobs = 500, concurrency = 10): Promise<void> {
  await system.setup();
  const batch = makeJobs(jobs, 'w');
  await enqueueInChunks(system, batch, 250);
  const tally = new Tally(jobs);
  const stop = await system.work(concurrency, (job) => tally.record(job.id));
  await within(tally.done, 120_000, `${system.name} warm-up`);
  await stop();
}

export interface ThroughputResult extends ExactlyOnce {
  enqueuePerSec: number;
  processedPerSec: number;
}

/** Bulk-enqueue `jobs` in chunks, then drain them at `concurrency` (worker start included). */
export async function throughput(
  system: QueueSystem,
  options: { jobs: number; chunk: number; concurrency: number; timeoutMs: number },
): Promise<ThroughputResult> {
  await system.setup();
  const jobs = makeJobs(options.jobs, 't');
  const t0 = nowMs();
  await enqueueInChunks(system, jobs, options.chunk);
  const t1 = nowMs();
  const tally = new Tally(jobs.length);
  const t2 = nowMs();
  const stop = await system.work(options.concurrency, (job) => tally.record(job.id));
  await within(tally.done, options.timeoutMs, `${system.name} drain`);
  const t3 = nowMs();
  await stop();
  return {
    enqueuePerSec: (jobs.length * 1000) / (t1 - t0),
    processedPerSec: (jobs.length * 1000) / (t3 - t2),
    ...tally.check(jobs.map((j) => j.id)),
  };
}

export interface LatencyResult extends ExactlyOnce {
  p50: number;
  p99: number;
  max: number;
}

/**
 * One run of the pickup workload: `jobs` tasks enqueued one at a time at `ratePerSec` to a running
 * worker, latency measured from just before the enqueue call to the handler's start. The run is
 * done in `segments` equal parts, each with its own worker (started, given 200 ms to settle into
 * its idle wait, stopped after its part), so that the bench can interleave the parts of every
 * system: the machine's idle wake-up latency drifts over minutes (it moved even the in-process
 * memory store's p50 from 0.12 to 0.5 ms between runs), and interleaving lets every system see the
 * same machine rather than whichever minutes its own run fell in.
 */
export class PickupRun {
  readonly #system: QueueSystem;
  readonly #options: PickupOptions;
  readonly #jobs: BenchJob[] = [];
  readonly #latencies: number[] = [];
  #tally: Tally | null = null;
  #done = 0;

  constructor(system: QueueSystem, options: PickupOptions) {
    if (!Number.isInteger(options.segments) || options.segments < 1 || options.segments > options.jobs)
      throw new Error(`segments must be an integer in 1..${options.jobs}`);
    this.#system = system;
    this.#options = options;
  }

  /** Segments still to run. */
  get remaining(): number {
    return this.#options.segments - this.#done;
  }

  /** Run the next segment (the first one also prepares a fresh queue). */
  async segment(): Promise<void> {
    const o = this.#options;
    if (this.remaining === 0) throw new Error('every segment already ran');
    if (this.#tally === null) {
      await this.#system.setup();
      this.#jobs.push(...makeJobs(o.jobs, 'l'));
      this.#tally = new Tally(o.jobs);
    }
    const tally = this.#tally;
    const from = Math.round((this.#done * o.jobs) / o.segments);
    const to = Math.round(((this.#done + 1) * o.jobs) / o.segments);
    const part = this.#jobs.slice(from, to);
    const partIds = new Set(part.map((j) => j.id));
    const partDone = new Tally(part.length);
    const stop = await this.#system.work(o.concurrency, (job) => {
      this.#latencies.push(nowMs() - job.t);
      tally.record(job.id);
      if (partIds.has(job.id)) partDone.record(job.id);
    });
    try {
      // Let an idle worker settle into its waiting state before the first job.
      await sleep(200);
      const start = nowMs();
      const gap = 1000 / o.ratePerSec;
      for (let i = 0; i < part.length; i++) {
        await sleep(start + i * gap - nowMs());
        const job = part[i] as BenchJob;
        job.t = nowMs();
        await this.#system.enqueue(job);
      }
      await within(partDone.done, o.timeoutMs, `${this.#system.name} latency run`);
    } finally {
      await stop();
    }
    this.#done++;
  }

  /** Latencies over every segment, and exactly-once over every job (after the last segment). */
  result(): LatencyResult {
    if (this.remaining > 0 || this.#tally === null) throw new Error('the run has segments left');
    const latencies = this.#latencies;
    return {
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      max: latencies.reduce((a, b) => Math.max(a, b), 0),
      ...this.#tally.check(this.#jobs.map((j) => j.id)),
    };
  }
}

export interface PickupOptions {
  jobs: number;
  /** Parts the run is done in (each with its own worker); 1 = one go. */
  segments: number;
  ratePerSec: number;
  concurrency: number;
  /** How long one segment may take to have all its jobs started. */
  timeoutMs: number;
}

export interface DepthResult extends ExactlyOnce {
  backlog: number;
  processedPerSec: number;
}

/**
 * Queue `backlog` jobs, then measure how fast the first `measure` of them are processed. The rest
 * stay queued (the system's teardown removes them).
 */
export async function depth(
  system: QueueSystem,
  options: { backlog: number; measure: number; chunk: number; concurrency: number; timeoutMs: number },
  onProgress?: (enqueued: number) => void,
): Promise<DepthResult> {
  await system.setup();
  const jobs = makeJobs(options.backlog, 'd');
  for (let i = 0; i < jobs.length; i += options.chunk) {
    await enqueueInChunks(system, jobs.slice(i, i + options.chunk), options.chunk);
    onProgress?.(Math.min(jobs.length, i + options.chunk));
  }
  const tally = new Tally(options.measure);
  const t0 = nowMs();
  const stop = await system.work(options.concurrency, (job) => tally.record(job.id));
  await within(tally.done, options.timeoutMs, `${system.name} depth run`);
  const t1 = nowMs();
  await stop();
  let duplicates = 0;
  for (const n of tally.counts.values()) if (n > 1) duplicates++;
  return {
    backlog: options.backlog,
    processedPerSec: (options.measure * 1000) / (t1 - t0),
    duplicates,
    missing: 0,
  };
}

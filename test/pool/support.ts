/**
 * Pool test helpers: a shared log of handler calls that flags overlapping executions of a key,
 * handlers that write to it, and `until` for manual-clock scenarios.
 */
import type { JobHandler, PoolJob, StopReason } from '../../src/pool/index.js';
import type { TestCluster } from '../../src/testing/index.js';
import { assert } from '../support/scenarios.js';

export interface LogEntry {
  readonly type: 'start' | 'stop' | 'notify';
  readonly key: string;
  /** The worker's label (given to `handler()`). */
  readonly worker: string;
  readonly token: number;
  readonly reason?: StopReason;
  readonly payload?: Uint8Array | null;
  readonly seq: number;
}

export interface HandlerOptions {
  /** Replaces the default start (which records and resolves). Runs after recording. */
  start?: (job: PoolJob) => Promise<void> | void;
  stop?: (job: PoolJob, reason: StopReason) => Promise<void> | void;
  /** `false`: the handler has no notify method. */
  notify?: false | ((job: PoolJob, payload: Uint8Array | null) => Promise<void> | void);
}

/** Every handler call of a test, in order, with a running-set that detects overlaps. */
export class JobLog {
  readonly entries: LogEntry[] = [];
  /** key → the execution currently running it (label and token). */
  readonly running = new Map<string, { worker: string; token: number }>();
  /** Descriptions of every moment a key started while another execution still ran it. */
  readonly overlaps: string[] = [];
  #seq = 0;

  handler(worker: string, options: HandlerOptions = {}): JobHandler {
    const handler: JobHandler = {
      start: async (job) => {
        await options.start?.(job);
        const current = this.running.get(job.key);
        if (current) this.overlaps.push(`${job.key}: ${worker} started while ${current.worker} ran it`);
        this.running.set(job.key, { worker, token: job.token });
        this.entries.push({
          type: 'start',
          key: job.key,
          worker,
          token: job.token,
          payload: job.payload,
          seq: this.#seq++,
        });
      },
      stop: async (job, reason) => {
        await options.stop?.(job, reason);
        if (this.running.get(job.key)?.token === job.token) this.running.delete(job.key);
        this.entries.push({ type: 'stop', key: job.key, worker, token: job.token, reason, seq: this.#seq++ });
      },
    };
    const notify = options.notify;
    if (notify !== false) {
      handler.notify = async (job, payload) => {
        this.entries.push({
          type: 'notify',
          key: job.key,
          worker,
          token: job.token,
          payload,
          seq: this.#seq++,
        });
        await notify?.(job, payload);
      };
    }
    return handler;
  }

  of(type: LogEntry['type'], key?: string, worker?: string): LogEntry[] {
    return this.entries.filter(
      (e) =>
        e.type === type &&
        (key === undefined || e.key === key) &&
        (worker === undefined || e.worker === worker),
    );
  }

  assertNoOverlap(): void {
    assert.deepEqual(this.overlaps, [], 'no key ran on two workers at once');
  }
}

/** Advance the manual clock in `step` ms increments until `check` holds (fails after `maxMs`). */
export async function until(
  cluster: TestCluster,
  check: () => boolean | Promise<boolean>,
  what: string,
  maxMs = 10_000,
  step = 10,
): Promise<void> {
  for (let t = 0; t <= maxMs; t += step) {
    if (await check()) return;
    await cluster.advance(step);
  }
  assert.fail(`not reached within ${maxMs} ms of test time: ${what}`);
}

/** Advance the manual clock by `ms` in small steps (lets chains of timers and writes settle). */
export async function run(cluster: TestCluster, ms: number, step = 10): Promise<void> {
  for (let t = 0; t < ms; t += step) await cluster.advance(Math.min(step, ms - t));
}

/** Await `promise` while advancing the manual clock; fails after `maxMs` of test time. */
export async function settle<T>(
  cluster: TestCluster,
  promise: Promise<T>,
  maxMs = 10_000,
  step = 10,
): Promise<T> {
  let done = false;
  const tracked = promise.finally(() => {
    done = true;
  });
  tracked.catch(() => undefined);
  for (let t = 0; t <= maxMs && !done; t += step) await cluster.advance(step);
  if (!done) assert.fail(`promise still pending after ${maxMs} ms of test time`);
  return tracked;
}

export const text = (s: string) => new TextEncoder().encode(s);
export const str = (b: Uint8Array | null | undefined) => (b ? new TextDecoder().decode(b) : b);

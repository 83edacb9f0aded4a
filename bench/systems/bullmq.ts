/** BullMQ 6 on Redis, driven with its own bulk and single add calls and a Worker at `concurrency`. */

import { randomBytes } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import type { BenchJob, QueueSystem } from './types.js';

export class BullMqSystem implements QueueSystem {
  readonly name = 'bullmq';
  readonly engine = 'redis';
  #connection: { host: string; port: number };
  #queue: Queue | null = null;
  #queueName = '';

  constructor(url: string) {
    const u = new URL(url);
    this.#connection = { host: u.hostname, port: Number(u.port || 6379) };
  }

  async setup(): Promise<void> {
    await this.teardown();
    this.#queueName = `bench-${randomBytes(4).toString('hex')}`;
    this.#queue = new Queue(this.#queueName, { connection: this.#connection });
    await this.#queue.waitUntilReady();
  }

  async enqueueBulk(jobs: BenchJob[]): Promise<void> {
    await this.#queue!.addBulk(jobs.map((data) => ({ name: 'noop', data })));
  }

  async enqueue(job: BenchJob): Promise<void> {
    await this.#queue!.add('noop', job);
  }

  async work(concurrency: number, onJob: (job: BenchJob) => void): Promise<() => Promise<void>> {
    const worker = new Worker(
      this.#queueName,
      async (job) => {
        onJob(job.data as BenchJob);
      },
      { connection: this.#connection, concurrency },
    );
    await worker.waitUntilReady();
    return () => worker.close();
  }

  async teardown(): Promise<void> {
    if (!this.#queue) return;
    await this.#queue.obliterate({ force: true }).catch(() => undefined);
    await this.#queue.close();
    this.#queue = null;
  }
}

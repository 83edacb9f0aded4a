/** graphile-worker 0.17 on PostgreSQL: addJobs / addJob, and `run()` with `concurrency`. */
import { randomBytes } from 'node:crypto';
import { Logger, makeWorkerUtils, run, type WorkerUtils } from 'graphile-worker';
import type { BenchJob, QueueSystem } from './types.js';

// graphile-worker logs every job by default; the benchmark measures the queue, not the console.
const quiet = new Logger(() => () => undefined);

export class GraphileSystem implements QueueSystem {
  readonly name = 'graphile-worker';
  readonly engine = 'postgres';
  #utils: WorkerUtils | null = null;
  #task = '';

  constructor(private readonly connectionString: string) {}

  async setup(): Promise<void> {
    if (!this.#utils) {
      this.#utils = await makeWorkerUtils({ connectionString: this.connectionString, logger: quiet });
      await this.#utils.migrate();
    }
    this.#task = `bench_${randomBytes(4).toString('hex')}`;
  }

  async enqueueBulk(jobs: BenchJob[]): Promise<void> {
    await this.#utils!.addJobs(jobs.map((payload) => ({ identifier: this.#task, payload })));
  }

  async enqueue(job: BenchJob): Promise<void> {
    await this.#utils!.addJob(this.#task, job);
  }

  async work(concurrency: number, onJob: (job: BenchJob) => void): Promise<() => Promise<void>> {
    const runner = await run({
      connectionString: this.connectionString,
      concurrency,
      noHandleSignals: true,
      logger: quiet,
      maxPoolSize: concurrency + 2,
      taskList: {
        [this.#task]: async (payload) => {
          onJob(payload as BenchJob);
        },
      },
    });
    return () => runner.stop();
  }

  async teardown(): Promise<void> {
    if (this.#utils) {
      await this.#utils
        .withPgClient((c) => c.query('delete from graphile_worker.jobs'))
        .catch(() => undefined);
      await this.#utils.release();
      this.#utils = null;
    }
  }
}

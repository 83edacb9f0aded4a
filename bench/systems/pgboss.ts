/**
 * pg-boss 10 on PostgreSQL: insert / send, and `work()` handlers. pg-boss has no per-worker
 * concurrency; "concurrency 10" is 10 work() loops, each fetching batches of up to 100 and polling
 * every 0.5 s (its fastest setting), as in docs/benchmarks.md.
 */
import { randomBytes } from 'node:crypto';
import PgBoss from 'pg-boss';
import type { BenchJob, QueueSystem } from './types.js';

export const PGBOSS_BATCH = 100;
export const PGBOSS_POLL_SECONDS = 0.5;

export class PgBossSystem implements QueueSystem {
  readonly name = 'pg-boss';
  readonly engine = 'postgres';
  #boss: PgBoss | null = null;
  #queue = '';

  constructor(private readonly connectionString: string) {}

  async setup(): Promise<void> {
    if (!this.#boss) {
      this.#boss = new PgBoss({ connectionString: this.connectionString, schema: 'pgboss_bench', max: 12 });
      this.#boss.on('error', () => undefined);
      await this.#boss.start();
    }
    this.#queue = `bench_${randomBytes(4).toString('hex')}`;
    await this.#boss.createQueue(this.#queue);
  }

  async enqueueBulk(jobs: BenchJob[]): Promise<void> {
    await this.#boss!.insert(jobs.map((data) => ({ name: this.#queue, data })));
  }

  async enqueue(job: BenchJob): Promise<void> {
    await this.#boss!.send(this.#queue, job);
  }

  async work(concurrency: number, onJob: (job: BenchJob) => void): Promise<() => Promise<void>> {
    const boss = this.#boss!;
    for (let i = 0; i < concurrency; i++) {
      await boss.work<BenchJob>(
        this.#queue,
        { batchSize: PGBOSS_BATCH, pollingIntervalSeconds: PGBOSS_POLL_SECONDS },
        async (jobs) => {
          for (const job of jobs) onJob(job.data);
        },
      );
    }
    return async () => {
      await boss.offWork(this.#queue);
    };
  }

  async teardown(): Promise<void> {
    if (!this.#boss) return;
    await this.#boss.stop({ graceful: false, wait: true }).catch(() => undefined);
    this.#boss = null;
  }
}

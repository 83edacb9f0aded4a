/**
 * The module every `rota demo` node loads (`rota start --module src/demo/app.ts`): a small but
 * complete workload, so the dashboard has something of each kind to show.
 *
 * - schedules: `heartbeat` (every 2 s), `report` (cron, every 10 s, runs 3 s with progress),
 *   `produce` (every second: enqueues 20 emails and 4 images), `reindex` (every 15 s, holds the
 *   lock `search-index` for 5 s);
 * - tasks: workers for `emails` (fast, 5 % transient failures, dead letters to `emails-dlq`) and
 *   `images` (slow);
 * - pool `streams`: one worker per node; a producer keeps nine long-running jobs dispatched;
 * - hosts: every node is a candidate for the role `web` (2 of N).
 */
import type { Logger } from '../core/logger.js';
import type { PoolJob } from '../pool/index.js';
import type { Rota } from '../rota.js';

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** How long the demo's pool leases and sessions live: short, so a killed node's work moves fast. */
export const DEMO_TTL = 3000;

export default async function demo(rota: Rota, { logger, signal }: { logger: Logger; signal: AbortSignal }) {
  await rota.tasks.configureQueue('emails', {
    maxAttempts: 3,
    deadLetter: 'emails-dlq',
    completedTtl: 120_000,
  });
  await rota.tasks.configureQueue('images', { completedTtl: 120_000 });

  await rota.schedules.register(
    { name: 'heartbeat', every: 2000, description: 'a quick tick every 2 s' },
    async () => sleep(20),
  );
  await rota.schedules.register(
    {
      name: 'report',
      cron: '*/10 * * * * *',
      seconds: true,
      description: 'every 10 s, runs 3 s',
      timeout: 8000,
    },
    async (ctx) => {
      for (let i = 1; i <= 3 && !ctx.signal.aborted; i++) {
        await sleep(1000, ctx.signal);
        await ctx.progress({ completed: i, total: 3 });
      }
    },
  );
  await rota.schedules.register(
    { name: 'produce', every: 1000, description: 'enqueues 20 emails and 4 images' },
    async (ctx) => {
      const n = ctx.slotAt;
      await rota.tasks.enqueueMany(
        'emails',
        Array.from({ length: 20 }, (_, i) => ({ payload: { to: `user${(n + i) % 997}@example.com` } })),
      );
      await rota.tasks.enqueueMany(
        'images',
        Array.from({ length: 4 }, (_, i) => ({ payload: { image: `img-${n}-${i}.png` }, priority: i })),
      );
    },
  );
  await rota.schedules.register(
    { name: 'reindex', every: 15_000, description: 'holds the lock search-index for 5 s' },
    async (ctx) => {
      await rota.cluster
        .withLock('search-index', () => sleep(5000, ctx.signal), { wait: 0 })
        .catch((err) => {
          logger.info('reindex skipped: lock busy', { error: err });
        });
    },
  );

  const emails = rota.tasks.work(
    'emails',
    async (task, ctx) => {
      await sleep(20 + Math.random() * 80, ctx.signal);
      if (Math.random() < 0.05) throw new Error('451 mailbox busy, try again');
      return { sent: true, to: (task.payload as { to: string }).to, by: rota.nodeId };
    },
    { concurrency: 5 },
  );
  const images = rota.tasks.work(
    'images',
    async (_task, ctx) => {
      await sleep(200 + Math.random() * 400, ctx.signal);
      return { resized: true, by: rota.nodeId };
    },
    { concurrency: 2 },
  );

  const pool = await rota.pool.join('streams', { workerTtl: DEMO_TTL, ackGracePeriod: 5000 });
  const running = new Map<string, AbortController>();
  await pool.addWorker(
    {
      async start(job: PoolJob) {
        // A long-running consumer: here it only ticks until stopped or handed off.
        const stop = new AbortController();
        running.set(job.key, stop);
        void (async () => {
          while (!stop.signal.aborted && !job.signal.aborted) await sleep(1000, stop.signal);
        })();
      },
      async stop(job: PoolJob) {
        running.get(job.key)?.abort();
        running.delete(job.key);
      },
    },
    { concurrency: 100 },
  );
  const producer = await pool.schedule(
    {
      name: 'streams',
      plan: () => ({ start: Array.from({ length: 9 }, (_, i) => ({ key: `stream-${i + 1}` })) }),
    },
    10_000,
    { signal },
  );

  const web = await rota.hosts.schedule('web', { max: 2, sessionTtl: DEMO_TTL });

  return async () => {
    producer.stop();
    await web.close();
    await Promise.all([emails.close({ timeout: 5000 }), images.close({ timeout: 5000 })]);
  };
}

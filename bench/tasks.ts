/**
 * Tasks throughput and pickup latency (issue 10's closing note; issue 12 runs it side by side).
 *
 *   npx tsx bench/tasks.ts [--store memory:] [--tasks 10000] [--samples 200] [--rounds 3]
 *
 * - processing: `--tasks` no-op tasks bulk-enqueued in chunks of 1 000, then one worker at
 *   concurrency 10 drains them; tasks/s from the worker's start to the last completion.
 * - pickup latency: tasks enqueued one by one at 50/s to an idle worker (concurrency 10);
 *   enqueue call → handler start, p50 / p99.
 * Producer and worker share one process, like the peer numbers in ENVIRONMENT.md. Each round
 * uses fresh queues; the best processing round and all latency samples are reported.
 */
import { parseArgs } from 'node:util';
import { Rota } from '../src/rota.js';

const { values } = parseArgs({
  options: {
    store: { type: 'string', default: 'memory:' },
    tasks: { type: 'string', default: '10000' },
    samples: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
  },
});
const storeUrl = values.store as string;
const total = Number(values.tasks);
const samples = Number(values.samples);
const rounds = Number(values.rounds);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
};

const rota = await Rota.connect({ store: storeUrl, nodeId: `bench-${process.pid}` });
const tasks = rota.tasks;
const run = Date.now().toString(36);

async function processing(
  round: number,
): Promise<{ enqueuePerSec: number; perSec: number; cpuUsPerTask: number }> {
  const queue = `bench-${run}-p${round}`;
  const t0 = performance.now();
  for (let i = 0; i < total; i += 1000) {
    await tasks.enqueueMany(
      queue,
      Array.from({ length: Math.min(1000, total - i) }, (_, j) => ({ payload: { n: i + j } })),
    );
  }
  const enqueueMs = performance.now() - t0;
  let done = 0;
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  let finished!: () => void;
  const all = new Promise<void>((resolve) => {
    finished = resolve;
  });
  const worker = tasks.work(
    queue,
    () => {
      if (++done === total) setImmediate(finished);
    },
    { concurrency: 10 },
  );
  await all;
  // The last handler returned; wait until the store has every completion.
  for (;;) {
    const c = (await tasks.counts(queue))[queue];
    if (c?.completed === total) break;
    await sleep(1);
  }
  const ms = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  await worker.close();
  return {
    enqueuePerSec: (total / enqueueMs) * 1000,
    perSec: (total / ms) * 1000,
    cpuUsPerTask: (cpu.user + cpu.system) / total,
  };
}

async function pickup(round: number): Promise<number[]> {
  const queue = `bench-${run}-l${round}`;
  const latencies: number[] = [];
  const worker = tasks.work(
    queue,
    (task) => {
      latencies.push(performance.now() - (task.payload as number));
    },
    { concurrency: 10 },
  );
  await sleep(200);
  const perRound = Math.ceil(samples / rounds);
  for (let i = 0; i < perRound; i++) {
    const sent = performance.now();
    await tasks.enqueue(queue, sent);
    await sleep(Math.max(0, 20 - (performance.now() - sent)));
  }
  while (latencies.length < perRound) await sleep(5);
  await worker.close();
  return latencies;
}

const results: { enqueuePerSec: number; perSec: number; cpuUsPerTask: number }[] = [];
const latencies: number[] = [];
for (let r = 0; r < rounds; r++) {
  results.push(await processing(r));
  latencies.push(...(await pickup(r)));
}
const best = results.reduce((a, b) => (b.perSec > a.perSec ? b : a));
const summary = {
  store: storeUrl.replace(/\/\/[^@/]*@/, '//'),
  tasks: total,
  concurrency: 10,
  bulkEnqueuePerSec: Math.round(Math.max(...results.map((r) => r.enqueuePerSec))),
  processingPerSec: Math.round(best.perSec),
  processingRounds: results.map((r) => Math.round(r.perSec)),
  cpuUsPerTask: Number(best.cpuUsPerTask.toFixed(1)),
  pickupP50Ms: Number(pct(latencies, 0.5).toFixed(2)),
  pickupP99Ms: Number(pct(latencies, 0.99).toFixed(2)),
  samples: latencies.length,
};
console.log(
  `tasks on ${summary.store}: bulk enqueue ${summary.bulkEnqueuePerSec}/s, processing ${summary.processingPerSec}/s ` +
    `(rounds ${summary.processingRounds.join(', ')}; ${summary.cpuUsPerTask} µs CPU/task), ` +
    `pickup p50 ${summary.pickupP50Ms} ms / p99 ${summary.pickupP99Ms} ms (${summary.samples} samples)`,
);
console.log(JSON.stringify(summary));
await rota.close();
// The node's store-time resampling and lease timers end with close(); exit without waiting for idle sockets.
process.exit(0);

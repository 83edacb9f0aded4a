/**
 * Pool throughput on one store: 3 nodes × 2 workers in this process. Measures admission
 * (dispatch without waiting), time until every job runs, a rebalance after a worker joins, and
 * stopping every job.
 *
 *   node --import tsx bench/pool-throughput.ts [storeUrl] [jobs]   (either may be left out)
 *
 * Default store: a shared in-process memory engine. A server URL (postgres://, redis://, etcd://)
 * uses a fresh namespace, deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import type { PoolJob } from '../src/pool/index.js';
import { Rota } from '../src/rota.js';
import { MemoryEngine } from '../src/store/memory/index.js';

const args = process.argv.slice(2);
const url = args.find((a) => Number.isNaN(Number(a)));
const jobs = Number(args.find((a) => !Number.isNaN(Number(a))) ?? 500);
const namespace = `bench-pool-${randomBytes(4).toString('hex')}`;
const engine = url ? null : new MemoryEngine();
const running = new Map<string, string>();
const started = new Set<string>();

const nodes = await Promise.all(
  ['b1', 'b2', 'b3'].map((nodeId) =>
    Rota.connect({ store: engine ? engine.client() : (url as string), namespace, nodeId }),
  ),
);
const pools = await Promise.all(nodes.map((n) => n.pool.join('bench', { maxQueuedJobs: jobs * 2 })));
const handler = (label: string) => ({
  start(job: PoolJob) {
    running.set(job.key, label);
    started.add(job.key);
  },
  stop(job: PoolJob) {
    if (running.get(job.key) === label) running.delete(job.key);
  },
});
for (const [i, p] of pools.entries()) for (let w = 0; w < 2; w++) await p.addWorker(handler(`n${i}w${w}`));
await new Promise((r) => setTimeout(r, 500));

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const t0 = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: 16 }, async (_, c) => {
    while (next < jobs) {
      const i = next++;
      await pools[c % 3]!.dispatch(`job-${i}`, null, { wait: false });
    }
  }),
);
const admitted = performance.now() - t0;
await until(() => running.size === jobs, 'all jobs running');
const allRunning = performance.now() - t0;

const before = new Map(running);
const t1 = performance.now();
await pools[0]!.addWorker(handler('newcomer'));
await until(() => [...running.values()].filter((l) => l === 'newcomer').length > 0, 'jobs on the newcomer');
await new Promise((r) => setTimeout(r, 1000));
await until(() => running.size === jobs, 'all jobs running again');
const moved = [...running.entries()].filter(([k, l]) => before.get(k) !== l).length;
const rebalance = performance.now() - t1;

const t2 = performance.now();
next = 0;
await Promise.all(
  Array.from({ length: 16 }, async (_, c) => {
    while (next < jobs) {
      const i = next++;
      await pools[c % 3]!.stopJob(`job-${i}`);
    }
  }),
);
const stopped = performance.now() - t2;

const store = engine ? 'memory' : (url as string).split(':')[0];
console.log(`pool throughput on ${store}: ${jobs} jobs, 3 nodes × 2 workers (16 callers)`);
console.log(
  `  dispatch (admission, wait: false): ${Math.round((jobs * 1000) / admitted)} jobs/s (${Math.round(admitted)} ms)`,
);
console.log(
  `  all running after ${Math.round(allRunning)} ms (${Math.round((jobs * 1000) / allRunning)} starts/s)`,
);
console.log(
  `  a 7th worker joins: ${moved} jobs moved (ideal ${Math.round(jobs / 7)}), settled in ${Math.round(rebalance)} ms (incl. a 1 s pause)`,
);
console.log(
  `  stopJob (waiting for each stop): ${Math.round((jobs * 1000) / stopped)} jobs/s (${Math.round(stopped)} ms)`,
);

for (const p of pools) await p.close();
if (!engine) await nodes[0]!.store.delete(nodes[0]!.context.keys.root, { prefix: true });
await Promise.all(nodes.map((n) => n.close()));

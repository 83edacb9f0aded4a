/**
 * Pool placement cost (DESIGN.md decision 8): recompute the target of 10 000 jobs over 50 workers
 * after a worker joins and after one leaves, as a reconciler does on a worker-set change, and
 * count how many keys moved.
 *
 *   node --import tsx bench/pool-placement.ts [jobs] [workers]
 */
import { Placement } from '../src/pool/placement.js';

const jobs = Number(process.argv[2] ?? 10_000);
const workerCount = Number(process.argv[3] ?? 50);
const keys = Array.from({ length: jobs }, (_, i) => `tenant-${i % 97}/job-${i}`);
const workers = Array.from({ length: workerCount }, (_, i) => ({
  id: `0190a1b2-c3d4-7e5f-8a9b-${String(i).padStart(12, '0')}`,
  createdAt: 1_700_000_000_000 + i,
}));

function rebalance(placement: Placement): { ms: number; cpuMs: number; targets: (string | null)[] } {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const targets = keys.map((k) => placement.pick(k, 0).target);
  const used = process.cpuUsage(cpu);
  return { ms: performance.now() - started, cpuMs: (used.user + used.system) / 1000, targets };
}

const placement = new Placement();
placement.setWorkers(workers);
rebalance(placement); // warm-up (JIT)
placement.setWorkers(workers.slice(0, -1));
placement.setWorkers(workers);
const base = rebalance(placement);

const newcomer = { id: '0190a1b2-c3d4-7e5f-8a9b-999999999999', createdAt: 1_800_000_000_000 };
placement.setWorkers([...workers, newcomer]);
const joined = rebalance(placement);
const movedOnJoin = joined.targets.filter((t, i) => t !== base.targets[i]).length;

const leaver = workers[7] as (typeof workers)[number];
placement.setWorkers(workers.filter((w) => w !== leaver));
const left = rebalance(placement);
const movedOnLeave = left.targets.filter((t, i) => t !== base.targets[i]).length;
const leaverKeys = base.targets.filter((t) => t === leaver.id).length;

const wall: number[] = [];
const cpu: number[] = [];
for (let i = 0; i < 21; i++) {
  placement.setWorkers(i % 2 ? workers : [...workers, newcomer]);
  const r = rebalance(placement);
  wall.push(r.ms);
  cpu.push(r.cpuMs);
}
wall.sort((a, b) => a - b);
cpu.sort((a, b) => a - b);
console.log(
  `${jobs} jobs over ${workerCount} workers (rendezvous; score = fmix64(hash64(worker‖0) ^ hash64(key)))`,
);
console.log(
  `  full rebalance over 21 runs: wall median ${wall[10]?.toFixed(1)} ms (min ${wall[0]?.toFixed(1)}, max ${wall[20]?.toFixed(1)}); CPU median ${cpu[10]?.toFixed(1)} ms`,
);
console.log(
  `  join: ${movedOnJoin} keys moved (ideal ${Math.round(jobs / (workerCount + 1))}), all to the newcomer: ${joined.targets.every((t, i) => t === base.targets[i] || t === newcomer.id)}`,
);
console.log(`  leave: ${movedOnLeave} keys moved, the leaver held ${leaverKeys}`);

/**
 * Workload (c) for Rota: the processing rate of the first `measure` tasks behind a deep backlog
 * (`deep` tasks queued) against a shallow one (`shallow` queued). The deep queue is filled once
 * (not timed) and topped up to `deep` before each run; each shallow run uses a fresh queue. Every
 * task processed runs once: handler calls are counted per task id, and after each run the
 * store's counts must agree (completed = distinct tasks processed so far, nothing left running or
 * claimed, pending = the rest).
 */

import type { RotaSystem } from '../systems/rota.js';
import type { BenchJob } from '../systems/types.js';
import { GuaranteeError } from './cluster.js';
import { nowMs } from './stats.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface DepthRun {
  backlog: number;
  processedPerSec: number;
}

interface QueueState {
  name: string;
  enqueued: number;
  calls: Map<string, number>;
}

let serial = 0;

async function fill(
  system: RotaSystem,
  q: QueueState,
  count: number,
  chunk: number,
  onProgress?: (done: number) => void,
): Promise<void> {
  for (let i = 0; i < count; i += chunk) {
    const n = Math.min(chunk, count - i);
    const t = nowMs();
    const payloads: BenchJob[] = Array.from({ length: n }, () => ({ id: `d${(++serial).toString(36)}`, t }));
    await system.rota.tasks.enqueueMany(
      q.name,
      payloads.map((payload) => ({ payload })),
    );
    q.enqueued += n;
    onProgress?.(i + n);
  }
}

/** Start a worker on `q`, time until `measure` new distinct tasks ran, stop it, check the counts. */
async function measureRun(
  system: RotaSystem,
  q: QueueState,
  measure: number,
  concurrency: number,
  timeoutMs: number,
): Promise<number> {
  const target = q.calls.size + measure;
  let reached!: () => void;
  const done = new Promise<void>((r) => {
    reached = r;
  });
  const t0 = nowMs();
  const worker = system.rota.tasks.work<BenchJob>(
    q.name,
    (task) => {
      const n = (q.calls.get(task.payload.id) ?? 0) + 1;
      q.calls.set(task.payload.id, n);
      if (n === 1 && q.calls.size === target) reached();
    },
    { concurrency },
  );
  const timer = setTimeout(() => reached(), timeoutMs);
  await done;
  const t1 = nowMs();
  clearTimeout(timer);
  await worker.close();
  if (q.calls.size < target)
    throw new Error(`depth: ${q.calls.size - (target - measure)} of ${measure} in ${timeoutMs} ms`);
  const twice = [...q.calls.values()].filter((n) => n > 1).length;
  let counts = (await system.rota.tasks.counts(q.name))[q.name];
  // Completions are settled in batches; give the last one a moment to land.
  for (let i = 0; i < 50 && counts && counts.completed < q.calls.size; i++) {
    await sleep(20);
    counts = (await system.rota.tasks.counts(q.name))[q.name];
  }
  if (
    twice > 0 ||
    !counts ||
    counts.completed !== q.calls.size ||
    counts.running + counts.claimed !== 0 ||
    counts.pending !== q.enqueued - q.calls.size
  ) {
    throw new GuaranteeError(
      `depth ${q.name}: ${twice} tasks ran twice; store counts ${JSON.stringify(counts)} for ${q.enqueued} enqueued, ${q.calls.size} processed`,
    );
  }
  return (measure * 1000) / (t1 - t0);
}

export async function rotaDepth(
  system: RotaSystem,
  options: {
    deep: number;
    shallow: number;
    measure: number;
    runs: number;
    fillChunk: number;
    concurrency: number;
    timeoutMs: number;
  },
  onProgress?: (label: string) => void,
): Promise<{ deep: DepthRun[]; shallow: DepthRun[] }> {
  await system.setup();
  const deep: QueueState = { name: system.queue, enqueued: 0, calls: new Map() };
  const step = Math.max(options.fillChunk, Math.round(options.deep / 20));
  let shown = 0;
  await fill(system, deep, options.deep, options.fillChunk, (n) => {
    if (n - shown >= step || n === options.deep) {
      shown = n;
      onProgress?.(`filling ${n.toLocaleString('en-US')} / ${options.deep.toLocaleString('en-US')}`);
    }
  });
  const out = { deep: [] as DepthRun[], shallow: [] as DepthRun[] };
  for (let run = 0; run < options.runs; run++) {
    // Alternate, so that noise on the shared machine hits both sides alike.
    await system.setup();
    const shallow: QueueState = { name: system.queue, enqueued: 0, calls: new Map() };
    await fill(system, shallow, options.shallow, options.fillChunk);
    onProgress?.(`run ${run + 1}/${options.runs}: ${options.shallow.toLocaleString('en-US')} queued`);
    out.shallow.push({
      backlog: options.shallow,
      processedPerSec: await measureRun(
        system,
        shallow,
        options.measure,
        options.concurrency,
        options.timeoutMs,
      ),
    });
    const missing = options.deep - (deep.enqueued - deep.calls.size);
    if (missing > 0) await fill(system, deep, missing, options.fillChunk);
    onProgress?.(`run ${run + 1}/${options.runs}: ${options.deep.toLocaleString('en-US')} queued`);
    out.deep.push({
      backlog: deep.enqueued - deep.calls.size,
      processedPerSec: await measureRun(
        system,
        deep,
        options.measure,
        options.concurrency,
        options.timeoutMs,
      ),
    });
  }
  return out;
}

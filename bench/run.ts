/**
 * The benchmark suite (issue 12): Rota against BullMQ, graphile-worker and pg-boss on the same
 * machine, in one run, with the same workloads and settings. `npm run bench` starts Redis,
 * PostgreSQL (default durability) and etcd through scripts/with-servers.mjs and runs this file.
 *
 * Rota runs from its compiled build (dist/, which `npm run bench` builds first; see lib/rota.ts).
 *
 *   npm run bench                 full sizes (about 15–20 min on 2 cores)
 *   npm run bench -- --quick      smaller counts, same workloads, ≥ 3 runs each (< 3 min)
 *   npm run bench -- --only a,b   a subset of the workloads (a b c d e); does not write results
 *   npm run bench -- --only a,b --systems rota/postgres,graphile-worker
 *                                 (a) and (b) for some systems only; does not write results
 *
 * Workloads (docs/benchmarks.md):
 *  (a) throughput: N no-op tasks bulk-enqueued in chunks of 1 000, then drained at concurrency 10;
 *  (b) pickup latency: tasks enqueued one by one at 50/s to a running worker (concurrency 10);
 *  (c) depth (Rota on Redis): processing rate behind a deep backlog vs a shallow one;
 *  (d) Rota only, across processes: pool failover and leader failover after SIGKILL, schedule fire
 *      lateness on 3 nodes × 100 schedules with duplicate and miss counts;
 *  (e) the peak RSS of a Rota worker process.
 * Every run checks that each task ran exactly once (slot, job: once); a violation fails the run.
 * Writes bench/results/latest.json (and <mode>.json) and renders docs/benchmarks.md from it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { GuaranteeError, leaderFailover, poolFailover, scheduleLateness, workerRss } from './lib/cluster.js';
import { rotaDepth } from './lib/depth.js';
import { describeMachine } from './lib/machine.js';
import { Progress } from './lib/progress.js';
import { type BenchResults, renderMarkdown } from './lib/report.js';
import { rotaSource } from './lib/rota.js';
import { summarize } from './lib/stats.js';
import { PickupRun, throughput, warmUp } from './lib/workloads.js';
import { BullMqSystem } from './systems/bullmq.js';
import { GraphileSystem } from './systems/graphile.js';
import { PGBOSS_BATCH, PGBOSS_POLL_SECONDS, PgBossSystem } from './systems/pgboss.js';
import { RotaSystem } from './systems/rota.js';
import type { QueueSystem } from './systems/types.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    systems: { type: 'string' },
    runs: { type: 'string' },
  },
});
const quick = values.quick === true;
const only = new Set((values.only ?? 'a,b,c,d,e').split(',').map((s) => s.trim()));
const partial = values.only !== undefined || values.systems !== undefined;

const settings = {
  mode: quick ? 'quick' : 'full',
  runs: Number(values.runs ?? 3),
  concurrency: 10,
  throughput: { tasks: quick ? 2_000 : 10_000, chunk: 1_000 },
  warmUp: { tasks: 500, chunk: 250 },
  latency: { tasks: quick ? 100 : 1_000, segments: quick ? 2 : 5, ratePerSec: 50 },
  depth: {
    store: 'redis',
    deep: quick ? 100_000 : 1_000_000,
    shallow: 10_000,
    measure: quick ? 2_000 : 10_000,
    fillChunk: 5_000,
  },
  cluster: {
    stores: quick ? ['redis'] : ['redis', 'postgres'],
    headlineStore: 'redis',
    pool: { processes: 3, workersPerProcess: 2, jobs: 30, workerTtlMs: 3_000 },
    leader: { processes: 3, electionTtlMs: 2_000 },
    schedules: {
      nodes: 3,
      schedules: 100,
      everyMs: 1_000,
      warmUpMs: quick ? 2_000 : 5_000,
      windowMs: quick ? 3_000 : 10_000,
    },
  },
  rss: { stores: quick ? ['redis'] : ['redis', 'postgres'], tasks: quick ? 2_000 : 10_000 },
  pgBoss: { workLoops: 10, batchSize: PGBOSS_BATCH, pollingIntervalSeconds: PGBOSS_POLL_SECONDS },
};
if (!Number.isInteger(settings.runs) || settings.runs < 3) {
  console.error('--runs must be an integer ≥ 3');
  process.exit(2);
}

const urls = {
  redis: process.env.ROTA_TEST_REDIS_URL,
  postgres: process.env.ROTA_TEST_POSTGRES_URL,
  etcd: process.env.ROTA_TEST_ETCD_URL,
};
const missingServers = Object.entries(urls)
  .filter(([, u]) => !u)
  .map(([n]) => n);
if (missingServers.length > 0) {
  console.error(
    `bench: no server URL for ${missingServers.join(', ')}: run it as \`npm run bench\` (scripts/with-servers.mjs starts them) or set ROTA_TEST_<NAME>_URL`,
  );
  process.exit(2);
}
const R = urls.redis as string;
const P = urls.postgres as string;
const E = urls.etcd as string;

const systems: QueueSystem[] = [
  new RotaSystem('memory'),
  new RotaSystem('sqlite'),
  new RotaSystem('postgres', P),
  new RotaSystem('redis', R),
  new RotaSystem('etcd', E),
  new BullMqSystem(R),
  new GraphileSystem(P),
  new PgBossSystem(P),
].filter((s) => !values.systems || values.systems.split(',').some((n) => n.trim() === s.name));
if (systems.length === 0) {
  console.error(
    '--systems matched none of: rota/memory, rota/sqlite, rota/postgres, rota/redis, rota/etcd, bullmq, graphile-worker, pg-boss',
  );
  process.exit(2);
}
type Engine = 'redis' | 'postgres';
const serverOf = (engine: string) => (engine === 'redis' ? R : engine === 'postgres' ? P : E);

// ------------------------------------------------------------------------------------------------
// The plan: one step per progress tick.

interface Step {
  label: string;
  run: (say: (detail: string) => void) => Promise<void>;
}
const steps: Step[] = [];
const failures: string[] = [];
const results: BenchResults = {
  ok: false,
  mode: settings.mode as 'quick' | 'full',
  startedAt: new Date().toISOString(),
  finishedAt: '',
  durationSec: 0,
  loadAverageAtEnd: [],
  rotaBuild: `${rotaSource.source} (${rotaSource.why})`,
  settings,
  machine: await describeMachine(urls),
  queues: {},
  depth: null,
  cluster: {},
  rss: {},
  ratios: {},
  figures: {},
  targets: [],
  failures,
};

function check(what: string, r: { duplicates: number; missing: number }): void {
  if (r.duplicates > 0 || r.missing > 0)
    throw new GuaranteeError(`${what}: ${r.duplicates} tasks ran more than once, ${r.missing} never ran`);
}

const raw: Record<
  string,
  { enqueue: number[]; processed: number[]; p50: number[]; p99: number[]; max: number[] }
> = {};
for (const s of systems) raw[s.name] = { enqueue: [], processed: [], p50: [], p99: [], max: [] };

if (only.has('a') || only.has('b')) {
  for (const s of systems) {
    steps.push({
      label: `${s.name}: warm-up (${settings.warmUp.tasks} tasks, not timed)`,
      run: () => warmUp(s, settings.warmUp.tasks, settings.concurrency),
    });
  }
  // Round-robin over the systems, so that noise from the shared machine spreads over all of them.
  for (let run = 1; run <= settings.runs; run++) {
    for (const s of systems) {
      if (only.has('a')) {
        steps.push({
          label: `${s.name}: (a) throughput ${run}/${settings.runs}, ${settings.throughput.tasks.toLocaleString('en-US')} tasks`,
          run: async () => {
            const r = await throughput(s, {
              jobs: settings.throughput.tasks,
              chunk: settings.throughput.chunk,
              concurrency: settings.concurrency,
              timeoutMs: 600_000,
            });
            check(`${s.name} throughput run ${run}`, r);
            raw[s.name]!.enqueue.push(r.enqueuePerSec);
            raw[s.name]!.processed.push(r.processedPerSec);
          },
        });
      }
    }
    if (only.has('b')) {
      // The runs of every system are done in interleaved parts (see PickupRun).
      const l = settings.latency;
      const pickups = systems.map(
        (s) =>
          [
            s,
            new PickupRun(s, {
              jobs: l.tasks,
              segments: l.segments,
              ratePerSec: l.ratePerSec,
              concurrency: settings.concurrency,
              timeoutMs: 120_000,
            }),
          ] as const,
      );
      for (let part = 1; part <= l.segments; part++) {
        for (const [s, pickup] of pickups) {
          steps.push({
            label: `${s.name}: (b) pickup latency ${run}/${settings.runs}, part ${part}/${l.segments} (${l.tasks / l.segments} tasks at ${l.ratePerSec}/s)`,
            run: async () => {
              await pickup.segment();
              if (pickup.remaining > 0) return;
              const r = pickup.result();
              check(`${s.name} latency run ${run}`, r);
              raw[s.name]!.p50.push(r.p50);
              raw[s.name]!.p99.push(r.p99);
              raw[s.name]!.max.push(r.max);
            },
          });
        }
      }
    }
  }
  for (const s of systems) {
    steps.push({
      label: `${s.name}: teardown`,
      run: async () => {
        await s.teardown();
        const r = raw[s.name]!;
        results.queues[s.name] = {
          engine: s.engine,
          enqueuePerSec: r.enqueue.length ? summarize(r.enqueue) : null,
          processedPerSec: r.processed.length ? summarize(r.processed) : null,
          pickupP50Ms: r.p50.length ? summarize(r.p50) : null,
          pickupP99Ms: r.p99.length ? summarize(r.p99) : null,
          pickupMaxMs: r.max.length ? summarize(r.max) : null,
        };
      },
    });
  }
}

if (only.has('c')) {
  const d = settings.depth;
  const system = new RotaSystem('redis', R);
  steps.push({
    label: `rota/redis: (c) depth warm-up`,
    run: () => warmUp(system, settings.warmUp.tasks, settings.concurrency),
  });
  steps.push({
    label: `rota/redis: (c) depth ${d.deep.toLocaleString('en-US')} vs ${d.shallow.toLocaleString('en-US')}`,
    run: async (say) => {
      try {
        const r = await rotaDepth(
          system,
          {
            deep: d.deep,
            shallow: d.shallow,
            measure: d.measure,
            runs: settings.runs,
            fillChunk: d.fillChunk,
            concurrency: settings.concurrency,
            timeoutMs: 600_000,
          },
          say,
        );
        results.depth = {
          store: 'redis',
          deepBacklog: d.deep,
          shallowBacklog: d.shallow,
          measured: d.measure,
          deepPerSec: summarize(r.deep.map((x) => x.processedPerSec)),
          shallowPerSec: summarize(r.shallow.map((x) => x.processedPerSec)),
        };
      } finally {
        say('dropping the deep queue');
        await system.teardown();
      }
    },
  });
}

if (only.has('d')) {
  const c = settings.cluster;
  for (const engine of c.stores as Engine[]) {
    const entry: BenchResults['cluster'][string] = {};
    results.cluster[engine] = entry;
    steps.push({
      label: `rota/${engine}: (d) leader failover × ${settings.runs} (election TTL ${c.leader.electionTtlMs} ms)`,
      run: async () => {
        const runs = await leaderFailover(serverOf(engine), engine, {
          runs: settings.runs,
          ttl: c.leader.electionTtlMs,
        });
        entry.leaderFailoverMs = summarize(runs.map((r) => r.failoverMs));
      },
    });
    steps.push({
      label: `rota/${engine}: (d) pool failover × ${settings.runs} (workerTtl ${c.pool.workerTtlMs} ms)`,
      run: async () => {
        const runs = await poolFailover(serverOf(engine), engine, {
          runs: settings.runs,
          workerTtl: c.pool.workerTtlMs,
          jobs: c.pool.jobs,
        });
        entry.poolFailoverMs = summarize(runs.map((r) => r.failoverMs));
        entry.poolFirstRestartMs = summarize(runs.map((r) => r.firstRestartMs));
        entry.poolJobsMoved = runs.map((r) => r.jobsMoved);
      },
    });
    const sc = c.schedules;
    steps.push({
      label: `rota/${engine}: (d) schedules, ${sc.nodes} nodes × ${sc.schedules} every ${sc.everyMs} ms`,
      run: async (say) => {
        const windows = await scheduleLateness(
          serverOf(engine),
          engine,
          {
            nodes: sc.nodes,
            schedules: sc.schedules,
            every: sc.everyMs,
            warmUpMs: sc.warmUpMs,
            windows: settings.runs,
            windowMs: sc.windowMs,
          },
          say,
        );
        entry.scheduleLatenessP50Ms = summarize(windows.map((w) => w.p50));
        entry.scheduleLatenessP99Ms = summarize(windows.map((w) => w.p99));
        entry.scheduleLatenessMaxMs = summarize(windows.map((w) => w.max));
        entry.scheduleSlots = windows.reduce((n, w) => n + w.slots, 0);
        entry.scheduleDuplicates = windows.reduce((n, w) => n + w.duplicates, 0);
        entry.scheduleMisses = windows.reduce((n, w) => n + w.misses, 0);
        entry.scheduleSkipped = windows.reduce((n, w) => n + w.skipped, 0);
        // Rota's guarantee is "every slot ends as one run or a recorded skip": a duplicate or a slot
        // with neither fails the run. Recorded skips (a slot overdue past the next one, under
        // catchUp: 'latest') keep it, but still count as misses against the target.
        const unrecorded = entry.scheduleMisses - entry.scheduleSkipped;
        if (entry.scheduleDuplicates > 0 || unrecorded > 0)
          throw new GuaranteeError(
            `schedules on ${engine}: ${entry.scheduleDuplicates} slots ran twice, ${unrecorded} neither ran nor were recorded skipped`,
          );
      },
    });
  }
}

if (only.has('e')) {
  for (const engine of settings.rss.stores as Engine[]) {
    steps.push({
      label: `rota/${engine}: (e) worker process RSS × ${settings.runs}, ${settings.rss.tasks.toLocaleString('en-US')} tasks each`,
      run: async () => {
        const runs = await workerRss(serverOf(engine), engine, {
          runs: settings.runs,
          tasks: settings.rss.tasks,
        });
        results.rss[engine] = {
          peakRssMb: summarize(runs.map((r) => r.peakRssMb)),
          idleRssMb: summarize(runs.map((r) => r.idleRssMb)),
        };
      },
    });
  }
}

// ------------------------------------------------------------------------------------------------
// Run it.

const started = Date.now();
const progress = new Progress(steps.length);
if (rotaSource.source !== 'dist')
  process.stderr.write(`bench: !!! running Rota from src/ through tsx: ${rotaSource.why}\n`);
process.stderr.write(
  `bench: ${settings.mode} mode, ${steps.length} steps, ${settings.runs} runs per measurement; PostgreSQL ${JSON.stringify(results.machine.servers.postgres?.durability)}\n`,
);
const stop = () => {
  progress.stop();
  process.stderr.write('bench: interrupted\n');
  process.exit(130);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
progress.start();
for (const step of steps) {
  progress.step(step.label);
  try {
    await step.run((detail) => progress.step(`${step.label}: ${detail}`));
  } catch (err) {
    const message = `${step.label}: ${err instanceof GuaranteeError ? 'GUARANTEE VIOLATED: ' : ''}${(err as Error).message}`;
    failures.push(message);
    progress.stop();
    process.stderr.write(`\n!!! ${message}\n`);
    progress.start();
  }
  progress.done();
}
progress.stop();
for (const s of systems) await s.teardown().catch(() => undefined);

results.finishedAt = new Date().toISOString();
results.durationSec = Math.round((Date.now() - started) / 1000);
results.loadAverageAtEnd = os.loadavg().map((l) => Math.round(l * 100) / 100);
computeDerived(results);
results.ok = failures.length === 0;

const markdown = renderMarkdown(results);
console.log(markdown.table);
if (!partial) {
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const json = `${JSON.stringify(results, null, 2)}\n`;
  if (results.ok) {
    writeFileSync(new URL('./results/latest.json', import.meta.url), json);
    writeFileSync(new URL(`./results/${settings.mode}.json`, import.meta.url), json);
    writeFileSync(new URL('../docs/benchmarks.md', import.meta.url), markdown.document);
    process.stderr.write(
      `bench: wrote bench/results/latest.json, bench/results/${settings.mode}.json, docs/benchmarks.md\n`,
    );
  } else {
    writeFileSync(new URL('./results/failed.json', import.meta.url), json);
  }
}
if (failures.length > 0) {
  process.stderr.write(
    `\n!!! bench FAILED: ${failures.length} step(s) failed:\n${failures.map((f) => `!!!   ${f}`).join('\n')}\n`,
  );
  if (!partial)
    process.stderr.write('!!! results written to bench/results/failed.json; latest.json left as it was\n');
  process.exit(1);
}
process.exit(0);

// ------------------------------------------------------------------------------------------------

function computeDerived(r: BenchResults): void {
  const q = r.queues;
  const med = (name: string, field: 'enqueuePerSec' | 'processedPerSec' | 'pickupP50Ms' | 'pickupP99Ms') =>
    q[name]?.[field]?.median ?? Number.NaN;
  r.ratios = {
    redis_process_vs_bullmq: med('rota/redis', 'processedPerSec') / med('bullmq', 'processedPerSec'),
    redis_enqueue_vs_bullmq: med('rota/redis', 'enqueuePerSec') / med('bullmq', 'enqueuePerSec'),
    pg_process_vs_graphile:
      med('rota/postgres', 'processedPerSec') / med('graphile-worker', 'processedPerSec'),
    pg_enqueue_vs_graphile: med('rota/postgres', 'enqueuePerSec') / med('graphile-worker', 'enqueuePerSec'),
    redis_p50_vs_bullmq: med('rota/redis', 'pickupP50Ms') / med('bullmq', 'pickupP50Ms'),
    pg_p50_vs_graphile: med('rota/postgres', 'pickupP50Ms') / med('graphile-worker', 'pickupP50Ms'),
    pg_process_vs_pgboss: med('rota/postgres', 'processedPerSec') / med('pg-boss', 'processedPerSec'),
    pg_enqueue_vs_pgboss: med('rota/postgres', 'enqueuePerSec') / med('pg-boss', 'enqueuePerSec'),
    pg_p50_vs_pgboss: med('rota/postgres', 'pickupP50Ms') / med('pg-boss', 'pickupP50Ms'),
    depth_1m_vs_10k: r.depth ? r.depth.deepPerSec.median / r.depth.shallowPerSec.median : Number.NaN,
  };
  const c = r.cluster[r.settings.cluster.headlineStore] ?? {};
  const rss = r.rss[r.settings.cluster.headlineStore];
  r.figures = {
    pool_failover_ms: c.poolFailoverMs?.median ?? Number.NaN,
    pool_lease_ttl_ms: r.settings.cluster.pool.workerTtlMs,
    leader_failover_ms: c.leaderFailoverMs?.median ?? Number.NaN,
    leader_lease_ttl_ms: r.settings.cluster.leader.electionTtlMs,
    schedule_lateness_p50_ms: c.scheduleLatenessP50Ms?.median ?? Number.NaN,
    schedule_lateness_p99_ms: c.scheduleLatenessP99Ms?.median ?? Number.NaN,
    schedule_duplicates: c.scheduleDuplicates ?? Number.NaN,
    schedule_misses: c.scheduleMisses ?? Number.NaN,
    worker_peak_rss_mb: rss?.peakRssMb.median ?? Number.NaN,
    redis_p99_ms: med('rota/redis', 'pickupP99Ms'),
    pg_p99_ms: med('rota/postgres', 'pickupP99Ms'),
  };
  const ra = r.ratios;
  const f = r.figures;
  const t = (name: string, value: number, op: '>=' | '<=', target: number, unit = '') => ({
    name,
    value,
    target: `${op} ${target}${unit}`,
    met: Number.isFinite(value) && (op === '>=' ? value >= target : value <= target),
  });
  r.targets = [
    t('Redis processing vs BullMQ', ra.redis_process_vs_bullmq!, '>=', 2, '×'),
    t('Redis bulk enqueue vs BullMQ', ra.redis_enqueue_vs_bullmq!, '>=', 2, '×'),
    t('PostgreSQL processing vs graphile-worker', ra.pg_process_vs_graphile!, '>=', 3, '×'),
    t('PostgreSQL bulk enqueue vs graphile-worker', ra.pg_enqueue_vs_graphile!, '>=', 1, '×'),
    t('Redis pickup p50 vs BullMQ', ra.redis_p50_vs_bullmq!, '<=', 0.8, '×'),
    t('PostgreSQL pickup p50 vs graphile-worker', ra.pg_p50_vs_graphile!, '<=', 0.8, '×'),
    t('Redis pickup p99', f.redis_p99_ms!, '<=', 5, ' ms'),
    t('PostgreSQL pickup p99', f.pg_p99_ms!, '<=', 5, ' ms'),
    t('depth 1M vs 10k (processing)', ra.depth_1m_vs_10k!, '>=', 0.8, '×'),
    t('pool failover / lease TTL', f.pool_failover_ms! / f.pool_lease_ttl_ms!, '<=', 1.5, '×'),
    t('leader failover − TTL', f.leader_failover_ms! - f.leader_lease_ttl_ms!, '<=', 1000, ' ms'),
    t('schedule lateness p99', f.schedule_lateness_p99_ms!, '<=', 25, ' ms'),
    t('schedule duplicates', f.schedule_duplicates!, '<=', 0),
    t('schedule misses', f.schedule_misses!, '<=', 0),
    t('worker peak RSS', f.worker_peak_rss_mb!, '<=', 150, ' MB'),
  ];
}

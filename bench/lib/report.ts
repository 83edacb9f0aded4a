/**
 * The benchmark's results (the shape of bench/results/latest.json) and their rendering: the
 * console table and docs/benchmarks.md. `npx tsx bench/render.ts` re-renders the page from the
 * JSON without running anything.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Machine } from './machine.js';
import { fmt, fmtSummary, type Summary } from './stats.js';

export interface QueueResult {
  engine: string;
  enqueuePerSec: Summary | null;
  processedPerSec: Summary | null;
  pickupP50Ms: Summary | null;
  pickupP99Ms: Summary | null;
  pickupMaxMs: Summary | null;
}

export interface ClusterResult {
  leaderFailoverMs?: Summary;
  poolFailoverMs?: Summary;
  poolFirstRestartMs?: Summary;
  poolJobsMoved?: number[];
  scheduleLatenessP50Ms?: Summary;
  scheduleLatenessP99Ms?: Summary;
  scheduleLatenessMaxMs?: Summary;
  scheduleSlots?: number;
  scheduleDuplicates?: number;
  scheduleMisses?: number;
  scheduleSkipped?: number;
}

export interface Target {
  name: string;
  value: number;
  target: string;
  met: boolean;
}

export interface BenchResults {
  ok: boolean;
  mode: 'quick' | 'full';
  startedAt: string;
  finishedAt: string;
  durationSec: number;
  loadAverageAtEnd: number[];
  /** `dist (…)` or `src (why)`: which Rota code ran. */
  rotaBuild: string;
  // biome-ignore lint/suspicious/noExplicitAny: the settings object of run.ts, printed as is
  settings: any;
  machine: Machine;
  queues: Record<string, QueueResult>;
  depth: {
    store: string;
    deepBacklog: number;
    shallowBacklog: number;
    measured: number;
    deepPerSec: Summary;
    shallowPerSec: Summary;
  } | null;
  cluster: Record<string, ClusterResult>;
  rss: Record<string, { peakRssMb: Summary; idleRssMb: Summary }>;
  ratios: Record<string, number>;
  figures: Record<string, number>;
  targets: Target[];
  failures: string[];
}

const n = (x: number) => x.toLocaleString('en-US');
const ratio = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '—' : `${x.toFixed(2)}×`);

function table(head: string[], rows: string[][]): string {
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

/** The result tables (printed by the runner, and the heart of docs/benchmarks.md). */
export function renderTables(r: BenchResults): string {
  const s = r.settings;
  const out: string[] = [];
  const order = Object.keys(r.queues);
  out.push(
    `### (a) Throughput: ${n(s.throughput.tasks)} no-op tasks, bulk enqueue in chunks of ${n(s.throughput.chunk)}, drained at concurrency ${s.concurrency}`,
    '',
    table(
      ['system', 'store', 'enqueue/s', 'processed/s'],
      order.map((name) => {
        const q = r.queues[name]!;
        return [
          name,
          q.engine,
          fmtSummary(q.enqueuePerSec ?? undefined),
          fmtSummary(q.processedPerSec ?? undefined),
        ];
      }),
    ),
    '',
    `### (b) Pickup latency: ${n(s.latency.tasks)} tasks per run enqueued one by one at ${s.latency.ratePerSec}/s to a running worker (enqueue → handler start, ms)`,
    '',
    table(
      ['system', 'store', 'p50', 'p99', 'max'],
      order.map((name) => {
        const q = r.queues[name]!;
        return [
          name,
          q.engine,
          fmtSummary(q.pickupP50Ms ?? undefined, 1),
          fmtSummary(q.pickupP99Ms ?? undefined, 1),
          fmtSummary(q.pickupMaxMs ?? undefined, 1),
        ];
      }),
    ),
    '',
  );
  if (r.depth) {
    const d = r.depth;
    out.push(
      `### (c) Depth: Rota on ${d.store}, processing rate of ${n(d.measured)} tasks at concurrency ${s.concurrency}`,
      '',
      table(
        ['tasks queued', 'processed/s'],
        [
          [n(d.shallowBacklog), fmtSummary(d.shallowPerSec)],
          [
            `${n(d.deepBacklog)}${r.mode === 'quick' ? ' (quick mode: not 1M)' : ''}`,
            fmtSummary(d.deepPerSec),
          ],
        ],
      ),
      '',
    );
  }
  const stores = Object.keys(r.cluster);
  if (stores.length > 0) {
    const c = s.cluster;
    out.push(
      `### (d) Rota across processes (ms; pool: ${c.pool.processes} processes × ${c.pool.workersPerProcess} workers, ${c.pool.jobs} jobs, workerTtl ${n(c.pool.workerTtlMs)}; leader: ${c.leader.processes} candidates, election TTL ${n(c.leader.electionTtlMs)}; schedules: ${c.schedules.nodes} nodes × ${c.schedules.schedules} schedules every ${n(c.schedules.everyMs)} ms, ${r.settings.runs} windows of ${c.schedules.windowMs / 1000} s after ${c.schedules.warmUpMs / 1000} s warm-up)`,
      '',
      table(
        [
          'store',
          'pool failover (last job)',
          'pool first restart',
          'leader failover',
          'schedule lateness p50',
          'p99',
          'max',
          'slots',
          'duplicates',
          'misses (recorded skips)',
        ],
        stores.map((store) => {
          const x = r.cluster[store]!;
          return [
            store,
            fmtSummary(x.poolFailoverMs),
            fmtSummary(x.poolFirstRestartMs),
            fmtSummary(x.leaderFailoverMs),
            fmtSummary(x.scheduleLatenessP50Ms),
            fmtSummary(x.scheduleLatenessP99Ms),
            fmtSummary(x.scheduleLatenessMaxMs),
            x.scheduleSlots === undefined ? '—' : n(x.scheduleSlots),
            x.scheduleDuplicates === undefined ? '—' : n(x.scheduleDuplicates),
            x.scheduleMisses === undefined ? '—' : `${n(x.scheduleMisses)} (${n(x.scheduleSkipped ?? 0)})`,
          ];
        }),
      ),
      '',
    );
  }
  const rssStores = Object.keys(r.rss);
  if (rssStores.length > 0) {
    out.push(
      `### (e) Rota worker process memory (one process per run, concurrency ${s.concurrency}, ${n(s.rss.tasks)} tasks; the child script loads through tsx, Rota from dist/)`,
      '',
      table(
        ['store', 'peak RSS (MB)', 'RSS idle after start (MB)'],
        rssStores.map((store) => [
          store,
          fmtSummary(r.rss[store]!.peakRssMb),
          fmtSummary(r.rss[store]!.idleRssMb),
        ]),
      ),
      '',
    );
  }
  out.push(
    '### Ratios and targets',
    '',
    table(
      ['', 'measured', 'target', ''],
      r.targets.map((t) => [
        t.name,
        t.target.endsWith('×')
          ? ratio(t.value)
          : `${fmt(t.value, t.target.endsWith('ms') ? 1 : 0)}${t.target.endsWith('ms') ? ' ms' : t.target.endsWith('MB') ? ' MB' : ''}`,
        t.target,
        t.met ? 'met' : '**missed**',
      ]),
    ),
    '',
  );
  return out.join('\n');
}

function methodSection(r: BenchResults): string {
  const s = r.settings;
  const m = r.machine;
  const pgSettings = m.servers.postgres
    ? Object.entries(m.servers.postgres.durability)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')
    : 'n/a';
  return [
    '## Method',
    '',
    `- One process drives each system as producer and worker, through the same interface (\`bench/systems/types.ts\`): the same payload (\`{ id, t }\`), the same bulk call per chunk, the same single-add call, one worker at concurrency ${s.concurrency}. Rota: \`tasks.enqueueMany\` / \`tasks.enqueue\` / \`tasks.work(queue, fn, { concurrency: ${s.concurrency} })\`, other options at their defaults (claims of up to \`batchSize\` = 4 × concurrency = ${4 * s.concurrency} tasks, 2 × on etcd, one batch prefetched while handlers are short: at most ${5 * s.concurrency} tasks held, ${3 * s.concurrency} on etcd; docs/tasks.md). BullMQ: \`Queue.addBulk\` / \`add\`, one \`Worker\` with \`concurrency: ${s.concurrency}\`. graphile-worker: \`addJobs\` / \`addJob\`, \`run({ concurrency: ${s.concurrency} })\`. pg-boss: \`insert\` / \`send\`; it has no per-worker concurrency, so ${s.pgBoss.workLoops} \`work()\` loops with \`batchSize ${s.pgBoss.batchSize}\`, \`pollingIntervalSeconds ${s.pgBoss.pollingIntervalSeconds}\` (its fastest).`,
    "- Rota runs from its compiled build (`dist/`, built by `npm run bench`), plain JavaScript like the peers in `node_modules`; the benchmark's own code runs through tsx.",
    `- Each system gets a warm-up of ${s.warmUp.tasks} tasks (connections, scripts, JIT), not timed. Every measurement is repeated ${s.runs} times, round-robin over the systems so that noise from the shared machine spreads over all of them; tables show the **median (min–max)**.`,
    "- Exactly once: every run counts handler calls per task id; a task that ran twice or never fails the whole benchmark (latest.json is not written). The depth runs also check the store's counts, the pool runs that every job runs on exactly one live worker (and the owner records), the schedule runs every slot's starts and run records, the election runs that exactly one survivor took over with a greater fencing token.",
    "- Throughput: enqueue/s is the bulk enqueue of all tasks; processed/s runs from starting the worker until the last task's handler started.",
    `- Pickup latency: \`t\` is taken just before the enqueue call, latency is measured when the handler starts (same process, same clock); p50/p99/max per run over all its tasks. ${
      (s.latency.segments ?? 1) > 1
        ? `Each run is done in ${s.latency.segments} parts of ${n(s.latency.tasks / s.latency.segments)} tasks, the parts of all systems interleaved (A1 B1 C1 … A2 B2 C2 …), each part with its own worker started 200 ms before its first task: this machine's wake-up latency after idleness drifts over minutes (the in-process memory store's p50 moved between 0.12 and 0.55 ms from one run to the next), and interleaving makes every system meet the same drift instead of whichever minutes its run fell in.`
        : 'Each run is one worker and one go.'
    }`,
    `- Depth: Rota on Redis (its fastest shared store). The deep queue is filled once with \`tasks.enqueueMany\` in chunks of ${n(s.depth.fillChunk)} (not timed) and topped up to ${n(s.depth.deep)} before each run; each shallow run uses a fresh queue of ${n(s.depth.shallow)}. Each run times a fresh worker processing ${n(s.depth.measure)} tasks. The peers are not run at depth.`,
    `- Failover: children are separate Node processes (\`bench/children/node.ts\`, run with tsx) on the ${s.cluster.stores.join(' and ')} store; the process is SIGKILLed, times are wall-clock milliseconds of this one host from the kill to the survivor's first line reporting the takeover/restart. The headline figures are from ${s.cluster.headlineStore}.`,
    `- Schedules: lateness is \`startedAt − slotAt\` (store time) of each slot's first attempt, as reported by \`run:started\`; a slot is a duplicate when it was started or recorded succeeded more than once, a miss when it has no run. Rota records a slot it could not run in time as skipped (\`catchUp: 'latest'\`): such a slot keeps Rota's guarantee but counts as a miss against the target; a duplicate, or a slot neither run nor recorded, fails the benchmark.`,
    '- Worker RSS: `process.resourceUsage().maxRSS` of a worker process after draining its tasks (the producer is another process). The child script is TypeScript loaded through tsx (Rota itself from dist/), so the tsx loader is part of that RSS.',
    '',
    '### Durability and servers',
    '',
    `- PostgreSQL ${m.servers.postgres?.version ?? ''}: ${pgSettings} — the same server and settings for Rota, graphile-worker and pg-boss (PostgreSQL's defaults; \`scripts/with-servers.mjs\` keeps them under \`ROTA_SERVERS_DURABLE=1\`, which \`npm run bench\` sets).`,
    `- Redis ${m.servers.redis?.version ?? ''}: ${m.servers.redis?.persistence ?? 'n/a'} (no persistence) — the same server for Rota and BullMQ.`,
    `- etcd ${m.servers.etcd?.version ?? ''}: fsync ${m.servers.etcd?.fsync ?? 'n/a'}. SQLite: a WAL file in the temp folder with the store's defaults. Memory: in-process.`,
    '- Every server runs on 127.0.0.1 of the same machine as the benchmark.',
    '',
  ].join('\n');
}

export function renderMarkdown(r: BenchResults): { table: string; document: string } {
  const m = r.machine;
  const header = [
    `Run ${r.startedAt} (${r.mode} mode, ${r.durationSec} s${r.ok ? '' : ', FAILED'}), Rota ${m.rotaCommit} from ${r.rotaBuild}.`,
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, ${m.os}, Node ${m.node}; load average ${m.loadAverageAtStart.join(' / ')} at the start, ${r.loadAverageAtEnd.join(' / ')} at the end.`,
    `Peers: BullMQ ${m.packages.bullmq}, graphile-worker ${m.packages['graphile-worker']}, pg-boss ${m.packages['pg-boss']}.`,
  ].join('\n');
  const tables = renderTables(r);
  const missed = r.targets.filter((t) => !t.met);
  const notesFile = new URL('../results/notes.md', import.meta.url);
  const notes = existsSync(notesFile) ? readFileSync(notesFile, 'utf8').trim() : '';
  const document = [
    '# Benchmarks',
    '',
    'Rota against BullMQ (Redis), graphile-worker and pg-boss (PostgreSQL) on the same machine, in one run,',
    'with the same workloads and settings; plus Rota-only figures for failover, schedules and memory.',
    '',
    '## Reproduce',
    '',
    '```sh',
    'npm ci',
    'npm run bench              # full sizes, ~15–20 min on 2 cores',
    'npm run bench -- --quick   # smaller counts, same workloads, ≥ 3 runs each, < 3 min',
    'npx tsx bench/render.ts    # re-render this page from bench/results/latest.json',
    '```',
    '',
    '`npm run bench` builds `dist/` (`npm run build`), then runs `ROTA_SERVERS_DURABLE=1 node scripts/with-servers.mjs tsx bench/run.ts`: it starts',
    'Redis, PostgreSQL and etcd on free 127.0.0.1 ports (installing them with apt-get when run as root), runs',
    'every workload with a progress bar on stderr, prints the tables, writes `bench/results/latest.json`',
    '(and `quick.json` / `full.json`) and this page, and stops the servers. `--only a,c` runs a subset and',
    '`--systems rota/postgres,graphile-worker` some of the systems, without writing anything. A run in which any task, job or slot ran twice or never fails and writes',
    '`bench/results/failed.json` instead. Times are never asserted by the tests.',
    '',
    'Wall-clock and CPU times on a shared machine move by a third or more between runs. For the Redis',
    "store's server work there is a steady figure: `npx tsx bench/redis-instructions.ts` (needs valgrind)",
    "counts the Redis server's instructions per item for enqueue, claim and completion under callgrind.",
    '',
    `## Latest results`,
    '',
    header,
    '',
    r.mode === 'quick'
      ? '> These are **quick-mode** numbers (smaller counts, labelled in each heading). Run `npm run bench` for the full sizes.\n'
      : null,
    'Absolute numbers depend on the machine and on what else runs on it (see the load average); the ratios come from the same run, round-robin over the systems, but still move with the load: read them with their min–max.',
    '',
    tables,
    missed.length > 0
      ? `Missed in this run: ${missed.map((t) => t.name).join('; ')}.\n`
      : 'Every target was met in this run.\n',
    notes ? `## Notes on this run\n\n${notes}\n` : null,
    methodSection(r),
  ]
    .filter((x) => x !== null)
    .join('\n');
  return { table: `\n${header}\n\n${tables}`, document };
}

/**
 * Queue throughput of the SQLite store: claim + complete, in one process and in several processes
 * sharing one file. Not a test: it prints numbers.
 *
 *   npx tsx scripts/bench-sqlite.ts [--items 20000] [--batch 10] [--concurrency 10] [--processes 4]
 *
 * Each worker loop claims `batch` items (start: true), then completes them in one settle call.
 * `concurrency` loops run per process. The multi-process run starts every child at once (a
 * barrier over stdin) and divides the item count by the span from the first start to the last end.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { openStore } from '../src/store/open.js';
import type { Store } from '../src/store/port.js';
import { sqliteUrl } from '../src/store/sqlite/index.js';

const { values } = parseArgs({
  options: {
    items: { type: 'string', default: '20000' },
    batch: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '10' },
    processes: { type: 'string', default: '4' },
    worker: { type: 'string' },
  },
});
const ITEMS = Number(values.items);
const BATCH = Number(values.batch);
const CONCURRENCY = Number(values.concurrency);
const PROCESSES = Number(values.processes);
const QUEUE = 'bench';

/** Run `CONCURRENCY` claim/complete loops until the queue is empty; returns the items completed. */
async function work(store: Store, owner: string): Promise<number> {
  let done = 0;
  const loop = async (n: number) => {
    for (;;) {
      const { items } = await store.claim({
        queue: QUEUE,
        owner: `${owner}-${n}`,
        limit: BATCH,
        leaseTtl: 60_000,
        start: true,
      });
      if (items.length === 0) return;
      const results = await store.settle(
        items.map((it) => ({
          op: 'complete' as const,
          id: it.id,
          token: it.token as number,
          owner: `${owner}-${n}`,
          result: null,
        })),
      );
      done += results.filter((r) => r.status === 'ok').length;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, n) => loop(n)));
  return done;
}

async function fill(store: Store): Promise<void> {
  for (let i = 0; i < ITEMS; i += 1000) {
    const n = Math.min(1000, ITEMS - i);
    await store.enqueue(
      Array.from({ length: n }, (_, j) => ({ id: `i${i + j}`, queue: QUEUE, payload: `{"n":${i + j}}` })),
    );
  }
}

async function child(url: string): Promise<void> {
  const store = await openStore(url);
  const lines = createInterface({ input: process.stdin });
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  const start = Date.now();
  const cpu0 = process.cpuUsage();
  const done = await work(store, `p${process.pid}`);
  const end = Date.now();
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(`${JSON.stringify({ start, end, done, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`);
  lines.close();
  await store.close();
}

async function singleProcess(dir: string): Promise<void> {
  const store = await openStore(sqliteUrl(join(dir, 'single.db')));
  await fill(store);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const done = await work(store, 'solo');
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  await store.close();
  console.log(
    `1 process : ${done} items claimed+completed in ${ms.toFixed(0)} ms = ${Math.round((done / ms) * 1000)} items/s` +
      ` (CPU ${cpuMs.toFixed(0)} ms = ${Math.round((done / cpuMs) * 1000)} items per CPU-second)`,
  );
}

async function multiProcess(dir: string): Promise<void> {
  const url = sqliteUrl(join(dir, 'multi.db'));
  const store = await openStore(url);
  await fill(store);
  const children = Array.from({ length: PROCESSES }, () =>
    spawn(process.execPath, ['--import', 'tsx', import.meta.filename, '--worker', url, ...passThrough()], {
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  const outputs = children.map((c) => {
    const lines = createInterface({ input: c.stdout });
    const got: string[] = [];
    const ready = new Promise<void>((resolve) =>
      lines.on('line', (l) => (l === 'ready' ? resolve() : got.push(l))),
    );
    const exited = new Promise<string[]>((resolve, reject) =>
      c.on('exit', (code) => (code === 0 ? resolve(got) : reject(new Error(`worker exited with ${code}`)))),
    );
    return { ready, exited };
  });
  await Promise.all(outputs.map((o) => o.ready));
  for (const c of children) c.stdin.write('go\n');
  const reports = (await Promise.all(outputs.map((o) => o.exited))).map(
    (lines) =>
      JSON.parse(lines[lines.length - 1] as string) as {
        start: number;
        end: number;
        done: number;
        cpuMs: number;
      },
  );
  const cpuMs = reports.reduce((n, r) => n + r.cpuMs, 0);
  const done = reports.reduce((n, r) => n + r.done, 0);
  const ms = Math.max(...reports.map((r) => r.end)) - Math.min(...reports.map((r) => r.start));
  const completed = (await store.countItems(QUEUE))[QUEUE]?.completed;
  await store.close();
  console.log(
    `${PROCESSES} processes: ${done} items claimed+completed in ${ms} ms = ${Math.round((done / ms) * 1000)} items/s` +
      ` (per process: ${reports.map((r) => r.done).join(', ')}; completed in store: ${completed};` +
      ` CPU of all workers ${cpuMs.toFixed(0)} ms = ${Math.round((done / cpuMs) * 1000)} items per CPU-second)`,
  );
}

function passThrough(): string[] {
  return ['--batch', String(BATCH), '--concurrency', String(CONCURRENCY)];
}

if (values.worker) {
  await child(values.worker);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'rota-bench-sqlite-'));
  try {
    console.log(
      `SQLite queue bench: ${ITEMS} items, claim batches of ${BATCH} (start: true), settle batches, ` +
        `concurrency ${CONCURRENCY} per process, synchronous=NORMAL, WAL`,
    );
    await singleProcess(dir);
    await multiProcess(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Redis server work per queue item, counted in instructions: the figure that does not move with
 * the load of a shared machine (wall-clock and CPU time move by a third or more between runs on
 * the 2-core VM this project is measured on). No assertions; numbers only.
 *
 *   npx tsx bench/redis-instructions.ts            (needs valgrind and redis-server on PATH)
 *
 * It starts its own redis-server on a free 127.0.0.1 port under valgrind's callgrind (about 50×
 * slower, so the sizes are small), then, with the Redis store of src/:
 * 1. enqueues ROTA_BENCH_ITEMS items (default 2 000) in batches of 1 000, shaped as
 *    `tasks.enqueueMany` makes them (one opId per batch, maxAttempts 3, timeout 15 min);
 * 2. claims them 10 at a time with `start`;
 * 3. completes them in settle batches of 10,
 * zeroing the counters before each step and dumping them after, and prints the server's
 * instructions per item for each step (warm-up excluded). `REDIS_SERVER` picks another binary.
 * Per-function profiles stay in the temporary directory it prints (`callgrind_annotate`; a
 * redis-server built with symbols names the Lua internals).
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { openStore } from '../src/store/open.js';

const ITEMS = Number(process.env.ROTA_BENCH_ITEMS ?? 2_000);
const BATCH = 10;
const server = process.env.REDIS_SERVER ?? 'redis-server';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'rota-callgrind-'));
const port = await freePort();
const child = spawn(
  'valgrind',
  ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'cg.out')}`, server, '--port', String(port)].concat([
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
  ]),
  { stdio: 'ignore' },
);
const control = (...args: string[]) =>
  execFileSync('callgrind_control', [...args, String(child.pid)], { stdio: 'ignore' });

const url = `redis://127.0.0.1:${port}`;

/** Wait for the server under valgrind to answer (it takes a few seconds to start). */
async function up(): Promise<void> {
  for (let tries = 0; tries < 150; tries++) {
    const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      probe.disconnect();
    }
  }
  throw new Error(`${server} under valgrind did not answer on ${url}`);
}

try {
  await up();
  const store = await openStore(url, { prefix: 'instr' });
  const batch = (queue: string, n: number) => {
    const opId = randomUUID();
    return Array.from({ length: n }, (_, i) => ({
      id: randomUUID(),
      queue,
      payload: JSON.stringify({ n: i, at: Date.now(), user: 'u-12345' }),
      maxAttempts: 3,
      timeout: 900_000,
      opId,
    }));
  };
  const steps: [string, () => Promise<void>][] = [];
  const held: { id: string; token: number }[] = [];
  steps.push([
    'enqueue',
    async () => {
      for (let i = 0; i < ITEMS; i += 1000) await store.enqueue(batch('q', Math.min(1000, ITEMS - i)));
    },
  ]);
  steps.push([
    'claim',
    async () => {
      for (;;) {
        const r = await store.claim({ queue: 'q', owner: 'w', limit: BATCH, leaseTtl: 30_000, start: true });
        for (const it of r.items) held.push({ id: it.id, token: it.token as number });
        if (r.items.length < BATCH) break;
      }
    },
  ]);
  steps.push([
    'complete',
    async () => {
      for (let i = 0; i < held.length; i += BATCH) {
        const ops = held.slice(i, i + BATCH).map((h) => ({ op: 'complete' as const, ...h, owner: 'w' }));
        await store.settle(ops);
      }
    },
  ]);

  // Warm-up: one small round of each (loads the functions, sizes the tables).
  await store.enqueue(batch('warm', 100));
  const warm = await store.claim({ queue: 'warm', owner: 'w', limit: 100, leaseTtl: 30_000, start: true });
  await store.settle(
    warm.items.map((it) => ({ op: 'complete', id: it.id, token: it.token as number, owner: 'w' })),
  );

  const rows: string[] = [];
  for (const [name, run] of steps) {
    control('-z');
    await run();
    control('-d', name);
    const dump = readdirSync(dir)
      .filter((f) => f.startsWith('cg.out.'))
      .map((f) => join(dir, f))
      .find((f) => readFileSync(f, 'utf8').includes(`Trigger: dump ${name}\n`)) as string;
    const total = Number(/^(?:summary|totals): (\d+)/m.exec(readFileSync(dump, 'utf8'))?.[1]);
    rows.push(`| ${name} | ${Math.round(total / ITEMS / 1000)} k |`);
  }
  if (held.length !== ITEMS) throw new Error(`claimed ${held.length} of ${ITEMS}`);
  await store.close();
  console.log(`Redis server instructions per item (${ITEMS} items, callgrind; profiles in ${dir})\n`);
  console.log('| step | instructions per item |\n|---|---|');
  console.log(rows.join('\n'));
} finally {
  child.kill('SIGTERM');
}

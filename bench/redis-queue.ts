/**
 * Redis queue throughput, measured against a real server (no assertions; numbers only).
 *
 *   node scripts/with-servers.mjs node --import tsx bench/redis-queue.ts
 *   ROTA_TEST_REDIS_URL=redis://127.0.0.1:6379 node --import tsx bench/redis-queue.ts
 *
 * 1. Bulk enqueue: 10 000 items in chunks of 1 000 (one enqueue call per chunk).
 * 2. Claim + complete: 10 concurrent workers, each claiming batches of 10 (start: true); their
 *    completions go through one settle batcher (up to 100 ops or 2 ms, as the tasks worker of
 *    tasks.md §2.4 batches settles), until the queue is empty.
 * ROTA_BENCH_ITEMS (default 10 000) and ROTA_BENCH_ROUNDS (default 3) change the size and repeats.
 * Besides wall-clock rates it reports the Redis server's CPU time per item (INFO cpu, main thread),
 * which is the server's capacity limit and is steadier than wall time on a shared machine.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { openStore } from '../src/store/open.js';
import type { SettleOp, SettleResult, Store } from '../src/store/port.js';
import { dropRedisPrefix } from '../test/support/stores.js';

const url = process.env.ROTA_TEST_REDIS_URL;
if (!url) {
  console.error('set ROTA_TEST_REDIS_URL (or run under scripts/with-servers.mjs)');
  process.exit(2);
}
const ITEMS = Number(process.env.ROTA_BENCH_ITEMS ?? 10_000);
const ROUNDS = Number(process.env.ROTA_BENCH_ROUNDS ?? 3);
const CHUNK = 1_000;
const CONCURRENCY = 10;
const BATCH = 10;
const payload = JSON.stringify({ user: 12345, action: 'resize', size: [640, 480], tags: ['a', 'b'] });

async function enqueueAll(store: Store, queue: string): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < ITEMS; i += CHUNK) {
    const items = [];
    for (let j = i; j < Math.min(ITEMS, i + CHUNK); j++) items.push({ id: `j${j}`, queue, payload });
    await store.enqueue(items);
  }
  return performance.now() - started;
}

/** Collects settle ops from every worker of a client and sends them in batches. */
class SettleBatcher {
  #ops: SettleOp[] = [];
  #waiters: ((results: SettleResult[]) => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  constructor(
    readonly store: Store,
    readonly max = 100,
    readonly lingerMs = 2,
  ) {}
  settle(ops: SettleOp[]): Promise<SettleResult[]> {
    const from = this.#ops.length;
    this.#ops.push(...ops);
    const done = new Promise<SettleResult[]>((resolve) => {
      this.#waiters.push((all) => resolve(all.slice(from, from + ops.length)));
    });
    if (this.#ops.length >= this.max) this.#flush();
    else this.#timer ??= setTimeout(() => this.#flush(), this.lingerMs);
    return done;
  }
  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const ops = this.#ops;
    const waiters = this.#waiters;
    this.#ops = [];
    this.#waiters = [];
    this.store.settle(ops).then((results) => {
      for (const w of waiters) w(results);
    });
  }
}

async function work(stores: Store[], queue: string): Promise<{ ms: number; done: number }> {
  let done = 0;
  const batchers = stores.map((s) => new SettleBatcher(s));
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, w) => {
      const store = stores[w % stores.length] as Store;
      const batcher = batchers[w % stores.length] as SettleBatcher;
      for (;;) {
        const { items } = await store.claim({
          queue,
          owner: `w${w}`,
          limit: BATCH,
          leaseTtl: 30_000,
          start: true,
        });
        if (items.length === 0) return;
        const results = await batcher.settle(
          items.map((it) => ({
            op: 'complete' as const,
            id: it.id,
            token: it.token as number,
            owner: `w${w}`,
            result: '1',
          })),
        );
        done += results.filter((r) => r.status === 'ok').length;
      }
    }),
  );
  return { ms: performance.now() - started, done };
}

const rate = (n: number, ms: number) => Math.round((n / ms) * 1000);
const admin = new Redis(url);
/** Seconds of CPU the Redis main thread has used. */
async function redisCpu(): Promise<number> {
  const info = await admin.info('cpu');
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return field('used_cpu_user_main_thread') + field('used_cpu_sys_main_thread');
}
const perItem = (seconds: number) => `${((seconds * 1e6) / ITEMS).toFixed(0)} µs Redis CPU/item`;

for (let round = 1; round <= ROUNDS; round++) {
  const prefix = `bench-${randomBytes(4).toString('hex')}`;
  // Two client connections, as two worker processes would have.
  const stores = [await openStore(url, { prefix }), await openStore(url, { prefix })];
  const store = stores[0] as Store;
  const cpu0 = await redisCpu();
  const enqueueMs = await enqueueAll(store, 'bench');
  const cpu1 = await redisCpu();
  const { ms, done } = await work(stores, 'bench');
  const cpu2 = await redisCpu();
  if (done !== ITEMS) throw new Error(`completed ${done} of ${ITEMS}`);
  console.log(
    `round ${round}: bulk enqueue ${ITEMS} in chunks of ${CHUNK}: ${rate(ITEMS, enqueueMs)} items/s ` +
      `(${perItem(cpu1 - cpu0)}); claim+complete (concurrency ${CONCURRENCY}, claim batches of ${BATCH}): ` +
      `${rate(done, ms)} items/s (${perItem(cpu2 - cpu1)})`,
  );
  await Promise.all(stores.map((s) => s.close()));
  await dropRedisPrefix(url, prefix);
}
admin.disconnect();

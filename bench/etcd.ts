/**
 * etcd store throughput: puts, CAS txns, enqueue and claim+complete, sequential and concurrent.
 *
 *   node --import tsx bench/etcd.ts [etcd://127.0.0.1:2379]
 *
 * Without a URL it starts its own etcd on free loopback ports with etcd's default durability
 * (fsync on every commit), which is what a real deployment pays. Every measurement is bounded in
 * count; the data is written under a fresh prefix and deleted at the end.
 */
import { randomUUID } from 'node:crypto';
import { dropEtcdPrefix } from '../src/store/etcd/index.js';
import { openStore } from '../src/store/open.js';
import type { Store } from '../src/store/port.js';
import { EtcdServer } from '../test/etcd/support/server.js';

const enc = (s: string) => new TextEncoder().encode(s);

async function timed(label: string, count: number, fn: () => Promise<void>): Promise<void> {
  const started = performance.now();
  await fn();
  const ms = performance.now() - started;
  console.log(
    `${label.padEnd(48)} ${String(Math.round((count * 1000) / ms)).padStart(7)} /s  (${count} in ${Math.round(ms)} ms)`,
  );
}

/** Run `total` calls of `fn(i)` with `concurrency` in flight. */
async function pool(total: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await fn(next++);
    }),
  );
}

async function claimAndComplete(
  stores: Store[],
  queue: string,
  batch: number,
  workers: number,
): Promise<number> {
  let done = 0;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const store = stores[w % stores.length] as Store;
      for (;;) {
        const { items } = await store.claim({
          queue,
          owner: `w${w}`,
          limit: batch,
          leaseTtl: 60_000,
          start: true,
        });
        if (items.length === 0) return;
        const res = await store.settle(
          items.map((it) => ({
            op: 'complete' as const,
            id: it.id,
            token: it.token as number,
            owner: `w${w}`,
          })),
        );
        done += res.filter((r) => r.status === 'ok').length;
      }
    }),
  );
  return done;
}

async function main(): Promise<void> {
  let url = process.argv[2];
  let server: EtcdServer | null = null;
  if (!url) {
    server = new EtcdServer();
    await server.start();
    url = server.url;
    console.log(`dedicated etcd (fsync on) at ${url}`);
  } else console.log(`etcd at ${url}`);
  const prefix = `rota-bench/${randomUUID()}/`;
  const stores = await Promise.all([1, 2, 3, 4].map(() => openStore(url as string, { prefix })));
  const store = stores[0] as Store;
  try {
    await timed('put, 1 in flight', 500, () =>
      pool(500, 1, async (i) => void (await store.put(`p/${i}`, enc('v')))),
    );
    await timed('put, 16 in flight', 2000, () =>
      pool(2000, 16, async (i) => void (await store.put(`p/${i % 200}`, enc('v')))),
    );
    const cas = async (i: number) => {
      const key = `t/${i % 64}`;
      const { kv } = await store.get(key);
      await store.txn({
        compare: [{ key, target: 'modRevision', op: '==', value: kv?.modRevision ?? 0 }],
        success: [{ type: 'put', key, value: enc(String(i)) }],
      });
    };
    await timed('txn (get + CAS put), 1 in flight', 300, () => pool(300, 1, cas));
    await timed('txn (get + CAS put), 16 in flight', 1500, () => pool(1500, 16, cas));

    const items = (queue: string, n: number) =>
      Array.from({ length: n }, (_, i) => ({ id: `${queue}-${i}`, queue, payload: '{"n":1}' }));
    await timed('enqueue, 1 item per call, 8 in flight', 400, () =>
      pool(400, 8, async (i) => void (await store.enqueue([{ id: `e-${i}`, queue: 'e', payload: '{}' }]))),
    );
    await timed('enqueue, batches of 100', 2000, async () => {
      for (let b = 0; b < 20; b++) await store.enqueue(items(`b${b}`, 100));
    });
    const runs: [string, number, number][] = [
      ['c', 1, 1],
      ['c', 1, 4],
      ['c', 10, 4],
      ['c', 50, 4],
    ];
    for (const [queue, batch, workers] of runs) {
      // Each run claims a fixed share of the queue (a fresh queue per run keeps depth comparable).
      const q = `${queue}-${batch}-${workers}`;
      const n = batch === 1 && workers === 1 ? 200 : 500;
      for (let i = 0; i < n; i += 100) await store.enqueue(items(q, n).slice(i, i + 100));
      let done = 0;
      await timed(`claim(start) + complete, batch ${batch}, ${workers} workers`, n, async () => {
        done = await claimAndComplete(stores, q, batch, workers);
      });
      if (done !== n) throw new Error(`completed ${done} of ${n}`);
    }
  } finally {
    await Promise.all(stores.map((s) => s.close()));
    await dropEtcdPrefix(url, prefix);
    await server?.destroy();
  }
}

await main();

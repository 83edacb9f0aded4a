/**
 * `npm start`: three nodes coordinating through one store.
 *
 * Each node holds a lease, campaigns for leadership with the etcd recipe (the oldest candidate key
 * leads) and works a shared task queue. The leader produces tasks. Midway the leader "crashes":
 * it stops renewing and stops working, without any cleanup. Its lease expires by the store's
 * clock, the watchers see its key vanish, the next candidate takes over, and its unfinished
 * claims are re-taken by the survivors. At the end every task is checked to have completed once.
 *
 * The store is the embedded SQLite store, in a fresh file per run; `ROTA_STORE` picks another.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../store/open.js';
import type { Store } from '../store/port.js';
import { sqliteUrl } from '../store/sqlite/options.js';

// The embedded SQLite store in a fresh temp folder per run (removed at the end); ROTA_STORE overrides.
const TEMP_DIR = process.env.ROTA_STORE ? null : mkdtempSync(join(tmpdir(), 'rota-demo-'));
const STORE_URL = process.env.ROTA_STORE ?? sqliteUrl(join(TEMP_DIR as string, 'demo.db'));
const NODES = ['node-a', 'node-b', 'node-c'];
const LEASE_TTL = 2000;
const RUN_MS = Number(process.env.ROTA_DEMO_MS ?? 12_000);
const CRASH_AT = RUN_MS / 2;
const QUEUE = 'demo';

const enc = (s: string) => new TextEncoder().encode(s);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const stamp = () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`;
const say = (msg: string) => console.log(`${stamp()}  ${msg}`);

interface DemoNode {
  name: string;
  store: Store;
  alive: boolean;
  leader: boolean;
  completed: number;
  stop(): void;
}

async function startNode(name: string): Promise<DemoNode> {
  const store = await openStore(STORE_URL);
  const lease = await store.grant(LEASE_TTL);
  const node: DemoNode = { name, store, alive: true, leader: false, completed: 0, stop: () => {} };
  const controller = new AbortController();
  node.stop = () => {
    node.alive = false;
    controller.abort();
  };

  // Keep the lease alive at a third of its TTL, until the node "crashes".
  const keepAlive = setInterval(() => {
    if (node.alive) store.keepAlive(lease.id).catch(() => undefined);
  }, LEASE_TTL / 3);
  controller.signal.addEventListener('abort', () => clearInterval(keepAlive));

  // Campaign: a candidate key on our lease; the smallest createRevision leads.
  await store.put(`${QUEUE}/leader/${name}`, enc(name), { lease: lease.id });
  const decide = async () => {
    const { kvs, revision } = await store.range(`${QUEUE}/leader/`);
    const oldest = [...kvs].sort((a, b) => a.createRevision - b.createRevision)[0];
    const leads = oldest?.key.endsWith(`/${name}`) ?? false;
    if (leads && !node.leader && node.alive)
      say(`${name} is now the leader (token ${oldest?.createRevision})`);
    node.leader = leads && node.alive;
    return revision;
  };
  const from = (await decide()) + 1;
  void (async () => {
    for await (const _ of store.watch(`${QUEUE}/leader/`, {
      fromRevision: from,
      signal: controller.signal,
    })) {
      await decide();
    }
  })().catch(() => undefined);

  // Work: claim in batches, "process", settle in one batch; sleep until woken when idle.
  void (async () => {
    let wake: (() => void) | null = null;
    const off = store.subscribe(QUEUE, () => wake?.());
    controller.signal.addEventListener('abort', off);
    while (node.alive) {
      const { items } = await store.claim({
        queue: QUEUE,
        owner: name,
        limit: 20,
        leaseTtl: 2000,
        start: true,
      });
      if (items.length === 0) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 250);
        });
        continue;
      }
      await sleep(5 + Math.random() * 10);
      if (!node.alive) return; // crashed mid-batch: these claims expire and are re-taken
      const results = await store.settle(
        items.map((it) => ({
          op: 'complete' as const,
          id: it.id,
          token: it.token as number,
          owner: name,
          result: JSON.stringify({ by: name }),
        })),
      );
      node.completed += results.filter((r) => r.status === 'ok').length;
    }
  })().catch((err) => say(`${name} worker stopped: ${String(err)}`));
  return node;
}

async function main(): Promise<void> {
  console.log(
    `Rota demo: ${NODES.length} nodes on ${STORE_URL}, lease TTL ${LEASE_TTL} ms, ${RUN_MS / 1000} s\n`,
  );
  const nodes = await Promise.all(NODES.map(startNode));
  const observer = await openStore(STORE_URL);
  let produced = 0;
  let crashed: DemoNode | null = null;

  const producer = setInterval(async () => {
    const leader = nodes.find((n) => n.leader && n.alive);
    if (!leader) return;
    const batch = Array.from({ length: 100 }, () => ({
      id: `t${String(produced++).padStart(6, '0')}`,
      queue: QUEUE,
      payload: JSON.stringify({ by: leader.name }),
    }));
    await leader.store.enqueue(batch);
  }, 200);

  const report = setInterval(async () => {
    const counts = (await observer.countItems(QUEUE))[QUEUE];
    const perNode = nodes.map(
      (n) => `${n.name}${n.leader ? '*' : ''}${n.alive ? '' : '(dead)'}=${n.completed}`,
    );
    say(
      `produced ${produced}  pending ${counts?.pending ?? 0}  running ${counts?.running ?? 0}  done ${perNode.join(' ')}`,
    );
  }, 1000);

  await sleep(CRASH_AT);
  crashed = nodes.find((n) => n.leader) ?? null;
  if (crashed) {
    say(`!! ${crashed.name} (the leader) crashes: no more keep-alives, no cleanup`);
    crashed.stop();
    crashed.leader = false;
  }
  await sleep(RUN_MS - CRASH_AT);
  clearInterval(producer);
  say('producer stopped; draining the queue');
  for (let i = 0; i < 100; i++) {
    const c = (await observer.countItems(QUEUE))[QUEUE];
    if (c && c.pending + c.claimed + c.running === 0) break;
    await sleep(100);
  }
  clearInterval(report);

  // Verify: every produced task completed exactly once.
  let completed = 0;
  let afterSeq: number | undefined;
  for (;;) {
    const page = await observer.listItems({ queue: QUEUE, limit: 1000, ...(afterSeq ? { afterSeq } : {}) });
    completed += page.items.filter((i) => i.state === 'completed' && i.outcome === 'succeeded').length;
    if (page.nextAfterSeq === null) break;
    afterSeq = page.nextAfterSeq;
  }
  const settledOk = nodes.reduce((n, node) => n + node.completed, 0);
  console.log(
    `\nproduced ${produced}, completed ${completed}, successful completions ${settledOk}` +
      (crashed ? `; ${crashed.name} crashed and its claims were re-taken` : ''),
  );
  for (const n of nodes) n.stop();
  await Promise.all([...nodes.map((n) => n.store.close()), observer.close()]);
  if (completed !== produced || settledOk !== produced) {
    console.error('MISMATCH: a task was lost or completed twice');
    process.exit(1);
  }
  console.log('every task completed exactly once');
}

const removeTemp = () => {
  if (TEMP_DIR) rmSync(TEMP_DIR, { recursive: true, force: true });
};
process.on('exit', removeTemp);

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

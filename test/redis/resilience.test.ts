/**
 * Connection loss and a Redis restart, on a dedicated server with an append-only file (so data
 * survives the restart): clients reconnect, watchers resume without gap or duplicate, no item is
 * completed twice and no completed item runs again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isRotaError } from '../../src/errors.js';
import { openStore } from '../../src/store/open.js';
import type { QueueItem, Store, WatchEvent } from '../../src/store/port.js';
import { TestRedis } from './server.js';

const enc = (s: string) => new TextEncoder().encode(s);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Retry `fn` while the store is unavailable (bounded). */
async function retry<T>(fn: () => Promise<T>, onAmbiguous?: () => void): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!isRotaError(err, 'ROTA_STORE_UNAVAILABLE') || i > 200) throw err;
      if (err.detail.ambiguous) onAmbiguous?.();
      await sleep(50);
    }
  }
}

/** Collect a watch's events in the background. */
function collect(watch: AsyncIterableIterator<WatchEvent>): { events: WatchEvent[]; done: Promise<unknown> } {
  const events: WatchEvent[] = [];
  const done = (async () => {
    for await (const e of watch) events.push(e);
  })();
  return { events, done };
}

async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/**
 * Workers claim and complete `ids` while `disrupt` runs. Returns, per item, how many completions
 * the store acknowledged ('ok', or 'noop' after an ambiguous failure of our own complete).
 */
async function workThrough(
  stores: Store[],
  ids: string[],
  completions: Map<string, number>,
  disrupt: () => Promise<void>,
) {
  const claimedAfterCompletion: string[] = [];
  const worker = async (store: Store, name: string) => {
    while (completions.size < ids.length) {
      const { items } = await retry(() =>
        store.claim({ queue: 'q', owner: name, limit: 5, leaseTtl: 2000, start: true }),
      );
      if (items.length === 0) {
        await sleep(50);
        continue;
      }
      for (const it of items) if (completions.has(it.id)) claimedAfterCompletion.push(it.id);
      let ambiguous = false;
      const ops = items.map((it: QueueItem) => ({
        op: 'complete' as const,
        id: it.id,
        token: it.token as number,
        owner: name,
        result: JSON.stringify(it.token),
      }));
      const results = await retry(
        () => store.settle(ops),
        () => {
          ambiguous = true;
        },
      );
      for (const r of results) {
        if (r.status === 'ok' || (ambiguous && r.status === 'noop')) {
          completions.set(r.id, (completions.get(r.id) ?? 0) + 1);
        }
      }
      // Pace the work so that the disruption lands in the middle of it.
      await sleep(10);
    }
  };
  await Promise.all([worker(stores[0] as Store, 'a'), worker(stores[1] as Store, 'b'), disrupt()]);
  return { completions, claimedAfterCompletion };
}

describe('redis store across connection loss and restart', { timeout: 60_000 }, () => {
  const server = new TestRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
  before(() => server.start());
  after(() => server.stop());

  for (const kind of ['connection loss', 'server restart'] as const) {
    it(`survives a ${kind}: watchers resume, no completion doubled, nothing re-run`, async () => {
      const prefix = kind === 'connection loss' ? 'loss' : 'restart';
      const stores = [await openStore(server.url, { prefix }), await openStore(server.url, { prefix })];
      const watcher = await openStore(server.url, { prefix });
      const [a] = stores as [Store, Store];
      const ids = Array.from({ length: 400 }, (_, i) => `t${i}`);
      await a.enqueue(ids.map((id) => ({ id, queue: 'q', payload: '{}' })));
      const start = (await a.status()).revision + 1;
      const { events, done } = collect(watcher.watch('w/', { fromRevision: start }));
      let written = 0;
      const writes: number[] = [];
      const writer = async (until: () => boolean) => {
        while (!until()) {
          const put = await retry(() => a.put(`w/${written % 5}`, enc(String(written))));
          writes.push(put.revision);
          written++;
          await sleep(5);
        }
      };

      let disrupted = false;
      let doneAtDisruption = -1;
      const completionsRef = new Map<string, number>();
      const disrupt = async () => {
        await waitFor(() => written >= 10, 10_000, 'writes before the disruption');
        doneAtDisruption = completionsRef.size;
        if (kind === 'connection loss') {
          const admin = server.admin();
          // Drops every client connection: main, watch reader and pub/sub of every store.
          await admin.call('CLIENT', 'KILL', 'TYPE', 'normal');
          admin.disconnect();
        } else {
          await server.kill();
          await sleep(300);
          await server.start();
        }
        disrupted = true;
      };
      let finished = false;
      const writing = writer(() => finished && disrupted);
      const { completions, claimedAfterCompletion } = await workThrough(stores, ids, completionsRef, disrupt);
      finished = true;
      await writing;

      assert.ok(doneAtDisruption >= 0 && doneAtDisruption < ids.length, 'the disruption hit during the work');
      assert.equal(completions.size, ids.length, 'every item completed');
      for (const [id, n] of completions) assert.equal(n, 1, `${id} completed ${n} times`);
      assert.deepEqual(claimedAfterCompletion, [], 'a completed item was claimed again');
      const counts = (await a.countItems('q')).q;
      assert.deepEqual(counts, { pending: 0, claimed: 0, running: 0, completed: ids.length, resolving: 0 });

      // The watcher saw every acknowledged write once, in order; writes whose reply was lost may
      // add revisions, never holes.
      await waitFor(
        () => (events.at(-1)?.revision ?? 0) >= (writes.at(-1) ?? 0),
        15_000,
        'the watcher to catch up',
      );
      const seen = events.map((e) => e.revision);
      for (let i = 1; i < seen.length; i++)
        assert.ok((seen[i] as number) > (seen[i - 1] as number), 'in order');
      const seenSet = new Set(seen);
      for (const rev of writes) assert.ok(seenSet.has(rev), `the watcher missed revision ${rev}`);
      assert.equal(seen[0], start);
      assert.deepEqual(
        seen,
        Array.from({ length: seen.length }, (_, i) => start + i),
        'no gap',
      );

      await Promise.all([...stores, watcher].map((s) => s.close()));
      await done;
    });
  }
});

/**
 * PostgreSQL store: queue wake-ups. A write wakes the writing client's subscribers at once and the
 * other clients' through NOTIFY; the writer ignores its own NOTIFY, which would only make its
 * workers claim again and find nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { delay } from '../../src/store/conformance/helpers.js';
import type { QueueItem, Store } from '../../src/store/port.js';
import { backendOf, needsServer, withSchema } from './helpers.js';

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** Two clients of one schema, each subscribed to queue `q`; `wakes` counts from zero once both listen. */
async function twoSubscribedClients(open: () => Promise<Store>) {
  const writer = await open();
  const other = await open();
  const wakes = new Map<Store, number>([
    [writer, 0],
    [other, 0],
  ]);
  for (const store of [writer, other])
    store.subscribe('q', () => wakes.set(store, (wakes.get(store) ?? 0) + 1));
  // Each LISTEN connection wakes its subscribers when it (re)connects; count from after that.
  await until('both LISTEN connections', () =>
    [writer, other].every((s) => backendOf(s).listenerConnects >= 1),
  );
  await delay(50);
  wakes.set(writer, 0);
  wakes.set(other, 0);
  return { writer, other, wakes };
}

/** A mailbox on `store` and a way to park a short claim for it on queue `q`. */
function parkedWorker(store: Store) {
  const got: QueueItem[][] = [];
  const box = (store.handoff as NonNullable<Store['handoff']>)((items) => got.push(items));
  const parkFor = async (limit: number) => {
    const res = await store.claim({
      queue: 'q',
      owner: 'w',
      limit,
      leaseTtl: 30_000,
      start: true,
      park: { mailbox: box.id, ttl: 10_000 },
    });
    assert.equal(res.items.length, 0);
  };
  return { got, box, parkFor };
}

describe('postgres queue wake-ups', needsServer, () => {
  it("an enqueue wakes the writer's subscribers once and another client's through NOTIFY", async () => {
    await withSchema(async (open) => {
      const { writer, other, wakes } = await twoSubscribedClients(open);

      await writer.enqueue([{ id: 'a', queue: 'q', payload: '{}' }]);
      assert.equal(wakes.get(writer), 1, 'woken at once by its own write');
      await until("the other client's wake", () => (wakes.get(other) ?? 0) > 0);
      // The same NOTIFY reached the writer's LISTEN connection by now; it must not wake it again.
      await delay(200);
      assert.equal(wakes.get(writer), 1);
      assert.equal(wakes.get(other), 1);
    });
  });

  it('an enqueue the hand-off claims in full wakes nobody; what it leaves pending wakes as usual', async () => {
    await withSchema(async (open) => {
      const { writer, other, wakes } = await twoSubscribedClients(open);
      const { got, box, parkFor } = parkedWorker(writer);

      // Parked for 5, one item: it goes straight to running, nothing became runnable.
      await parkFor(5);
      await writer.enqueue([{ id: 'a', queue: 'q', payload: '{}' }]);
      assert.deepEqual(
        got.map((items) => items.map((i) => [i.id, i.state])),
        [[['a', 'running']]],
      );
      await delay(300);
      assert.deepEqual([wakes.get(writer), wakes.get(other)], [0, 0], 'no wake-up, no NOTIFY');

      // Parked for 1, two items: the second stays pending, and both clients hear of it.
      await parkFor(1);
      await writer.enqueue([
        { id: 'b', queue: 'q', payload: '{}' },
        { id: 'c', queue: 'q', payload: '{}' },
      ]);
      assert.deepEqual(
        got.map((items) => items.map((i) => i.id)),
        [['a'], ['b']],
      );
      assert.equal((await writer.getItem('c'))?.state, 'pending');
      assert.equal(wakes.get(writer), 1);
      await until("the other client's wake", () => (wakes.get(other) ?? 0) > 0);
      box.close();
    });
  });

  it('a hand-off claims at most as many tasks as the enqueue wrote, in claim order', async () => {
    await withSchema(async (open) => {
      const { writer, other, wakes } = await twoSubscribedClients(open);
      const { got, box, parkFor } = parkedWorker(writer);
      await parkFor(5);
      // Another client's enqueue does not hand off on PostgreSQL: 'x' waits, pending.
      await other.enqueue([{ id: 'x', queue: 'q', payload: '{}' }]);
      await until("the writer's wake", () => (wakes.get(writer) ?? 0) > 0);
      wakes.set(writer, 0);
      // One item written, so one claimed: the older 'x' by claim order; 'y' stays pending and wakes.
      await writer.enqueue([{ id: 'y', queue: 'q', payload: '{}' }]);
      assert.deepEqual(
        got.map((items) => items.map((i) => i.id)),
        [['x']],
      );
      assert.equal((await writer.getItem('y'))?.state, 'pending');
      assert.equal(wakes.get(writer), 1);
      box.close();
    });
  });
});

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
      const got: QueueItem[][] = [];
      const box = (writer.handoff as NonNullable<Store['handoff']>)((items) => got.push(items));
      const parkFor = async (limit: number) => {
        const res = await writer.claim({
          queue: 'q',
          owner: 'w',
          limit,
          leaseTtl: 30_000,
          start: true,
          park: { mailbox: box.id, ttl: 10_000 },
        });
        assert.equal(res.items.length, 0);
      };

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
});

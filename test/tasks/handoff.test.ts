/**
 * Hand-off (docs/stores.md, "Hand-off to idle workers"): a short claim with `park` leaves a parked
 * claim; the next enqueue claims for it in the same atomic write and delivers the items to the
 * worker's mailbox. On Redis any client's enqueue does; on PostgreSQL only the parking client's own
 * (parks live in its memory). Store level first, then through a worker on test-cluster nodes.
 * Stores without hand-off must ignore `park`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClaimRequest, Mailbox, QueueItem, Store } from '../../src/store/port.js';
import type { TestNode } from '../../src/testing/index.js';
import { eventually, withStoreCluster } from '../support/scenarios.js';
import { type BackendFixture, selectedFixtures, serverAvailable } from '../support/stores.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LEASE = 30_000;
/** Whose enqueues hand off to a parked claim: any client's, or only the parking client's. */
const HANDOFF = new Map<string, 'any client' | 'same client'>([
  ['redis', 'any client'],
  ['postgres', 'same client'],
]);

/** A fresh store of `fixture` and one mailbox collecting what it is handed. */
async function withMailbox(
  fixture: BackendFixture,
  body: (s: { store: Store; box: Mailbox; got: QueueItem[][]; other: () => Promise<Store> }) => Promise<void>,
): Promise<void> {
  const handle = await fixture.create();
  const store = handle.store;
  const got: QueueItem[][] = [];
  assert.ok(store.handoff, `the ${fixture.name} store offers hand-off`);
  const box = store.handoff((items) => got.push(items));
  try {
    // The mailbox's SUBSCRIBE / LISTEN goes out on a connection of its own: claim once so the
    // store is connected, then give it a moment.
    await claim(store, 'warm-up', 1);
    await sleep(150);
    await body({ store, box, got, other: () => handle.connect() });
  } finally {
    box.close();
    await handle.destroy();
  }
}

const park = (box: Mailbox, ttl = 10_000) => ({ mailbox: box.id, ttl });

/** A pending claim by owner `w` (or `options.owner`) with the test lease. */
function claim(
  store: Store,
  queue: string,
  limit: number,
  options: { park?: ClaimRequest['park']; owner?: string; start?: boolean } = {},
) {
  return store.claim({ queue, owner: 'w', limit, leaseTtl: LEASE, ...options });
}

for (const fixture of selectedFixtures().filter((f) => HANDOFF.has(f.name))) {
  const skip = !serverAvailable(fixture);
  const scope = HANDOFF.get(fixture.name);
  describe(`hand-off to parked claims [${fixture.name}]`, { skip, concurrency: 4, timeout: 60_000 }, () => {
    it('an enqueue claims for a parked claim and delivers the items, in claim order, up to its limit', async () => {
      await withMailbox(fixture, async ({ store, box, got }) => {
        const empty = await claim(store, 'q', 2, { owner: 'w1', start: true, park: park(box) });
        assert.equal(empty.items.length, 0);
        await store.enqueue([
          { id: 'low', queue: 'q', payload: '"l"', priority: 0 },
          { id: 'high', queue: 'q', payload: '"h"', priority: 5 },
          { id: 'mid', queue: 'q', payload: '"m"', priority: 1 },
        ]);
        await eventually(() => got.length === 1, 3000, 'one delivery');
        const items = got[0] as QueueItem[];
        assert.deepEqual(
          items.map((i) => [i.id, i.state, i.owner, i.attempt, i.payload]),
          [
            ['high', 'running', 'w1', 1, '"h"'],
            ['mid', 'running', 'w1', 1, '"m"'],
          ],
        );
        // Exactly what the store holds: the claim's token, state and lease.
        for (const item of items) {
          const stored = await store.getItem(item.id);
          assert.deepEqual(stored, item);
          assert.equal((stored?.leaseExpiresAt as number) - (stored?.claimedAt as number), LEASE);
        }
        assert.equal((await store.getItem('low'))?.state, 'pending');
        // The parked claim was used up: the next enqueue is not handed off.
        await store.enqueue([{ id: 'later', queue: 'q', payload: '1' }]);
        await sleep(150);
        assert.equal(got.length, 1);
        assert.equal((await store.getItem('later'))?.state, 'pending');
        assert.deepEqual((await store.countItems('q')).q, {
          pending: 2,
          claimed: 0,
          running: 2,
          completed: 0,
          resolving: 0,
        });
      });
    });

    it('a hand-off uses the parked claim up, even with room left', async () => {
      await withMailbox(fixture, async ({ store, box, got }) => {
        await claim(store, 'q', 5, { start: true, park: park(box) });
        await store.enqueue([{ id: 'one', queue: 'q', payload: '1' }]);
        await eventually(() => got.length === 1, 3000, 'one delivery');
        assert.deepEqual(
          got[0]?.map((i) => i.id),
          ['one'],
        );
        // The worker re-parks on its next claim; until then the queue is served by wake-ups.
        await store.enqueue([{ id: 'two', queue: 'q', payload: '1' }]);
        await sleep(150);
        assert.equal(got.length, 1);
        assert.equal((await store.getItem('two'))?.state, 'pending');
      });
    });

    it('a one-item hand-off is stored, indexed and counted as a claim, and wakes no other worker', async () => {
      await withMailbox(fixture, async ({ store, box, got }) => {
        let wakes = 0;
        const unsubscribe = store.subscribe('q', () => wakes++);
        try {
          await sleep(150); // the SUBSCRIBE / LISTEN of the wake-ups
          wakes = 0; // a store may fire once when its listening connection is (re)established
          await claim(store, 'q', 3, { owner: 'w1', start: true, park: park(box) });
          const cursor = (await store.changes({ after: 0 })).cursor;
          const [res] = await store.enqueue([
            {
              id: 'solo',
              queue: 'q',
              payload: '{"a":1}',
              priority: 2,
              maxAttempts: 5,
              timeout: 300,
              claimTimeout: 200,
            },
          ]);
          await eventually(() => got.length === 1, 3000, 'one delivery');
          const item = (got[0] as QueueItem[])[0] as QueueItem;
          assert.deepEqual(res, { id: 'solo', seq: item.seq, status: 'created' });
          assert.deepEqual(
            [item.state, item.owner, item.attempt, item.priority, item.maxAttempts, item.payload],
            ['running', 'w1', 1, 2, 5, '{"a":1}'],
          );
          assert.deepEqual(await store.getItem('solo'), item);
          assert.deepEqual(
            (await store.changes({ after: cursor })).items.map((i) => [i.id, i.state, i.changeSeq]),
            [['solo', 'running', item.changeSeq]],
          );
          assert.deepEqual((await store.countItems('q')).q, {
            pending: 0,
            claimed: 0,
            running: 1,
            completed: 0,
            resolving: 0,
          });
          await sleep(150);
          assert.equal(wakes, 0, 'nothing was left runnable for anyone else');
          // Claimed at once: past claimTimeout it is not "unclaimed"; past its timeout it is timed out.
          await sleep(250);
          const swept = await store.sweep();
          assert.equal(swept.unclaimed, 0);
          assert.equal(swept.timedOut, 1);
          assert.equal((await store.getItem('solo'))?.state, 'pending', 'a retry (attempts left)');
        } finally {
          unsubscribe();
        }
      });
    });

    it("start: false hands off claimed items; another client's enqueue hands off only where parks are shared", async () => {
      await withMailbox(fixture, async ({ store, box, got, other }) => {
        await claim(store, 'q', 1, { owner: 'w1', park: park(box) });
        const producer = await other();
        await producer.enqueue([{ id: 'a', queue: 'q', payload: '1' }]);
        if (scope === 'same client') {
          await sleep(200);
          assert.equal(got.length, 0);
          assert.equal((await store.getItem('a'))?.state, 'pending');
          await store.enqueue([{ id: 'b', queue: 'q', payload: '1' }]);
        }
        await eventually(() => got.length === 1, 3000, 'one delivery');
        // The parked claim takes the queue's first runnable item, whichever enqueue made it so.
        assert.deepEqual(
          got[0]?.map((i) => [i.id, i.state, i.attempt, i.owner]),
          [['a', 'claimed', 0, 'w1']],
        );
      });
    });

    it('a full claim, unpark, an expired park and a closed mailbox all mean no hand-off', async () => {
      await withMailbox(fixture, async ({ store, box, got }) => {
        // A claim that comes back full withdraws the park an earlier short one left.
        await claim(store, 'full', 1, { park: park(box) });
        await store.enqueue([{ id: 'f1', queue: 'full', payload: '1' }]);
        await eventually(() => got.length === 1, 3000, 'the first delivery');
        await store.enqueue([{ id: 'f2', queue: 'full', payload: '1' }]);
        const full = await claim(store, 'full', 1, { park: park(box) });
        assert.deepEqual(
          full.items.map((i) => i.id),
          ['f2'],
        );

        await claim(store, 'u', 1, { park: park(box) });
        await box.unpark('u');

        await claim(store, 'e', 1, { park: park(box, 1) });
        await sleep(20);

        const gone = store.handoff?.(() => assert.fail('a closed mailbox was handed items')) as Mailbox;
        await sleep(100);
        await claim(store, 'c', 1, { park: park(gone) });
        gone.close();
        await sleep(100);

        await store.enqueue([
          { id: 'full-2', queue: 'full', payload: '1' },
          { id: 'u1', queue: 'u', payload: '1' },
          { id: 'e1', queue: 'e', payload: '1' },
          { id: 'c1', queue: 'c', payload: '1' },
        ]);
        await sleep(200);
        assert.equal(got.length, 1);
        for (const id of ['full-2', 'u1', 'e1', 'c1'])
          assert.equal((await store.getItem(id))?.state, 'pending', id);
      });
    });

    it('delayed items are not handed off, and the park waits for runnable work', async () => {
      await withMailbox(fixture, async ({ store, box, got }) => {
        await claim(store, 'q', 1, { park: park(box) });
        await store.enqueue([{ id: 'later', queue: 'q', payload: '1', delay: 60_000 }]);
        await sleep(150);
        assert.equal(got.length, 0);
        await store.enqueue([{ id: 'now', queue: 'q', payload: '1' }]);
        await eventually(() => got.length === 1, 3000, 'the runnable item');
        assert.deepEqual(
          got[0]?.map((i) => i.id),
          ['now'],
        );
      });
    });

    it('a hand-off too large for one message still arrives whole', async () => {
      await withMailbox(fixture, async ({ store, box, got }) => {
        await claim(store, 'q', 20, { start: true, park: park(box) });
        const big = JSON.stringify('x'.repeat(2000));
        const items = Array.from({ length: 20 }, (_, i) => ({ id: `b${i}`, queue: 'q', payload: big }));
        await store.enqueue(items);
        await eventually(() => got.length === 1, 3000, 'one delivery');
        assert.deepEqual(
          got[0]?.map((i) => [i.id, i.payload.length, i.state]),
          items.map((i) => [i.id, big.length, 'running']),
        );
      });
    });

    it('an idle worker runs an enqueued task from a hand-off; a paused or closed worker is handed nothing', async () => {
      await withStoreCluster(fixture, { nodes: 2 }, async (cluster) => {
        const [a, b] = cluster.nodes as [TestNode, TestNode];
        const ran: string[] = [];
        const worker = a.rota.tasks.work<string>('q', (task) => {
          ran.push(task.payload);
        });
        // Where parks are not shared, the worker's own node enqueues.
        const producer = scope === 'same client' ? a : b;
        await sleep(300); // the worker's first claim parks
        await producer.rota.tasks.enqueue('q', 'one');
        await eventually(() => ran.length === 1, 5000, 'the task to run');
        assert.ok((a.faults.calls.get('handoff') ?? 0) >= 1, 'the task came by hand-off');

        worker.pause();
        await sleep(150);
        const before = a.faults.calls.get('handoff');
        const { id } = await producer.rota.tasks.enqueue('q', 'paused');
        await sleep(300);
        assert.equal(a.faults.calls.get('handoff'), before);
        assert.equal((await b.rota.tasks.get(id))?.state, 'pending');
        worker.resume();
        await eventually(() => ran.length === 2, 5000, 'the task enqueued while paused');

        await sleep(150);
        await worker.close();
        const { id: closedId } = await producer.rota.tasks.enqueue('q', 'closed');
        await sleep(300);
        assert.equal((await b.rota.tasks.get(closedId))?.state, 'pending');
        assert.deepEqual(ran, ['one', 'paused']);
      });
    });

    it('a partitioned worker is handed nothing; after heal it is again', async () => {
      await withStoreCluster(fixture, { nodes: 2 }, async (cluster) => {
        const [a, b] = cluster.nodes as [TestNode, TestNode];
        const ran: string[] = [];
        const worker = a.rota.tasks.work<string>('q', (task) => {
          ran.push(task.payload);
        });
        await sleep(300);
        a.faults.partition();
        const { id } = await b.rota.tasks.enqueue('q', 'cut');
        await sleep(300);
        assert.equal((await b.rota.tasks.get(id))?.state, 'pending');
        assert.equal(ran.length, 0);
        a.faults.heal();
        await eventually(() => ran.length === 1, 10_000, 'the task after heal');
        await worker.close();
      });
    });
  });
}

for (const fixture of selectedFixtures().filter((f) => !HANDOFF.has(f.name))) {
  describe(`no hand-off [${fixture.name}]`, { skip: !serverAvailable(fixture) }, () => {
    it('has no handoff and a claim with park is an ordinary claim', async () => {
      const handle = await fixture.create();
      try {
        const store = handle.store;
        assert.equal(store.handoff, undefined);
        await store.enqueue([{ id: 'a', queue: 'q', payload: '1' }]);
        const first = await claim(store, 'q', 2, { park: { mailbox: 'm', ttl: 5000 } });
        assert.deepEqual(
          first.items.map((i) => i.id),
          ['a'],
        );
        await store.enqueue([{ id: 'b', queue: 'q', payload: '1' }]);
        assert.equal((await store.getItem('b'))?.state, 'pending');
      } finally {
        await handle.destroy();
      }
    });
  });
}

for (const fixture of selectedFixtures()) {
  describe(`park: bad input [${fixture.name}]`, { skip: !serverAvailable(fixture) }, () => {
    it('a malformed park is ROTA_INVALID_ARGUMENT, claims nothing and parks nothing', async () => {
      const handle = await fixture.create();
      const store = handle.store;
      const got: QueueItem[][] = [];
      const box = store.handoff?.((items) => got.push(items));
      try {
        await store.enqueue([{ id: 'a', queue: 'q', payload: '1' }]);
        for (const bad of [
          { mailbox: '', ttl: 1000 },
          { mailbox: 'm', ttl: -1 },
          { mailbox: 'm', ttl: 1.5 },
          { mailbox: 'm', ttl: 1000, x: 1 },
          'm',
        ]) {
          await assert.rejects(
            claim(store, 'q', 2, { park: bad as never }),
            (err: Error & { code?: string }) => err.code === 'ROTA_INVALID_ARGUMENT',
          );
        }
        const stored = await store.getItem('a');
        assert.equal(stored?.state, 'pending');
        assert.equal(stored?.token, null);
        // Nothing was parked either: a new item stays pending, nobody is handed anything.
        await store.enqueue([{ id: 'b', queue: 'q', payload: '1' }]);
        await sleep(150);
        assert.equal(got.length, 0);
        assert.equal((await store.getItem('b'))?.state, 'pending');
      } finally {
        box?.close();
        await handle.destroy();
      }
    });
  });
}

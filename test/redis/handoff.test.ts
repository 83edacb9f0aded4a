/**
 * Hand-off on Redis (docs/stores.md "Hand-off to idle workers"): a short claim with `park` leaves a
 * parked claim; the next enqueue claims for it in the same script and publishes the items to the
 * worker's mailbox. Store level first, then through a worker on test-cluster nodes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { openStore } from '../../src/store/open.js';
import type { Mailbox, QueueItem, Store } from '../../src/store/port.js';
import { eventually, withStoreCluster } from '../support/scenarios.js';
import { dropRedisPrefix, selectedFixtures, serverAvailable } from '../support/stores.js';

const url = process.env.ROTA_TEST_REDIS_URL as string;
const fixture = selectedFixtures().find((f) => f.name === 'redis');
const enabled = fixture !== undefined && serverAvailable(fixture);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LEASE = 30_000;

/** A store on a fresh prefix and one mailbox collecting what it is handed. */
async function withMailbox(
  body: (s: { store: Store; box: Mailbox; got: QueueItem[][]; prefix: string }) => Promise<void>,
): Promise<void> {
  const prefix = `ho-${randomBytes(5).toString('hex')}`;
  const store = await openStore(url, { prefix });
  const got: QueueItem[][] = [];
  assert.ok(store.handoff, 'the Redis store offers hand-off');
  const box = store.handoff((items) => got.push(items));
  try {
    await sleep(50); // the mailbox's SUBSCRIBE goes out on the subscriber connection
    await body({ store, box, got, prefix });
  } finally {
    box.close();
    await store.close();
    await dropRedisPrefix(url, prefix);
  }
}

const park = (box: Mailbox, ttl = 10_000) => ({ mailbox: box.id, ttl });

async function parkedCount(prefix: string, queue: string): Promise<number> {
  const admin = new Redis(url);
  try {
    return await admin.hlen(`{${prefix}}:q:${queue}:k`);
  } finally {
    admin.disconnect();
  }
}

describe('redis hand-off to parked claims', { skip: !enabled, concurrency: 4, timeout: 60_000 }, () => {
  it('an enqueue claims for a parked claim and delivers the items, in claim order, up to its limit', async () => {
    await withMailbox(async ({ store, box, got, prefix }) => {
      const empty = await store.claim({
        queue: 'q',
        owner: 'w1',
        limit: 2,
        leaseTtl: LEASE,
        start: true,
        park: park(box),
      });
      assert.equal(empty.items.length, 0);
      assert.equal(await parkedCount(prefix, 'q'), 1);
      await store.enqueue([
        { id: 'low', queue: 'q', payload: '"l"', priority: 0 },
        { id: 'high', queue: 'q', payload: '"h"', priority: 5 },
        { id: 'mid', queue: 'q', payload: '"m"', priority: 1 },
      ]);
      await eventually(() => got.length === 1, 2000, 'one delivery');
      const items = got[0] as QueueItem[];
      assert.deepEqual(
        items.map((i) => [i.id, i.state, i.owner, i.attempt]),
        [
          ['high', 'running', 'w1', 1],
          ['mid', 'running', 'w1', 1],
        ],
      );
      // Exactly what the store holds: claimed with a fresh token and the parked lease.
      for (const item of items) {
        const stored = await store.getItem(item.id);
        assert.equal(stored?.token, item.token);
        assert.equal(stored?.state, 'running');
        assert.equal((stored?.leaseExpiresAt as number) - (stored?.claimedAt as number), LEASE);
      }
      assert.equal((await store.getItem('low'))?.state, 'pending');
      // The parked claim was used up: the next enqueue is not handed off.
      assert.equal(await parkedCount(prefix, 'q'), 0);
      await store.enqueue([{ id: 'later', queue: 'q', payload: '1' }]);
      await sleep(100);
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

  it('start: false hands off claimed (not started) items', async () => {
    await withMailbox(async ({ store, box, got }) => {
      await store.claim({ queue: 'q', owner: 'w1', limit: 1, leaseTtl: LEASE, park: park(box) });
      await store.enqueue([{ id: 'a', queue: 'q', payload: '1' }]);
      await eventually(() => got.length === 1, 2000, 'one delivery');
      assert.deepEqual(
        got[0]?.map((i) => [i.id, i.state, i.attempt]),
        [['a', 'claimed', 0]],
      );
    });
  });

  it('a claim that comes back full, unpark, an expired park and a closed mailbox all mean no hand-off', async () => {
    await withMailbox(async ({ store, box, got, prefix }) => {
      // Full claim: withdraws the park left by the earlier short one.
      await store.claim({ queue: 'full', owner: 'w', limit: 1, leaseTtl: LEASE, park: park(box) });
      await store.enqueue([{ id: 'f1', queue: 'full', payload: '1' }]);
      await eventually(() => got.length === 1, 2000, 'the first delivery');
      await store.enqueue([{ id: 'f2', queue: 'full', payload: '1' }]);
      const full = await store.claim({
        queue: 'full',
        owner: 'w',
        limit: 1,
        leaseTtl: LEASE,
        park: park(box),
      });
      assert.deepEqual(
        full.items.map((i) => i.id),
        ['f2'],
      );
      assert.equal(await parkedCount(prefix, 'full'), 0);

      // unpark
      await store.claim({ queue: 'u', owner: 'w', limit: 1, leaseTtl: LEASE, park: park(box) });
      await box.unpark('u');
      assert.equal(await parkedCount(prefix, 'u'), 0);

      // expired: parked for 1 ms
      await store.claim({ queue: 'e', owner: 'w', limit: 1, leaseTtl: LEASE, park: park(box, 1) });
      await sleep(20);

      // a parked claim whose mailbox closed (nobody subscribed)
      const gone = store.handoff?.(() => assert.fail('a closed mailbox was handed items')) as Mailbox;
      await sleep(50);
      await store.claim({ queue: 'c', owner: 'w', limit: 1, leaseTtl: LEASE, park: park(gone) });
      gone.close();
      await sleep(50);

      await store.enqueue([
        { id: 'u1', queue: 'u', payload: '1' },
        { id: 'e1', queue: 'e', payload: '1' },
        { id: 'c1', queue: 'c', payload: '1' },
      ]);
      await sleep(150);
      assert.equal(got.length, 1);
      for (const id of ['u1', 'e1', 'c1']) assert.equal((await store.getItem(id))?.state, 'pending', id);
      // The dead parked claims were dropped by that enqueue.
      assert.equal(await parkedCount(prefix, 'e'), 0);
      assert.equal(await parkedCount(prefix, 'c'), 0);
    });
  });

  it('delayed items are not handed off, and the park waits for runnable work', async () => {
    await withMailbox(async ({ store, box, got, prefix }) => {
      await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: LEASE, park: park(box) });
      await store.enqueue([{ id: 'later', queue: 'q', payload: '1', delay: 60_000 }]);
      await sleep(100);
      assert.equal(got.length, 0);
      assert.equal(await parkedCount(prefix, 'q'), 1);
      await store.enqueue([{ id: 'now', queue: 'q', payload: '1' }]);
      await eventually(() => got.length === 1, 2000, 'the runnable item');
      assert.deepEqual(
        got[0]?.map((i) => i.id),
        ['now'],
      );
    });
  });

  it('rejects a malformed park with a coded error and stores nothing', async () => {
    const prefix = `ho-${randomBytes(5).toString('hex')}`;
    const store = await openStore(url, { prefix });
    try {
      for (const bad of [
        { mailbox: '', ttl: 1000 },
        { mailbox: 'm', ttl: -1 },
        { mailbox: 'm', ttl: 1, x: 1 },
      ]) {
        await assert.rejects(
          store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: LEASE, park: bad as never }),
          (err: Error & { code?: string }) => err.code === 'ROTA_INVALID_ARGUMENT',
        );
      }
      assert.equal(await parkedCount(prefix, 'q'), 0);
    } finally {
      await store.close();
      await dropRedisPrefix(url, prefix);
    }
  });

  it('an idle worker runs an enqueued task from a hand-off; a paused or closed worker is handed nothing', async () => {
    await withStoreCluster(fixture as NonNullable<typeof fixture>, { nodes: 2 }, async (cluster) => {
      const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
      const ran: string[] = [];
      const worker = a.rota.tasks.work<string>('q', (task) => {
        ran.push(task.payload);
      });
      await sleep(200); // the worker's first claim parks
      await b.rota.tasks.enqueue('q', 'one');
      await eventually(() => ran.length === 1, 5000, 'the task to run');
      assert.ok((a.faults.calls.get('handoff') ?? 0) >= 1, 'the task came by hand-off');

      worker.pause();
      await sleep(100);
      const before = a.faults.calls.get('handoff');
      const { id } = await b.rota.tasks.enqueue('q', 'paused');
      await sleep(200);
      assert.equal(a.faults.calls.get('handoff'), before);
      assert.equal((await b.rota.tasks.get(id))?.state, 'pending');
      worker.resume();
      await eventually(() => ran.length === 2, 5000, 'the task enqueued while paused');

      await sleep(100);
      await worker.close();
      const { id: closedId } = await b.rota.tasks.enqueue('q', 'closed');
      await sleep(200);
      assert.equal((await b.rota.tasks.get(closedId))?.state, 'pending');
      assert.deepEqual(ran, ['one', 'paused']);
    });
  });

  it('a partitioned worker is handed nothing; after heal it is again', async () => {
    await withStoreCluster(fixture as NonNullable<typeof fixture>, { nodes: 2 }, async (cluster) => {
      const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
      const ran: string[] = [];
      const worker = a.rota.tasks.work<string>('q', (task) => {
        ran.push(task.payload);
      });
      await sleep(200);
      a.faults.partition();
      const { id } = await b.rota.tasks.enqueue('q', 'cut');
      await sleep(200);
      assert.equal((await b.rota.tasks.get(id))?.state, 'pending');
      assert.equal(ran.length, 0);
      a.faults.heal();
      await eventually(() => ran.length === 1, 10_000, 'the task after heal');
      await worker.close();
    });
  });
});

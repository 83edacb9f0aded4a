/**
 * PostgreSQL store: claims restricted to ids (q_claim_ids, migration 2). Racing claims of one
 * item take it once; a due item no claim has promoted to the claim index yet is taken; the claim
 * probes the named rows instead of walking the queue.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import { delay } from '../../src/store/conformance/helpers.js';
import type { Store } from '../../src/store/port.js';
import { needsServer, rawClient, withSchema } from './helpers.js';

async function fill(store: Store, queue: string, count: number) {
  for (let i = 0; i < count; i += 5000) {
    const n = Math.min(5000, count - i);
    await store.enqueue(
      Array.from({ length: n }, (_, j) => ({ id: `${queue}${i + j}`, queue, payload: '1' })),
    );
  }
}

async function claimIdsBuffers(
  client: pg.Client,
  queue: string,
  from: string,
  ids: string[],
): Promise<number> {
  const res = await client.query(
    `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM q_claim_ids($1, 'w', 10, 60000, false, $2, $3)`,
    [queue, from, ids],
  );
  const plan = (res.rows[0] as { 'QUERY PLAN': { Plan: Record<string, number> }[] })['QUERY PLAN'][0]?.Plan;
  return (plan?.['Shared Hit Blocks'] ?? 0) + (plan?.['Shared Read Blocks'] ?? 0);
}

describe('postgres claims restricted to ids', needsServer, () => {
  it('claims of one completed item racing from several clients take it exactly once', async () => {
    await withSchema(async (open) => {
      const stores = await Promise.all(Array.from({ length: 4 }, () => open({ poolSize: 5 })));
      const store = stores[0] as Store;
      await store.enqueue([{ id: 'x', queue: 'q', payload: '1' }]);
      const [it0] = (await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000, start: true }))
        .items;
      assert.ok(it0);
      await store.settle([{ op: 'complete', id: 'x', token: it0.token as number, owner: 'w', result: null }]);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (stores[i % stores.length] as Store).claim({
            queue: 'q',
            owner: `r${i}`,
            limit: 1,
            leaseTtl: 30_000,
            from: 'completed',
            ids: ['x'],
          }),
        ),
      );
      const taken = results.flatMap((r) => r.items);
      assert.equal(taken.length, 1);
      assert.equal(taken[0]?.state, 'resolving');
      for (const r of results) assert.equal(r.nextRunAt, null);
      assert.equal((await store.getItem('x'))?.owner, taken[0]?.owner);
    });
  });

  it('takes a due item that no claim has promoted yet, and skips one not yet due', async () => {
    await withSchema(async (open) => {
      const store = await open();
      const now = await store.now();
      await store.enqueue([
        { id: 'soon', queue: 'q', payload: '1', runAt: now + 300 },
        { id: 'later', queue: 'q', payload: '1', runAt: now + 3_600_000 },
      ]);
      const early = await store.claim({ queue: 'q', owner: 'w', limit: 5, leaseTtl: 30_000, ids: ['soon'] });
      assert.deepEqual(early, { items: [], nextRunAt: null });
      await delay(400);
      // No plain claim ran in between: 'soon' is still outside the claim index (ready = false).
      const due = await store.claim({
        queue: 'q',
        owner: 'w',
        limit: 5,
        leaseTtl: 30_000,
        start: true,
        ids: ['later', 'soon'],
      });
      assert.deepEqual(
        due.items.map((i) => [i.id, i.state, i.attempt]),
        [['soon', 'running', 1]],
      );
      assert.equal(due.nextRunAt, null);
      assert.equal((await store.getItem('later'))?.state, 'pending');
    });
  });

  it('touches about as many buffers in a deep queue as in a shallow one', { timeout: 90_000 }, async () => {
    await withSchema(async (open, schema) => {
      const store = await open();
      await fill(store, 'shallow', 20);
      await fill(store, 'deep', 20_000);
      const client = await rawClient(schema);
      try {
        await client.query('VACUUM ANALYZE items');
        await claimIdsBuffers(client, 'shallow', 'pending', ['shallow0']);
        const shallow: number[] = [];
        const deep: number[] = [];
        for (let i = 1; i <= 3; i++) {
          shallow.push(await claimIdsBuffers(client, 'shallow', 'pending', [`shallow${i}`, 'absent']));
          deep.push(await claimIdsBuffers(client, 'deep', 'pending', [`deep${i * 5000}`, 'absent']));
          // Nothing completed: the completed path probes the named rows only, too.
          deep.push(await claimIdsBuffers(client, 'deep', 'completed', [`deep${i * 5000 + 1}`]));
        }
        const s = Math.min(...shallow);
        const d = Math.max(...deep);
        // A scan of the deep queue's 20 000 rows (or of its claim index) would add hundreds.
        assert.ok(d < s + 50, `ids claim buffers: shallow ${shallow.join(', ')}; deep ${deep.join(', ')}`);
        const claimed = await client.query(`SELECT id FROM items WHERE state = 'claimed' ORDER BY id`);
        assert.deepEqual(
          claimed.rows.map((r) => r.id),
          ['deep10000', 'deep15000', 'deep5000', 'shallow0', 'shallow1', 'shallow2', 'shallow3'],
        );
      } finally {
        await client.end();
      }
    });
  });
});

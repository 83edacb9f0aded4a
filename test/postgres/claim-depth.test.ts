/**
 * PostgreSQL store: a claim's cost does not grow with the queue's depth. Measured as the buffers a
 * claim touches (EXPLAIN ANALYZE of the claim function: work, not time), in a shallow queue and in
 * a deep one whose delayed items sort before its runnable ones, both in the same table, so index
 * heights are the same. A claim index that held the delayed rows would scan every one of them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import type { NewItem, Store } from '../../src/store/port.js';
import { needsServer, rawClient, withSchema } from './helpers.js';

const DELAYED = 20_000;

async function fill(store: Store, queue: string, count: number, extra: Partial<NewItem> = {}, tag = '') {
  for (let i = 0; i < count; i += 5000) {
    const n = Math.min(5000, count - i);
    await store.enqueue(
      Array.from({ length: n }, (_, j) => ({ id: `${queue}${tag}${i + j}`, queue, payload: '1', ...extra })),
    );
  }
}

async function claimBuffers(client: pg.Client, queue: string): Promise<number> {
  const res = await client.query(
    `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM q_claim($1, 'w', 10, 60000, true, 'pending')`,
    [queue],
  );
  const plan = (res.rows[0] as { 'QUERY PLAN': { Plan: Record<string, number> }[] })['QUERY PLAN'][0]?.Plan;
  return (plan?.['Shared Hit Blocks'] ?? 0) + (plan?.['Shared Read Blocks'] ?? 0);
}

describe('postgres claim cost', needsServer, () => {
  it('a claim touches about as many buffers in a deep queue as in a shallow one', {
    timeout: 90_000,
  }, async () => {
    await withSchema(async (open, schema) => {
      const store = await open();
      const now = await store.now();
      await fill(store, 'shallow', 200);
      await fill(store, 'deep', 2_000);
      // Delayed by an hour at a higher priority: first in claim order, not yet runnable.
      await fill(store, 'deep', DELAYED, { priority: 9, runAt: now + 3_600_000 }, 'd');
      const client = await rawClient(schema);
      try {
        await client.query('VACUUM ANALYZE items');
        // Warm the session's caches (plans, catalog) once.
        await claimBuffers(client, 'shallow');
        const shallow: number[] = [];
        const deep: number[] = [];
        for (let i = 0; i < 3; i++) {
          shallow.push(await claimBuffers(client, 'shallow'));
          deep.push(await claimBuffers(client, 'deep'));
        }
        const s = Math.min(...shallow);
        const d = Math.min(...deep);
        // The delayed rows fill about 200 index pages; a claim scanning them would show here
        // (measured: +10 buffers here, +400 with delayed rows in the claim index at 40 000).
        assert.ok(d < s + 100, `claim buffers: shallow ${shallow.join(', ')}; deep ${deep.join(', ')}`);
        const claimed = await client.query(
          `SELECT count(*)::int AS n FROM items WHERE queue = 'deep' AND state = 'running'`,
        );
        assert.equal(claimed.rows[0]?.n, 30);
      } finally {
        await client.end();
      }
    });
  });
});

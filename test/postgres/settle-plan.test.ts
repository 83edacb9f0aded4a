/**
 * PostgreSQL store: a worker's settle finds each row by primary key whatever the statistics say.
 * Schema version 4's fast path could be planned from the partial index of leased rows: after an
 * ANALYZE that saw few of them, every settle read all leased rows of the store and matched each
 * against the batch (a drain at half speed). The plan is read from auto_explain (work, not time).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SettleOp } from '../../src/store/port.js';
import { settleOpJson } from '../../src/store/postgres/queue-rows.js';
import { needsServer, rawClient, withSchema } from './helpers.js';

describe('postgres settle plan', needsServer, () => {
  it('a batch of completions updates its rows through the primary key after ANALYZE saw none leased', async () => {
    await withSchema(async (open, schema) => {
      const store = await open();
      const enqueue = (prefix: string, n: number) =>
        store.enqueue(
          Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, queue: 'q', payload: '1' })),
        );
      const claim = (limit: number) =>
        store.claim({ queue: 'q', owner: 'w', limit, leaseTtl: 60_000, start: true });
      const completions = (items: { id: string; token: number | null }[]): SettleOp[] =>
        items.map((item) => ({
          op: 'complete',
          id: item.id,
          token: item.token as number,
          owner: 'w',
          result: '1',
        }));

      // Completed history and nothing leased: the statistics a quiet moment leaves behind.
      await enqueue('old', 300);
      const done = await claim(300);
      await store.settle(completions(done.items));
      const client = await rawClient(schema);
      try {
        await client.query('ANALYZE items');
        await enqueue('new', 40);
        const held = await claim(40);
        assert.equal(held.items.length, 40);

        const plans: string[] = [];
        client.on('notice', (msg) => plans.push(msg.message ?? ''));
        await client.query("LOAD 'auto_explain'");
        await client.query('SET auto_explain.log_min_duration = 0');
        await client.query('SET auto_explain.log_nested_statements = on');
        await client.query("SET auto_explain.log_level = 'notice'");
        const ops = completions(held.items).map(settleOpJson);
        const res = await client.query('SELECT r_status FROM q_settle_batch($1::jsonb)', [
          JSON.stringify(ops),
        ]);
        assert.deepEqual(new Set(res.rows.map((r) => r.r_status)), new Set(['ok']));
        assert.equal(res.rows.length, 40);

        const update = plans.find((p) => p.includes('Update on items t'));
        assert.ok(update, `no plan of the completion UPDATE among ${plans.length} notices`);
        assert.match(update, /Index Scan using items_pkey on items t/);
        assert.doesNotMatch(update, /using items_leased/);
      } finally {
        await client.end();
      }
    });
  });
});

/**
 * PostgreSQL store: the queue's change feed (changeSeq = writer xid, read below the snapshot's
 * xmin) is gap-free while many clients write, including when an older transaction commits after
 * younger ones.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRotaError } from '../../src/errors.js';
import { delay } from '../../src/store/conformance/helpers.js';
import type { FeedItem, Store } from '../../src/store/port.js';
import { needsServer, rawClient, withSchema } from './helpers.js';

describe('postgres change feed', needsServer, () => {
  it('a reader following the feed during concurrent enqueues, claims and settles misses no transition', {
    timeout: 60_000,
  }, async () => {
    await withSchema(async (open) => {
      const reader = await open();
      const clients = await Promise.all([open(), open(), open()]);
      let cursor = (await reader.changes({ after: 0 })).cursor;
      const latest = new Map<string, FeedItem>();
      let working = true;

      const producer = async (store: Store, p: number) => {
        for (let b = 0; b < 15; b++) {
          await store.enqueue(
            Array.from({ length: 8 }, (_, i) => ({ id: `f${p}-${b}-${i}`, queue: 'feed', payload: '{}' })),
          );
          await delay(Math.floor(Math.random() * 10));
        }
      };
      const worker = async (store: Store, w: number) => {
        let idle = 0;
        while (idle < 20) {
          const { items } = await store.claim({ queue: 'feed', owner: `w${w}`, limit: 4, leaseTtl: 30_000 });
          if (items.length === 0) {
            idle++;
            await delay(20);
            continue;
          }
          idle = 0;
          await store.settle(
            items.map((it) => ({
              op: 'start' as const,
              id: it.id,
              token: it.token as number,
              owner: `w${w}`,
            })),
          );
          await store.settle(
            items.map((it, i) =>
              i % 3 === 0
                ? {
                    op: 'fail' as const,
                    id: it.id,
                    token: it.token as number,
                    owner: `w${w}`,
                    error: { code: 'E', message: 'x' },
                  }
                : {
                    op: 'complete' as const,
                    id: it.id,
                    token: it.token as number,
                    owner: `w${w}`,
                    result: null,
                  },
            ),
          );
        }
      };
      const follow = async () => {
        let pages = 0;
        for (;;) {
          const page = await reader.changes({ after: cursor, limit: 7 });
          for (const item of page.items) {
            assert.ok(
              item.changeSeq > cursor,
              `${item.id} appeared at ${item.changeSeq}, at or below cursor ${cursor}`,
            );
            latest.set(item.id, item);
          }
          for (let i = 1; i < page.items.length; i++) {
            assert.ok(
              (page.items[i]?.changeSeq ?? 0) >= (page.items[i - 1]?.changeSeq ?? 0),
              'changeSeq never decreases',
            );
          }
          assert.ok(page.cursor >= cursor, 'the cursor never goes back');
          cursor = page.cursor;
          pages++;
          if (page.items.length === 0) {
            if (!working) return pages;
            await delay(5);
          }
        }
      };

      const reading = follow();
      await Promise.all([...clients.map((c, i) => producer(c, i)), ...clients.map((c, i) => worker(c, i))]);
      working = false;
      const pages = await reading;
      assert.ok(pages > 10, `the reader read only ${pages} pages`);

      const all = (await reader.listItems({ queue: 'feed', limit: 10_000 })).items;
      assert.equal(all.length, 3 * 15 * 8);
      for (const item of all) {
        const seen = latest.get(item.id);
        assert.ok(seen, `${item.id} never appeared in the feed`);
        assert.equal(seen.changeSeq, item.changeSeq, `${item.id}: the feed missed its last transition`);
        assert.equal(seen.state, item.state);
        assert.equal(seen.outcome, item.outcome);
      }
    });
  });

  it('a change by an older transaction that commits late is not skipped by the cursor', async () => {
    await withSchema(async (open, schema) => {
      const store = await open();
      const start = (await store.changes({ after: 0 })).cursor;
      const raw = await rawClient(schema);
      try {
        // An older transaction takes its id, then a younger one enqueues and commits first.
        await raw.query('BEGIN');
        await raw.query(
          `SELECT * FROM q_enqueue('[{"id":"old","queue":"late","payload":"1","priority":0,"max_attempts":3,"completed_ttl":1000,"failed_ttl":1000}]')`,
        );
        await store.enqueue([{ id: 'young', queue: 'late', payload: '2' }]);
        // The feed waits a bounded time for the older transaction, then returns what is safe:
        // nothing past it, so the cursor cannot pass the older change.
        const early = await store.changes({ after: start, queue: 'late' });
        assert.deepEqual(
          early.items.map((i) => i.id),
          [],
        );
        assert.equal(early.cursor, start);
        await raw.query('COMMIT');
        const later = await store.changes({ after: early.cursor, queue: 'late' });
        assert.deepEqual(
          later.items.map((i) => i.id),
          ['old', 'young'],
        );
        assert.ok((later.items[0]?.changeSeq ?? 0) < (later.items[1]?.changeSeq ?? 0));
      } finally {
        await raw.query('ROLLBACK').catch(() => undefined);
        await raw.end();
      }
    });
  });

  it('a purged tombstone compacts older cursors', async () => {
    await withSchema(async (open) => {
      const store = await open();
      await store.enqueue([{ id: 'gone', queue: 'p', payload: '1', completedTtl: 1 }]);
      const [it] = (await store.claim({ queue: 'p', owner: 'w', limit: 1, leaseTtl: 30_000 })).items;
      await store.settle([{ op: 'complete', id: 'gone', token: it?.token as number, owner: 'w' }]);
      await delay(20);
      assert.equal((await store.sweep({ tombstoneTtl: 0 })).purged, 1);
      let error: unknown;
      try {
        await store.changes({ after: 0 });
      } catch (err) {
        error = err;
      }
      assert.ok(isRotaError(error, 'ROTA_COMPACTED'), `got ${String(error)}`);
    });
  });
});

/**
 * Several processes on one file: 4 children race CAS increments on one key and claims on one queue
 * of 5 000 items. No update may be lost, no item claimed twice, every item completed once.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { dec } from '../../src/store/conformance/helpers.js';
import { openStore } from '../../src/store/open.js';
import { sqliteUrl } from '../../src/store/sqlite/index.js';
import { startActor, tempDir } from './support.js';

const CHILDREN = 4;
const ITEMS = 5000;
const INCREMENTS = 100;

interface RaceResult {
  counter: number[];
  claims: { id: string; token: number }[];
  settledOk: number;
  error?: { code: string; message: string };
}

describe('sqlite: several processes on one file', () => {
  it('4 processes racing CAS increments and claims lose no update and claim no item twice', {
    timeout: 240_000,
  }, async () => {
    const { dir, cleanup } = tempDir();
    const url = sqliteUrl(join(dir, 'race.db'));
    const store = await openStore(url);
    try {
      for (let i = 0; i < ITEMS; i += 1000) {
        await store.enqueue(
          Array.from({ length: 1000 }, (_, j) => ({
            id: `item-${String(i + j).padStart(5, '0')}`,
            queue: 'race',
            payload: String(i + j),
          })),
        );
      }
      const actors = Array.from({ length: CHILDREN }, (_, n) =>
        startActor(['race', url, String(INCREMENTS), `child${n}`]),
      );
      await Promise.all(actors.map((a) => a.waitFor('ready')));
      for (const a of actors) a.send('go');
      const results = await Promise.all(actors.map((a) => a.result<RaceResult>(220_000)));
      for (const r of results) assert.equal(r.error, undefined, JSON.stringify(r.error));

      // CAS: every increment landed once; the values each child saw are all distinct.
      const seen = results.flatMap((r) => r.counter);
      assert.equal(seen.length, CHILDREN * INCREMENTS);
      assert.equal(new Set(seen).size, CHILDREN * INCREMENTS, 'two increments saw the same value');
      const { kv } = await store.get('counter');
      assert.equal(dec(kv?.value ?? new Uint8Array()), String(CHILDREN * INCREMENTS));
      assert.equal(kv?.version, CHILDREN * INCREMENTS);

      // Claims: every item claimed exactly once, every completion accepted, tokens all distinct.
      const claims = results.flatMap((r) => r.claims);
      assert.equal(claims.length, ITEMS, 'an item was claimed twice or not at all');
      assert.equal(new Set(claims.map((c) => c.id)).size, ITEMS, 'an item was claimed twice');
      assert.equal(new Set(claims.map((c) => c.token)).size, ITEMS, 'two claims shared a fencing token');
      assert.equal(
        results.reduce((n, r) => n + r.settledOk, 0),
        ITEMS,
      );
      assert.ok(results.every((r) => r.claims.length > 0 || r.counter.length > 0));
      const counts = (await store.countItems('race')).race;
      assert.deepEqual(counts, { pending: 0, claimed: 0, running: 0, completed: ITEMS, resolving: 0 });
      let afterSeq = 0;
      let checked = 0;
      for (;;) {
        const page = await store.listItems({ queue: 'race', limit: 1000, afterSeq });
        for (const it of page.items) {
          assert.equal(it.outcome, 'succeeded');
          assert.equal(it.attempt, 1, `${it.id} ran ${it.attempt} times`);
          checked++;
        }
        if (page.nextAfterSeq === null) break;
        afterSeq = page.nextAfterSeq;
      }
      assert.equal(checked, ITEMS);
    } finally {
      await store.close();
      cleanup();
    }
  });
});

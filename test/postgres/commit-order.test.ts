/**
 * PostgreSQL store: revision order equals commit order as watchers see it. Many clients write at
 * once while a watcher keeps stopping and resuming from the last revision it saw; a revision that
 * committed after a higher one would be skipped by such a watcher. It must see every write exactly
 * once, in revision order.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { delay, enc, take } from '../../src/store/conformance/helpers.js';
import type { Store, WatchEvent } from '../../src/store/port.js';
import { needsServer, withSchema } from './helpers.js';

const WRITERS = 6;
const WRITES = 120;

describe('postgres revision order', needsServer, () => {
  it('a watcher resuming from its last revision sees every concurrent write once, in order', {
    timeout: 60_000,
  }, async () => {
    await withSchema(async (open) => {
      const watcherStore = await open();
      const writers = await Promise.all(Array.from({ length: WRITERS }, () => open({ poolSize: 4 })));
      const start = (await watcherStore.status()).revision + 1;

      // Every write: its revision and what it wrote. Two concurrent loops per client, mixing
      // single puts, multi-key txns and deletes.
      const written = new Map<number, string[]>();
      const record = (revision: number, what: string[]) => {
        assert.ok(!written.has(revision), `revision ${revision} handed out twice`);
        written.set(revision, what);
      };
      const writer = async (store: Store, w: number, lane: number) => {
        for (let i = 0; i < WRITES / 2; i++) {
          // Paced, so the watcher keeps up and reads at the head, where an ordering gap would be.
          await delay(Math.floor(Math.random() * 12));
          const key = `co/${w}/${lane}/${i % 5}`;
          if (i % 7 === 3) {
            const res = await store.txn({
              compare: [],
              success: [
                { type: 'put', key: `${key}/a`, value: enc(`${w}.${lane}.${i}`) },
                { type: 'put', key: `${key}/b`, value: enc(`${w}.${lane}.${i}`) },
              ],
            });
            record(res.revision, [`put ${key}/a`, `put ${key}/b`]);
          } else if (i % 11 === 5) {
            const res = await store.delete(key);
            if (res.deleted > 0) record(res.revision, [`delete ${key}`]);
          } else {
            const res = await store.put(key, enc(`${w}.${lane}.${i}`));
            record(res.revision, [`put ${key}`]);
          }
        }
      };

      let writing = true;
      const writes = Promise.all(writers.flatMap((s, w) => [writer(s, w, 0), writer(s, w, 1)])).finally(
        () => {
          writing = false;
        },
      );

      // The watcher: read until a few events arrived or it caught up (nothing new for 40 ms), stop,
      // resume from the last revision it saw whole. Caught up, it reads at the head, where a
      // revision committing after a higher one would be skipped. The events of the last revision
      // read may be partial (a two-key txn), so that revision is read again.
      const seen: WatchEvent[] = [];
      let from = start;
      let resumes = 0;
      const watchLoop = async () => {
        for (;;) {
          if (!writing) {
            let rest = 0;
            for (const [revision, what] of written) if (revision >= from) rest += what.length;
            const last = watcherStore.watch('co/', { fromRevision: from });
            seen.push(...(await take(last, rest, 10_000)));
            await last.return?.();
            return;
          }
          const watch = watcherStore.watch('co/', { fromRevision: from });
          const got: WatchEvent[] = [];
          const want = 2 + (resumes % 23);
          while (got.length < want) {
            const next = await take(watch, 1, 40).catch(() => null);
            if (!next) break;
            got.push(...next);
          }
          await watch.return?.();
          resumes++;
          const lastRev = got[got.length - 1]?.revision;
          if (lastRev === undefined) continue;
          const whole = got.filter((e) => e.revision < lastRev);
          seen.push(...whole);
          from = lastRev;
        }
      };
      await Promise.all([writes, watchLoop()]);

      assert.ok(resumes > 20, `the watcher resumed only ${resumes} times`);
      const expected = [...written.entries()].sort((a, b) => a[0] - b[0]);
      const got = new Map<number, string[]>();
      let last = 0;
      for (const e of seen) {
        assert.ok(e.revision >= last, `revision ${e.revision} arrived after ${last}`);
        last = e.revision;
        const list = got.get(e.revision) ?? [];
        list.push(`${e.type} ${e.kv.key}`);
        got.set(e.revision, list);
      }
      assert.equal(got.size, expected.length, 'every write revision was seen');
      for (const [revision, what] of expected) {
        assert.deepEqual((got.get(revision) ?? []).sort(), [...what].sort(), `revision ${revision}`);
      }
    });
  });
});

/** Conformance: watches (order, prefix, resume without gap or duplicate, compaction, ending). */
import type { WatchEvent } from '../port.js';
import { assert, dec, enc, expectQuiet, rejectsWith, take } from './helpers.js';
import type { ConformanceGroup } from './index.js';

export const watchTests: ConformanceGroup = {
  'a watch without fromRevision delivers later puts and deletes in revision order': async ({ store }) => {
    await store.put('w/before', enc('old'));
    const watch = store.watch('w/');
    // Some engines register a watch asynchronously: write markers until one arrives, which proves
    // the watch is live; the old key must never show up.
    let first: WatchEvent[] = [];
    for (let i = 0; first.length === 0; i++) {
      assert.ok(i < 50, 'the watch never delivered a marker');
      await store.put('w/marker', enc(String(i)));
      first = await take(watch, 1, 100).catch(() => []);
    }
    assert.equal(first[0]?.kv.key, 'w/marker');
    // Drain markers written while the first one was in flight.
    const markerRev = (await store.get('w/marker')).kv?.modRevision ?? 0;
    while ((first[first.length - 1]?.revision ?? 0) < markerRev) first = await take(watch, 1);
    const a = await store.put('w/a', enc('1'));
    const b = await store.put('w/a', enc('2'));
    const d = await store.delete('w/a');
    const events = await take(watch, 3);
    assert.deepEqual(
      events.map((e) => [e.type, e.kv.key, e.revision]),
      [
        ['put', 'w/a', a.revision],
        ['put', 'w/a', b.revision],
        ['delete', 'w/a', d.revision],
      ],
    );
    assert.equal(dec(events[1]?.kv.value ?? enc('')), '2');
    assert.equal(events[1]?.kv.version, 2);
    assert.equal(events[2]?.kv.value.length, 0);
    await watch.return?.();
  },

  'a watch sees only keys under its prefix': async ({ store }) => {
    const start = (await store.status()).revision + 1;
    const watch = store.watch('wp/a/', { fromRevision: start });
    await store.put('wp/b/1', enc('no'));
    await store.put('wp/a', enc('no'));
    await store.put('wp/a/1', enc('yes'));
    await store.put('wp/ab', enc('no'));
    await store.put('wp/a/2', enc('yes'));
    const events = await take(watch, 2);
    assert.deepEqual(
      events.map((e) => e.kv.key),
      ['wp/a/1', 'wp/a/2'],
    );
    await expectQuiet(watch, 150);
    await watch.return?.();
  },

  'fromRevision replays history and continues live with no gap': async ({ store }) => {
    const revs: number[] = [];
    for (let i = 0; i < 5; i++) revs.push((await store.put(`wh/${i}`, enc(String(i)))).revision);
    const watch = store.watch('wh/', { fromRevision: revs[2] });
    const replay = await take(watch, 3);
    assert.deepEqual(
      replay.map((e) => e.kv.key),
      ['wh/2', 'wh/3', 'wh/4'],
    );
    const live = await store.put('wh/5', enc('5'));
    const next = await take(watch, 1);
    assert.equal(next[0]?.revision, live.revision);
    await watch.return?.();
  },

  'a resumed watch delivers exactly the missed changes: no gap, no duplicate': async ({ store, connect }) => {
    const writer = await connect();
    const start = (await store.status()).revision + 1;
    const first = store.watch('wr/', { fromRevision: start });
    for (let i = 0; i < 3; i++) await writer.put(`wr/${i}`, enc(String(i)));
    const seen = await take(first, 3);
    await first.return?.();
    const last = seen[seen.length - 1]?.revision ?? 0;
    const missed: number[] = [];
    missed.push((await writer.put('wr/3', enc('3'))).revision);
    missed.push((await writer.delete('wr/0')).revision);
    missed.push((await writer.put('wr/1', enc('1b'))).revision);
    const resumed = store.watch('wr/', { fromRevision: last + 1 });
    const events = await take(resumed, 3);
    assert.deepEqual(
      events.map((e) => e.revision),
      missed,
    );
    assert.deepEqual(
      events.map((e) => e.type),
      ['put', 'delete', 'put'],
    );
    await expectQuiet(resumed, 150);
    await resumed.return?.();
  },

  'a watch from a compacted revision fails with ROTA_COMPACTED; after it works': async ({ store }) => {
    const revs: number[] = [];
    for (let i = 0; i < 4; i++) revs.push((await store.put(`wc/${i}`, enc(String(i)))).revision);
    await store.compact(revs[2] as number);
    const status = await store.status();
    assert.ok(status.compactRevision >= (revs[2] as number));
    const stale = store.watch('wc/', { fromRevision: revs[1] });
    await rejectsWith(stale.next(), 'ROTA_COMPACTED');
    const fresh = store.watch('wc/', { fromRevision: (revs[2] as number) + 1 });
    const events = await take(fresh, 1);
    assert.equal(events[0]?.kv.key, 'wc/3');
    await fresh.return?.();
    // Compacting an already compacted revision is a no-op.
    await store.compact(revs[1] as number);
  },

  'compacting a future revision is refused': async ({ store }) => {
    const { revision } = await store.status();
    await rejectsWith(store.compact(revision + 1000), 'ROTA_INVALID_ARGUMENT');
  },

  'a watch from a revision delivers every event of a multi-key txn': async ({ store }) => {
    const res = await store.txn({
      compare: [],
      success: [
        { type: 'put', key: 'wt/a', value: enc('a') },
        { type: 'put', key: 'wt/b', value: enc('b') },
        { type: 'put', key: 'wt/c', value: enc('c') },
      ],
    });
    const watch = store.watch('wt/', { fromRevision: res.revision });
    const events = await take(watch, 3);
    assert.deepEqual(events.map((e) => e.kv.key).sort(), ['wt/a', 'wt/b', 'wt/c']);
    for (const e of events) assert.equal(e.revision, res.revision);
    await watch.return?.();
  },

  "one client's watch sees another client's writes": async ({ store, connect }) => {
    const writer = await connect();
    const start = (await store.status()).revision + 1;
    const watch = store.watch('wx/', { fromRevision: start });
    const put = await writer.put('wx/k', enc('from-writer'));
    const [event] = await take(watch, 1);
    assert.equal(event?.revision, put.revision);
    assert.equal(dec(event?.kv.value ?? enc('')), 'from-writer');
    await watch.return?.();
  },

  'aborting the signal ends the iterator': async ({ store }) => {
    const controller = new AbortController();
    const watch = store.watch('wa/', { signal: controller.signal });
    const pending = watch.next();
    controller.abort();
    const result = await pending;
    assert.equal(result.done, true);
    const pre = new AbortController();
    pre.abort();
    const ended = store.watch('wa/', { signal: pre.signal });
    assert.equal((await ended.next()).done, true);
  },

  'closing the store ends its watch iterators': async ({ connect }) => {
    const client = await connect();
    const watch = client.watch('wz/');
    const pending = watch.next();
    await client.close();
    const result = await pending;
    assert.equal(result.done, true);
    await client.close();
  },

  'many events arrive complete and in order': async ({ store, connect }) => {
    const writer = await connect();
    const start = (await store.status()).revision + 1;
    const watch = store.watch('wm/', { fromRevision: start });
    const revs: number[] = [];
    for (let i = 0; i < 200; i++) revs.push((await writer.put(`wm/${i % 7}`, enc(String(i)))).revision);
    const events = await take(watch, 200, 15_000);
    assert.deepEqual(
      events.map((e) => e.revision),
      revs,
    );
    await watch.return?.();
  },
};

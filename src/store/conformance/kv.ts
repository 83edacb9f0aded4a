/** Conformance: keys, revisions, ranges and transactions. */
import { compareKeys } from '../keys.js';
import { assert, casIncrement, dec, enc, rejectsWith } from './helpers.js';
import type { ConformanceGroup } from './index.js';

export const kvTests: ConformanceGroup = {
  'get of an absent key returns null and the current revision': async ({ store }) => {
    const res = await store.get('kv/absent');
    assert.equal(res.kv, null);
    assert.ok(Number.isSafeInteger(res.revision) && res.revision >= 0);
  },

  'put then get returns the value with create/mod revision, version 1 and no lease': async ({ store }) => {
    const put = await store.put('kv/a', enc('hello'));
    assert.equal(put.prev, null);
    const { kv } = await store.get('kv/a');
    assert.ok(kv);
    assert.equal(dec(kv.value), 'hello');
    assert.equal(kv.key, 'kv/a');
    assert.equal(kv.version, 1);
    assert.equal(kv.createRevision, put.revision);
    assert.equal(kv.modRevision, put.revision);
    assert.equal(kv.lease, null);
  },

  'a second put bumps version and modRevision, keeps createRevision, returns prev': async ({ store }) => {
    const first = await store.put('kv/a', enc('1'));
    const second = await store.put('kv/a', enc('2'));
    assert.ok(second.revision > first.revision);
    assert.equal(dec(second.prev?.value ?? enc('')), '1');
    const { kv } = await store.get('kv/a');
    assert.equal(kv?.version, 2);
    assert.equal(kv?.createRevision, first.revision);
    assert.equal(kv?.modRevision, second.revision);
  },

  'the revision is store-wide and strictly increasing across keys': async ({ store }) => {
    const revs: number[] = [];
    for (const k of ['kv/x', 'kv/y', 'kv/x', 'kv/z']) revs.push((await store.put(k, enc(k))).revision);
    for (let i = 1; i < revs.length; i++) assert.ok((revs[i] as number) > (revs[i - 1] as number));
    const status = await store.status();
    assert.equal(status.revision, revs[revs.length - 1]);
  },

  'delete removes one key and reports it; deleting an absent key changes nothing': async ({ store }) => {
    await store.put('kv/d', enc('v'));
    const del = await store.delete('kv/d');
    assert.equal(del.deleted, 1);
    assert.equal(dec(del.prev[0]?.value ?? enc('')), 'v');
    assert.equal((await store.get('kv/d')).kv, null);
    const before = (await store.status()).revision;
    const none = await store.delete('kv/d');
    assert.equal(none.deleted, 0);
    assert.equal((await store.status()).revision, before);
  },

  'delete with prefix removes exactly the keys under the prefix in one revision': async ({
    store,
    connect,
  }) => {
    for (const k of ['p/a', 'p/b', 'p/c/d', 'pa', 'q']) await store.put(k, enc(k));
    const other = await connect();
    const del = await other.delete('p/', { prefix: true });
    assert.equal(del.deleted, 3);
    const left = (await store.range('')).kvs.map((kv) => kv.key);
    assert.deepEqual(left, ['pa', 'q']);
    assert.equal((await store.status()).revision, del.revision);
  },

  'a deleted and re-created key starts a new incarnation': async ({ store }) => {
    const first = await store.put('kv/r', enc('1'));
    await store.delete('kv/r');
    const again = await store.put('kv/r', enc('2'));
    const { kv } = await store.get('kv/r');
    assert.equal(kv?.version, 1);
    assert.equal(kv?.createRevision, again.revision);
    assert.ok(again.revision > first.revision);
  },

  'range returns only keys under the prefix, in key order': async ({ store }) => {
    for (const k of ['r/b', 'r/a', 'r0', 'r/c/x', 'r', 's/a']) await store.put(k, enc(k));
    const res = await store.range('r/');
    assert.deepEqual(
      res.kvs.map((kv) => kv.key),
      ['r/a', 'r/b', 'r/c/x'],
    );
    assert.equal(res.more, false);
    assert.ok(res.revision >= (await store.get('r/a')).kv!.modRevision);
  },

  'range pages with limit, more and startAfter': async ({ store }) => {
    for (let i = 0; i < 25; i++) await store.put(`pg/${String(i).padStart(2, '0')}`, enc(String(i)));
    const seen: string[] = [];
    let startAfter: string | undefined;
    for (;;) {
      const page = await store.range('pg/', { limit: 10, ...(startAfter ? { startAfter } : {}) });
      seen.push(...page.kvs.map((kv) => kv.key));
      if (!page.more) break;
      startAfter = page.kvs[page.kvs.length - 1]?.key;
    }
    assert.equal(seen.length, 25);
    assert.deepEqual(seen, [...seen].sort());
    const limited = await store.range('pg/', { limit: 25 });
    assert.equal(limited.more, false);
  },

  'binary values round-trip byte for byte, including empty values': async ({ store }) => {
    const all = new Uint8Array(256).map((_, i) => i);
    await store.put('bin/all', all);
    await store.put('bin/empty', new Uint8Array(0));
    assert.deepEqual([...((await store.get('bin/all')).kv?.value ?? [])], [...all]);
    const empty = (await store.get('bin/empty')).kv;
    assert.ok(empty);
    assert.equal(empty.value.length, 0);
  },

  'unicode keys round-trip and range in code point order': async ({ store }) => {
    const keys = ['u/a', 'u/z', 'u/é', 'u/\u4e2d', 'u/\uff5e', 'u/\u{1F600}', 'u/%2F'];
    for (const k of keys) await store.put(k, enc(k));
    const got = (await store.range('u/')).kvs.map((kv) => kv.key);
    assert.deepEqual(got, [...keys].sort(compareKeys));
    for (const k of keys) assert.equal(dec((await store.get(k)).kv?.value ?? enc('')), k);
  },

  'txn on absence creates once; the second attempt runs the failure branch': async ({ store }) => {
    const create = () =>
      store.txn({
        compare: [{ key: 't/once', target: 'version', op: '==', value: 0 }],
        success: [{ type: 'put', key: 't/once', value: enc('mine') }],
        failure: [{ type: 'get', key: 't/once' }],
      });
    const a = await create();
    assert.equal(a.succeeded, true);
    assert.equal(a.results[0]?.type, 'put');
    const b = await create();
    assert.equal(b.succeeded, false);
    const got = b.results[0];
    assert.equal(got?.type, 'get');
    assert.equal(got?.type === 'get' ? dec(got.kv?.value ?? enc('')) : '', 'mine');
    assert.equal(b.revision, a.revision);
  },

  'txn compares values with == and != on present and absent keys': async ({ store }) => {
    await store.put('t/v', enc('x'));
    const check = async (key: string, op: '==' | '!=', value: string) =>
      (await store.txn({ compare: [{ key, target: 'value', op, value: enc(value) }], success: [] }))
        .succeeded;
    assert.equal(await check('t/v', '==', 'x'), true);
    assert.equal(await check('t/v', '==', 'y'), false);
    assert.equal(await check('t/v', '!=', 'y'), true);
    assert.equal(await check('t/v', '!=', 'x'), false);
    assert.equal(await check('t/none', '==', 'x'), false);
    assert.equal(await check('t/none', '!=', 'x'), true);
  },

  'txn compares createRevision, modRevision and version with every operator': async ({ store }) => {
    const put = await store.put('t/n', enc('1'));
    await store.put('t/n', enc('2'));
    const { kv } = await store.get('t/n');
    assert.ok(kv);
    const ok = async (
      target: 'createRevision' | 'modRevision' | 'version',
      op: '==' | '!=' | '<' | '>',
      value: number,
    ) => (await store.txn({ compare: [{ key: 't/n', target, op, value }], success: [] })).succeeded;
    assert.equal(await ok('createRevision', '==', put.revision), true);
    assert.equal(await ok('modRevision', '>', put.revision), true);
    assert.equal(await ok('modRevision', '<', kv.modRevision), false);
    assert.equal(await ok('version', '==', 2), true);
    assert.equal(await ok('version', '!=', 2), false);
    assert.equal(await ok('version', '<', 3), true);
    assert.equal(await ok('createRevision', '>', kv.modRevision), false);
  },

  'every write of one txn shares one revision and results follow op order': async ({ store }) => {
    await store.put('t/old', enc('o'));
    const res = await store.txn({
      compare: [],
      success: [
        { type: 'put', key: 't/1', value: enc('1') },
        { type: 'put', key: 't/2', value: enc('2') },
        { type: 'delete', key: 't/old' },
        { type: 'get', key: 't/1' },
        { type: 'range', prefix: 't/' },
      ],
    });
    assert.equal(res.succeeded, true);
    assert.deepEqual(
      res.results.map((r) => r.type),
      ['put', 'put', 'delete', 'get', 'range'],
    );
    const a = (await store.get('t/1')).kv;
    const b = (await store.get('t/2')).kv;
    assert.equal(a?.modRevision, res.revision);
    assert.equal(b?.modRevision, res.revision);
    const del = res.results[2];
    assert.equal(del?.type === 'delete' ? del.deleted : -1, 1);
    const range = res.results[4];
    assert.deepEqual(range?.type === 'range' ? range.kvs.map((kv) => kv.key) : [], ['t/1', 't/2']);
  },

  'a txn that writes nothing leaves the revision unchanged': async ({ store }) => {
    await store.put('t/k', enc('v'));
    const before = (await store.status()).revision;
    const res = await store.txn({
      compare: [{ key: 't/k', target: 'version', op: '==', value: 0 }],
      success: [{ type: 'put', key: 't/k', value: enc('w') }],
    });
    assert.equal(res.succeeded, false);
    assert.equal(res.revision, before);
    const empty = await store.txn({ compare: [], success: [] });
    assert.equal(empty.succeeded, true);
    assert.equal((await store.status()).revision, before);
    assert.equal(dec((await store.get('t/k')).kv?.value ?? enc('')), 'v');
  },

  'CAS increments racing from two clients lose no update': async ({ store, connect }) => {
    const other = await connect();
    await Promise.all([
      ...Array.from({ length: 15 }, () => casIncrement(store, 'cas/counter')),
      ...Array.from({ length: 15 }, () => casIncrement(other, 'cas/counter')),
    ]);
    assert.equal(dec((await store.get('cas/counter')).kv?.value ?? enc('')), '30');
    assert.equal((await other.get('cas/counter')).kv?.version, 30);
  },

  'of two clients creating the same key on absence, exactly one wins': async ({ store, connect }) => {
    const other = await connect();
    const attempt = (s: typeof store, who: string) =>
      s.txn({
        compare: [{ key: 'race/owner', target: 'createRevision', op: '==', value: 0 }],
        success: [{ type: 'put', key: 'race/owner', value: enc(who) }],
      });
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => attempt(i % 2 ? store : other, `c${i}`)),
    );
    assert.equal(results.filter((r) => r.succeeded).length, 1);
    assert.equal((await store.get('race/owner')).kv?.version, 1);
  },

  'a txn writing one key twice is refused and writes nothing': async ({ store }) => {
    const before = (await store.status()).revision;
    await rejectsWith(
      store.txn({
        compare: [],
        success: [
          { type: 'put', key: 'dup/a', value: enc('1') },
          { type: 'put', key: 'dup/a', value: enc('2') },
        ],
      }),
      'ROTA_INVALID_ARGUMENT',
    );
    await rejectsWith(
      store.txn({
        compare: [],
        success: [
          { type: 'put', key: 'dup/x/1', value: enc('1') },
          { type: 'delete', key: 'dup/x/', prefix: true },
        ],
      }),
      'ROTA_INVALID_ARGUMENT',
    );
    assert.equal((await store.get('dup/a')).kv, null);
    assert.equal((await store.status()).revision, before);
  },

  'a txn putting with an unknown lease fails whole with ROTA_LEASE_NOT_FOUND': async ({ store }) => {
    await store.put('tl/keep', enc('keep'));
    const before = (await store.status()).revision;
    const lease = await store.grant(5000);
    await store.revoke(lease.id);
    await rejectsWith(
      store.txn({
        compare: [],
        success: [
          { type: 'put', key: 'tl/a', value: enc('a') },
          { type: 'put', key: 'tl/b', value: enc('b'), lease: lease.id },
          { type: 'delete', key: 'tl/keep' },
        ],
      }),
      'ROTA_LEASE_NOT_FOUND',
    );
    assert.equal((await store.get('tl/a')).kv, null);
    assert.equal(dec((await store.get('tl/keep')).kv?.value ?? enc('')), 'keep');
    assert.equal((await store.status()).revision, before);
  },

  "now() is the store's clock: close to real time and never going backwards": async ({ store }) => {
    const a = await store.now();
    const b = await store.now();
    assert.ok(Number.isSafeInteger(a));
    assert.ok(b >= a);
    assert.ok(Math.abs(a - Date.now()) < 60_000, `store time ${a} is far from local time ${Date.now()}`);
  },

  'capabilities are declared': async ({ store }) => {
    const c = store.capabilities;
    assert.equal(typeof c.name, 'string');
    assert.equal(typeof c.serverClock, 'boolean');
    assert.equal(typeof c.multiProcess, 'boolean');
    assert.ok(c.maxKeyBytes >= 1024);
    assert.ok(c.maxValueBytes >= 1024 * 1024);
    assert.equal(c.leaseGranularityMs, 1000);
    assert.ok(c.queueThroughput === 'high' || c.queueThroughput === 'low');
  },
};

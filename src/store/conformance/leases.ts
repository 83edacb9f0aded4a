/** Conformance: leases (grant, keep-alive, revoke, expiry by the store clock). */

import { assert, dec, delay, enc, eventually, rejectsWith, take } from './helpers.js';
import type { ConformanceGroup } from './index.js';

export const leaseTests: ConformanceGroup = {
  'grant rounds the TTL up to whole seconds': async ({ store }) => {
    const a = await store.grant(1500);
    const b = await store.grant(1);
    const c = await store.grant(3000);
    assert.equal(a.ttl, 2000);
    assert.equal(b.ttl, 1000);
    assert.equal(c.ttl, 3000);
    assert.notEqual(a.id, b.id);
  },

  'keys attached to a lease are listed by leaseInfo with the remaining time': async ({ store }) => {
    const lease = await store.grant(5000);
    await store.put('l/a', enc('a'), { lease: lease.id });
    await store.put('l/b', enc('b'), { lease: lease.id });
    const { kv } = await store.get('l/a');
    assert.equal(kv?.lease, lease.id);
    const info = await store.leaseInfo(lease.id);
    assert.ok(info);
    assert.deepEqual(info.keys, ['l/a', 'l/b']);
    assert.equal(info.ttl, 5000);
    assert.ok(info.remaining > 3000 && info.remaining <= 5000, `remaining ${info.remaining}`);
    assert.equal(await store.leaseInfo('123456789abc'), null);
  },

  'an expired lease deletes its keys by store time and watchers see the deletes': async ({
    store,
    connect,
  }) => {
    const observer = await connect();
    const lease = await store.grant(1000);
    const put = await store.put('exp/a', enc('a'), { lease: lease.id });
    await store.put('exp/keep', enc('k'));
    const watch = observer.watch('exp/', { fromRevision: put.revision + 1 });
    const started = Date.now();
    await eventually(async () => (await observer.get('exp/a')).kv === null, 4000, 'the leased key to expire');
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 500, `key vanished after only ${elapsed} ms`);
    const events = await take(watch, 2);
    assert.deepEqual(
      events.map((e) => [e.type, e.kv.key]),
      [
        ['put', 'exp/keep'],
        ['delete', 'exp/a'],
      ],
    );
    await watch.return?.();
    assert.ok((await store.get('exp/keep')).kv);
    assert.equal(await store.leaseInfo(lease.id), null);
  },

  'keepAlive holds a lease past its TTL': async ({ store }) => {
    // A 2 s lease renewed every 300 ms outlives its TTL, with room for slow round trips under load.
    const lease = await store.grant(2000);
    await store.put('ka/a', enc('a'), { lease: lease.id });
    for (let i = 0; i < 8; i++) {
      await delay(300);
      const renewed = await store.keepAlive(lease.id);
      assert.equal(renewed.ttl, 2000);
    }
    assert.ok((await store.get('ka/a')).kv, 'the key survived 2.4 s on a 2 s lease');
    await store.revoke(lease.id);
  },

  'keepAlive after expiry fails with ROTA_LEASE_NOT_FOUND': async ({ store }) => {
    const lease = await store.grant(1000);
    await store.put('kae/a', enc('a'), { lease: lease.id });
    await eventually(async () => (await store.get('kae/a')).kv === null, 4000, 'expiry');
    await rejectsWith(store.keepAlive(lease.id), 'ROTA_LEASE_NOT_FOUND');
  },

  'revoke deletes the keys at once with delete events and is idempotent': async ({ store, connect }) => {
    const lease = await store.grant(30_000);
    await store.put('rv/a', enc('a'), { lease: lease.id });
    const put = await store.put('rv/b', enc('b'), { lease: lease.id });
    const other = await connect();
    const watch = other.watch('rv/', { fromRevision: put.revision + 1 });
    assert.equal(await store.revoke(lease.id), true);
    assert.equal((await store.get('rv/a')).kv, null);
    assert.equal((await store.get('rv/b')).kv, null);
    const events = await take(watch, 2);
    assert.deepEqual(events.map((e) => e.type).sort(), ['delete', 'delete']);
    assert.equal(events[0]?.revision, events[1]?.revision, "a lease's keys are deleted in one revision");
    await watch.return?.();
    assert.equal(await store.revoke(lease.id), false);
    await rejectsWith(store.keepAlive(lease.id), 'ROTA_LEASE_NOT_FOUND');
  },

  'put with an unknown or revoked lease fails and stores nothing': async ({ store }) => {
    const lease = await store.grant(5000);
    await store.revoke(lease.id);
    await rejectsWith(store.put('ul/a', enc('a'), { lease: lease.id }), 'ROTA_LEASE_NOT_FOUND');
    await rejectsWith(store.put('ul/b', enc('b'), { lease: 'ffffffff0000' }), 'ROTA_LEASE_NOT_FOUND');
    assert.equal((await store.get('ul/a')).kv, null);
    assert.equal((await store.get('ul/b')).kv, null);
  },

  'a key re-put without a lease is detached and survives the revoke': async ({ store }) => {
    const lease = await store.grant(5000);
    await store.put('det/a', enc('1'), { lease: lease.id });
    await store.put('det/a', enc('2'));
    assert.equal((await store.get('det/a')).kv?.lease, null);
    await store.revoke(lease.id);
    assert.equal(dec((await store.get('det/a')).kv?.value ?? enc('')), '2');
  },

  'a lease granted by one client can be kept alive and revoked by another': async ({ store, connect }) => {
    const other = await connect();
    const lease = await store.grant(2000);
    await store.put('sh/a', enc('a'), { lease: lease.id });
    const renewed = await other.keepAlive(lease.id);
    assert.equal(renewed.id, lease.id);
    assert.equal(await other.revoke(lease.id), true);
    assert.equal((await store.get('sh/a')).kv, null);
  },

  'many keys on one lease expire together': async ({ store }) => {
    const lease = await store.grant(1000);
    // One txn, so a slow store cannot let the 1 s lease run out half-way through the writes.
    await store.txn({
      compare: [],
      success: [
        ...Array.from({ length: 50 }, (_, i) => ({
          type: 'put' as const,
          key: `many/${i}`,
          value: enc(String(i)),
          lease: lease.id,
        })),
        { type: 'put', key: 'many/stay', value: enc('s') },
      ],
    });
    await eventually(
      async () => (await store.range('many/')).kvs.length === 1,
      4000,
      '50 leased keys to expire',
    );
    assert.equal((await store.range('many/')).kvs[0]?.key, 'many/stay');
  },
};

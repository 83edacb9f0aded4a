/** etcd store: URL and option checks, several endpoints, prefix isolation, honest lease TTLs. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { dropEtcdPrefix } from '../../src/store/etcd/index.js';
import { parseEtcdSettings } from '../../src/store/etcd/settings.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/port.js';
import { ManualClock } from '../../src/time/clock.js';
import { serverAvailable } from '../support/stores.js';
import { freePort } from './support/server.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

describe('etcd store settings', () => {
  it('parses hosts, defaults and query parameters', () => {
    const s = parseEtcdSettings('etcd://127.0.0.1:2379,db.local,[::1]:3000/?prefix=app/&timeout=250');
    assert.deepEqual(s.hosts, ['127.0.0.1:2379', 'db.local:2379', '[::1]:3000']);
    assert.equal(s.prefix, 'app/');
    assert.equal(s.timeout, 250);
    assert.equal(s.maxTxnOps, 128);
    assert.equal(s.maxRequestBytes, 1_572_864);
    assert.equal(s.physicalCompaction, false);
    const d = parseEtcdSettings('etcd://h');
    assert.equal(d.prefix, 'rota/');
    assert.equal(d.timeout, 5000);
  });

  it('lets the options object override the URL and accepts a clock', () => {
    const clock = new ManualClock(5);
    const s = parseEtcdSettings('etcd://h:1/?prefix=a/&maxTxnOps=64', {
      prefix: 'b/',
      physicalCompaction: true,
      clock,
    });
    assert.equal(s.prefix, 'b/');
    assert.equal(s.maxTxnOps, 64);
    assert.equal(s.physicalCompaction, true);
    assert.equal(s.clock, clock);
  });

  it('refuses malformed URLs, unknown parameters and wrong option types with ROTA_INVALID_ARGUMENT', async () => {
    const bad: [string, Record<string, unknown>?][] = [
      ['etcd://'],
      ['etcd://h:1/some/path'],
      ['etcd://user:secret@h:1'],
      ['etcd://h:1,h:99999'],
      ['etcd://h:1,'],
      ['etcd://h:1#frag'],
      ['etcd://h:1/?prefx=a/'],
      ['etcd://h:1/?prefix='],
      ['etcd://h:1/?prefix=a&prefix=b'],
      ['etcd://h:1/?timeout=soon'],
      ['etcd://h:1/?timeout=0'],
      ['etcd://h:1/?physicalCompaction=yes'],
      ['etcd://h:1/?maxTxnOps=4'],
      ['etcd://h:1', { prefix: 42 }],
      ['etcd://h:1', { timeout: 1.5 }],
      ['etcd://h:1', { colour: 'red' }],
      ['etcd://h:1', { clock: {} }],
    ];
    // A single-host URL that WHATWG cannot parse is refused by openStore itself.
    await assert.rejects(openStore('etcd://h:99999'), { code: 'ROTA_UNKNOWN_STORE' });
    assert.throws(() => parseEtcdSettings('etcd://h:99999'), { code: 'ROTA_INVALID_ARGUMENT' });
    for (const [url, options] of bad) {
      await assert.rejects(
        openStore(url, options),
        { code: 'ROTA_INVALID_ARGUMENT' },
        `${url} ${JSON.stringify(options)}`,
      );
    }
  });
});

describe('etcd store on the shared server', { skip: !process.env.ROTA_TEST_ETCD_URL && 'no etcd' }, () => {
  if (!serverAvailable({ name: 'etcd', serverEnv: 'ROTA_TEST_ETCD_URL', create: async () => assert.fail() }))
    return;
  const url = process.env.ROTA_TEST_ETCD_URL as string;
  const prefixes: string[] = [];
  const clients: Store[] = [];
  const open = async (extra = '', options: Record<string, unknown> = {}) => {
    const prefix = `rota-test/${randomUUID()}/`;
    prefixes.push(prefix);
    const store = await openStore(`${extra || url}`, { prefix, ...options });
    clients.push(store);
    return { store, prefix };
  };
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(prefixes.map((p) => dropEtcdPrefix(url, p)));
  });

  it('works with a dead endpoint listed first (reads and unsent writes go to the live one)', async () => {
    const dead = await freePort();
    const live = url.slice('etcd://'.length);
    const { store } = await open(`etcd://127.0.0.1:${dead},${live}`, { timeout: 1000 });
    for (let i = 0; i < 10; i++) await store.put(`k${i}`, enc(String(i)));
    const res = await store.range('k');
    assert.equal(res.kvs.length, 10);
    await store.enqueue([{ id: 'a', queue: 'q', payload: '1' }]);
    assert.equal((await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 5000 })).items.length, 1);
  });

  it('keeps stores with different prefixes apart, revisions included', async () => {
    const a = (await open()).store;
    const b = (await open()).store;
    await a.put('shared', enc('a'));
    const before = await a.status();
    for (let i = 0; i < 5; i++) await b.put('shared', enc(`b${i}`));
    await b.enqueue([{ id: 'x', queue: 'q', payload: '1' }]);
    assert.equal(dec((await a.get('shared')).kv?.value), 'a');
    assert.equal(
      (await a.status()).revision,
      before.revision,
      "another prefix's writes do not move this store",
    );
    assert.equal(await a.getItem('x'), null);
    assert.deepEqual(await a.countItems(), {});
    assert.equal((await a.range('')).kvs.length, 1);
  });

  it('reports the lease TTL etcd granted and the key-prefix of leased keys only', async () => {
    const { store } = await open();
    const lease = await store.grant(1);
    // etcd raises a TTL below its minimum (1.5 x election timeout); the test server grants 1 s.
    assert.ok(lease.ttl >= 1000 && lease.ttl % 1000 === 0, `ttl ${lease.ttl}`);
    await store.put('leased', enc('v'), { lease: lease.id });
    const info = await store.leaseInfo(lease.id);
    assert.deepEqual(info?.keys, ['leased']);
    assert.equal(info?.ttl, lease.ttl);
    assert.equal(await store.revoke(lease.id), true);
  });

  it('an empty store has a stable revision of its own', async () => {
    const { store } = await open();
    const first = (await store.status()).revision;
    const other = (await open()).store;
    await other.put('k', enc('v'));
    assert.equal((await store.status()).revision, first);
    assert.equal((await store.get('nothing')).revision, first);
  });
});

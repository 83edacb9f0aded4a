/** The store refuses a server whose maxmemory-policy can evict keys (ROTA_UNSAFE_STORE_CONFIG). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/store/open.js';
import { evictionSafe } from '../../src/store/redis/index.js';
import { TestRedis } from './server.js';

describe('redis eviction policy check', { timeout: 30_000 }, () => {
  const server = new TestRedis(['--maxmemory-policy', 'allkeys-lru', '--maxmemory', '64mb']);
  before(() => server.start());
  after(() => server.stop());

  it('classifies the policies', () => {
    assert.equal(evictionSafe('noeviction'), true);
    for (const p of ['volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl'])
      assert.equal(evictionSafe(p), true);
    for (const p of ['allkeys-lru', 'allkeys-lfu', 'allkeys-random']) assert.equal(evictionSafe(p), false);
  });

  it('refuses to start on allkeys-lru, and writes nothing', async () => {
    await assert.rejects(
      openStore(server.url, { prefix: 'ev' }),
      (err: { code?: string; detail?: object }) => {
        assert.equal(err.code, 'ROTA_UNSAFE_STORE_CONFIG');
        assert.deepEqual(err.detail, { setting: 'maxmemory-policy', value: 'allkeys-lru' });
        return true;
      },
    );
    const admin = server.admin();
    assert.deepEqual(await admin.keys('{ev}:*'), []);
    admin.disconnect();
  });

  it('starts with checkEviction=false, and on volatile-* or noeviction policies', async () => {
    const unchecked = await openStore(`${server.url}?checkEviction=false`, { prefix: 'ev' });
    await unchecked.close();
    const admin = server.admin();
    for (const policy of ['volatile-lru', 'noeviction']) {
      await admin.config('SET', 'maxmemory-policy', policy);
      const store = await openStore(server.url, { prefix: 'ev' });
      await store.put('k', new Uint8Array([1]));
      await store.close();
    }
    admin.disconnect();
  });
});

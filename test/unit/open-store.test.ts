import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openStore, registerStoreScheme, storeSchemes } from '../../src/store/open.js';

describe('openStore', () => {
  it('opens memory stores, shared by name', async () => {
    const a = await openStore('memory:shared-test');
    const b = await openStore('memory:shared-test');
    await a.put('k', new Uint8Array([1]));
    assert.deepEqual([...((await b.get('k')).kv?.value ?? [])], [1]);
    const c = await openStore('memory:');
    assert.equal((await c.get('k')).kv, null);
    await Promise.all([a.close(), b.close(), c.close()]);
  });
  it('refuses unknown schemes and malformed URLs with ROTA_UNKNOWN_STORE', async () => {
    await assert.rejects(openStore('foo://x'), { code: 'ROTA_UNKNOWN_STORE' });
    await assert.rejects(openStore('not a url'), { code: 'ROTA_UNKNOWN_STORE' });
    await assert.rejects(openStore(''), { code: 'ROTA_UNKNOWN_STORE' });
    await assert.rejects(openStore(42 as unknown as string), { code: 'ROTA_UNKNOWN_STORE' });
  });
  it('lets a custom scheme register, validated at the edge', async () => {
    registerStoreScheme('mystore:', async () => openStore('memory:'));
    assert.ok(storeSchemes().includes('mystore:'));
    const s = await openStore('mystore://anything');
    await assert.rejects(s.put('', new Uint8Array()), { code: 'ROTA_INVALID_ARGUMENT' });
    assert.throws(() => registerStoreScheme('Bad', async () => s), { code: 'ROTA_INVALID_ARGUMENT' });
    await s.close();
  });
});

/** Conformance: bad input is refused with a coded error, and nothing stored is harmed. */
import { RotaError } from '../../errors.js';
import type { NewItem, Store } from '../port.js';
import { assert, dec, enc, rejectsWith } from './helpers.js';
import type { ConformanceGroup } from './index.js';

/** Seed a key and an item, run `bad`, then prove both are untouched and the revision did not move. */
async function untouched(store: Store, bad: () => Promise<unknown>): Promise<void> {
  await store.put('guard/key', enc('guarded'));
  await store.enqueue([{ id: 'guard', queue: 'guard', payload: '"guarded"' }]).catch(() => undefined);
  const before = await store.status();
  const itemBefore = await store.getItem('guard');
  await bad();
  assert.equal((await store.status()).revision, before.revision, 'a refused call must not write');
  assert.equal(dec((await store.get('guard/key')).kv?.value ?? enc('')), 'guarded');
  assert.deepEqual(await store.getItem('guard'), itemBefore);
}

const item = (extra: Partial<NewItem> & Record<string, unknown>): NewItem =>
  ({ id: 'ok', queue: 'q', payload: '1', ...extra }) as NewItem;

export const validationTests: ConformanceGroup = {
  'empty keys are refused by get, put and delete': async ({ store }) => {
    await untouched(store, async () => {
      await rejectsWith(store.get(''), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(store.put('', enc('x')), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(store.delete(''), 'ROTA_INVALID_ARGUMENT');
    });
  },

  'keys with NUL, lone surrogates or over the size limit are refused': async ({ store }) => {
    const max = store.capabilities.maxKeyBytes;
    await untouched(store, async () => {
      await rejectsWith(store.put('a\u0000b', enc('x')), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(store.put('bad\ud800', enc('x')), 'ROTA_INVALID_ARGUMENT');
      const err = await rejectsWith(store.put('k'.repeat(max + 1), enc('x')), 'ROTA_INVALID_ARGUMENT');
      assert.equal(err.detail.field, 'key');
    });
    await store.put('k'.repeat(max), enc('fits'));
  },

  'an oversized value is ROTA_PAYLOAD_TOO_LARGE and the old value stays': async ({ store }) => {
    const big = new Uint8Array(store.capabilities.maxValueBytes + 1);
    await untouched(store, async () => {
      const err = await rejectsWith(store.put('guard/key', big), 'ROTA_PAYLOAD_TOO_LARGE');
      assert.equal(err.detail.field, 'value');
      await rejectsWith(
        store.txn({ compare: [], success: [{ type: 'put', key: 'guard/key', value: big }] }),
        'ROTA_PAYLOAD_TOO_LARGE',
      );
    });
  },

  'values must be bytes': async ({ store }) => {
    await untouched(store, async () => {
      await rejectsWith(store.put('guard/key', 'text' as unknown as Uint8Array), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(store.put('guard/key', null as unknown as Uint8Array), 'ROTA_INVALID_ARGUMENT');
    });
  },

  'zero, negative, fractional and string TTLs are refused': async ({ store }) => {
    for (const ttl of [0, -1, 1.5, '5s', Number.NaN, undefined]) {
      const err = await rejectsWith(store.grant(ttl as number), 'ROTA_INVALID_ARGUMENT');
      assert.equal(err.detail.field, 'ttl');
    }
  },

  'unknown options and wrong option types are refused': async ({ store }) => {
    await untouched(store, async () => {
      await rejectsWith(
        store.put('guard/key', enc('x'), { leese: '1' } as unknown as { lease: string }),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(store.range('a', { limit: 0 }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(store.range('a', { limit: '3' as unknown as number }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(store.range('a', 'x' as unknown as object), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(
        store.delete('guard/', { prefix: 'yes' as unknown as boolean }),
        'ROTA_INVALID_ARGUMENT',
      );
      assert.throws(() => store.watch('a', { from: 3 } as unknown as object), RotaError);
    });
  },

  'malformed transactions are refused before any write': async ({ store }) => {
    await untouched(store, async () => {
      await rejectsWith(
        store.txn({
          compare: [{ key: 'guard/key', target: 'size', op: '==', value: 1 } as never],
          success: [],
        }),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(
        store.txn({
          compare: [{ key: 'guard/key', target: 'version', op: '>=', value: 1 } as never],
          success: [],
        }),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(
        store.txn({
          compare: [{ key: 'guard/key', target: 'value', op: '<', value: enc('a') } as never],
          success: [],
        }),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(
        store.txn({
          compare: [],
          success: [
            { type: 'put', key: 'guard/key', value: enc('changed') },
            { type: 'upsert', key: 'x' } as never,
          ],
        }),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(store.txn({ compare: 'x', success: [] } as never), 'ROTA_INVALID_ARGUMENT');
    });
  },

  'bad queue items are refused and a batch with one bad item stores none': async ({ store }) => {
    await untouched(store, async () => {
      const bad: [Partial<NewItem> & Record<string, unknown>, string][] = [
        [{ id: 'a b' }, 'ROTA_INVALID_ARGUMENT'],
        [{ id: '' }, 'ROTA_INVALID_ARGUMENT'],
        [{ queue: '' }, 'ROTA_INVALID_ARGUMENT'],
        [{ queue: ' q' }, 'ROTA_INVALID_ARGUMENT'],
        [{ payload: 'x'.repeat(store.capabilities.maxValueBytes + 1) }, 'ROTA_PAYLOAD_TOO_LARGE'],
        [{ payload: 42 as unknown as string }, 'ROTA_INVALID_ARGUMENT'],
        [{ priority: 2 ** 40 }, 'ROTA_INVALID_ARGUMENT'],
        [{ priority: 1.5 }, 'ROTA_INVALID_ARGUMENT'],
        [{ maxAttempts: 0 }, 'ROTA_INVALID_ARGUMENT'],
        [{ delay: -1 }, 'ROTA_INVALID_ARGUMENT'],
        [{ timeout: 0 }, 'ROTA_INVALID_ARGUMENT'],
        [{ dedup: { key: '' } }, 'ROTA_INVALID_ARGUMENT'],
        [{ dedup: { key: 'k', mode: 'merge' as never } }, 'ROTA_INVALID_ARGUMENT'],
        [{ color: 'red' }, 'ROTA_INVALID_ARGUMENT'],
      ];
      for (const [extra, code] of bad) {
        await rejectsWith(
          store.enqueue([item({ id: 'good1' }), item(extra)]),
          code as 'ROTA_INVALID_ARGUMENT',
        );
      }
      await rejectsWith(store.enqueue([]), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(store.enqueue('x' as unknown as NewItem[]), 'ROTA_INVALID_ARGUMENT');
    });
    assert.equal(await store.getItem('good1'), null);
  },

  'bad claim, renew and settle arguments are refused': async ({ store }) => {
    await untouched(store, async () => {
      await rejectsWith(
        store.claim({ queue: 'q', owner: 'w', limit: 0, leaseTtl: 30_000 }),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(
        store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 999 }),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(
        store.claim({ queue: '', owner: 'w', limit: 1, leaseTtl: 30_000 }),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(
        store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000, from: 'running' as 'pending' }),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(store.renew([{ id: 'guard', token: -1 }], 30_000), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(store.renew([{ id: 'guard', token: 1 }], 0), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(store.settle([{ op: 'explode', id: 'guard' } as never]), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(
        store.settle([{ op: 'complete', id: 'guard', token: 'x', owner: 'w' } as never]),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(
        store.settle([
          { op: 'cancel', id: 'guard' },
          { op: 'fail', id: 'guard', token: 1, owner: 'w', error: 'boom' } as never,
        ]),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(store.changes({ after: -1 }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(store.listItems({ state: 'lost' as 'pending' }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(store.sweep({ limit: 0 }), 'ROTA_INVALID_ARGUMENT');
    });
    assert.equal((await store.getItem('guard'))?.state, 'pending');
  },

  'calls after close fail with ROTA_CLOSED and close is idempotent': async ({ connect }) => {
    const client = await connect();
    await client.put('closed/a', enc('a'));
    await client.close();
    await client.close();
    await rejectsWith(client.get('closed/a'), 'ROTA_CLOSED');
    await rejectsWith(client.put('closed/a', enc('b')), 'ROTA_CLOSED');
    await rejectsWith(client.enqueue([item({})]), 'ROTA_CLOSED');
    assert.throws(() => client.watch('closed/'), RotaError);
  },

  'errors are RotaErrors with a stable code, a message and detail': async ({ store }) => {
    const err = await rejectsWith(store.put('', enc('x')), 'ROTA_INVALID_ARGUMENT');
    assert.ok(err instanceof RotaError);
    assert.ok(err instanceof Error);
    assert.equal(typeof err.message, 'string');
    assert.ok(err.message.length > 0);
    assert.deepEqual(err.toJSON().code, 'ROTA_INVALID_ARGUMENT');
    assert.equal(err.detail.field, 'key');
  },
};

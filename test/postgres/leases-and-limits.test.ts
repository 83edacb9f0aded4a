/**
 * PostgreSQL store: leases expire by the database clock and are swept by any client, history is
 * compacted automatically, and what PostgreSQL cannot store or count is refused with a coded error.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRotaError, type RotaErrorCode } from '../../src/errors.js';
import { dec, enc, eventually, take } from '../../src/store/conformance/helpers.js';
import { admin, needsServer, withSchema } from './helpers.js';

async function code(promise: Promise<unknown>): Promise<RotaErrorCode | 'ok'> {
  try {
    await promise;
    return 'ok';
  } catch (err) {
    assert.ok(isRotaError(err), `not a RotaError: ${String(err)}`);
    return err.code;
  }
}

describe('postgres leases, history and limits', needsServer, () => {
  it('a lease whose client went away is expired by another client, with delete events', async () => {
    await withSchema(async (open) => {
      const owner = await open();
      const survivor = await open({ sweepInterval: 200 });
      const lease = await owner.grant(1000);
      const put = await owner.put('gone/a', enc('a'), { lease: lease.id });
      await owner.close();
      const watch = survivor.watch('gone/', { fromRevision: put.revision + 1 });
      const [event] = await take(watch, 1, 5000);
      assert.equal(event?.type, 'delete');
      assert.equal(event?.kv.key, 'gone/a');
      assert.equal((await survivor.get('gone/a')).kv, null);
      assert.equal(await survivor.leaseInfo(lease.id), null);
      await watch.return?.();
    });
  });

  it("store time is the database's clock", async () => {
    await withSchema(async (open) => {
      const store = await open();
      const [row] = await admin<{ now: string }>(
        'SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now',
      );
      const now = await store.now();
      assert.ok(Math.abs(now - Number(row?.now)) < 5_000, `store ${now} vs database ${row?.now}`);
      assert.equal(store.capabilities.serverClock, true);
    });
  });

  it('history beyond historyRevisions is compacted automatically', async () => {
    await withSchema(async (open) => {
      const store = await open({ historyRevisions: 20, sweepInterval: 50 });
      let last = 0;
      for (let i = 0; i < 60; i++) last = (await store.put(`h/${i % 3}`, enc(String(i)))).revision;
      const status = await eventually(
        async () => {
          const s = await store.status();
          // Compaction runs in steps of a tenth of the history.
          return s.compactRevision >= last - 22 ? s : null;
        },
        5000,
        'automatic compaction',
      );
      assert.ok(
        status.compactRevision >= last - 22 && status.compactRevision <= last - 20,
        `${status.compactRevision}`,
      );
      const stale = store.watch('h/', { fromRevision: 2 });
      assert.equal(await code(stale.next()), 'ROTA_COMPACTED');
      const fresh = store.watch('h/', { fromRevision: status.compactRevision + 1 });
      const events = await take(fresh, last - status.compactRevision);
      assert.equal(events[events.length - 1]?.revision, last);
      await fresh.return?.();
    });
  });

  it('text PostgreSQL cannot store is refused; diagnostic text is stored with it replaced', async () => {
    await withSchema(async (open) => {
      const store = await open();
      const nul = await code(store.enqueue([{ id: 'n', queue: 'q', payload: 'a\u0000b' }]));
      assert.equal(nul, 'ROTA_INVALID_ARGUMENT');
      const lone = await code(store.enqueue([{ id: 's', queue: 'q', payload: '"\ud800"' }]));
      assert.equal(lone, 'ROTA_INVALID_ARGUMENT');
      assert.equal(await store.getItem('n'), null);
      await store.enqueue([{ id: 'ok', queue: 'q', payload: '"\u{1F600}"' }]);
      const [it] = (await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000 })).items;
      const token = it?.token as number;
      assert.equal(
        await code(store.settle([{ op: 'complete', id: 'ok', token, owner: 'w', result: 'x\u0000' }])),
        'ROTA_INVALID_ARGUMENT',
      );
      const [failed] = await store.settle([
        { op: 'fail', id: 'ok', token, owner: 'w', error: { code: 'E', message: 'bad\u0000byte' } },
      ]);
      assert.equal(failed?.status, 'ok');
      assert.equal((await store.getItem('ok'))?.error?.message, 'bad\ufffdbyte');
      assert.equal((await store.getItem('ok'))?.payload, '"\u{1F600}"');
    });
  });

  it('keys up to maxKeyBytes are stored; lease ids that cannot exist are not found', async () => {
    await withSchema(async (open) => {
      const store = await open();
      // Two-byte characters, so the limit is in bytes, not characters.
      const big = `k/${'é'.repeat(1000)}${'x'.repeat(store.capabilities.maxKeyBytes - 2002)}`;
      assert.equal(new TextEncoder().encode(big).length, store.capabilities.maxKeyBytes);
      await store.put(big, enc('v'));
      assert.equal(dec((await store.get(big)).kv?.value ?? enc('')), 'v');
      assert.equal(await code(store.put('k', enc('v'), { lease: 'not\u0000hex' })), 'ROTA_LEASE_NOT_FOUND');
      assert.equal(await code(store.keepAlive('zz')), 'ROTA_LEASE_NOT_FOUND');
      assert.equal(await store.revoke('zz'), false);
      assert.equal(await store.leaseInfo('zz'), null);
    });
  });

  it('revisions and tokens past Number.MAX_SAFE_INTEGER are ROTA_REVISION_OVERFLOW, and nothing is written', async () => {
    await withSchema(async (open, schema) => {
      const store = await open();
      await admin(`UPDATE "${schema}".meta SET revision = 9007199254740990`);
      const put = await store.put('o/a', enc('1'));
      assert.equal(put.revision, Number.MAX_SAFE_INTEGER);
      assert.equal(await code(store.put('o/b', enc('2'))), 'ROTA_REVISION_OVERFLOW');
      assert.equal((await store.get('o/b')).kv, null);

      await store.enqueue([
        { id: 't1', queue: 'q', payload: '1' },
        { id: 't2', queue: 'q', payload: '2' },
      ]);
      await admin(`ALTER SEQUENCE "${schema}".item_tokens RESTART WITH 9007199254740991`);
      const [first] = (await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000 })).items;
      assert.equal(first?.token, Number.MAX_SAFE_INTEGER);
      assert.equal(
        await code(store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000 })),
        'ROTA_REVISION_OVERFLOW',
      );
      assert.equal((await store.getItem(first?.id === 't1' ? 't2' : 't1'))?.state, 'pending');
    });
  });
});

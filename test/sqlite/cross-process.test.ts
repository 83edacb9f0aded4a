/** Watches, wake-ups, lease expiry, compaction and lock waits across processes sharing one file. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { eventually, rejectsWith, take } from '../../src/store/conformance/helpers.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/port.js';
import { sqliteUrl } from '../../src/store/sqlite/index.js';
import { startActor, tempDir } from './support.js';

const ACTOR = join(import.meta.dirname, 'children', 'actor.ts');

async function withStore(
  fn: (store: Store, url: string, path: string) => Promise<void>,
  params: Record<string, number> = {},
) {
  const { dir, cleanup } = tempDir();
  const path = join(dir, 'shared.db');
  const url = sqliteUrl(path, params);
  const store = await openStore(url);
  try {
    await fn(store, url, path);
  } finally {
    await store.close();
    cleanup();
  }
}

describe('sqlite: across processes', { concurrency: 4 }, () => {
  it("a watch sees another process's writes, in order", { timeout: 120_000 }, async () => {
    await withStore(async (store, url) => {
      const from = (await store.status()).revision + 1;
      const watch = store.watch('x/', { fromRevision: from });
      const writer = startActor(['put', url, 'x/k', '20']);
      const { revisions } = await writer.result<{ revisions: number[] }>();
      const events = await take(watch, 20, 60_000);
      assert.deepEqual(
        events.map((e) => e.revision),
        revisions,
      );
      assert.deepEqual(
        events.map((e) => e.kv.key),
        revisions.map((_, i) => `x/k${i}`),
      );
      await watch.return?.();
    });
  });

  it("a crashed process's lease expires by time and watchers here see the delete", {
    timeout: 120_000,
  }, async () => {
    await withStore(async (store, url) => {
      const watch = store.watch('lease/', { fromRevision: (await store.status()).revision + 1 });
      const crashed = startActor(['put-leased', url, 'lease/owner']);
      await crashed.result();
      const [put, del] = await take(watch, 2, 60_000);
      assert.equal(put?.type, 'put');
      assert.equal(del?.type, 'delete');
      assert.equal(del?.kv.key, 'lease/owner');
      assert.equal((await store.get('lease/owner')).kv, null);
      await watch.return?.();
    });
  });

  it("subscribe wakes on another process's enqueue", { timeout: 120_000 }, async () => {
    await withStore(async (store, url) => {
      let woken = 0;
      const off = store.subscribe('jobs', () => {
        woken++;
      });
      const producer = startActor(['enqueue', url, 'jobs', 'job-1']);
      await producer.result();
      await eventually(() => woken > 0, 60_000, 'a wake-up from the other process');
      off();
      assert.equal((await store.getItem('job-1'))?.state, 'pending');
    });
  });

  it('a watcher that fell behind a compaction by another process gets ROTA_COMPACTED', {
    timeout: 120_000,
  }, async () => {
    await withStore(async (store, url) => {
      const watch = store.watch('c/');
      // spawnSync blocks this event loop, so the hub cannot read the history before it is compacted.
      const child = spawnSync(
        process.execPath,
        ['--import', 'tsx', ACTOR, 'put-and-compact', url, 'c/', '5'],
        {
          encoding: 'utf8',
          timeout: 120_000,
        },
      );
      assert.equal(child.status, 0, child.stderr);
      await rejectsWith(watch.next(), 'ROTA_COMPACTED');
      const { revision, compactRevision } = await store.status();
      assert.equal(compactRevision, revision);
    });
  });

  it('history is compacted automatically past historyLimit', { timeout: 120_000 }, async () => {
    await withStore(
      async (store) => {
        for (let i = 0; i < 60; i++) await store.put(`h/${i % 3}`, new Uint8Array([i]));
        const { revision, compactRevision } = await store.status();
        assert.ok(compactRevision > 0, 'nothing was compacted');
        assert.ok(revision - compactRevision <= 20, `kept ${revision - compactRevision} revisions`);
        await rejectsWith(store.watch('h/', { fromRevision: 1 }).next(), 'ROTA_COMPACTED');
        const kept = store.watch('h/', { fromRevision: compactRevision + 1 });
        const events = await take(kept, revision - compactRevision);
        assert.equal(events[events.length - 1]?.revision, revision);
        await kept.return?.();
      },
      { historyLimit: 10 },
    );
  });

  it('a write waits for a lock held by another process, then succeeds', { timeout: 120_000 }, async () => {
    await withStore(
      async (store, _url, path) => {
        const holder = startActor(['hold-lock', path]);
        await holder.waitFor('locked');
        const write = store.put('waited', new Uint8Array([1]));
        setTimeout(() => holder.send('release'), 300);
        const put = await write;
        assert.ok(put.revision > 0);
        await holder.result();
        assert.equal((await store.get('waited')).kv?.version, 1);
      },
      { busyTimeout: 20, busyRetries: 200 },
    );
  });

  it('a lock held past every retry is ROTA_STORE_UNAVAILABLE and writes nothing', {
    timeout: 120_000,
  }, async () => {
    await withStore(
      async (store, _url, path) => {
        const before = (await store.status()).revision;
        const holder = startActor(['hold-lock', path]);
        await holder.waitFor('locked');
        try {
          const err = await rejectsWith(store.put('blocked', new Uint8Array([1])), 'ROTA_STORE_UNAVAILABLE');
          assert.equal(err.detail.ambiguous, false);
          assert.match(String((err.cause as { code?: string }).code), /^SQLITE_BUSY/);
        } finally {
          holder.send('release');
          await holder.result();
        }
        assert.equal((await store.get('blocked')).kv, null);
        assert.equal((await store.status()).revision, before);
      },
      { busyTimeout: 10, busyRetries: 2 },
    );
  });
});

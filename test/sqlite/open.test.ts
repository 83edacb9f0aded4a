/** Opening SQLite stores: URL forms, options, the default embedded URL, `:memory:`. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { enc, rejectsWith, take } from '../../src/store/conformance/helpers.js';
import { DEFAULT_EMBEDDED_STORE, openStore } from '../../src/store/open.js';
import { sqliteUrl } from '../../src/store/sqlite/index.js';
import { tempDir } from './support.js';

describe('sqlite: opening', () => {
  it('creates missing folders and keeps data across reopen, continuing the revision', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'a', 'b c', '100%', 'store.db');
      const url = sqliteUrl(path);
      const first = await openStore(url);
      assert.equal(first.capabilities.name, 'sqlite');
      assert.equal(first.capabilities.persistent, true);
      assert.equal(first.capabilities.multiProcess, true);
      assert.equal(first.capabilities.serverClock, false);
      const put = await first.put('k', enc('v'));
      await first.enqueue([{ id: 'kept', queue: 'q', payload: '1' }]);
      await first.close();
      assert.ok(existsSync(path));
      const again = await openStore(url);
      assert.equal((await again.get('k')).kv?.modRevision, put.revision);
      assert.equal((await again.getItem('kept'))?.state, 'pending');
      assert.ok((await again.put('k', enc('w'))).revision > put.revision);
      await again.close();
    } finally {
      cleanup();
    }
  });

  it('resolves relative paths against the current folder; the default URL is ./.rota/rota.db', async () => {
    assert.equal(DEFAULT_EMBEDDED_STORE, 'sqlite:./.rota/rota.db');
    const { dir, cleanup } = tempDir();
    const cwd = process.cwd();
    try {
      process.chdir(dir);
      const store = await openStore(DEFAULT_EMBEDDED_STORE);
      await store.put('k', enc('v'));
      await store.close();
      assert.ok(existsSync(join(dir, '.rota', 'rota.db')));
      const bare = await openStore('sqlite:plain.db');
      await bare.close();
      assert.ok(existsSync(join(dir, 'plain.db')));
    } finally {
      process.chdir(cwd);
      cleanup();
    }
    assert.ok(relative(cwd, process.cwd()) === '');
  });

  it('accepts sqlite:///absolute paths and settings as URL parameters or options', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const a = await openStore(`sqlite://${join(dir, 'abs.db')}?busyTimeout=100&pollInterval=5`);
      await a.put('k', enc('1'));
      const b = await openStore(`sqlite:${join(dir, 'abs.db')}`, {
        busyRetries: 2,
        historyLimit: 50,
        synchronous: 'full',
      });
      assert.equal((await b.get('k')).kv?.version, 1);
      await Promise.all([a.close(), b.close()]);
    } finally {
      cleanup();
    }
  });

  it('sqlite::memory: is a private, non-persistent store with watches and wake-ups', async () => {
    const a = await openStore('sqlite::memory:');
    const b = await openStore('sqlite::memory:');
    try {
      assert.equal(a.capabilities.persistent, false);
      assert.equal(a.capabilities.multiProcess, false);
      const watch = a.watch('m/');
      let woken = 0;
      a.subscribe('q', () => {
        woken++;
      });
      const put = await a.put('m/1', enc('x'));
      const [event] = await take(watch, 1);
      assert.equal(event?.revision, put.revision);
      await a.enqueue([{ id: 'i', queue: 'q', payload: '1' }]);
      await new Promise((r) => setTimeout(r, 20));
      assert.ok(woken > 0);
      assert.equal((await b.get('m/1')).kv, null, 'each :memory: store is its own database');
      await watch.return?.();
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('a call still in flight when the store closes fails with ROTA_CLOSED', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const store = await openStore(sqliteUrl(join(dir, 'closing.db')));
      const inFlight = store.put('k', enc('v'));
      await store.close();
      await rejectsWith(inFlight, 'ROTA_CLOSED');
    } finally {
      cleanup();
    }
  });

  it('refuses malformed URLs and bad settings with ROTA_INVALID_ARGUMENT, creating nothing', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = join(dir, 'x.db');
      const bad: [string, Record<string, unknown>?][] = [
        ['sqlite:'],
        [`sqlite://somehost${file}`],
        [`sqlite:${file}#frag`],
        [`sqlite:${file}?busyTimeout=fast`],
        [`sqlite:${file}?busyTimeout=-1`],
        [`sqlite:${file}?colour=blue`],
        [`sqlite:${file}?synchronous=off`],
        ['sqlite:%E0%A4%A'],
        [`sqlite:${file}`, { busyTimeout: '100' }],
        [`sqlite:${file}`, { pollInterval: 0 }],
        [`sqlite:${file}`, { historyLimit: 1.5 }],
        [`sqlite:${file}`, { prefix: 'rota' }],
        [`sqlite:${file}`, { clock: { now: () => 0 } }],
      ];
      for (const [url, options] of bad) {
        const err = await rejectsWith(openStore(url, options), 'ROTA_INVALID_ARGUMENT');
        assert.ok(err.message.length > 0);
      }
      mkdirSync(join(dir, 'folder.db'));
      await rejectsWith(openStore(sqliteUrl(join(dir, 'folder.db'))), 'ROTA_INVALID_ARGUMENT');
      writeFileSync(join(dir, 'file'), 'x');
      await rejectsWith(openStore(sqliteUrl(join(dir, 'file', 'under-a-file.db'))), 'ROTA_INVALID_ARGUMENT');
      assert.equal(existsSync(file), false);
      await rejectsWith(openStore(`sqlite3:${file}`), 'ROTA_UNKNOWN_STORE');
    } finally {
      cleanup();
    }
  });
});

/**
 * Files Rota must not use: corrupt, foreign, newer schema, read-only, unreadable. Each is a coded
 * error and the file is left exactly as it was. Permission cases run in a child process that
 * obeys file modes (a root parent drops the capabilities that let root ignore them).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { enc, rejectsWith } from '../../src/store/conformance/helpers.js';
import { openStore } from '../../src/store/open.js';
import { sqliteUrl } from '../../src/store/sqlite/index.js';
import { startActor, tempDir } from './support.js';

const digest = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Open `url` in a child process that obeys file modes, even as root; the error code or 'ok'. */
async function openElsewhere(url: string): Promise<string> {
  const actor = startActor(['open', url], { obeyFileModes: true });
  const result = await actor.result<{ ok?: boolean; error?: { code: string } }>(30_000);
  return result.ok ? 'ok' : (result.error?.code ?? 'none');
}

describe('sqlite: files it must not use', { concurrency: 3 }, () => {
  it('a corrupt file is ROTA_STORE_CORRUPT and is not modified', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'corrupt.db');
      writeFileSync(path, Buffer.alloc(8192, 'not a database, just some bytes '));
      const before = digest(path);
      const err = await rejectsWith(openStore(sqliteUrl(path)), 'ROTA_STORE_CORRUPT');
      assert.ok(err.cause, 'the driver error is kept as the cause');
      assert.equal(digest(path), before);
      assert.deepEqual(readdirSync(dir), ['corrupt.db'], 'no journal or WAL file was created');
    } finally {
      cleanup();
    }
  });

  it('a SQLite file of another application is ROTA_STORE_CORRUPT and is not modified', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'app.db');
      const db = new Database(path);
      db.exec("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ada');");
      db.close();
      const before = digest(path);
      await rejectsWith(openStore(sqliteUrl(path)), 'ROTA_STORE_CORRUPT');
      assert.equal(digest(path), before);
      const check = new Database(path, { readonly: true });
      assert.equal(
        check.pragma('journal_mode', { simple: true }),
        'delete',
        'the journal mode was not changed',
      );
      check.close();
    } finally {
      cleanup();
    }
  });

  it('a schema newer than this code is ROTA_SCHEMA_TOO_NEW, never downgraded', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'new.db');
      const store = await openStore(sqliteUrl(path));
      await store.put('k', enc('v'));
      await store.close();
      const db = new Database(path);
      db.exec('UPDATE rota_schema SET version = 99');
      db.close();
      const before = digest(path);
      const err = await rejectsWith(openStore(sqliteUrl(path)), 'ROTA_SCHEMA_TOO_NEW');
      assert.equal(err.detail.version, 99);
      assert.equal(digest(path), before);
      const check = new Database(path, { readonly: true });
      assert.equal(check.prepare('SELECT version FROM rota_schema').pluck().get(), 99);
      check.close();
    } finally {
      cleanup();
    }
  });

  it('a read-only folder or file is ROTA_STORE_READONLY; an unreadable file is ROTA_STORE_CORRUPT', {
    timeout: 60_000,
  }, async () => {
    const { dir, cleanup } = tempDir();
    try {
      chmodSync(dir, 0o755);
      // A valid store in a folder nobody else may write to.
      const locked = join(dir, 'locked');
      mkdirSync(locked);
      const path = join(locked, 'rota.db');
      const store = await openStore(sqliteUrl(path));
      await store.put('k', enc('v'));
      await store.close();
      // The file itself is writable: only the folder stops SQLite (it needs -wal and -shm files there).
      chmodSync(path, 0o666);
      chmodSync(locked, 0o555);
      const before = digest(path);
      assert.equal(
        await openElsewhere(sqliteUrl(path)),
        'ROTA_STORE_READONLY',
        'existing file, read-only folder',
      );
      assert.equal(
        await openElsewhere(sqliteUrl(join(locked, 'fresh.db'))),
        'ROTA_STORE_READONLY',
        'new file',
      );
      assert.equal(
        await openElsewhere(sqliteUrl(join(locked, 'sub', 'x.db'))),
        'ROTA_STORE_READONLY',
        'new folder',
      );
      assert.equal(existsSync(join(locked, 'fresh.db')), false);
      // A read-only file in a writable folder.
      const open = join(dir, 'open');
      mkdirSync(open, { mode: 0o777 });
      chmodSync(open, 0o777);
      const ro = join(open, 'ro.db');
      writeFileSync(ro, readFileSync(path));
      chmodSync(ro, 0o444);
      assert.equal(await openElsewhere(sqliteUrl(ro)), 'ROTA_STORE_READONLY', 'read-only file');
      chmodSync(ro, 0o000);
      assert.equal(await openElsewhere(sqliteUrl(ro)), 'ROTA_STORE_CORRUPT', 'unreadable file');
      chmodSync(ro, 0o644);
      assert.equal(digest(path), before);
      assert.equal(digest(ro), before);
      // The same file opens fine where it may be written.
      chmodSync(ro, 0o666);
      assert.equal(await openElsewhere(sqliteUrl(ro)), 'ok');
    } finally {
      chmodSync(join(dir, 'locked'), 0o755);
      cleanup();
    }
  });
});

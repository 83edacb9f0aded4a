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

/** Open each URL in one child process that obeys file modes, even as root: 'ok' or the error code. */
async function openElsewhere(urls: string[]): Promise<string[]> {
  const actor = startActor(['probe', ...urls], { obeyFileModes: true });
  return actor.result<string[]>(100_000);
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
    timeout: 120_000,
  }, async () => {
    const { dir, cleanup } = tempDir();
    try {
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
      // Copies of it in a writable folder: read-only, unreadable, and writable.
      const open = join(dir, 'open');
      mkdirSync(open);
      const copy = (name: string, mode: number) => {
        const file = join(open, name);
        writeFileSync(file, readFileSync(path));
        chmodSync(file, mode);
        return file;
      };
      const readOnly = copy('ro.db', 0o444);
      const unreadable = copy('unreadable.db', 0o000);
      const writable = copy('rw.db', 0o666);
      const cases: [string, string, string][] = [
        ['existing file, read-only folder', path, 'ROTA_STORE_READONLY'],
        ['new file, read-only folder', join(locked, 'fresh.db'), 'ROTA_STORE_READONLY'],
        ['new folder under a read-only folder', join(locked, 'sub', 'x.db'), 'ROTA_STORE_READONLY'],
        ['read-only file', readOnly, 'ROTA_STORE_READONLY'],
        ['unreadable file', unreadable, 'ROTA_STORE_CORRUPT'],
        ['writable file', writable, 'ok'],
      ];
      const got = await openElsewhere(cases.map(([, file]) => sqliteUrl(file)));
      assert.deepEqual(
        cases.map(([what], i) => [what, got[i]]),
        cases.map(([what, , code]) => [what, code]),
      );
      assert.equal(existsSync(join(locked, 'fresh.db')), false);
      assert.equal(digest(path), before);
      assert.equal(digest(readOnly), before);
      chmodSync(unreadable, 0o644);
      assert.equal(digest(unreadable), before);
    } finally {
      chmodSync(join(dir, 'locked'), 0o755);
      cleanup();
    }
  });
});

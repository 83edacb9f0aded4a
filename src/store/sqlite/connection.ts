/**
 * One better-sqlite3 connection: opening (folder, permissions, corruption checks, pragmas,
 * schema), a cache of prepared statements, and the two transaction shapes every call uses.
 */
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import {
  InvalidArgumentError,
  RevisionOverflowError,
  StoreCorruptError,
  StoreError,
  StoreReadonlyError,
} from '../../errors.js';
import { toSafeInteger } from '../keys.js';
import { driverCode, isBusy, mapSqliteError } from './errors.js';
import type { SqliteSettings } from './options.js';
import { CURRENT_SCHEMA_VERSION, inspectSchema, migrate } from './schema.js';
import { READ_COUNTERS, WRITE_COUNTERS } from './sql/counters.js';

type Database = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement<unknown[], unknown>;

/** The store-wide counters (one row), read and written inside each write transaction. */
export interface Counters {
  revision: number;
  compactRevision: number;
  seq: number;
  leaseCounter: number;
  feedHorizon: number;
}

let driver: typeof BetterSqlite3 | undefined;

/** Load the native driver once, on first use, so `memory:` users never need it built. */
async function loadDriver(): Promise<typeof BetterSqlite3> {
  if (!driver) {
    try {
      driver = (await import('better-sqlite3')).default;
    } catch (cause) {
      throw new StoreError('the SQLite store needs the better-sqlite3 package, which failed to load', {
        cause,
      });
    }
  }
  return driver;
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Check the file and its folder before SQLite touches them, so each failure gets a clear code. */
function prepareFolder(path: string): void {
  const dir = dirname(path);
  let stat: ReturnType<typeof statSync> | undefined;
  try {
    stat = statSync(path);
  } catch (err) {
    const code = driverCode(err);
    if (code === 'ENOTDIR')
      throw new InvalidArgumentError(`sqlite store: a parent of ${path} is a file, not a folder`, {
        cause: err,
        detail: { field: 'store', path },
      });
    if (code !== 'ENOENT')
      throw new StoreCorruptError(`cannot read the store file ${path} (${code})`, {
        cause: err,
        detail: { path },
      });
  }
  if (stat?.isDirectory())
    throw new InvalidArgumentError(`sqlite store: ${path} is a folder, not a database file`, {
      detail: { field: 'store', path },
    });
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    const code = driverCode(err);
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')
      throw new StoreReadonlyError(`cannot create the store folder ${dir}`, { cause: err, detail: { path } });
    throw new InvalidArgumentError(`sqlite store: cannot create the folder ${dir} (${code})`, {
      cause: err,
      detail: { field: 'store', path },
    });
  }
  if (stat) {
    try {
      accessSync(path, constants.R_OK);
    } catch (err) {
      throw new StoreCorruptError(`cannot read the store file ${path} (permission denied)`, {
        cause: err,
        detail: { path },
      });
    }
    if (!writable(path))
      throw new StoreReadonlyError(`the store file ${path} is read-only`, { detail: { path } });
  }
  // WAL mode keeps two companion files (-wal, -shm) next to the database.
  if (!writable(dir))
    throw new StoreReadonlyError(
      `the store folder ${dir} is read-only (SQLite needs to create files there)`,
      {
        detail: { path },
      },
    );
}

/** Check what the file holds, then set the pragmas and migrate. Safe to run again after SQLITE_BUSY. */
function setUp(db: Database, settings: SqliteSettings): void {
  // A read first: a file that is not a database fails here, before anything is written to it.
  db.prepare('SELECT count(*) FROM sqlite_schema').pluck().get();
  // Refuse foreign or newer files before changing anything about them (even the journal mode).
  const version = inspectSchema(db, settings.path);
  if (!settings.memory) {
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal')
      throw new StoreError(`cannot switch ${settings.path} to WAL mode (got ${String(mode)})`, {
        detail: { path: settings.path },
      });
  }
  db.pragma(`synchronous = ${settings.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  if (version !== CURRENT_SCHEMA_VERSION) migrate(db, settings.path);
}

export class Connection {
  readonly db: Database;
  readonly settings: SqliteSettings;
  readonly #statements = new Map<string, Statement>();
  readonly #begin: Statement;
  readonly #beginImmediate: Statement;
  readonly #commit: Statement;
  readonly #rollback: Statement;
  readonly #readCounters: Statement;

  private constructor(db: Database, settings: SqliteSettings) {
    this.db = db;
    this.settings = settings;
    this.#begin = db.prepare('BEGIN DEFERRED');
    this.#beginImmediate = db.prepare('BEGIN IMMEDIATE');
    this.#commit = db.prepare('COMMIT');
    this.#rollback = db.prepare('ROLLBACK');
    this.#readCounters = db.prepare(READ_COUNTERS).safeIntegers(true);
  }

  /** Open a connection and bring the schema up to date. Every failure is a coded RotaError. */
  static async open(settings: SqliteSettings): Promise<Connection> {
    const Driver = await loadDriver();
    if (!settings.memory) prepareFolder(settings.path);
    let db: Database;
    try {
      db = new Driver(settings.path, { timeout: settings.busyTimeout });
    } catch (err) {
      if (driverCode(err) === 'SQLITE_CANTOPEN' && !settings.memory && !writable(dirname(settings.path)))
        throw new StoreReadonlyError(`cannot open ${settings.path}: the folder is read-only`, {
          cause: err,
          detail: { path: settings.path },
        });
      throw mapSqliteError(err, 'cannot open the SQLite store', settings.path);
    }
    for (let attempt = 0; ; attempt++) {
      try {
        setUp(db, settings);
        return new Connection(db, settings);
      } catch (err) {
        // Another process may be creating or migrating the file right now: wait and look again.
        if (isBusy(err) && attempt < settings.busyRetries) {
          await new Promise((resolve) => setTimeout(resolve, Math.min(100, 5 * 2 ** attempt)));
          continue;
        }
        db.close();
        throw mapSqliteError(err, 'cannot open the SQLite store', settings.path);
      }
    }
  }

  /** A prepared statement for `sql`, prepared once per connection. */
  stmt<Row = unknown>(sql: string): BetterSqlite3.Statement<unknown[], Row> {
    let s = this.#statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s as BetterSqlite3.Statement<unknown[], Row>;
  }

  /** Run `fn` in one read snapshot (a deferred transaction), so several reads agree. */
  read<T>(fn: () => T): T {
    this.#begin.run();
    try {
      const out = fn();
      this.#commit.run();
      return out;
    } catch (err) {
      if (this.db.inTransaction) this.#rollback.run();
      throw err;
    }
  }

  /** The counters as of the current snapshot (outside a transaction: the latest commit). */
  counters(): Counters {
    const row = this.#readCounters.get() as Record<string, bigint>;
    return {
      revision: toSafeInteger(row.revision as bigint),
      compactRevision: toSafeInteger(row.compact_revision as bigint),
      seq: toSafeInteger(row.seq as bigint, 'sequence'),
      leaseCounter: toSafeInteger(row.lease_counter as bigint, 'lease counter'),
      feedHorizon: toSafeInteger(row.feed_horizon as bigint, 'sequence'),
    };
  }

  /**
   * Run `fn` in a `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so counters are
   * allocated in commit order across processes. `fn` gets the counters to advance; they are
   * written back once, at the end. Any throw rolls everything back, so a retry is always safe.
   */
  write<T>(fn: (counters: Counters) => T): T {
    this.#beginImmediate.run();
    try {
      const counters = this.counters();
      const before = { ...counters };
      const out = fn(counters);
      if (
        counters.revision !== before.revision ||
        counters.compactRevision !== before.compactRevision ||
        counters.seq !== before.seq ||
        counters.leaseCounter !== before.leaseCounter ||
        counters.feedHorizon !== before.feedHorizon
      ) {
        for (const [name, value] of Object.entries(counters)) {
          if (!Number.isSafeInteger(value))
            throw new RevisionOverflowError(`${name} would exceed Number.MAX_SAFE_INTEGER`, {
              detail: { what: name },
            });
        }
        this.stmt(WRITE_COUNTERS).run(counters);
      }
      this.#commit.run();
      return out;
    } catch (err) {
      if (this.db.inTransaction) this.#rollback.run();
      throw err;
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

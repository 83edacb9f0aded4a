/**
 * The PostgreSQL store (node-postgres). `postgres://user:pass@host:5432/db?schema=rota` or
 * `postgresql://…`; settings and their defaults are in `options.ts` and docs/stores.md.
 *
 * One client = one connection pool plus one LISTEN connection (opened on the first watch or
 * subscribe). Tables and functions live in the store's schema, created by versioned migrations.
 * Store time is the database's clock. See docs/stores.md ("PostgreSQL") for how each part of the
 * port maps onto the engine.
 */
import { UnknownStoreError } from '../../errors.js';
import type { OpenStoreOptions } from '../open.js';
import type {
  ChangesQuery,
  ClaimRequest,
  DeleteOptions,
  ListQuery,
  Mailbox,
  NewItem,
  PutOptions,
  QueueItem,
  RangeOptions,
  RenewEntry,
  SettleOp,
  Store,
  StoreCapabilities,
  SweepOptions,
  TxnRequest,
  WatchEvent,
  WatchOptions,
} from '../port.js';
import { withValidation } from '../validating-store.js';
import { clientConfig, Db } from './db.js';
import { PgKv } from './kv.js';
import { PgListener } from './listener.js';
import { Maintenance } from './maintenance.js';
import { migrate } from './migrate.js';
import { type PostgresSettings, type PostgresStoreOptions, parsePostgresSettings } from './options.js';
import { PgQueue } from './queue.js';
import { QueueWake } from './wake.js';
import { WatchHub } from './watch.js';

export type { PostgresStoreOptions } from './options.js';
export { POSTGRES_DEFAULTS } from './options.js';

export const POSTGRES_CAPABILITIES: StoreCapabilities = Object.freeze({
  name: 'postgres',
  serverClock: true,
  multiProcess: true,
  persistent: true,
  // Keys sit in btree indexes, whose entries must stay under ~2.7 kB.
  maxKeyBytes: 2048,
  maxValueBytes: 8 * 1024 * 1024,
  leaseGranularityMs: 1000,
  queueThroughput: 'high',
});

/** One client of a PostgreSQL store. Open it with {@link openPostgresStore} or `openStore`. */
export class PostgresStore implements Store {
  readonly capabilities = POSTGRES_CAPABILITIES;
  /** The resolved settings (schema, pool size, ...). */
  readonly settings: PostgresSettings;
  readonly #db: Db;
  readonly #listener: PgListener;
  readonly #watches: WatchHub;
  readonly #wake: QueueWake;
  readonly #kv: PgKv;
  readonly #queue: PgQueue;
  readonly #maintenance: Maintenance;
  #closed = false;

  /** Use {@link openPostgresStore}: the schema must be migrated first. */
  constructor(settings: PostgresSettings, db: Db) {
    this.settings = settings;
    this.#db = db;
    const kvChannel = `${settings.schema}.kv`;
    const queueChannel = `${settings.schema}.queue`;
    this.#listener = new PgListener(clientConfig(settings), [kvChannel, queueChannel], {
      notify: (channel, payload, pid) => {
        if (channel === kvChannel) this.#watches.wakeAll();
        // A queue NOTIFY sent by one of our own connections: `written` already woke our
        // subscribers when the write returned, so a second wake would only cost empty claims.
        else if (channel === queueChannel && !db.ownsBackend(pid)) this.#wake.notified(payload);
      },
      connected: () => {
        this.#watches.wakeAll();
        this.#wake.reconnected();
      },
    });
    const listen = () => this.#listener.start();
    this.#watches = new WatchHub(db, listen, settings.pollInterval);
    this.#wake = new QueueWake(db, queueChannel, listen);
    this.#maintenance = new Maintenance(db, {
      interval: settings.sweepInterval,
      history: settings.historyRevisions,
      written: () => this.#watches.wakeAll(),
    });
    this.#kv = new PgKv(db, {
      written: () => this.#watches.wakeAll(),
      granted: (ttl) => this.#maintenance.expiresIn(ttl),
    });
    this.#queue = new PgQueue(db, (queues) => this.#wake.written(queues));
    this.#maintenance.start();
  }

  /** How many times the LISTEN connection was established (1 after the first watch; more after losses). */
  get listenerConnects(): number {
    return this.#listener.connects;
  }

  now() {
    return this.#kv.now();
  }
  get(key: string) {
    return this.#kv.get(key);
  }
  range(prefix: string, options?: RangeOptions) {
    return this.#kv.range(prefix, options);
  }
  put(key: string, value: Uint8Array, options?: PutOptions) {
    return this.#kv.put(key, value, options?.lease);
  }
  delete(key: string, options?: DeleteOptions) {
    return this.#kv.delete(key, options?.prefix ?? false);
  }
  txn(request: TxnRequest) {
    return this.#kv.txn(request);
  }
  grant(ttl: number) {
    return this.#kv.grant(ttl);
  }
  keepAlive(leaseId: string) {
    return this.#kv.keepAlive(leaseId);
  }
  revoke(leaseId: string) {
    return this.#kv.revoke(leaseId);
  }
  leaseInfo(leaseId: string) {
    return this.#kv.leaseInfo(leaseId);
  }
  watch(prefix: string, options?: WatchOptions): AsyncIterableIterator<WatchEvent> {
    return this.#watches.watch(prefix, options);
  }
  compact(revision: number) {
    return this.#kv.compact(revision);
  }
  status() {
    return this.#kv.status();
  }

  enqueue(items: NewItem[]) {
    return this.#queue.enqueue(items);
  }
  claim(request: ClaimRequest) {
    return this.#queue.claim(request);
  }
  handoff(listener: (items: QueueItem[]) => void): Mailbox {
    return this.#queue.handoff(listener);
  }
  renew(entries: RenewEntry[], leaseTtl: number) {
    return this.#queue.renew(entries, leaseTtl);
  }
  settle(ops: SettleOp[]) {
    return this.#queue.settle(ops);
  }
  getItem(id: string) {
    return this.#queue.getItem(id);
  }
  listItems(query: ListQuery) {
    return this.#queue.listItems(query);
  }
  countItems(queue?: string) {
    return this.#queue.countItems(queue);
  }
  changes(query: ChangesQuery) {
    return this.#queue.changes(query);
  }
  sweep(options?: SweepOptions) {
    return this.#queue.sweep(options);
  }
  subscribe(queue: string, listener: () => void) {
    return this.#wake.subscribe(queue, listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#maintenance.close();
    this.#watches.close();
    this.#wake.close();
    this.#queue.close();
    await Promise.all([this.#listener.close(), this.#db.close()]);
  }
}

/**
 * Open a PostgreSQL store from a `postgres://` or `postgresql://` URL: parse the settings, migrate
 * the schema (or fail with ROTA_SCHEMA_TOO_NEW), and return a validated store.
 */
export async function openPostgresStore(
  url: string | URL,
  options: PostgresStoreOptions | OpenStoreOptions = {},
): Promise<Store> {
  let parsed: URL;
  try {
    parsed = typeof url === 'string' ? new URL(url) : url;
  } catch (cause) {
    throw new UnknownStoreError(`cannot parse store URL ${JSON.stringify(url)}`, {
      cause,
      detail: { field: 'store' },
    });
  }
  const settings = parsePostgresSettings(parsed, options as OpenStoreOptions);
  const db = new Db(settings);
  try {
    await migrate(db, settings.schema);
  } catch (err) {
    await db.close();
    throw err;
  }
  return withValidation(new PostgresStore(settings, db));
}

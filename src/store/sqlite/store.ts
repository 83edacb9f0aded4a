/**
 * `SqliteStore`: one client of a SQLite store file, with its own connection. Clients of the same
 * file in one process share a {@link Hub} (watch delivery, wake-ups, lease timer); other processes
 * on the same file are seen through the change log.
 */
import { realpathSync } from 'node:fs';
import { ClosedError, LeaseNotFoundError } from '../../errors.js';
import { Channel } from '../../util/channel.js';
import type {
  ChangesQuery,
  ClaimRequest,
  DeleteOptions,
  ListQuery,
  NewItem,
  PutOptions,
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
import { Connection, type Counters } from './connection.js';
import { isBusy, mapSqliteError } from './errors.js';
import { Hub } from './hub.js';
import * as kv from './kv.js';
import type { SqliteSettings } from './options.js';
import * as queue from './queue.js';

const CAPABILITIES = {
  name: 'sqlite',
  serverClock: false,
  multiProcess: true,
  maxKeyBytes: 4096,
  maxValueBytes: 8 * 1024 * 1024,
  leaseGranularityMs: 1000,
  queueThroughput: 'high',
} as const;

/** Capabilities of a SQLite store: persistent for files, not for `:memory:`. */
export function sqliteCapabilities(memory: boolean): StoreCapabilities {
  return Object.freeze({ ...CAPABILITIES, persistent: !memory, multiProcess: !memory });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The host wall clock, never going backwards within this process. */
let lastNow = 0;
function hostNow(): number {
  const now = Date.now();
  if (now > lastNow) lastNow = now;
  return lastNow;
}

const hubs = new Map<string, Hub>();

/** The hub of `conn`'s file in this process (created on first use, with its own connection). */
async function hubFor(conn: Connection): Promise<Hub> {
  if (conn.settings.memory) return new Hub(':memory:', conn, false, hostNow, () => {}).acquire();
  const key = realpathSync(conn.settings.path);
  const existing = hubs.get(key);
  if (existing) return existing.acquire();
  const own = await Connection.open(conn.settings);
  // Another open may have created the hub while this one awaited.
  const raced = hubs.get(key);
  if (raced) {
    own.close();
    return raced.acquire();
  }
  const hub = new Hub(key, own, true, hostNow, () => hubs.delete(key));
  hubs.set(key, hub);
  return hub.acquire();
}

/**
 * A client of a SQLite store (the unvalidated backend; `openStore('sqlite:...')` returns it wrapped
 * by `withValidation`). Every call is one transaction on this client's own connection.
 */
export class SqliteStore implements Store {
  readonly capabilities: StoreCapabilities;
  readonly #conn: Connection;
  readonly #hub: Hub;
  readonly #settings: SqliteSettings;
  readonly #channels = new Set<Channel<WatchEvent>>();
  readonly #unsubscribes = new Set<() => void>();
  #closed = false;

  private constructor(conn: Connection, hub: Hub) {
    this.#conn = conn;
    this.#hub = hub;
    this.#settings = conn.settings;
    this.capabilities = sqliteCapabilities(conn.settings.memory);
  }

  /** Open a client for parsed settings (see `parseSqliteUrl`). */
  static async open(settings: SqliteSettings): Promise<SqliteStore> {
    const conn = await Connection.open(settings);
    try {
      return new SqliteStore(conn, await hubFor(conn));
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Transactions with bounded retries on a locked file

  async #retry<T>(what: string, fn: () => T): Promise<T> {
    // The driver is synchronous: without this, a loop of awaited calls would run entirely in
    // microtasks and starve timers (keep-alives, lease renewals) the way no networked store does.
    await yieldToEventLoop();
    for (let attempt = 0; ; attempt++) {
      if (this.#closed) throw new ClosedError('the store was closed');
      try {
        return fn();
      } catch (err) {
        // Every failed call was rolled back, so running it again is safe.
        if (isBusy(err) && attempt < this.#settings.busyRetries) {
          await sleep(Math.min(100, 5 * 2 ** attempt) + Math.random() * 10);
          continue;
        }
        throw mapSqliteError(err, what, this.#settings.path);
      }
    }
  }

  /** A KV write: expired leases go first (each in its own revision), then `fn`, in one transaction. */
  async #kvWrite<T>(what: string, fn: (counters: Counters, now: number) => T): Promise<T> {
    const out = await this.#retry(what, () =>
      this.#conn.write((counters) => {
        const now = hostNow();
        kv.expireLeases(this.#conn, counters, now, this.#settings.historyLimit);
        return fn(counters, now);
      }),
    );
    this.#hub.poke();
    return out;
  }

  async #queueWrite<T>(what: string, fn: (tx: queue.QueueTx) => T): Promise<T> {
    let wrote = false;
    const out = await this.#retry(what, () =>
      this.#conn.write((counters) => {
        const tx = new queue.QueueTx(this.#conn, counters, hostNow());
        const result = fn(tx);
        wrote = tx.wrote;
        return result;
      }),
    );
    if (wrote) this.#hub.poke();
    return out;
  }

  /** Reads of keys first apply leases that have expired, so no expired key is ever returned. */
  async #kvRead<T>(what: string, fn: () => T): Promise<T> {
    if (await this.#retry(what, () => kv.anyLeaseDue(this.#conn, hostNow()))) {
      await this.#kvWrite(what, () => undefined);
      this.#hub.refreshLeaseTimer();
    }
    return this.#retry(what, fn);
  }

  // ---------------------------------------------------------------------------------------------
  // KV

  async now(): Promise<number> {
    return hostNow();
  }

  async get(key: string) {
    return this.#kvRead('get', () =>
      this.#conn.read(() => ({ kv: kv.getKey(this.#conn, key), revision: this.#conn.counters().revision })),
    );
  }

  async range(prefix: string, options?: RangeOptions) {
    return this.#kvRead('range', () => kv.readRange(this.#conn, prefix, options));
  }

  async put(key: string, value: Uint8Array, options?: PutOptions) {
    const out = await this.#kvWrite('put', (counters) =>
      kv.putKey(this.#conn, counters, key, value, options?.lease, this.#settings.historyLimit),
    );
    return out;
  }

  async delete(key: string, options?: DeleteOptions) {
    return this.#kvWrite('delete', (counters) =>
      kv.deleteKeys(this.#conn, counters, key, options?.prefix ?? false, this.#settings.historyLimit),
    );
  }

  async txn(request: TxnRequest) {
    return this.#kvWrite('txn', (counters) =>
      kv.runTxn(this.#conn, counters, request, this.#settings.historyLimit),
    );
  }

  async grant(ttl: number) {
    const lease = await this.#kvWrite('grant', (counters, now) =>
      kv.grantLease(this.#conn, counters, ttl, now),
    );
    this.#hub.refreshLeaseTimer();
    return lease;
  }

  async keepAlive(leaseId: string) {
    const lease = await this.#kvWrite('keepAlive', (_counters, now) =>
      kv.touchLease(this.#conn, leaseId, now),
    );
    if (!lease)
      throw new LeaseNotFoundError(`lease ${leaseId} not found (expired or revoked)`, {
        detail: { lease: leaseId },
      });
    this.#hub.refreshLeaseTimer();
    return lease;
  }

  async revoke(leaseId: string) {
    const revoked = await this.#kvWrite('revoke', (counters) =>
      kv.revokeLease(this.#conn, counters, leaseId, this.#settings.historyLimit),
    );
    this.#hub.refreshLeaseTimer();
    return revoked;
  }

  async leaseInfo(leaseId: string) {
    return this.#kvRead('leaseInfo', () => kv.leaseInfo(this.#conn, leaseId, hostNow()));
  }

  watch(prefix: string, options: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    let remove: (() => void) | undefined;
    const channel: Channel<WatchEvent> = new Channel<WatchEvent>({
      signal: options.signal,
      onClose: () => {
        remove?.();
        this.#channels.delete(channel);
      },
    });
    if (channel.closed) return channel;
    this.#channels.add(channel);
    try {
      remove = this.#hub.addWatcher(prefix, options.fromRevision, channel);
    } catch (err) {
      channel.fail(mapSqliteError(err, 'watch', this.#settings.path));
    }
    return channel;
  }

  async compact(revision: number) {
    await this.#retry('compact', () =>
      this.#conn.write((counters) => kv.compact(this.#conn, counters, revision)),
    );
  }

  async status() {
    return this.#retry('status', () => {
      const { revision, compactRevision } = this.#conn.counters();
      return { revision, compactRevision };
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Queue

  async enqueue(items: NewItem[]) {
    return this.#queueWrite('enqueue', (tx) => queue.enqueue(tx, items));
  }

  async claim(request: ClaimRequest) {
    return this.#queueWrite('claim', (tx) => queue.claim(tx, request));
  }

  async renew(entries: RenewEntry[], leaseTtl: number) {
    return this.#queueWrite('renew', (tx) => queue.renew(tx, entries, leaseTtl));
  }

  async settle(ops: SettleOp[]) {
    return this.#queueWrite('settle', (tx) => queue.settle(tx, ops));
  }

  async getItem(id: string) {
    return this.#retry('getItem', () => queue.getItem(this.#conn, id));
  }

  async listItems(query: ListQuery) {
    return this.#retry('listItems', () => queue.listItems(this.#conn, query));
  }

  async countItems(name?: string) {
    return this.#retry('countItems', () => queue.countItems(this.#conn, name));
  }

  async changes(query: ChangesQuery) {
    return this.#retry('changes', () => queue.changes(this.#conn, query));
  }

  async sweep(options?: SweepOptions) {
    return this.#queueWrite('sweep', (tx) => queue.sweep(tx, options));
  }

  subscribe(name: string, listener: () => void): () => void {
    const off = this.#hub.subscribe(name, listener);
    const unsubscribe = () => {
      off();
      this.#unsubscribes.delete(unsubscribe);
    };
    this.#unsubscribes.add(unsubscribe);
    return unsubscribe;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const channel of [...this.#channels]) channel.end();
    for (const off of [...this.#unsubscribes]) off();
    this.#hub.release();
    this.#conn.close();
  }
}

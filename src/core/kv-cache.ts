/**
 * A watch-fed cache of one key prefix (the informer pattern): list once, then apply every watch
 * event in revision order. On `ROTA_COMPACTED` it re-lists and reports a fresh `sync`; on
 * transient store errors it resumes from the last applied revision. Callers never see a gap.
 */
import { isRotaError } from '../errors.js';
import type { KeyValue, Store } from '../store/port.js';
import { type Clock, sleep } from '../time/clock.js';
import type { Logger } from './logger.js';

/** A cached key: the raw KeyValue and its decoded value. */
export interface CacheEntry<T> {
  readonly kv: KeyValue;
  readonly value: T;
}

export type CacheChange<T> =
  | { type: 'sync'; revision: number }
  | { type: 'put'; key: string; entry: CacheEntry<T>; prev: CacheEntry<T> | undefined; revision: number }
  | { type: 'delete'; key: string; prev: CacheEntry<T> | undefined; revision: number };

export interface KvCacheOptions<T> {
  store: Store;
  prefix: string;
  /** Decode a value; return undefined for a malformed one (it is skipped and reported). */
  decode: (kv: KeyValue) => T | undefined;
  clock: Clock;
  random: () => number;
  logger: Logger;
  /** Called after each applied change (and after each sync). Must not throw. */
  onChange?: (change: CacheChange<T>) => void;
  /** Called for a value `decode` rejected. */
  onMalformed?: (kv: KeyValue) => void;
  /**
   * Resume from this revision instead of listing first (the cache starts empty and only learns
   * about keys as they change). A compacted revision falls back to a fresh listing (`sync`).
   */
  fromRevision?: number;
}

export class KvCache<T> {
  readonly entries = new Map<string, CacheEntry<T>>();
  #revision = 0;
  #ready: Promise<void>;
  #resolveReady!: () => void;
  #waiters: { revision: number; resolve: () => void }[] = [];
  #started = false;
  readonly #o: KvCacheOptions<T>;

  constructor(options: KvCacheOptions<T>) {
    this.#o = options;
    this.#ready = new Promise((resolve) => {
      this.#resolveReady = resolve;
    });
  }

  /** The last store revision applied to the cache. */
  get revision(): number {
    return this.#revision;
  }

  /** Resolves after the first listing has been applied. */
  get ready(): Promise<void> {
    return this.#ready;
  }

  get(key: string): CacheEntry<T> | undefined {
    return this.entries.get(key);
  }

  /** Start listing and watching until `signal` aborts. Resolves once the first listing is applied. */
  start(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    if (!this.#started) {
      this.#started = true;
      void this.#run(signal);
    }
    return new Promise<void>((resolve) => {
      const onAbort = () => resolve();
      signal.addEventListener('abort', onAbort, { once: true });
      void this.#ready.then(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  /** Resolves once the cache has applied `revision` (e.g. our own write), or the signal aborts. */
  waitFor(revision: number, signal?: AbortSignal): Promise<void> {
    // An already-aborted signal never fires 'abort' again: resolve now instead of hanging.
    if (this.#revision >= revision || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const waiter = { revision, resolve };
      this.#waiters.push(waiter);
      signal?.addEventListener(
        'abort',
        () => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          resolve();
        },
        { once: true },
      );
    });
  }

  async #list(): Promise<void> {
    const { kvs, revision } = await this.#o.store.range(this.#o.prefix);
    this.entries.clear();
    for (const kv of kvs) {
      const value = this.#decode(kv);
      if (value !== undefined) this.entries.set(kv.key, { kv, value });
    }
    this.#advance(revision);
    this.#o.onChange?.({ type: 'sync', revision });
    this.#resolveReady();
  }

  #decode(kv: KeyValue): T | undefined {
    let value: T | undefined;
    try {
      value = this.#o.decode(kv);
    } catch {
      value = undefined;
    }
    if (value === undefined) this.#o.onMalformed?.(kv);
    return value;
  }

  #advance(revision: number): void {
    if (revision > this.#revision) this.#revision = revision;
    if (this.#waiters.length === 0) return;
    const done = this.#waiters.filter((w) => w.revision <= this.#revision);
    this.#waiters = this.#waiters.filter((w) => w.revision > this.#revision);
    for (const w of done) w.resolve();
  }

  async #run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    let listed = false;
    if (this.#o.fromRevision !== undefined) {
      listed = true;
      this.#revision = this.#o.fromRevision - 1;
      this.#resolveReady();
    }
    while (!signal.aborted) {
      try {
        if (!listed) {
          await this.#list();
          listed = true;
        }
        const watch = this.#o.store.watch(this.#o.prefix, { fromRevision: this.#revision + 1, signal });
        for await (const event of watch) {
          failures = 0;
          const key = event.kv.key;
          const prev = this.entries.get(key);
          if (event.type === 'put') {
            const value = this.#decode(event.kv);
            if (value === undefined) {
              if (prev) {
                this.entries.delete(key);
                this.#advance(event.revision);
                this.#o.onChange?.({ type: 'delete', key, prev, revision: event.revision });
              } else this.#advance(event.revision);
              continue;
            }
            const entry = { kv: event.kv, value };
            this.entries.set(key, entry);
            this.#advance(event.revision);
            this.#o.onChange?.({ type: 'put', key, entry, prev, revision: event.revision });
          } else {
            this.entries.delete(key);
            this.#advance(event.revision);
            this.#o.onChange?.({ type: 'delete', key, prev, revision: event.revision });
          }
        }
        if (signal.aborted) return;
        // The watch ended without an abort: the store was closed.
        return;
      } catch (err) {
        if (signal.aborted) return;
        if (isRotaError(err, 'ROTA_CLOSED')) return;
        if (isRotaError(err, 'ROTA_COMPACTED')) {
          listed = false;
          continue;
        }
        failures++;
        if (failures === 1 || failures % 20 === 0) {
          this.#o.logger.warn(`watch of ${this.#o.prefix} failed; resuming`, { error: err, failures });
        }
        const ceiling = Math.min(5000, 50 * 2 ** Math.min(failures, 10));
        await sleep(this.#o.clock, this.#o.random() * ceiling, signal).catch(() => undefined);
      }
    }
  }
}

/**
 * Wake-ups: one etcd watch per subscribed queue (or on every queue for `'*'`), on the queue's
 * index keys, puts only. A put under `r/`, `d/` (new or returned pending work) or `o/` (a
 * completion) fires that queue's listeners, coalesced to one call per listener per tick. A watch
 * that ends for good (etcd compacted past it during a long outage) is restarted from now with a
 * spurious wake-up, so workers re-check instead of missing work.
 */
import { bytes, prefixEnd } from '../codec.js';
import type { EtcdConnection } from '../connection.js';
import { ResumableWatch } from '../watch.js';
import type { QueueKeys } from './keys.js';

const RESTART_DELAY = 1_000;

interface Subscription {
  listeners: Set<() => void>;
  watch: ResumableWatch | null;
}

export class Subscriptions {
  readonly #conn: EtcdConnection;
  readonly #keys: QueueKeys;
  readonly #subs = new Map<string, Subscription>();
  #toFire = new Set<string>();
  #scheduled = false;
  #closed = false;

  constructor(conn: EtcdConnection, keys: QueueKeys) {
    this.#conn = conn;
    this.#keys = keys;
  }

  subscribe(queue: string, listener: () => void): () => void {
    let sub = this.#subs.get(queue);
    if (!sub) {
      sub = { listeners: new Set(), watch: null };
      this.#subs.set(queue, sub);
      this.#startWatch(queue, sub);
    }
    sub.listeners.add(listener);
    const owned = sub;
    return () => {
      owned.listeners.delete(listener);
      if (owned.listeners.size === 0 && this.#subs.get(queue) === owned) {
        this.#subs.delete(queue);
        owned.watch?.close();
      }
    };
  }

  #startWatch(queue: string, sub: Subscription): void {
    if (this.#closed) return;
    const prefix = queue === '*' ? `${this.#keys.root}x/` : this.#keys.queueIndex(queue, 'r').slice(0, -2);
    const start = bytes(prefix);
    const watch = new ResumableWatch(
      this.#conn,
      { key: start, rangeEnd: prefixEnd(start), filters: ['Nodelete'] },
      undefined,
      {
        events: (events) => {
          for (const e of events) {
            const rest = e.kv.key.toString('utf8').slice(prefix.length);
            // `*` sees `<queue>/<kind>/...`; a queue's own watch sees `<kind>/...`.
            const kind = queue === '*' ? rest.split('/')[1] : rest.split('/')[0];
            if (kind === 'r' || kind === 'd' || kind === 'o') this.#fire(queue);
          }
        },
        failed: () => {
          if (this.#subs.get(queue) !== sub) return;
          this.#fire(queue);
          setTimeout(() => {
            if (this.#subs.get(queue) === sub) this.#startWatch(queue, sub);
          }, RESTART_DELAY).unref();
        },
      },
    );
    sub.watch = watch;
    watch.start();
  }

  #fire(queue: string): void {
    this.#toFire.add(queue);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      const queues = [...this.#toFire];
      this.#toFire.clear();
      const fired = new Set<() => void>();
      for (const q of queues) {
        for (const fn of this.#subs.get(q)?.listeners ?? []) {
          if (fired.has(fn)) continue;
          fired.add(fn);
          try {
            fn();
          } catch {
            // A listener must not break the store; listeners log their own errors.
          }
        }
      }
    });
  }

  close(): void {
    this.#closed = true;
    for (const sub of this.#subs.values()) sub.watch?.close();
    this.#subs.clear();
  }
}

/**
 * Pub/sub on a dedicated connection: queue wake-ups (`{prefix}:wake:<queue>`, published by the
 * scripts when work becomes runnable or completes) and lease grants (`{prefix}:lease`, which let a
 * watching client arm its lease sweeper for leases other clients granted). Pub/sub drops messages
 * while disconnected, so after a reconnect every listener fires once: a spurious wake-up is
 * allowed, a lost one is not.
 */
import type { Redis } from 'ioredis';
import { Connection } from './connection.js';
import type { RedisConfig } from './options.js';

export class Wakeups {
  readonly #config: RedisConfig;
  readonly #wakePrefix: string;
  readonly #leaseChannel: string;
  readonly #onLease: (expiresAt: number) => void;
  /** The lease channel is (again) subscribed: learn what was granted meanwhile. */
  readonly #onLeaseChannel: () => void;
  #conn: Connection | undefined;
  readonly #listeners = new Map<string, Set<() => void>>();
  #leases = false;
  #toFire = new Set<string>();
  #scheduled = false;
  #connectedOnce = false;

  constructor(config: RedisConfig, onLease: (expiresAt: number) => void, onLeaseChannel: () => void) {
    this.#config = config;
    this.#wakePrefix = `${config.base}:wake:`;
    this.#leaseChannel = `${config.base}:lease`;
    this.#onLease = onLease;
    this.#onLeaseChannel = onLeaseChannel;
  }

  #redis(): Redis {
    if (!this.#conn) {
      // Subscriber mode: commands queue while disconnected and subscriptions are restored.
      const conn = new Connection(this.#config, 'sub', {
        enableOfflineQueue: true,
        maxRetriesPerRequest: null,
        autoResubscribe: true,
      });
      const redis = conn.redis;
      redis.on('message', (channel: string, message: string) => {
        if (channel === this.#leaseChannel) this.#onLease(Number(message));
        else this.#fire(channel.slice(this.#wakePrefix.length));
      });
      redis.on('pmessage', (_pattern: string, channel: string) => {
        this.#fire(channel.slice(this.#wakePrefix.length));
      });
      redis.on('ready', () => {
        if (this.#connectedOnce) {
          for (const queue of this.#listeners.keys()) this.#fire(queue);
          if (this.#leases) this.#onLeaseChannel();
        }
        this.#connectedOnce = true;
      });
      redis.connect().catch(() => undefined);
      this.#conn = conn;
    }
    return this.#conn.redis;
  }

  /** Listen for lease grants (once per client, on its first watch). */
  leases(): void {
    if (this.#leases) return;
    this.#leases = true;
    this.#redis()
      .subscribe(this.#leaseChannel)
      .then(() => this.#onLeaseChannel())
      .catch(() => undefined);
  }

  subscribe(queue: string, listener: () => void): () => void {
    let set = this.#listeners.get(queue);
    if (!set) {
      set = new Set();
      this.#listeners.set(queue, set);
      const redis = this.#redis();
      const done =
        queue === '*' ? redis.psubscribe(`${this.#wakePrefix}*`) : redis.subscribe(this.#wakePrefix + queue);
      done.catch(() => undefined);
    }
    set.add(listener);
    return () => {
      if (!set.delete(listener) || set.size > 0 || this.#listeners.get(queue) !== set) return;
      this.#listeners.delete(queue);
      const redis = this.#conn?.redis;
      if (!redis || this.#conn?.closed) return;
      const done =
        queue === '*'
          ? redis.punsubscribe(`${this.#wakePrefix}*`)
          : redis.unsubscribe(this.#wakePrefix + queue);
      done.catch(() => undefined);
    };
  }

  /** Coalesce wake-ups: each listener fires at most once per tick. */
  #fire(queue: string): void {
    this.#toFire.add(queue);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      const queues = [...this.#toFire];
      this.#toFire.clear();
      const fired = new Set<() => void>();
      for (const name of [...queues, '*']) {
        for (const fn of this.#listeners.get(name) ?? []) {
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

  async close(): Promise<void> {
    this.#listeners.clear();
    await this.#conn?.close(false);
  }
}

/**
 * Pub/sub on a dedicated connection: queue wake-ups (`{prefix}:wake:<queue>`, published by the
 * scripts when work becomes runnable or completes) and lease grants (`{prefix}:lease`, which let a
 * watching client arm its lease sweeper for leases other clients granted). Pub/sub drops messages
 * while disconnected, so after a reconnect every listener fires once: a spurious wake-up is
 * allowed, a lost one is not.
 */
import type { Redis } from 'ioredis';
import { systemClock, type TimerHandle } from '../../time/clock.js';
import { WakeListeners } from '../wake-listeners.js';
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
  readonly #listeners = new WakeListeners();
  /** Hand-off channel -> listener of the raw message. */
  readonly #mailboxes = new Map<string, (message: string) => void>();
  #leases = false;
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
        else if (channel.startsWith(this.#wakePrefix)) this.#fire(channel.slice(this.#wakePrefix.length));
        else this.#mailboxes.get(channel)?.(message);
      });
      redis.on('pmessage', (_pattern: string, channel: string) => {
        this.#fire(channel.slice(this.#wakePrefix.length));
      });
      redis.on('ready', () => {
        if (this.#connectedOnce) {
          for (const queue of this.#listeners.queues()) this.#fire(queue);
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
    return this.#listeners.add(queue, listener, {
      onFirst: () => {
        const redis = this.#redis();
        const done =
          queue === '*'
            ? redis.psubscribe(`${this.#wakePrefix}*`)
            : redis.subscribe(this.#wakePrefix + queue);
        done.catch(() => undefined);
      },
      onLast: () => {
        const redis = this.#conn?.redis;
        if (!redis || this.#conn?.closed) return;
        const done =
          queue === '*'
            ? redis.punsubscribe(`${this.#wakePrefix}*`)
            : redis.unsubscribe(this.#wakePrefix + queue);
        done.catch(() => undefined);
      },
    });
  }

  /**
   * A hand-off mailbox: messages on `{prefix}:hand:<id>` go to `onMessage`. `flush` resolves once
   * every message published before it was called has been delivered (a PING on this connection is
   * answered after them).
   */
  mailbox(id: string, onMessage: (message: string) => void): { flush(): Promise<void>; close(): void } {
    const channel = `${this.#config.base}:hand:${id}`;
    this.#mailboxes.set(channel, onMessage);
    const redis = this.#redis();
    redis.subscribe(channel).catch(() => undefined);
    return {
      flush: async () => {
        // While disconnected nothing more can arrive (pub/sub drops it): do not wait for a reconnect.
        if (!this.#mailboxes.has(channel) || redis.status !== 'ready') return;
        let timer: TimerHandle | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = systemClock.setTimeout(resolve, this.#config.storeTimeout);
        });
        await Promise.race([
          redis.ping().then(
            () => undefined,
            () => undefined,
          ),
          timeout,
        ]);
        systemClock.clearTimeout(timer);
      },
      close: () => {
        if (!this.#mailboxes.delete(channel) || this.#conn?.closed) return;
        redis.unsubscribe(channel).catch(() => undefined);
      },
    };
  }

  /** Coalesce wake-ups: each listener fires at most once per tick. */
  #fire(queue: string): void {
    this.#listeners.wake(queue);
  }

  async close(): Promise<void> {
    this.#listeners.clear();
    this.#mailboxes.clear();
    await this.#conn?.close(false);
  }
}

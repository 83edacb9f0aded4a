/**
 * One ioredis connection and the rules for calling it. Commands are sent at most once
 * (`enableOfflineQueue: false`, `autoResendUnfulfilledCommands: false`), and a command in flight
 * when the connection drops fails at once (`maxRetriesPerRequest: 0`) instead of being silently
 * re-sent after the reconnect, which could apply a claim or an enqueue twice. {@link Connection.run}
 * then waits for the reconnect and retries what is safe to retry (never sent, refused by the
 * server, or a read) within `storeTimeout`; a write that may have been applied surfaces as
 * `ROTA_STORE_UNAVAILABLE` with `detail.ambiguous: true`.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { ClosedError, StoreUnavailableError } from '../../errors.js';
import { systemClock } from '../../time/clock.js';
import { failureKind, toRotaError } from './errors.js';
import type { RedisConfig } from './options.js';

/** ioredis options for a Rota connection to `config`. */
export function redisOptions(config: RedisConfig, role: string, overrides: RedisOptions = {}): RedisOptions {
  return {
    host: config.host,
    port: config.port,
    db: config.db,
    ...(config.username !== undefined ? { username: config.username } : {}),
    ...(config.password !== undefined ? { password: config.password } : {}),
    ...(config.tls ? { tls: config.tls } : {}),
    protocol: 2,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    enableReadyCheck: true,
    disableClientInfo: true,
    connectionName: `rota:${config.prefix}:${role}`,
    connectTimeout: Math.min(config.storeTimeout, 10_000),
    retryStrategy: (times: number) => Math.min(times * 100, 1000),
    ...overrides,
  };
}

export type CallKind = 'read' | 'write';

export class Connection {
  readonly redis: Redis;
  readonly #timeout: number;
  readonly #where: string;
  #lastError: unknown;
  #closed = false;

  constructor(config: RedisConfig, role: string, overrides: RedisOptions = {}) {
    this.redis = new Redis(redisOptions(config, role, overrides));
    this.#timeout = config.storeTimeout;
    this.#where = `${config.host}:${config.port}`;
    // Connection errors are reported through the calls that fail; keep the last one as a cause.
    this.redis.on('error', (err) => {
      this.#lastError = err;
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Connect (or wait for the reconnect) until `deadline` (monotonic ms). */
  async ready(deadline = systemClock.monotonic() + this.#timeout): Promise<void> {
    const redis = this.redis;
    if (redis.status === 'ready') return;
    if (this.#closed || redis.status === 'end') throw new ClosedError('the store was closed');
    if (redis.status === 'wait') redis.connect().catch(() => undefined);
    await new Promise<void>((resolve, reject) => {
      const done = (err?: unknown) => {
        systemClock.clearTimeout(timer);
        redis.off('ready', onReady);
        redis.off('end', onEnd);
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => done();
      const onEnd = () => done(new ClosedError('the store was closed'));
      const timer = systemClock.setTimeout(
        () =>
          done(
            new StoreUnavailableError(`Redis at ${this.#where} is unreachable (${redis.status})`, {
              cause: this.#lastError,
              detail: { ambiguous: false },
            }),
          ),
        Math.max(0, deadline - systemClock.monotonic()),
      );
      redis.on('ready', onReady);
      redis.on('end', onEnd);
    });
  }

  /** Run `fn` against the connection with the retry rules above. */
  async run<T>(kind: CallKind, fn: (redis: Redis) => Promise<T>): Promise<T> {
    const deadline = systemClock.monotonic() + this.#timeout;
    for (;;) {
      if (this.#closed) throw new ClosedError('the store was closed');
      await this.ready(deadline);
      try {
        return await fn(this.redis);
      } catch (err) {
        if (this.#closed) throw new ClosedError('the store was closed');
        const failure = failureKind(err);
        const retry =
          failure === 'unsent' || failure === 'refused' || (failure === 'lost' && kind === 'read');
        if (!retry || systemClock.monotonic() >= deadline) throw toRotaError(err, kind === 'write');
        // A refusal (LOADING, BUSY...) comes back at once: give the server a moment.
        if (failure === 'refused') await new Promise<void>((r) => systemClock.setTimeout(r, 50));
      }
    }
  }

  /** Close: `quit` lets commands in flight finish; `disconnect` drops at once. */
  async close(graceful = true): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (graceful && this.redis.status === 'ready') {
      await this.redis.quit().catch(() => this.redis.disconnect());
    } else {
      this.redis.disconnect();
    }
  }
}

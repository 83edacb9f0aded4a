/**
 * Per-queue defaults stored in KV under `tasks/queues/<queue>` (tasks.md §2.5), read through a
 * watch-fed cache so enqueues and workers look them up without a store round trip.
 */
import { decodeJson, encodeJson, type RotaContext } from '../core/context.js';
import { encodeName } from '../core/keys.js';
import { KvCache } from '../core/kv-cache.js';
import { abortedError, StoreUnavailableError } from '../errors.js';
import type { KeyValue } from '../store/port.js';
import type { QueueConfig } from './types.js';

function decode(kv: KeyValue): QueueConfig | undefined {
  const value = decodeJson<QueueConfig>(kv.value);
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;
}

const NONE: QueueConfig = Object.freeze({});

export class QueueConfigs {
  readonly prefix: string;
  readonly #cache: KvCache<QueueConfig>;
  readonly #stop = new AbortController();
  #started: Promise<void> | null = null;

  constructor(private readonly ctx: RotaContext) {
    this.prefix = ctx.keys.prefix('tasks', 'queues');
    this.#cache = new KvCache<QueueConfig>({
      store: ctx.store,
      prefix: this.prefix,
      decode,
      clock: ctx.clock,
      random: ctx.random,
      logger: ctx.logger,
      onMalformed: (kv) => ctx.logger.warn('ignoring a malformed queue configuration', { key: kv.key }),
    });
  }

  #key(queue: string): string {
    return this.prefix + encodeName(queue);
  }

  /**
   * Resolves once the cache holds the stored configurations; rejects with ROTA_STORE_UNAVAILABLE
   * when the store stays unreachable for `storeTimeout` (the cache keeps trying in the background),
   * or ROTA_ABORTED when `signal` aborts.
   */
  ready(signal?: AbortSignal): Promise<void> {
    if (!this.#started) {
      this.#started = this.#cache.start(this.#stop.signal);
      void this.#cache.ready.then(() => {
        this.#ready = true;
      });
    }
    if (this.#ready) return Promise.resolve();
    const { clock, options } = this.ctx;
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        done();
        reject(abortedError(signal));
      };
      const timer = clock.setTimeout(() => {
        done();
        reject(new StoreUnavailableError(`queue configurations unreadable for ${options.storeTimeout} ms`));
      }, options.storeTimeout);
      signal?.addEventListener('abort', onAbort, { once: true });
      (this.#started as Promise<void>).then(() => {
        done();
        resolve();
      });
    });
  }

  #ready = false;

  /** The configuration of `queue` from the cache (call `ready()` first); `{}` when none. */
  get(queue: string): QueueConfig {
    return this.#cache.get(this.#key(queue))?.value ?? NONE;
  }

  /** Store `config` as the configuration of `queue` (replacing it) and wait until the cache has it. */
  async set(queue: string, config: QueueConfig, signal?: AbortSignal): Promise<void> {
    await this.ready(signal);
    const res = await this.ctx.retry(() => this.ctx.store.put(this.#key(queue), encodeJson(config)), signal);
    await this.#cache.waitFor(res.revision, signal);
  }

  close(): void {
    this.#stop.abort();
  }
}

/**
 * Per-queue defaults stored in KV under `tasks/queues/<queue>` (tasks.md §2.5), read through a
 * watch-fed cache so enqueues and workers look them up without a store round trip.
 */
import { decodeJson, encodeJson, type RotaContext } from '../core/context.js';
import { encodeName } from '../core/keys.js';
import { KvCache } from '../core/kv-cache.js';
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

  /** Resolves once the cache holds the stored configurations. */
  ready(): Promise<void> {
    if (!this.#started) {
      this.#started = this.#cache.start(this.#stop.signal);
    }
    return this.#started;
  }

  /** The configuration of `queue` from the cache (call `ready()` first); `{}` when none. */
  get(queue: string): QueueConfig {
    return this.#cache.get(this.#key(queue))?.value ?? NONE;
  }

  /** Store `config` as the configuration of `queue` (replacing it) and wait until the cache has it. */
  async set(queue: string, config: QueueConfig, signal?: AbortSignal): Promise<void> {
    await this.ready();
    const res = await this.ctx.retry(() => this.ctx.store.put(this.#key(queue), encodeJson(config)), signal);
    await this.#cache.waitFor(res.revision, signal);
  }

  close(): void {
    this.#stop.abort();
  }
}

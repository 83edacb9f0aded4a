/**
 * What every module receives from its node: the store, the key layout, time, randomness, events,
 * logging, the retry policy and the node's options. Modules never reach around it.
 */
import { setMaxListeners } from 'node:events';
import { ClosedError } from '../errors.js';
import type { Store } from '../store/port.js';
import type { Clock } from '../time/clock.js';
import type { EventBus } from './events.js';
import type { Keyspace } from './keys.js';
import type { Logger } from './logger.js';
import { withRetry } from './retry.js';
import type { StoreTime } from './store-time.js';

/** Node options after defaults were applied. */
export interface ResolvedRotaOptions {
  readonly namespace: string;
  readonly nodeId: string;
  readonly sessionTtl: number;
  readonly reconnect: boolean;
  readonly lazyConnect: boolean;
  readonly storeTimeout: number;
  readonly maxPayloadBytes: number;
  readonly labels: Readonly<Record<string, string>>;
}

export type CloseHook = () => Promise<void> | void;

export class RotaContext {
  readonly #closeHooks: CloseHook[] = [];
  readonly #closing = new AbortController();

  constructor(
    readonly store: Store,
    readonly keys: Keyspace,
    readonly clock: Clock,
    readonly random: () => number,
    readonly time: StoreTime,
    readonly events: EventBus,
    readonly logger: Logger,
    readonly options: ResolvedRotaOptions,
  ) {
    // Every module's caches, elections and tickers listen for the node closing: many, by design.
    setMaxListeners(1000, this.#closing.signal);
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  get namespace(): string {
    return this.options.namespace;
  }

  /** Aborts when the node starts closing. */
  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  get closed(): boolean {
    return this.#closing.signal.aborted;
  }

  /** Throw `ROTA_CLOSED` once the node is closing. */
  assertOpen(): void {
    if (this.closed) throw new ClosedError('this Rota node is closed');
  }

  /** Run a store call under the retry policy, bounded by `storeTimeout` and `signal`. */
  retry<T>(fn: (attempt: number) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry(fn, {
      clock: this.clock,
      random: this.random,
      timeout: this.options.storeTimeout,
      ...(signal ? { signal } : {}),
    });
  }

  /** Register work for `rota.close()`. Hooks run in reverse order of registration, before the session ends. */
  onClose(hook: CloseHook): void {
    this.#closeHooks.push(hook);
  }

  /** Abort `closing` and run the close hooks (last registered first). Errors are logged. */
  async runCloseHooks(): Promise<void> {
    this.#closing.abort(new ClosedError('this Rota node is closing'));
    for (const hook of [...this.#closeHooks].reverse()) {
      try {
        await hook();
      } catch (err) {
        this.logger.error('a module failed while closing', { error: err });
      }
    }
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** JSON value → bytes for the store. */
export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Bytes from the store → JSON value (throws on malformed input). */
export function decodeJson<T = unknown>(bytes: Uint8Array): T {
  return JSON.parse(decoder.decode(bytes)) as T;
}

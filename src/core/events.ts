/**
 * Typed events named `noun:verb`. Modules add their events to {@link RotaEventMap} by declaration
 * merging. A throwing listener is logged and ignored: it never breaks the emitter.
 */
import type { Logger } from './logger.js';

/** Payloads of every Rota event, keyed by name. Modules extend this interface. */
// biome-ignore lint/suspicious/noEmptyInterface: extended by declaration merging in each module
export interface RotaEventMap {}

export type EventName = keyof RotaEventMap & string;
export type Listener<P> = (payload: P) => void;

/** A small typed emitter. `parent` receives every event this one emits, too. */
export class EventBus<M extends object = RotaEventMap> {
  #listeners = new Map<string, Set<Listener<never>>>();
  readonly #logger: Logger;
  readonly #parent: EventBus<object> | undefined;

  constructor(logger: Logger, parent?: EventBus<object>) {
    this.#logger = logger;
    this.#parent = parent;
  }

  /** Listen to `name`; returns the function that removes the listener. */
  on<K extends keyof M & string>(name: K, listener: Listener<M[K]>): () => void {
    let set = this.#listeners.get(name);
    if (!set) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(name, listener);
  }

  /** Listen to the next `name` only. */
  once<K extends keyof M & string>(name: K, listener: Listener<M[K]>): () => void {
    const off = this.on(name, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  off<K extends keyof M & string>(name: K, listener: Listener<M[K]>): void {
    this.#listeners.get(name)?.delete(listener as Listener<never>);
  }

  /** Number of listeners of `name`. */
  listenerCount(name: keyof M & string): number {
    return this.#listeners.get(name)?.size ?? 0;
  }

  emit<K extends keyof M & string>(name: K, payload: M[K]): void {
    const set = this.#listeners.get(name);
    if (set) {
      for (const listener of [...set]) {
        try {
          (listener as Listener<M[K]>)(payload);
        } catch (err) {
          this.#logger.error(`listener of ${name} threw; ignored`, { error: err });
        }
      }
    }
    this.#parent?.emit(name as never, payload as never);
  }
}

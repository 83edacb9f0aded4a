/**
 * Live updates for server-sent events. Two watches feed it: the tasks module's change feed
 * (`rota.tasks.watch`, every queue) and a watch over the node's namespace in the store, which sees
 * members, elections, locks, host decisions, schedules and pools change. Changes are coalesced per
 * topic (at most one message per topic every `interval` ms), because a busy queue changes
 * thousands of times a second and the dashboard only needs to know what to re-read.
 */
import { Keyspace } from '../core/keys.js';
import { isRotaError } from '../errors.js';
import type { Rota } from '../rota.js';

/** What changed; the dashboard re-reads the matching section. */
export type Topic = 'members' | 'leaders' | 'locks' | 'hosts' | 'schedules' | 'pools' | 'tasks';

export interface LiveMessage {
  topic: Topic;
  /** Store changes coalesced into this message. */
  changes: number;
  /** For `tasks`: queues that changed, and tasks seen completing per queue in this window. */
  queues?: string[];
  completed?: Record<string, number>;
  /** Local time (ms) the window closed. */
  at: number;
}

type Listener = (message: LiveMessage) => void;

/** Which topic a key under `rota/<ns>/` belongs to (null: not shown on the dashboard). */
export function topicOf(rest: string): Topic | null {
  if (rest.startsWith('cluster/members/')) return 'members';
  if (rest.startsWith('cluster/elections/') || rest.startsWith('cluster/election-values/')) return 'leaders';
  if (rest.startsWith('cluster/locks/')) return 'locks';
  if (rest.startsWith('hosts/')) return 'hosts';
  if (rest.startsWith('schedules/')) return 'schedules';
  if (rest.startsWith('pool/')) return 'pools';
  return null;
}

/** Options of {@link LiveHub}. */
export interface LiveOptions {
  /** Coalescing window in ms. Default 250. */
  interval?: number;
}

export class LiveHub {
  readonly #rota: Rota;
  readonly #interval: number;
  readonly #listeners = new Set<Listener>();
  readonly #pending = new Map<
    Topic,
    { changes: number; queues: Set<string>; completed: Map<string, number> }
  >();
  readonly #stop = new AbortController();
  #timer: NodeJS.Timeout | null = null;
  #started = false;

  constructor(rota: Rota, options: LiveOptions = {}) {
    this.#rota = rota;
    this.#interval = options.interval ?? 250;
  }

  /** Subscribe; the watches start with the first subscriber. Returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    if (!this.#started) {
      this.#started = true;
      void this.#watchStore();
      void this.#watchTasks();
    }
    return () => this.#listeners.delete(listener);
  }

  get subscribers(): number {
    return this.#listeners.size;
  }

  close(): void {
    this.#stop.abort();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#listeners.clear();
  }

  #note(topic: Topic, queue?: string, completed?: boolean): void {
    let p = this.#pending.get(topic);
    if (!p) {
      p = { changes: 0, queues: new Set(), completed: new Map() };
      this.#pending.set(topic, p);
    }
    p.changes++;
    if (queue !== undefined) {
      p.queues.add(queue);
      if (completed) p.completed.set(queue, (p.completed.get(queue) ?? 0) + 1);
    }
    this.#timer ??= setTimeout(() => this.#flush(), this.#interval);
  }

  #flush(): void {
    this.#timer = null;
    const at = Date.now();
    for (const [topic, p] of this.#pending) {
      const message: LiveMessage = { topic, changes: p.changes, at };
      if (topic === 'tasks') {
        message.queues = [...p.queues].sort();
        message.completed = Object.fromEntries(p.completed);
      }
      for (const l of this.#listeners) l(message);
    }
    this.#pending.clear();
  }

  async #watchStore(): Promise<void> {
    const root = new Keyspace(this.#rota.namespace).root;
    const signal = this.#stop.signal;
    while (!signal.aborted && !this.#rota.closed) {
      try {
        for await (const event of this.#rota.store.watch(root, { signal })) {
          const topic = topicOf(event.kv.key.slice(root.length));
          if (topic) this.#note(topic);
        }
        return;
      } catch (err) {
        // A compaction or a store hiccup: start again from now (the dashboard re-reads anyway).
        if (signal.aborted || this.#rota.closed || !isRotaError(err)) return;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  async #watchTasks(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted && !this.#rota.closed) {
      try {
        for await (const e of this.#rota.tasks.watch({ fromCursor: 'now', signal })) {
          this.#note('tasks', e.task.queue, e.task.state === 'completed' && e.type !== 'removed');
        }
        return;
      } catch (err) {
        if (signal.aborted || this.#rota.closed || !isRotaError(err)) return;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }
}

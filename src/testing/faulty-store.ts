/**
 * A store wrapper for fault injection in tests (cluster.md §5 "Test harness"): it stands between
 * one node and a real store and can cut that node off.
 *
 * - `partition()`: every call fails with `ROTA_STORE_UNAVAILABLE` (like a refused connection) and
 *   watches deliver nothing; `heal()` restores traffic and watches resume without a gap.
 * - `kill()`: every call hangs forever and watches go silent: the node is frozen, nothing of it
 *   reaches the store any more, nothing is cleaned up. It cannot be undone.
 * - `injectError(op, count)`: the next `count` calls of `op` fail with `ROTA_STORE_UNAVAILABLE`.
 */
import { ClosedError, StoreUnavailableError } from '../errors.js';
import type { Mailbox, QueueItem, Store, WatchEvent, WatchOptions } from '../store/port.js';
import { Channel } from '../util/channel.js';

type Mode = 'ok' | 'partitioned' | 'killed';

export class FaultyStore implements Store {
  #mode: Mode = 'ok';
  #injected = new Map<string, number>();
  #healWaiters: (() => void)[] = [];
  #hanging = new Set<(err: Error) => void>();
  #disposed = false;
  /** Calls that reached the inner store, by operation name (and `handoff`: deliveries received). */
  readonly calls = new Map<string, number>();

  /** Hand-off mailboxes handed out, so a cut link can close them (see {@link FaultyStore.handoff}). */
  readonly #mailboxes = new Set<{ cut(): void; heal(): void }>();
  readonly handoff?: Store['handoff'];

  constructor(readonly inner: Store) {
    const handoff = inner.handoff?.bind(inner);
    if (handoff) this.handoff = (listener) => this.#handoff(handoff, listener);
  }

  /**
   * A real client whose link is cut loses its subscriber connection, and a store hands nothing to
   * a mailbox nobody listens to. So while partitioned or killed the inner mailbox is closed; on
   * heal a new one opens under a new id (parked claims under the old id are dropped unused).
   */
  #handoff(open: NonNullable<Store['handoff']>, listener: (items: QueueItem[]) => void): Mailbox {
    const deliver = (items: QueueItem[]) => {
      this.calls.set('handoff', (this.calls.get('handoff') ?? 0) + 1);
      listener(items);
    };
    let inner: Mailbox | null = open(deliver);
    let closed = false;
    const link = {
      cut: () => {
        inner?.close();
        inner = null;
      },
      heal: () => {
        if (!closed && !inner) inner = open(deliver);
      },
    };
    this.#mailboxes.add(link);

    return {
      get id() {
        return inner?.id ?? 'cut';
      },
      unpark: async (queue) => {
        if (inner && this.#mode === 'ok') await inner.unpark(queue);
      },
      close: () => {
        closed = true;
        this.#mailboxes.delete(link);
        link.cut();
      },
    };
  }

  get mode(): Mode {
    return this.#mode;
  }

  // A method, so TypeScript does not narrow the mode across awaits.
  #is(mode: Mode): boolean {
    return this.#mode === mode;
  }

  get capabilities() {
    return this.inner.capabilities;
  }

  partition(): void {
    if (this.#mode !== 'ok') return;
    this.#mode = 'partitioned';
    for (const m of this.#mailboxes) m.cut();
  }

  heal(): void {
    if (this.#mode !== 'partitioned') return;
    this.#mode = 'ok';
    for (const m of this.#mailboxes) m.heal();
    const waiters = this.#healWaiters;
    this.#healWaiters = [];
    for (const w of waiters) w();
  }

  kill(): void {
    this.#mode = 'killed';
    for (const m of this.#mailboxes) m.cut();
  }

  /** Make the next `count` calls of `op` (a Store method name, or '*') fail as unavailable. */
  injectError(op: keyof Store | '*', count = 1): void {
    this.#injected.set(op, (this.#injected.get(op) ?? 0) + count);
  }

  /** A call that never answers (a frozen node) — until `dispose()` fails it. */
  #hang(): Promise<never> {
    if (this.#disposed) return Promise.reject(new ClosedError('the test node was disposed'));
    // Keep the call site: a call left hanging by a kill fails at dispose, far from its caller.
    const site = new Error('hanging store call').stack ?? '';
    return new Promise<never>((_resolve, reject) => {
      this.#hanging.add((err) => {
        err.stack = `${err.stack}\n  --- the call was made at:\n${site}`;
        reject(err);
      });
    });
  }

  /**
   * Fail every hanging call of a killed node with `ROTA_CLOSED`, so the abandoned node can be shut
   * down at the end of a test without touching the store.
   */
  dispose(): void {
    this.#disposed = true;
    for (const reject of this.#hanging) reject(new ClosedError('the test node was disposed'));
    this.#hanging.clear();
  }

  #gate(op: string): Promise<void> | null {
    if (this.#mode === 'killed') return this.#hang();
    if (this.#mode === 'partitioned') {
      return Promise.reject(
        new StoreUnavailableError(`partitioned from the store (${op})`, { detail: { op } }),
      );
    }
    for (const key of [op, '*']) {
      const left = this.#injected.get(key) ?? 0;
      if (left > 0) {
        this.#injected.set(key, left - 1);
        return Promise.reject(new StoreUnavailableError(`injected store error (${op})`, { detail: { op } }));
      }
    }
    this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
    return null;
  }

  async #call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const gate = this.#gate(op);
    if (gate) await gate;
    const result = await fn();
    // A reply that comes back after the link was cut is lost too.
    if (this.#is('killed')) return this.#hang();
    if (this.#is('partitioned')) throw new StoreUnavailableError(`partitioned from the store (${op})`);
    return result;
  }

  now = () => this.#call('now', () => this.inner.now());
  get: Store['get'] = (...a) => this.#call('get', () => this.inner.get(...a));
  range: Store['range'] = (...a) => this.#call('range', () => this.inner.range(...a));
  put: Store['put'] = (...a) => this.#call('put', () => this.inner.put(...a));
  delete: Store['delete'] = (...a) => this.#call('delete', () => this.inner.delete(...a));
  txn: Store['txn'] = (...a) => this.#call('txn', () => this.inner.txn(...a));
  grant: Store['grant'] = (...a) => this.#call('grant', () => this.inner.grant(...a));
  keepAlive: Store['keepAlive'] = (...a) => this.#call('keepAlive', () => this.inner.keepAlive(...a));
  revoke: Store['revoke'] = (...a) => this.#call('revoke', () => this.inner.revoke(...a));
  leaseInfo: Store['leaseInfo'] = (...a) => this.#call('leaseInfo', () => this.inner.leaseInfo(...a));
  compact: Store['compact'] = (...a) => this.#call('compact', () => this.inner.compact(...a));
  status: Store['status'] = (...a) => this.#call('status', () => this.inner.status(...a));
  enqueue: Store['enqueue'] = (...a) => this.#call('enqueue', () => this.inner.enqueue(...a));
  claim: Store['claim'] = (...a) => this.#call('claim', () => this.inner.claim(...a));
  renew: Store['renew'] = (...a) => this.#call('renew', () => this.inner.renew(...a));
  settle: Store['settle'] = (...a) => this.#call('settle', () => this.inner.settle(...a));
  getItem: Store['getItem'] = (...a) => this.#call('getItem', () => this.inner.getItem(...a));
  listItems: Store['listItems'] = (...a) => this.#call('listItems', () => this.inner.listItems(...a));
  countItems: Store['countItems'] = (...a) => this.#call('countItems', () => this.inner.countItems(...a));
  changes: Store['changes'] = (...a) => this.#call('changes', () => this.inner.changes(...a));
  sweep: Store['sweep'] = (...a) => this.#call('sweep', () => this.inner.sweep(...a));

  subscribe(queue: string, listener: () => void): () => void {
    // Wake-ups do not cross a cut link.
    return this.inner.subscribe(queue, () => {
      if (this.#mode === 'ok') listener();
    });
  }

  /**
   * Watches pass events through while the link is up. While partitioned, the inner watch is
   * dropped and re-opened from the last delivered revision on heal (a reconnecting client);
   * once killed, nothing more is delivered.
   */
  watch(prefix: string, options: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    const gate = this.#gate('watch');
    const out = new Channel<WatchEvent>({ signal: options.signal });
    if (gate) {
      gate.catch((err) => out.fail(err));
      return out;
    }
    let next = options.fromRevision;
    void (async () => {
      // Pin the starting revision so a partition before the first event loses nothing.
      if (next === undefined) next = (await this.inner.status()).revision + 1;
      while (!out.closed) {
        if (this.#mode === 'killed') return;
        if (this.#mode === 'partitioned') {
          await new Promise<void>((resolve) => this.#healWaiters.push(resolve));
          continue;
        }
        const controller = new AbortController();
        const stop = () => controller.abort();
        options.signal?.addEventListener('abort', stop, { once: true });
        try {
          const inner = this.inner.watch(prefix, {
            ...(next !== undefined ? { fromRevision: next } : {}),
            signal: controller.signal,
          });
          for await (const event of inner) {
            if (this.#is('killed')) return;
            if (this.#is('partitioned')) break;
            out.push(event);
            next = event.revision + 1;
            if (out.closed) break;
          }
          if (this.#is('ok') && !out.closed) {
            out.end();
            return;
          }
        } catch (err) {
          out.fail(err);
          return;
        } finally {
          controller.abort();
          options.signal?.removeEventListener('abort', stop);
        }
      }
    })();
    return out;
  }

  async close(): Promise<void> {
    await this.inner.close();
  }
}

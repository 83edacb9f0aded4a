/**
 * A memory store served to child processes over their IPC channel, for multi-process tests on a
 * branch without a server-backed store: the parent owns one {@link MemoryEngine} (store time is the
 * parent's clock) and each child talks to it through an {@link IpcStore}. A SIGKILLed child's
 * connection simply drops: its watches end, its leases stay until they expire, as with a real
 * server. Only the KV half of the port is served (what cluster and hosts use); queue calls fail.
 *
 * Children must be spawned with an `'ipc'` stdio slot and `serialization: 'advanced'` (so byte
 * arrays cross intact).
 */
import type { ChildProcess } from 'node:child_process';
import { RotaError, type RotaErrorCode, StoreError } from '../../src/errors.js';
import { MEMORY_CAPABILITIES, type MemoryEngine } from '../../src/store/memory/index.js';
import type { Store, WatchEvent, WatchOptions } from '../../src/store/port.js';
import { Channel } from '../../src/util/channel.js';

type Request =
  | { t: 'store-call'; id: number; op: string; args: unknown[] }
  | { t: 'store-watch'; id: number; prefix: string; fromRevision?: number }
  | { t: 'store-unwatch'; id: number };

type Reply =
  | { t: 'store-ret'; id: number; ok: true; value: unknown }
  | { t: 'store-ret'; id: number; ok: false; error: { code?: string; message: string; detail?: unknown } }
  | { t: 'store-event'; id: number; event: WatchEvent }
  | { t: 'store-watch-end'; id: number; error?: { code?: string; message: string; detail?: unknown } };

const KV_OPS = new Set([
  'now',
  'get',
  'range',
  'put',
  'delete',
  'txn',
  'grant',
  'keepAlive',
  'revoke',
  'leaseInfo',
  'compact',
  'status',
]);

function serialiseError(err: unknown): { code?: string; message: string; detail?: unknown } {
  if (err instanceof RotaError) return { code: err.code, message: err.message, detail: err.detail };
  return { message: err instanceof Error ? err.message : String(err) };
}

function reviveError(e: { code?: string; message: string; detail?: unknown }): Error {
  if (e.code?.startsWith('ROTA_')) {
    return new RotaError(e.code as RotaErrorCode, e.message, {
      detail: (e.detail ?? {}) as Record<string, unknown>,
    });
  }
  return new StoreError(e.message);
}

/** Parent side: serve `engine` to `child` until it exits. */
export function serveIpcStore(child: ChildProcess, engine: MemoryEngine): void {
  const store = engine.client();
  const watches = new Map<number, AbortController>();
  const send = (reply: Reply) => {
    if (child.connected) child.send(reply, (err) => err && undefined);
  };
  child.on('message', (raw) => {
    const msg = raw as Request;
    if (msg?.t === 'store-call') {
      if (!KV_OPS.has(msg.op)) {
        send({
          t: 'store-ret',
          id: msg.id,
          ok: false,
          error: { message: `${msg.op} is not served over IPC` },
        });
        return;
      }
      const fn = (store as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[msg.op]!;
      fn.apply(store, msg.args).then(
        (value) => send({ t: 'store-ret', id: msg.id, ok: true, value }),
        (err) => send({ t: 'store-ret', id: msg.id, ok: false, error: serialiseError(err) }),
      );
    } else if (msg?.t === 'store-watch') {
      const controller = new AbortController();
      watches.set(msg.id, controller);
      void (async () => {
        try {
          const it = store.watch(msg.prefix, {
            ...(msg.fromRevision !== undefined ? { fromRevision: msg.fromRevision } : {}),
            signal: controller.signal,
          });
          for await (const event of it) send({ t: 'store-event', id: msg.id, event });
          send({ t: 'store-watch-end', id: msg.id });
        } catch (err) {
          send({ t: 'store-watch-end', id: msg.id, error: serialiseError(err) });
        } finally {
          watches.delete(msg.id);
        }
      })();
    } else if (msg?.t === 'store-unwatch') {
      watches.get(msg.id)?.abort();
    }
  });
  child.on('exit', () => {
    for (const c of watches.values()) c.abort();
    void store.close();
  });
}

/** Child side: the store, reached through `process.send`. */
export class IpcStore implements Store {
  readonly capabilities = { ...MEMORY_CAPABILITIES, name: 'memory-ipc', multiProcess: true };
  #next = 1;
  readonly #calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  readonly #watches = new Map<number, Channel<WatchEvent>>();
  readonly #onMessage = (raw: unknown) => this.#receive(raw as Reply);

  constructor() {
    if (!process.send) throw new Error('IpcStore needs an IPC channel to the parent');
    process.on('message', this.#onMessage);
  }

  #receive(msg: Reply): void {
    if (msg?.t === 'store-ret') {
      const call = this.#calls.get(msg.id);
      this.#calls.delete(msg.id);
      if (!call) return;
      if (msg.ok) call.resolve(msg.value);
      else call.reject(reviveError(msg.error));
    } else if (msg?.t === 'store-event') {
      this.#watches.get(msg.id)?.push(msg.event);
    } else if (msg?.t === 'store-watch-end') {
      const ch = this.#watches.get(msg.id);
      this.#watches.delete(msg.id);
      if (msg.error) ch?.fail(reviveError(msg.error));
      else ch?.end();
    }
  }

  #call<T>(op: string, args: unknown[]): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#calls.set(id, { resolve: resolve as (v: unknown) => void, reject });
      process.send?.({ t: 'store-call', id, op, args: args.filter((a) => a !== undefined) });
    });
  }

  now = () => this.#call<number>('now', []);
  get: Store['get'] = (...a) => this.#call('get', a);
  range: Store['range'] = (...a) => this.#call('range', a);
  put: Store['put'] = (...a) => this.#call('put', a);
  delete: Store['delete'] = (...a) => this.#call('delete', a);
  txn: Store['txn'] = (...a) => this.#call('txn', a);
  grant: Store['grant'] = (...a) => this.#call('grant', a);
  keepAlive: Store['keepAlive'] = (...a) => this.#call('keepAlive', a);
  revoke: Store['revoke'] = (...a) => this.#call('revoke', a);
  leaseInfo: Store['leaseInfo'] = (...a) => this.#call('leaseInfo', a);
  compact: Store['compact'] = (...a) => this.#call('compact', a);
  status: Store['status'] = (...a) => this.#call('status', a);

  watch(prefix: string, options: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    const id = this.#next++;
    const channel = new Channel<WatchEvent>({
      signal: options.signal,
      onClose: () => {
        this.#watches.delete(id);
        process.send?.({ t: 'store-unwatch', id });
      },
    });
    if (channel.closed) return channel;
    this.#watches.set(id, channel);
    process.send?.({
      t: 'store-watch',
      id,
      prefix,
      ...(options.fromRevision !== undefined ? { fromRevision: options.fromRevision } : {}),
    });
    return channel;
  }

  #unsupported = async (): Promise<never> => {
    throw new StoreError('the queue half of the port is not served over the test IPC store');
  };
  enqueue = this.#unsupported as Store['enqueue'];
  claim = this.#unsupported as Store['claim'];
  renew = this.#unsupported as Store['renew'];
  settle = this.#unsupported as Store['settle'];
  getItem = this.#unsupported as Store['getItem'];
  listItems = this.#unsupported as Store['listItems'];
  countItems = this.#unsupported as Store['countItems'];
  changes = this.#unsupported as Store['changes'];
  sweep = this.#unsupported as Store['sweep'];
  subscribe(): () => void {
    return () => undefined;
  }

  async close(): Promise<void> {
    for (const ch of [...this.#watches.values()]) ch.end();
    process.off('message', this.#onMessage);
  }
}

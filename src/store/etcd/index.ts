/**
 * The etcd store: the whole port on etcd's own KV, txns, leases and watches (the `etcd3` client).
 *
 * etcd has no clock to offer, so `now()` is this process's clock (`serverClock: false`). No
 * guarantee rests on clocks agreeing: key leases expire by etcd's leader, and every claim, settle
 * and once-per-slot decision is a compare-and-swap on a record's modRevision. Skew between hosts
 * can only make a queue lease look expired earlier or later; the fencing compare decides who wins.
 */
import { CompactedError } from '../../errors.js';
import type { Clock } from '../../time/clock.js';
import { Channel } from '../../util/channel.js';
import type {
  ChangesQuery,
  ClaimRequest,
  DeleteOptions,
  ListQuery,
  NewItem,
  PutOptions,
  RangeOptions,
  RenewEntry,
  SettleOp,
  Store,
  StoreCapabilities,
  SweepOptions,
  TxnRequest,
  WatchEvent,
  WatchOptions,
} from '../port.js';
import { withValidation } from '../validating-store.js';
import { prefixEnd, toKeyValue } from './codec.js';
import { EtcdConnection } from './connection.js';
import { EtcdKv } from './kv.js';
import { Layout } from './layout.js';
import { EtcdLeases } from './leases.js';
import { claim } from './queue/claim.js';
import { QueueContext } from './queue/context.js';
import { enqueue } from './queue/enqueue.js';
import { QueueKeys } from './queue/keys.js';
import { changes, countItems, getItem, listItems } from './queue/reads.js';
import { renew, settle } from './queue/settle.js';
import { Subscriptions } from './queue/subscribe.js';
import { sweep } from './queue/sweep.js';
import { type EtcdSettings, type EtcdStoreOptions, parseEtcdSettings } from './settings.js';
import { ResumableWatch } from './watch.js';

export type { EtcdStoreOptions } from './settings.js';

export const ETCD_CAPABILITIES: StoreCapabilities = Object.freeze({
  name: 'etcd',
  serverClock: false,
  multiProcess: true,
  persistent: true,
  maxKeyBytes: 4096,
  // A value must fit in one etcd request (--max-request-bytes, 1.5 MiB by default).
  maxValueBytes: 1024 * 1024,
  leaseGranularityMs: 1000,
  queueThroughput: 'low',
});

/** One client of an etcd store. Use {@link openEtcdStore} (or `openStore('etcd://...')`). */
export class EtcdStore implements Store {
  readonly capabilities = ETCD_CAPABILITIES;
  readonly settings: EtcdSettings;
  readonly #conn: EtcdConnection;
  readonly #layout: Layout;
  readonly #kv: EtcdKv;
  readonly #leases: EtcdLeases;
  readonly #queue: QueueContext;
  readonly #subscriptions: Subscriptions;
  readonly #channels = new Set<Channel<WatchEvent>>();
  readonly #clock: Clock;
  #lastNow = 0;
  #closed = false;

  constructor(settings: EtcdSettings) {
    this.settings = settings;
    this.#clock = settings.clock;
    this.#conn = new EtcdConnection(settings);
    this.#layout = new Layout(settings.prefix);
    this.#kv = new EtcdKv(this.#conn, this.#layout);
    this.#leases = new EtcdLeases(this.#conn, this.#layout);
    const keys = new QueueKeys(this.#layout.queue);
    this.#queue = new QueueContext(this.#conn, keys, () => this.#now());
    this.#subscriptions = new Subscriptions(this.#conn, keys);
  }

  /** The local clock, never going backwards within this client. */
  #now(): number {
    this.#lastNow = Math.max(this.#lastNow, this.#clock.now());
    return this.#lastNow;
  }

  async now() {
    return this.#now();
  }

  get(key: string) {
    return this.#kv.get(key);
  }
  range(prefix: string, options: RangeOptions = {}) {
    return this.#kv.range(prefix, options.limit, options.startAfter);
  }
  put(key: string, value: Uint8Array, options: PutOptions = {}) {
    return this.#kv.put(key, value, options.lease);
  }
  delete(key: string, options: DeleteOptions = {}) {
    return this.#kv.delete(key, options.prefix ?? false);
  }
  txn(request: TxnRequest) {
    return this.#kv.txn(request);
  }
  compact(revision: number) {
    return this.#kv.compact(revision);
  }
  status() {
    return this.#kv.status();
  }

  grant(ttl: number) {
    return this.#leases.grant(ttl);
  }
  keepAlive(id: string) {
    return this.#leases.keepAlive(id);
  }
  revoke(id: string) {
    return this.#leases.revoke(id);
  }
  leaseInfo(id: string) {
    return this.#leases.info(id);
  }

  watch(prefix: string, options: WatchOptions = {}) {
    const key = this.#layout.userKey(prefix);
    const strip = this.#layout.kvPrefix.length;
    const watch = new ResumableWatch(this.#conn, { key, rangeEnd: prefixEnd(key) }, options.fromRevision, {
      events: (events) => {
        for (const e of events) {
          const kv = toKeyValue(e.kv, strip);
          channel.push({ type: e.type === 'Delete' ? 'delete' : 'put', kv, revision: kv.modRevision });
        }
      },
      failed: (err) => channel.fail(err),
      compacted: (revision) => {
        this.#kv.physicalCompactRevision = Math.max(this.#kv.physicalCompactRevision, revision);
      },
    });
    const channel: Channel<WatchEvent> = new Channel<WatchEvent>({
      ...(options.signal ? { signal: options.signal } : {}),
      onClose: () => {
        watch.close();
        this.#channels.delete(channel);
      },
    });
    if (channel.closed) return channel;
    this.#channels.add(channel);
    const from = options.fromRevision;
    if (from === undefined) watch.start();
    else {
      // This store's own compaction point is logical (etcd compacts a whole cluster at once).
      this.#kv.compactRevision().then(
        (compacted) => {
          if (channel.closed) return;
          if (from <= compacted) {
            channel.fail(
              new CompactedError(`revision ${from} was compacted (compact revision ${compacted})`, {
                detail: { revision: from, compactRevision: compacted },
              }),
            );
          } else watch.start();
        },
        (err) => channel.fail(err),
      );
    }
    return channel;
  }

  enqueue(items: NewItem[]) {
    return enqueue(this.#queue, items);
  }
  claim(request: ClaimRequest) {
    return claim(this.#queue, request);
  }
  renew(entries: RenewEntry[], leaseTtl: number) {
    return renew(this.#queue, entries, leaseTtl);
  }
  settle(ops: SettleOp[]) {
    return settle(this.#queue, ops);
  }
  getItem(id: string) {
    return getItem(this.#queue, id);
  }
  listItems(query: ListQuery) {
    return listItems(this.#queue, query);
  }
  countItems(queue?: string) {
    return countItems(this.#queue, queue);
  }
  changes(query: ChangesQuery) {
    return changes(this.#queue, query);
  }
  sweep(options?: SweepOptions) {
    return sweep(this.#queue, options);
  }
  subscribe(queue: string, listener: () => void) {
    return this.#subscriptions.subscribe(queue, listener);
  }

  async close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const channel of [...this.#channels]) channel.end();
    this.#subscriptions.close();
    this.#conn.close();
  }
}

/** Open an etcd store from `etcd://host:2379[,host2:2379][/?prefix=...]` and options (validated at the edge). */
export async function openEtcdStore(url: string, options: EtcdStoreOptions = {}): Promise<Store> {
  return withValidation(new EtcdStore(parseEtcdSettings(url, options as Record<string, unknown>)));
}

/**
 * Delete every key under `prefix` (the KV keys, the queue, the markers) and revoke `leases`.
 * For tests and tooling: it bypasses the store and cannot be undone.
 */
export async function dropEtcdPrefix(
  url: string,
  prefix: string,
  leases: Iterable<string> = [],
): Promise<void> {
  const settings = parseEtcdSettings(url, { prefix });
  const conn = new EtcdConnection(settings);
  try {
    const layout = new Layout(settings.prefix);
    const revoke = new EtcdLeases(conn, layout);
    await Promise.all([...leases].map((id) => revoke.revoke(id)));
    const start = Buffer.from(settings.prefix, 'utf8');
    await conn.write('drop', () => conn.client.kv.deleteRange({ key: start, range_end: prefixEnd(start) }));
  } finally {
    conn.close();
  }
}

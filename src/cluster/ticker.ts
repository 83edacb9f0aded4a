/**
 * Distributed tickers (cluster.md §2.5). The shared entry `cluster/tickers/<name>` holds
 * `{ next, interval, seq, updatedBy }` in store time. Every ready node arms a local timer for
 * `next`; when it fires, the node re-reads store time and advances the entry with a
 * compare-and-swap: the winner delivers the tick, the others adopt the new entry. Only ready nodes
 * (a consumer waiting, or room in the buffer) compete, so a busy node never wins a tick it cannot
 * deliver, and slots nobody took are reported in `tick.missed`. Delivery is at most once per slot.
 */
import { decodeJson, encodeJson, type RotaContext } from '../core/context.js';
import type { EventBus } from '../core/events.js';
import { encodeName } from '../core/keys.js';
import { KvCache } from '../core/kv-cache.js';
import type { Logger } from '../core/logger.js';
import type { KeyValue } from '../store/port.js';
import type { TimerHandle } from '../time/clock.js';
import { Channel } from '../util/channel.js';
import { checkBoolean, checkInt, checkName, checkOptions, checkSignal, invalid } from '../validate.js';

declare module '../core/events.js' {
  interface RotaEventMap {
    'ticker:changed': { name: string; interval: number };
    'ticker:stopped': { name: string };
  }
}

/** One tick, delivered to exactly one ready node. */
export interface Tick {
  readonly name: string;
  /** The slot's store time. */
  readonly at: number;
  /** Sequence number of the tick (never repeated). */
  readonly seq: number;
  /** Slots that went by without any ready node. */
  readonly missed: number;
}

export interface TickerOptions {
  /** First tick at creation time instead of one interval later (default false). */
  immediate?: boolean;
  /** Ticks this node may hold undelivered (default 1; 0 = compete only while a consumer waits). */
  buffer?: number;
  /** Where this ticker logs (default: the node's logger). */
  logger?: Logger;
  /** Aborting ends this node's iterator (like `close()`). */
  signal?: AbortSignal;
}

interface TickerEntry {
  next: number;
  interval: number;
  seq: number;
  updatedBy: string;
}

function decodeEntry(kv: KeyValue): TickerEntry | undefined {
  const e = decodeJson<TickerEntry>(kv.value);
  if (typeof e !== 'object' || e === null) return undefined;
  if (
    !Number.isFinite(e.next) ||
    !Number.isInteger(e.interval) ||
    e.interval <= 0 ||
    !Number.isInteger(e.seq)
  ) {
    return undefined;
  }
  return e;
}

function checkInterval(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    invalid(field, `must be a positive integer number of milliseconds, got ${String(value)}`);
  }
  return value;
}

export class Ticker implements AsyncIterable<Tick> {
  readonly key: string;
  readonly #channel: Channel<Tick>;
  readonly #cache: KvCache<TickerEntry>;
  readonly #stop = new AbortController();
  readonly #buffer: number;
  readonly #logger: Logger;
  #entry: { value: TickerEntry; modRevision: number } | null = null;
  #timer: TimerHandle | undefined;
  #firing = false;
  #interval: number;

  private constructor(
    private readonly ctx: RotaContext,
    private readonly events: EventBus,
    readonly name: string,
    interval: number,
    options: TickerOptions,
  ) {
    this.#interval = interval;
    this.#buffer = options.buffer ?? 1;
    this.#logger = options.logger ?? ctx.logger;
    this.key = ctx.keys.key('cluster', 'tickers', encodeName(name));
    this.#channel = new Channel<Tick>({
      signal: options.signal,
      onClose: () => this.#shutdown(),
      onPull: () => this.#arm(),
    });
    this.#cache = new KvCache<TickerEntry>({
      // The exact key as prefix; other tickers' keys that extend it are filtered out below.
      store: ctx.store,
      prefix: this.key,
      decode: decodeEntry,
      clock: ctx.clock,
      random: ctx.random,
      logger: this.#logger,
      onChange: (change) => {
        if (change.type === 'put' && change.key !== this.key) return;
        if (change.type === 'delete' && change.key !== this.key) return;
        this.#adopt();
      },
    });
    ctx.closing.addEventListener('abort', this.#onClosing, { once: true });
  }

  readonly #onClosing = () => this.close();

  /** @internal Use `cluster.ticker()`. */
  static async create(
    ctx: RotaContext,
    events: EventBus,
    name: string,
    interval: number,
    options: TickerOptions = {},
  ): Promise<Ticker> {
    checkName('name', name);
    checkInterval('interval', interval);
    checkOptions('options', options, ['immediate', 'buffer', 'logger', 'signal']);
    const immediate =
      options.immediate === undefined ? false : checkBoolean('options.immediate', options.immediate);
    if (options.buffer !== undefined) checkInt('options.buffer', options.buffer, 0, 1_000_000);
    checkSignal('options.signal', options.signal);
    ctx.assertOpen();
    const ticker = new Ticker(ctx, events, name, interval, options);
    await ticker.#init(immediate);
    return ticker;
  }

  async #init(immediate: boolean): Promise<void> {
    const { store } = this.ctx;
    for (;;) {
      const [{ kv }, storeNow] = await this.ctx.retry(() => Promise.all([store.get(this.key), store.now()]));
      const current = kv ? decodeEntry(kv) : undefined;
      if (current && current.interval === this.#interval) break; // adopt the shared entry
      const entry: TickerEntry = {
        next: storeNow + (immediate ? 0 : this.#interval),
        interval: this.#interval,
        seq: current?.seq ?? 0,
        updatedBy: this.ctx.nodeId,
      };
      const res = await this.ctx.retry(() =>
        store.txn({
          compare: [{ key: this.key, target: 'modRevision', op: '==', value: kv?.modRevision ?? 0 }],
          success: [{ type: 'put', key: this.key, value: encodeJson(entry) }],
        }),
      );
      if (res.succeeded) break;
    }
    await this.#cache.start(this.#stop.signal);
    this.#adopt();
  }

  /** Take the cached entry as truth: end on delete, report interval changes, re-arm. */
  #adopt(): void {
    const cached = this.#cache.get(this.key);
    if (!cached) {
      if (this.#entry !== null || this.#cache.revision > 0) {
        this.#entry = null;
        if (!this.#channel.closed) {
          this.events.emit('ticker:stopped', { name: this.name });
          this.#channel.end();
        }
      }
      return;
    }
    if (cached.value.interval !== this.#interval) {
      this.#interval = cached.value.interval;
      this.events.emit('ticker:changed', { name: this.name, interval: this.#interval });
    }
    this.#entry = { value: cached.value, modRevision: cached.kv.modRevision };
    this.#arm();
  }

  #ready(): boolean {
    return this.#channel.waiting || this.#channel.size < this.#buffer;
  }

  #arm(): void {
    this.ctx.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#channel.closed || !this.#entry || this.#firing || !this.#ready()) return;
    const delay = this.ctx.time.until(this.#entry.value.next);
    this.#timer = this.ctx.clock.setTimeout(() => void this.#fire(), delay);
  }

  async #fire(): Promise<void> {
    const entry = this.#entry;
    if (!entry || this.#channel.closed || !this.#ready() || this.#firing) return;
    this.#firing = true;
    let retryIn: number | null = null;
    try {
      const storeNow = await this.ctx.store.now();
      const { next, interval, seq } = entry.value;
      if (storeNow < next) {
        // The local estimate fired early: wait the rest, measured against the store's answer.
        retryIn = next - storeNow;
        return;
      }
      const k = Math.floor((storeNow - next) / interval) + 1;
      const advanced: TickerEntry = {
        next: next + k * interval,
        interval,
        seq: seq + 1,
        updatedBy: this.ctx.nodeId,
      };
      const res = await this.ctx.store.txn({
        compare: [{ key: this.key, target: 'modRevision', op: '==', value: entry.modRevision }],
        success: [{ type: 'put', key: this.key, value: encodeJson(advanced) }],
      });
      if (res.succeeded) {
        if (this.#entry === entry) this.#entry = { value: advanced, modRevision: res.revision };
        this.#channel.push({ name: this.name, at: next, seq: seq + 1, missed: k - 1 });
      }
      // A lost compare: someone else advanced it; the watch brings the new entry and re-arms.
    } catch (err) {
      this.#logger.warn(`ticker ${this.name}: store error, retrying`, { error: err });
      retryIn = Math.min(this.#interval, 1000);
    } finally {
      this.#firing = false;
      if (retryIn !== null) {
        this.ctx.clock.clearTimeout(this.#timer);
        if (!this.#channel.closed) this.#timer = this.ctx.clock.setTimeout(() => void this.#fire(), retryIn);
      } else this.#arm();
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Tick> {
    return this.#channel;
  }

  /** The next tick (or `done` once the ticker ended). */
  next(): Promise<IteratorResult<Tick>> {
    return this.#channel.next();
  }

  /** The current period for every node. */
  get interval(): number {
    return this.#interval;
  }

  /** New period for every node; the next tick comes one new period after now. */
  async reset(intervalMs: number): Promise<void> {
    checkInterval('interval', intervalMs);
    this.ctx.assertOpen();
    const storeNow = await this.ctx.retry(() => this.ctx.store.now());
    const seq = this.#entry?.value.seq ?? 0;
    const entry: TickerEntry = {
      next: storeNow + intervalMs,
      interval: intervalMs,
      seq,
      updatedBy: this.ctx.nodeId,
    };
    await this.ctx.retry(() => this.ctx.store.put(this.key, encodeJson(entry)));
  }

  /** Delete the shared entry: every node's ticker of this name ends. */
  async stop(): Promise<void> {
    this.ctx.assertOpen();
    await this.ctx.retry(() => this.ctx.store.delete(this.key));
  }

  /** End this node's iterator only; other nodes keep ticking. */
  close(): void {
    this.#channel.end();
  }

  #shutdown(): void {
    this.ctx.clock.clearTimeout(this.#timer);
    this.#stop.abort();
    this.ctx.closing.removeEventListener('abort', this.#onClosing);
  }
}

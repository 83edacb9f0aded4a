/**
 * Watches of one store client, multiplexed on one dedicated connection that reads the event
 * stream with a blocking XREAD. Stream entry ids are `<revision>-<n>` and every revision that
 * wrote has entries 0..k-1, so the stream is contiguous: a jump in ids means entries were trimmed
 * before they were read (`ROTA_COMPACTED`). A new watcher is registered before anything is read
 * for it, replays history with XRANGE up to the reader's position, then takes the reader's events
 * (buffered meanwhile); positions deduplicate the overlap. After a connection loss the reader
 * continues from its last id, so watchers resume with no gap and no duplicate.
 */
import { CompactedError, StoreError } from '../../errors.js';
import { systemClock } from '../../time/clock.js';
import { Channel } from '../../util/channel.js';
import type { KeyValue, WatchEvent, WatchOptions } from '../port.js';
import { Connection } from './connection.js';
import { failureKind } from './errors.js';
import type { RedisConfig } from './options.js';

/** A stream position; `seq` Infinity stands for "all of this revision". */
interface Pos {
  rev: number;
  seq: number;
}

interface Entry {
  pos: Pos;
  event: WatchEvent;
}

interface Watcher {
  prefix: string;
  channel: Channel<WatchEvent>;
  live: boolean;
  buffer: Entry[];
  /** Entries at or before this were delivered or skipped. */
  last: Pos;
}

const MAX_SEQ = '18446744073709551615';
const EMPTY = new Uint8Array(0);
const PAGE = 1000;
const BLOCK_MS = 5000;

const idOf = (p: Pos) => `${p.rev}-${p.seq === Number.POSITIVE_INFINITY ? MAX_SEQ : p.seq}`;
const after = (a: Pos, b: Pos) => a.rev > b.rev || (a.rev === b.rev && a.seq > b.seq);
/** Whether `next` directly follows `last` in a contiguous stream. */
const follows = (last: Pos, next: Pos) =>
  (next.rev === last.rev && last.seq !== Number.POSITIVE_INFINITY && next.seq === last.seq + 1) ||
  (next.rev === last.rev + 1 && next.seq === 0);

type RawEntry = [Buffer, Buffer[]];

function decodeEntry([id, fields]: RawEntry): Entry {
  const [r, s] = id.toString().split('-');
  const pos = { rev: Number(r), seq: Number(s) };
  const key = (fields[1] as Buffer).toString('utf8');
  let kv: KeyValue;
  if (fields.length >= 6) {
    const value = fields[3] as Buffer;
    const [c, , ver, lease] = (fields[5] as Buffer).toString('utf8').split(',');
    kv = {
      key,
      value: new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
      createRevision: Number(c),
      modRevision: pos.rev,
      version: Number(ver),
      lease: lease ? lease : null,
    };
    return { pos, event: { type: 'put', kv, revision: pos.rev } };
  }
  kv = { key, value: EMPTY, createRevision: 0, modRevision: pos.rev, version: 0, lease: null };
  return { pos, event: { type: 'delete', kv, revision: pos.rev } };
}

/** What the hub needs from its store. */
export interface HubStore {
  /** Current revision and compaction point (also feeds the lease sweeper). */
  status(): Promise<{ revision: number; compactRevision: number }>;
  /** XRANGE on the main connection, buffers kept. */
  range(start: string, end: string, count: number): Promise<RawEntry[]>;
  /** A watch started: the store subscribes to lease grants so it can expire them. */
  watching(): void;
}

export class WatchHub {
  readonly #config: RedisConfig;
  readonly #store: HubStore;
  readonly #key: string;
  #reader: Connection | undefined;
  readonly #watchers = new Set<Watcher>();
  #cursor: Pos | null = null;
  #loop: Promise<void> | null = null;
  #starting: Promise<void> | null = null;
  #closed = false;

  constructor(config: RedisConfig, store: HubStore) {
    this.#config = config;
    this.#store = store;
    this.#key = `${config.base}:events`;
  }

  watch(prefix: string, options: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    const watcher: Watcher = {
      prefix,
      live: false,
      buffer: [],
      last: { rev: 0, seq: 0 },
      channel: new Channel<WatchEvent>({
        signal: options.signal,
        onClose: () => this.#watchers.delete(watcher),
      }),
    };
    if (watcher.channel.closed) return watcher.channel;
    // Registered at once, so the reader buffers for it from its current position on.
    this.#watchers.add(watcher);
    this.#store.watching();
    this.#register(watcher, options.fromRevision).catch((err) => watcher.channel.fail(err));
    return watcher.channel;
  }

  async #register(w: Watcher, fromRevision: number | undefined): Promise<void> {
    await this.#start();
    const at = this.#cursor as Pos;
    const status = await this.#store.status();
    if (fromRevision !== undefined && fromRevision <= status.compactRevision) {
      throw new CompactedError(
        `revision ${fromRevision} was compacted (compact revision ${status.compactRevision})`,
        { detail: { revision: fromRevision, compactRevision: status.compactRevision } },
      );
    }
    const from = fromRevision ?? status.revision + 1;
    w.last = { rev: from - 1, seq: Number.POSITIVE_INFINITY };
    // Replay (from - 1, at]: what the reader had passed when this watcher joined.
    let last = w.last;
    let start = `(${idOf(last)}`;
    while (at.rev >= from && !w.channel.closed) {
      const page = (await this.#store.range(start, idOf(at), PAGE)).map(decodeEntry);
      if (page.length === 0) {
        if (last.rev < from) this.#compacted(w, from);
        break;
      }
      for (const e of page) {
        if (!follows(last, e.pos)) return this.#compacted(w, from);
        last = e.pos;
      }
      this.#deliver(w, page);
      if (page.length < PAGE) break;
      start = `(${idOf(last)}`;
    }
    if (w.channel.closed) return;
    const buffered = w.buffer;
    w.buffer = [];
    w.live = true;
    this.#deliver(w, buffered);
  }

  #compacted(w: Watcher, from: number): void {
    w.channel.fail(
      new CompactedError(`revision ${from} is no longer in the history (trimmed)`, {
        detail: { revision: from },
      }),
    );
  }

  #deliver(w: Watcher, entries: Entry[]): void {
    for (const e of entries) {
      if (!after(e.pos, w.last)) continue;
      w.last = e.pos;
      if (e.event.kv.key.startsWith(w.prefix)) w.channel.push(e.event);
    }
  }

  /** Make sure the reader runs and knows its position. */
  #start(): Promise<void> {
    if (this.#loop && this.#cursor) return Promise.resolve();
    if (!this.#starting) {
      this.#starting = (async () => {
        const { revision } = await this.#store.status();
        if (!this.#loop) {
          this.#cursor = { rev: revision, seq: Number.POSITIVE_INFINITY };
          this.#loop = this.#run();
        }
      })().finally(() => {
        this.#starting = null;
      });
    }
    return this.#starting;
  }

  #readerConnection(): Connection {
    if (!this.#reader) this.#reader = new Connection(this.#config, 'watch');
    return this.#reader;
  }

  async #run(): Promise<void> {
    const reader = this.#readerConnection();
    let lost = false;
    while (!this.#closed && this.#watchers.size > 0) {
      try {
        await reader.ready(systemClock.monotonic() + this.#config.storeTimeout);
        if (lost) {
          lost = false;
          await this.#checkHistory();
        }
        const cursor = this.#cursor as Pos;
        const reply = (await reader.redis.callBuffer(
          'XREAD',
          'COUNT',
          PAGE,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          this.#key,
          idOf(cursor),
        )) as [Buffer, RawEntry[]][] | null;
        if (reply?.[0]) this.#dispatch(reply[0][1].map(decodeEntry));
      } catch (err) {
        if (this.#closed) break;
        if (failureKind(err) === 'reply') {
          this.#failAll(new StoreError('the watch stream could not be read', { cause: err }));
          break;
        }
        // Connection trouble: wait for the reconnect and continue from the cursor.
        lost = true;
        await new Promise<void>((r) => systemClock.setTimeout(r, 100));
      }
    }
    this.#loop = null;
    this.#cursor = null;
    // A watcher may have joined while the last read was finishing.
    if (!this.#closed && this.#watchers.size > 0) this.#start().catch((err) => this.#failAll(err));
  }

  /** After a reconnect: a server that restarted without its data has a lower revision. */
  async #checkHistory(): Promise<void> {
    const { revision } = await this.#store.status();
    if (this.#cursor && revision < this.#cursor.rev) {
      this.#failAll(
        new CompactedError(
          `the Redis server's revision went back from ${this.#cursor.rev} to ${revision} (data lost in a restart?)`,
          { detail: { revision } },
        ),
      );
    }
  }

  #dispatch(entries: Entry[]): void {
    let cursor = this.#cursor as Pos;
    for (const e of entries) {
      if (!follows(cursor, e.pos)) {
        // The reader fell behind the trim point: history its watchers need is gone.
        this.#failAll(
          new CompactedError(`watch history after revision ${cursor.rev} was trimmed before it was read`, {
            detail: { revision: cursor.rev + 1 },
          }),
        );
        return;
      }
      cursor = e.pos;
    }
    this.#cursor = cursor;
    for (const w of this.#watchers) {
      if (w.live) this.#deliver(w, entries);
      else w.buffer.push(...entries);
    }
  }

  #failAll(err: unknown): void {
    for (const w of [...this.#watchers]) w.channel.fail(err);
    this.#watchers.clear();
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const w of [...this.#watchers]) w.channel.end();
    this.#watchers.clear();
    await this.#reader?.close(false);
  }
}

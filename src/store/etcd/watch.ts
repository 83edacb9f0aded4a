/**
 * A resumable etcd watch on its own gRPC stream. It remembers the next revision it needs (one past
 * the last delivered event, or past the creation revision) and, when the stream breaks, opens a
 * new one from that revision: no gap, no duplicate. etcd delivers all events of one revision in
 * one response (fragmentation is off), so a resume never splits a txn. A revision etcd already
 * compacted ends the watch with `ROTA_COMPACTED`.
 *
 * The driver's own watch manager is not used: it advances its resume point to the response
 * header's revision, which can skip events that were still being replayed when the stream broke.
 */
import type { IDuplexStream, IEvent, IWatchRequest, IWatchResponse } from 'etcd3';
import { CompactedError, type RotaError, StoreError } from '../../errors.js';
import { num } from './codec.js';
import type { EtcdConnection } from './connection.js';
import { isTransient, mapEtcdError } from './errors.js';

export interface WatchTarget {
  key: Buffer;
  rangeEnd: Buffer;
  /** etcd filters: `Noput` drops puts, `Nodelete` drops deletes. */
  filters?: ('Noput' | 'Nodelete')[];
}

export interface WatchHandlers {
  /** Events of one response, in revision order. */
  events(events: IEvent[]): void;
  /** The watch ended for good. */
  failed(error: RotaError): void;
  /** A broken stream was replaced (events in between were replayed). */
  resumed?(): void;
  /** etcd reported its compaction revision. */
  compacted?(revision: number): void;
}

const BACKOFF_MIN = 50;
const BACKOFF_MAX = 2_000;

type Stream = IDuplexStream<IWatchRequest, IWatchResponse>;

export class ResumableWatch {
  readonly #conn: EtcdConnection;
  readonly #target: WatchTarget;
  readonly #handlers: WatchHandlers;
  #next: number | undefined;
  #stream: Stream | null = null;
  #generation = 0;
  #closed = false;
  #backoff = BACKOFF_MIN;
  #timer: NodeJS.Timeout | undefined;
  #broken = false;

  constructor(
    conn: EtcdConnection,
    target: WatchTarget,
    fromRevision: number | undefined,
    handlers: WatchHandlers,
  ) {
    this.#conn = conn;
    this.#target = target;
    this.#next = fromRevision;
    this.#handlers = handlers;
  }

  start(): void {
    void this.#connect();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#drop();
  }

  /** End and cancel the current stream (half-close first, so the driver does not reset the host). */
  #drop(): void {
    const stream = this.#stream;
    this.#stream = null;
    this.#generation++;
    if (!stream) return;
    try {
      stream.end();
      stream.cancel();
    } catch {
      // already torn down
    }
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const generation = ++this.#generation;
    let stream: Stream;
    try {
      stream = await this.#conn.client.watchClient.watch();
    } catch (err) {
      this.#broke(generation, err);
      return;
    }
    if (this.#closed || generation !== this.#generation) {
      stream.end();
      stream.cancel();
      return;
    }
    this.#stream = stream;
    stream.on('data', (res) => this.#onResponse(generation, res));
    stream.on('error', (err) => this.#broke(generation, err));
    stream.on('end', () => this.#broke(generation, new Error('watch stream ended')));
    stream.write({
      create_request: {
        key: this.#target.key,
        range_end: this.#target.rangeEnd,
        start_revision: this.#next ?? 0,
        ...(this.#target.filters ? { filters: this.#target.filters } : {}),
      },
    });
  }

  #onResponse(generation: number, res: IWatchResponse): void {
    if (this.#closed || generation !== this.#generation) return;
    if (res.canceled) {
      const compactRevision = num(res.compact_revision);
      this.close();
      if (compactRevision > 0) {
        this.#handlers.compacted?.(compactRevision);
        this.#handlers.failed(
          new CompactedError(`watch: revision ${this.#next} was compacted by etcd (at ${compactRevision})`, {
            detail: { revision: this.#next, compactRevision },
          }),
        );
      } else {
        this.#handlers.failed(new StoreError(`watch: etcd cancelled the watch: ${res.cancel_reason}`));
      }
      return;
    }
    if (res.created) {
      this.#backoff = BACKOFF_MIN;
      // Without a start revision etcd watches from one past its current revision.
      if (this.#next === undefined) this.#next = num(res.header.revision) + 1;
      if (this.#broken) {
        this.#broken = false;
        this.#handlers.resumed?.();
      }
    }
    const events = res.events;
    if (events.length === 0) return;
    this.#next = num((events[events.length - 1] as IEvent).kv.mod_revision) + 1;
    this.#handlers.events(events);
  }

  #broke(generation: number, err: unknown): void {
    if (this.#closed || generation !== this.#generation) return;
    this.#drop();
    const transient = isTransient(err) || (err instanceof Error && err.message === 'watch stream ended');
    if (!transient) {
      this.#closed = true;
      this.#handlers.failed(mapEtcdError(err, 'watch', false));
      return;
    }
    this.#broken = true;
    const wait = this.#backoff;
    this.#backoff = Math.min(BACKOFF_MAX, this.#backoff * 2);
    // Not unref'd: a consumer awaiting this watch must keep the process alive while it reconnects.
    this.#timer = setTimeout(() => void this.#connect(), wait);
  }
}

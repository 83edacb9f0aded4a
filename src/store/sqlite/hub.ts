/**
 * The per-process, per-file hub: what every client of one database file in this process shares.
 *
 * - Watches: the hub reads the change log by revision after each local commit (at once, in a
 *   microtask) and whenever `PRAGMA data_version` shows another process committed (polled every
 *   `pollInterval` ms), and hands each event to the watchers whose prefix matches.
 * - Wake-ups: the same reads look for items that became runnable, completed or deleted since the
 *   last look (by changeSeq) and call the subscribers of their queues.
 * - Leases: a timer at the earliest lease expiry deletes expired leases' keys even when nobody
 *   writes, so watchers see the deletes.
 *
 * The hub reads through a connection of its own (a file) or the client's (`:memory:`).
 */
import { CompactedError, type RotaError } from '../../errors.js';
import { systemClock, type TimerHandle } from '../../time/clock.js';
import type { Channel } from '../../util/channel.js';
import type { WatchEvent } from '../port.js';
import { WakeListeners } from '../wake-listeners.js';
import type { Connection } from './connection.js';
import { isBusy, mapSqliteError } from './errors.js';
import { type EventRow, expireLeases, readEvents, toWatchEvent } from './kv.js';
import { DATA_VERSION } from './sql/counters.js';
import { WOKEN_QUEUES } from './sql/items.js';
import { EARLIEST_LEASE_EXPIRY } from './sql/leases.js';

const PAGE = 2000;

interface HubWatcher {
  prefix: string;
  /** Deliver events with revision ≥ this. */
  from: number;
  channel: Channel<WatchEvent>;
}

export class Hub {
  readonly key: string;
  readonly #conn: Connection;
  readonly #ownsConnection: boolean;
  readonly #now: () => number;
  #refs = 0;
  #closed = false;
  #watchers = new Set<HubWatcher>();
  /** Highest change-log position read for the live watchers. */
  #delivered = { revision: 0, idx: Number.MAX_SAFE_INTEGER };
  readonly #subscribers = new WakeListeners();
  /** Items changed after this changeSeq have not been looked at for wake-ups yet. */
  #wakeCursor = 0;
  #dataVersion: number;
  #poll: TimerHandle | undefined;
  #leaseTimer: TimerHandle | undefined;
  #leaseTimerAt = Number.POSITIVE_INFINITY;
  #drainScheduled = false;
  readonly #onClosed: () => void;

  constructor(
    key: string,
    conn: Connection,
    ownsConnection: boolean,
    now: () => number,
    onClosed: () => void,
  ) {
    this.key = key;
    this.#conn = conn;
    this.#ownsConnection = ownsConnection;
    this.#now = now;
    this.#onClosed = onClosed;
    this.#dataVersion = this.#readDataVersion();
    if (!conn.settings.memory) this.#schedulePoll();
    this.refreshLeaseTimer();
  }

  acquire(): this {
    this.#refs++;
    return this;
  }

  release(): void {
    if (--this.#refs > 0 || this.#closed) return;
    this.#closed = true;
    systemClock.clearTimeout(this.#poll);
    systemClock.clearTimeout(this.#leaseTimer);
    for (const w of this.#watchers) w.channel.end();
    this.#watchers.clear();
    this.#subscribers.clear();
    if (this.#ownsConnection) this.#conn.close();
    this.#onClosed();
  }

  // ---------------------------------------------------------------------------------------------
  // Watches

  /**
   * Register a watcher: replay history from `fromRevision` up to what live delivery will start
   * after, in one read snapshot, so nothing falls between replay and live events.
   */
  addWatcher(prefix: string, fromRevision: number | undefined, channel: Channel<WatchEvent>): () => void {
    const watcher: HubWatcher = { prefix, from: 0, channel };
    this.#conn.read(() => {
      const { revision, compactRevision } = this.#conn.counters();
      if (fromRevision !== undefined && fromRevision <= compactRevision) {
        throw new CompactedError(
          `revision ${fromRevision} was compacted (compact revision ${compactRevision})`,
          {
            detail: { revision: fromRevision, compactRevision },
          },
        );
      }
      if (this.#watchers.size === 0) this.#delivered = { revision, idx: Number.MAX_SAFE_INTEGER };
      watcher.from = fromRevision ?? revision + 1;
      if (fromRevision !== undefined && fromRevision <= this.#delivered.revision) {
        let cursor = { revision: fromRevision, idx: -1 };
        for (;;) {
          const rows = readEvents(this.#conn, cursor, this.#delivered.revision, PAGE);
          for (const row of rows) this.#offer(watcher, row);
          const last = rows[rows.length - 1];
          if (!last || rows.length < PAGE) break;
          cursor = { revision: last.revision, idx: last.idx };
        }
      }
    });
    this.#watchers.add(watcher);
    return () => {
      this.#watchers.delete(watcher);
    };
  }

  #offer(watcher: HubWatcher, row: EventRow, event?: WatchEvent): WatchEvent | undefined {
    if (row.revision < watcher.from) return event;
    const e = event ?? toWatchEvent(row);
    if (e.kv.key.startsWith(watcher.prefix)) watcher.channel.push(e);
    return e;
  }

  #drainWatchers(): void {
    if (this.#watchers.size === 0) return;
    this.#conn.read(() => {
      const { revision, compactRevision } = this.#conn.counters();
      if (compactRevision > this.#delivered.revision) {
        // History this process had not read yet is gone: watchers that needed it fell behind.
        for (const w of [...this.#watchers]) {
          if (w.from <= compactRevision) {
            this.#watchers.delete(w);
            w.channel.fail(
              new CompactedError(
                `the watch fell behind: revisions up to ${compactRevision} were compacted before it read them`,
                { detail: { revision: this.#delivered.revision + 1, compactRevision } },
              ),
            );
          }
        }
        this.#delivered = { revision: compactRevision, idx: Number.MAX_SAFE_INTEGER };
      }
      for (;;) {
        const rows = readEvents(this.#conn, this.#delivered, revision, PAGE);
        for (const row of rows) {
          let event: WatchEvent | undefined;
          for (const w of this.#watchers) event = this.#offer(w, row, event);
        }
        const last = rows[rows.length - 1];
        if (last) this.#delivered = { revision: last.revision, idx: last.idx };
        if (!last || rows.length < PAGE) break;
      }
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Queue wake-ups

  subscribe(queue: string, listener: () => void): () => void {
    if (this.#subscribers.size === 0) this.#wakeCursor = this.#conn.counters().seq;
    return this.#subscribers.add(queue, listener);
  }

  #drainWakeups(): void {
    if (this.#subscribers.size === 0) return;
    const queues = this.#conn.read(() => {
      const seq = this.#conn.counters().seq;
      if (seq <= this.#wakeCursor) return [];
      const names = this.#conn.stmt(WOKEN_QUEUES).pluck().all(this.#wakeCursor) as string[];
      this.#wakeCursor = seq;
      return names;
    });
    if (queues.length > 0) this.#subscribers.fireNow(queues);
  }

  // ---------------------------------------------------------------------------------------------
  // Change detection

  /** A commit happened in this process: deliver its events and wake-ups in a microtask. */
  poke(): void {
    if (this.#drainScheduled || this.#closed) return;
    this.#drainScheduled = true;
    queueMicrotask(() => {
      this.#drainScheduled = false;
      this.#drain();
    });
  }

  /** Read what changed; false when the file was locked (the caller looks again later). */
  #drain(): boolean {
    if (this.#closed) return true;
    try {
      this.#drainWatchers();
      this.#drainWakeups();
      return true;
    } catch (err) {
      if (isBusy(err)) return false;
      // Anything but a lock ends the watches, with the cause.
      const error: RotaError = mapSqliteError(err, 'watch', this.#conn.settings.path);
      for (const w of this.#watchers) w.channel.fail(error);
      this.#watchers.clear();
      return true;
    }
  }

  #readDataVersion(): number {
    return this.#conn.stmt(DATA_VERSION).pluck().get() as number;
  }

  #schedulePoll(): void {
    this.#poll = systemClock.setTimeout(() => {
      if (this.#closed) return;
      try {
        const version = this.#readDataVersion();
        // The version is recorded only once its changes were read, so a locked read is retried.
        if (version !== this.#dataVersion && this.#drain()) {
          this.#dataVersion = version;
          this.refreshLeaseTimer();
        }
      } catch {
        // Transient (a lock during a checkpoint, say): the next poll tries again.
      }
      this.#schedulePoll();
    }, this.#conn.settings.pollInterval);
  }

  // ---------------------------------------------------------------------------------------------
  // Lease expiry

  /** Re-arm the expiry timer at the earliest lease expiry in the file. */
  refreshLeaseTimer(): void {
    if (this.#closed) return;
    let at: number;
    try {
      at =
        (this.#conn.stmt(EARLIEST_LEASE_EXPIRY).pluck().get() as number | null) ?? Number.POSITIVE_INFINITY;
    } catch {
      // Locked or failing: look again after one poll interval.
      at = this.#now() + this.#conn.settings.pollInterval;
    }
    if (at === this.#leaseTimerAt && this.#leaseTimer !== undefined) return;
    systemClock.clearTimeout(this.#leaseTimer);
    this.#leaseTimer = undefined;
    this.#leaseTimerAt = at;
    if (at === Number.POSITIVE_INFINITY) return;
    this.#leaseTimer = systemClock.setTimeout(() => {
      this.#leaseTimer = undefined;
      this.#leaseTimerAt = Number.POSITIVE_INFINITY;
      this.#expireLeases();
    }, at - this.#now());
  }

  #expireLeases(): void {
    if (this.#closed) return;
    try {
      const expired = this.#conn.write((counters) =>
        expireLeases(this.#conn, counters, this.#now(), this.#conn.settings.historyLimit),
      );
      if (expired > 0) this.poke();
    } catch {
      // Another process holds the lock for longer than busy_timeout: retry shortly.
      this.#leaseTimerAt = this.#now() + this.#conn.settings.pollInterval;
      this.#leaseTimer = systemClock.setTimeout(() => {
        this.#leaseTimer = undefined;
        this.#leaseTimerAt = Number.POSITIVE_INFINITY;
        this.#expireLeases();
      }, this.#conn.settings.pollInterval);
      return;
    }
    this.refreshLeaseTimer();
  }
}

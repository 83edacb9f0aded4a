/**
 * Watches of one client. Each watcher keeps a cursor (revision, index within it) into the
 * changelog and reads what follows it whenever something may have changed: a NOTIFY, a write of
 * this client, a (re)connection of the LISTEN connection, or the fallback poll. The changelog is
 * the truth; notifications only say "read now". After a broken connection the next read simply
 * continues from the cursor, so nothing is lost or repeated.
 */
import { CompactedError, isRotaError } from '../../errors.js';
import { Channel } from '../../util/channel.js';
import { toSafeInteger } from '../keys.js';
import type { WatchEvent, WatchOptions } from '../port.js';
import type { Db } from './db.js';
import { query } from './sql.js';

/** Rows read per round trip. */
const PAGE = 500;
/** The cursor index meaning "every change of the revision was delivered". */
const WHOLE = 2_147_483_647;
const EMPTY = new Uint8Array(0);

interface ChangeRow {
  head: string;
  compact_revision: string;
  revision: string | null;
  idx: number | null;
  deleted: boolean | null;
  key: string | null;
  value: Buffer | null;
  create_revision: string | null;
  version: string | null;
  lease: string | null;
}

interface Watcher {
  prefix: string;
  /** Everything up to (rev, idx) was delivered. */
  rev: number;
  idx: number;
  channel: Channel<WatchEvent>;
  active: boolean;
  busy: boolean;
  again: boolean;
  failures: number;
  retry: NodeJS.Timeout | undefined;
}

function eventOf(row: ChangeRow): WatchEvent {
  const revision = toSafeInteger(row.revision ?? 0);
  if (row.deleted) {
    return {
      type: 'delete',
      kv: {
        key: row.key as string,
        value: EMPTY,
        createRevision: 0,
        modRevision: revision,
        version: 0,
        lease: null,
      },
      revision,
    };
  }
  const value = row.value
    ? new Uint8Array(row.value.buffer, row.value.byteOffset, row.value.byteLength)
    : EMPTY;
  return {
    type: 'put',
    kv: {
      key: row.key as string,
      value,
      createRevision: toSafeInteger(row.create_revision ?? 0),
      modRevision: revision,
      version: toSafeInteger(row.version ?? 0, 'version'),
      lease: row.lease,
    },
    revision,
  };
}

export class WatchHub {
  readonly #db: Db;
  readonly #start: () => void;
  readonly #pollInterval: number;
  readonly #watchers = new Set<Watcher>();
  #poller: NodeJS.Timeout | undefined;
  #closed = false;

  /** `start` opens the LISTEN connection (idempotent). */
  constructor(db: Db, start: () => void, pollInterval: number) {
    this.#db = db;
    this.#start = start;
    this.#pollInterval = pollInterval;
  }

  watch(prefix: string, options: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    const watcher: Watcher = {
      prefix,
      rev: 0,
      idx: WHOLE,
      channel: new Channel<WatchEvent>({
        signal: options.signal,
        onClose: () => this.#remove(watcher),
      }),
      active: false,
      busy: false,
      again: false,
      failures: 0,
      retry: undefined,
    };
    if (watcher.channel.closed || this.#closed) {
      watcher.channel.end();
      return watcher.channel;
    }
    this.#watchers.add(watcher);
    this.#start();
    this.#arm();
    void this.#begin(watcher, options.fromRevision);
    return watcher.channel;
  }

  async #begin(watcher: Watcher, fromRevision: number | undefined): Promise<void> {
    try {
      if (fromRevision === undefined) {
        const res = await this.#db.run<{ revision: string }>(query('kv-status'), [], { write: false });
        watcher.rev = toSafeInteger(res.rows[0]?.revision ?? 0);
      } else {
        watcher.rev = fromRevision - 1;
      }
      watcher.idx = WHOLE;
      watcher.active = true;
      await this.#poll(watcher);
    } catch (err) {
      if (!watcher.channel.closed && !this.#closed) watcher.channel.fail(err);
    }
  }

  /** Something may have changed: every watcher reads from its cursor. */
  wakeAll(): void {
    for (const watcher of this.#watchers) void this.#poll(watcher);
  }

  async #poll(watcher: Watcher): Promise<void> {
    if (!watcher.active || watcher.channel.closed) return;
    if (watcher.busy) {
      watcher.again = true;
      return;
    }
    watcher.busy = true;
    try {
      do {
        watcher.again = false;
        if (await this.#read(watcher)) watcher.again = true;
      } while (watcher.again && !watcher.channel.closed);
      watcher.failures = 0;
    } catch (err) {
      if (watcher.channel.closed || this.#closed) return;
      if (isRotaError(err, 'ROTA_STORE_UNAVAILABLE')) {
        // Connection trouble: read again from the same cursor a little later.
        watcher.failures++;
        const wait = Math.min(1000, 20 * 2 ** Math.min(watcher.failures, 6));
        clearTimeout(watcher.retry);
        watcher.retry = setTimeout(() => void this.#poll(watcher), wait);
        watcher.retry.unref();
      } else {
        watcher.channel.fail(err);
      }
    } finally {
      watcher.busy = false;
    }
  }

  /** Read one page after the cursor and deliver it. True when the page was full (read again). */
  async #read(watcher: Watcher): Promise<boolean> {
    const res = await this.#db.run<ChangeRow>(
      query('watch-read'),
      [watcher.rev, watcher.idx, watcher.prefix, PAGE],
      { write: false },
    );
    if (watcher.channel.closed) return false;
    const first = res.rows[0];
    if (!first) return false;
    const compactRevision = toSafeInteger(first.compact_revision);
    if (compactRevision > watcher.rev || (compactRevision === watcher.rev && watcher.idx !== WHOLE)) {
      const next = watcher.idx === WHOLE ? watcher.rev + 1 : watcher.rev;
      throw new CompactedError(`revision ${next} was compacted (compact revision ${compactRevision})`, {
        detail: { revision: next, compactRevision },
      });
    }
    const rows = res.rows.filter((r) => r.revision !== null);
    for (const row of rows) {
      watcher.channel.push(eventOf(row));
      watcher.rev = toSafeInteger(row.revision as string);
      watcher.idx = row.idx as number;
    }
    if (rows.length === PAGE) return true;
    // Revisions commit in order, so every change up to the snapshot's head was in this read.
    const head = toSafeInteger(first.head);
    if (head >= watcher.rev) {
      watcher.rev = head;
      watcher.idx = WHOLE;
    }
    return false;
  }

  #remove(watcher: Watcher): void {
    clearTimeout(watcher.retry);
    this.#watchers.delete(watcher);
    if (this.#watchers.size === 0) {
      clearInterval(this.#poller);
      this.#poller = undefined;
    }
  }

  /** The fallback poll, while there are watchers. */
  #arm(): void {
    if (this.#poller) return;
    this.#poller = setInterval(() => this.wakeAll(), this.#pollInterval);
    this.#poller.unref();
  }

  close(): void {
    this.#closed = true;
    for (const watcher of [...this.#watchers]) watcher.channel.end();
    clearInterval(this.#poller);
    this.#poller = undefined;
  }
}

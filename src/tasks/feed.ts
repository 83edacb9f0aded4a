/**
 * Watches and result waits, from the store's change feed (tasks.md §2.5, §3.4): a reader pages
 * through `changes()` by cursor and sleeps until `store.subscribe` wakes it (or a poll interval
 * passes). The feed is gap-free and resumable from a cursor; `ROTA_COMPACTED` (the cursor is older
 * than the retained tombstones) re-lists from the start of the feed.
 *
 * The feed is conflated: each read yields an item's latest state once, so a watcher sees every
 * task's current state, not necessarily every intermediate one.
 */
import { abortedError, ClosedError, isRotaError, TimeoutError } from '../errors.js';
import type { FeedItem, FeedState } from '../store/port.js';
import type { TimerHandle } from '../time/clock.js';
import { Channel } from '../util/channel.js';
import type { TasksHost } from './host.js';
import { MalformedRecord, resultOf, toTask } from './record.js';
import { notFound } from './settle-errors.js';
import type { TaskEvent, TaskResult } from './types.js';

const PAGE = 1000;
const HIGH_WATER = 2000;
export const FEED_POLL_MS = 1000;

/** A wake-up flag with a timed wait. */
class Waker {
  #woken = false;
  #resolve: (() => void) | null = null;
  #timer: TimerHandle | undefined;

  constructor(private readonly host: TasksHost) {}

  wake = (): void => {
    this.#woken = true;
    const resolve = this.#resolve;
    if (resolve) {
      this.#resolve = null;
      this.host.ctx.clock.clearTimeout(this.#timer);
      resolve();
    }
  };

  /** Resolve at the next wake-up (or at once if one came since the last wait), or after `ms`. */
  wait(ms: number): Promise<void> {
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.#resolve = () => {
        this.#woken = false;
        resolve();
      };
      this.#timer = this.host.ctx.clock.setTimeout(() => {
        this.#resolve = null;
        resolve();
      }, ms);
    });
  }
}

export interface WatchOptions {
  /** Only this queue (default: every queue). */
  queue?: string;
  /** Only changes leaving a task in one of these states (`deleted` for removals). Default: all. */
  states?: readonly FeedState[];
  /**
   * Resume after this cursor (an event's `cursor`). Default: from the start of the retained feed,
   * which first yields the current state of every task, then live changes. `'now'`: live changes only.
   */
  fromCursor?: number | 'now';
  /** Fallback poll when no wake-up arrives (renewals and claims do not wake). Default 1 000. */
  pollInterval?: number;
  signal?: AbortSignal;
}

/** Read the feed from `after` to its end, returning the cursor there. */
export async function feedHead(host: TasksHost, queue: string | undefined, after: number): Promise<number> {
  let cursor = after;
  for (;;) {
    let res: Awaited<ReturnType<typeof host.ctx.store.changes>>;
    try {
      res = await host.ctx.retry(() =>
        host.ctx.store.changes({ ...(queue !== undefined ? { queue } : {}), after: cursor, limit: PAGE }),
      );
    } catch (err) {
      if (!isRotaError(err, 'ROTA_COMPACTED') || cursor === 0) throw err;
      cursor = 0;
      continue;
    }
    cursor = res.cursor;
    host.observeChangeSeq(cursor);
    if (res.items.length < PAGE) return cursor;
  }
}

function eventOf(item: FeedItem, cursor: number): TaskEvent {
  const task = toTask(item);
  const type =
    item.state === 'deleted'
      ? 'removed'
      : item.state === 'pending' && item.createdAt === item.updatedAt && item.attempt === 0
        ? 'created'
        : 'changed';
  return { type, task, cursor };
}

/** `tasks.watch()`: an async iterator of task events. */
export function watchFeed(host: TasksHost, options: WatchOptions): AsyncIterableIterator<TaskEvent> {
  const { ctx } = host;
  const states = options.states ? new Set<FeedState>(options.states) : null;
  const poll = options.pollInterval ?? FEED_POLL_MS;
  const stop = new AbortController();
  let pulled: (() => void) | null = null;
  const channel = new Channel<TaskEvent>({
    signal: options.signal,
    onClose: () => stop.abort(),
    onPull: () => {
      const p = pulled;
      pulled = null;
      p?.();
    },
  });
  if (channel.closed) return channel;
  const waker = new Waker(host);
  const closeWake = () => waker.wake();
  stop.signal.addEventListener('abort', closeWake, { once: true });
  // The watch ends with the node.
  const endOnClose = () => channel.end();
  ctx.closing.addEventListener('abort', endOnClose, { once: true });
  const lastProgress = new Map<string, string>();

  const deliver = (items: FeedItem[]) => {
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as FeedItem;
      const sameGroup = items[i + 1]?.changeSeq === item.changeSeq;
      const cursor = sameGroup ? item.changeSeq - 1 : item.changeSeq;
      if (item.state === 'running' && item.progress !== null) {
        if (lastProgress.get(item.id) !== item.progress && host.events.has('task:progress')) {
          lastProgress.set(item.id, item.progress);
          try {
            host.events.emit('task:progress', {
              id: item.id,
              queue: item.queue,
              progress: JSON.parse(item.progress),
            });
          } catch {
            host.reportMalformed(item.id, item.queue, 'progress is not valid JSON');
          }
        }
      } else lastProgress.delete(item.id);
      if (states && !states.has(item.state)) continue;
      let event: TaskEvent;
      try {
        event = eventOf(item, cursor);
      } catch (err) {
        if (!(err instanceof MalformedRecord)) throw err;
        host.reportMalformed(item.id, item.queue, err.message);
        continue;
      }
      channel.push(event);
    }
  };

  void (async () => {
    const unsubscribe = ctx.store.subscribe(options.queue ?? '*', waker.wake);
    let failures = 0;
    try {
      let cursor =
        options.fromCursor === 'now'
          ? await feedHead(host, options.queue, host.headHint)
          : (options.fromCursor ?? 0);
      while (!channel.closed) {
        while (channel.size > HIGH_WATER && !channel.closed) {
          await new Promise<void>((resolve) => {
            pulled = resolve;
            stop.signal.addEventListener('abort', () => resolve(), { once: true });
          });
        }
        if (channel.closed) break;
        let res: Awaited<ReturnType<typeof ctx.store.changes>>;
        try {
          res = await ctx.store.changes({
            ...(options.queue !== undefined ? { queue: options.queue } : {}),
            after: cursor,
            limit: PAGE,
          });
          failures = 0;
        } catch (err) {
          if (channel.closed) break;
          if (isRotaError(err, 'ROTA_COMPACTED')) {
            ctx.logger.warn('a task watch fell behind the retained feed; re-listing', { cursor });
            cursor = 0;
            continue;
          }
          if (isRotaError(err, 'ROTA_CLOSED')) break;
          if (!isRotaError(err, 'ROTA_STORE_UNAVAILABLE')) throw err;
          failures++;
          await waker.wait(Math.min(5000, 50 * 2 ** Math.min(failures, 7)) * (0.5 + ctx.random() / 2));
          continue;
        }
        host.observeChangeSeq(res.cursor);
        deliver(res.items);
        cursor = res.cursor;
        if (res.items.length >= PAGE) continue;
        await waker.wait(poll);
      }
      channel.end();
    } catch (err) {
      channel.fail(err);
    } finally {
      unsubscribe();
      stop.signal.removeEventListener('abort', closeWake);
      ctx.closing.removeEventListener('abort', endOnClose);
    }
  })();
  return channel;
}

interface Waiter {
  resolve(result: TaskResult): void;
  reject(err: unknown): void;
}

/** One feed reader per queue serving every `waitFor` of this node on that queue. */
class Follower {
  readonly waiters = new Map<string, Set<Waiter>>();
  #waker: Waker;
  #running = false;

  constructor(
    private readonly host: TasksHost,
    readonly queue: string,
    private cursor: number,
    private readonly onIdle: (f: Follower) => void,
  ) {
    this.#waker = new Waker(host);
  }

  add(id: string, waiter: Waiter): void {
    let set = this.waiters.get(id);
    if (!set) {
      set = new Set();
      this.waiters.set(id, set);
    }
    set.add(waiter);
    if (!this.#running) {
      this.#running = true;
      void this.#run();
    }
  }

  remove(id: string, waiter: Waiter): void {
    const set = this.waiters.get(id);
    set?.delete(waiter);
    if (set?.size === 0) this.waiters.delete(id);
    if (this.waiters.size === 0) this.#waker.wake();
  }

  /** Reject every wait (the node is closing). */
  close(err: unknown): void {
    for (const id of [...this.waiters.keys()]) this.#settle(id, (w) => w.reject(err));
    this.#waker.wake();
  }

  #settle(id: string, fn: (w: Waiter) => void): void {
    const set = this.waiters.get(id);
    if (!set) return;
    this.waiters.delete(id);
    for (const w of set) fn(w);
  }

  async #run(): Promise<void> {
    const { ctx } = this.host;
    const unsubscribe = ctx.store.subscribe(this.queue, this.#waker.wake);
    let failures = 0;
    try {
      while (this.waiters.size > 0 && !ctx.closed) {
        let res: Awaited<ReturnType<typeof ctx.store.changes>>;
        try {
          res = await ctx.store.changes({ queue: this.queue, after: this.cursor, limit: PAGE });
          failures = 0;
        } catch (err) {
          if (isRotaError(err, 'ROTA_COMPACTED')) {
            this.cursor = 0;
            continue;
          }
          if (!isRotaError(err, 'ROTA_STORE_UNAVAILABLE')) {
            for (const id of [...this.waiters.keys()]) this.#settle(id, (w) => w.reject(err));
            return;
          }
          failures++;
          await this.#waker.wait(Math.min(5000, 50 * 2 ** Math.min(failures, 7)));
          continue;
        }
        this.host.observeChangeSeq(res.cursor);
        for (const item of res.items) {
          if (!this.waiters.has(item.id)) continue;
          let result: TaskResult | null;
          try {
            result = resultOf(item);
          } catch (err) {
            if (!(err instanceof MalformedRecord)) throw err;
            this.host.reportMalformed(item.id, item.queue, err.message);
            result = null;
          }
          if (result) {
            const r = result;
            this.#settle(item.id, (w) => w.resolve(r));
          } else if (item.state === 'deleted') this.#settle(item.id, (w) => w.reject(notFound(item.id)));
        }
        this.cursor = res.cursor;
        if (res.items.length >= PAGE) continue;
        if (this.waiters.size > 0) await this.#waker.wait(FEED_POLL_MS);
      }
    } finally {
      unsubscribe();
      this.onIdle(this);
    }
  }
}

/** `waitFor` for every queue of the node. */
export class ResultWaits {
  readonly #followers = new Map<string, Follower>();

  constructor(private readonly host: TasksHost) {}

  /** Reject every pending wait with ROTA_CLOSED. */
  close(): void {
    const err = new ClosedError('the Rota node closed while waiting for the task');
    for (const f of [...this.#followers.values()]) f.close(err);
  }

  async waitFor<R>(id: string, options: { signal?: AbortSignal; timeout?: number }): Promise<TaskResult<R>> {
    const { ctx } = this.host;
    const { signal, timeout } = options;
    const item = await ctx.retry(() => ctx.store.getItem(id), signal);
    if (!item) throw notFound(id);
    const done = resultOf<R>(item);
    if (done) return done;
    return new Promise<TaskResult<R>>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      let follower = this.#followers.get(item.queue);
      const finish = () => {
        ctx.clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        follower?.remove(id, waiter);
      };
      const waiter: Waiter = {
        resolve: (r) => {
          finish();
          resolve(r as TaskResult<R>);
        },
        reject: (e) => {
          finish();
          reject(e);
        },
      };
      const onAbort = () => waiter.reject(abortedError(signal));
      if (signal?.aborted) {
        reject(abortedError(signal));
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeout !== undefined) {
        timer = ctx.clock.setTimeout(
          () => waiter.reject(new TimeoutError(`task ${id} did not finish within ${timeout} ms`)),
          timeout,
        );
      }
      if (!follower) {
        follower = new Follower(this.host, item.queue, item.changeSeq, (f) => {
          if (this.#followers.get(f.queue) === f) this.#followers.delete(f.queue);
        });
        this.#followers.set(item.queue, follower);
      }
      follower.add(id, waiter);
      // A change between the first read and the registration would be behind the follower: re-read.
      ctx
        .retry(() => ctx.store.getItem(id), signal)
        .then((again) => {
          if (!again) waiter.reject(notFound(id));
          else {
            const r = resultOf<R>(again);
            if (r) waiter.resolve(r);
          }
        })
        .catch((err) => waiter.reject(err));
    });
  }
}

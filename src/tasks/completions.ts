/**
 * `tasks.completions(queue)`: claims completed tasks into `resolving` (one `claim` per batch, from
 * `completed`) and yields a {@link Resolution} for each, keeping at most `concurrency` unsettled at
 * a time. Each completion is yielded to exactly one consumer across the cluster; a consumer that
 * dies loses its lease and another one gets the task. Wakes on `store.subscribe`.
 */
import { isRotaError } from '../errors.js';
import type { TimerHandle } from '../time/clock.js';
import { Resolution } from './claims.js';
import type { HeldLeases } from './held-leases.js';
import type { TasksHost } from './host.js';
import { MalformedRecord, toTask } from './record.js';

export interface CompletionsOptions {
  /** Resolutions handed out and not yet settled, at most. Default 10. */
  concurrency?: number;
  /** Resolver lease. Default: the module's `resolveLeaseTtl` (30 000). */
  leaseTtl?: number;
  /** Fallback poll. Default 5 000. */
  pollInterval?: number;
  signal?: AbortSignal;
}

export function completionStream(
  host: TasksHost,
  leases: HeldLeases,
  queue: string,
  options: { concurrency: number; leaseTtl: number; pollInterval: number; signal?: AbortSignal },
): AsyncIterableIterator<Resolution> {
  const { ctx } = host;
  const buffer: Resolution[] = [];
  let waiting: {
    resolve: (r: IteratorResult<Resolution>) => void;
    reject: (err: unknown) => void;
  } | null = null;
  let failure: unknown = null;
  let done = false;
  let outstanding = 0;
  let wake: (() => void) | null = null;
  let woken = false;
  let timer: TimerHandle | undefined;

  const poke = () => {
    woken = true;
    const w = wake;
    wake = null;
    ctx.clock.clearTimeout(timer);
    w?.();
  };
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (woken || done) {
        woken = false;
        resolve();
        return;
      }
      wake = () => {
        woken = false;
        resolve();
      };
      timer = ctx.clock.setTimeout(() => {
        wake = null;
        resolve();
      }, ms);
    });

  const finish = (err?: unknown) => {
    if (done) return;
    done = true;
    if (err !== undefined) failure = err;
    poke();
    for (const r of buffer.splice(0)) void r.release().catch(() => undefined);
    if (waiting) {
      const w = waiting;
      waiting = null;
      if (failure !== null) {
        const f = failure;
        failure = null;
        w.reject(f);
      } else w.resolve({ value: undefined, done: true });
    }
    options.signal?.removeEventListener('abort', onAbort);
  };
  const onAbort = () => finish();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) done = true;

  const offer = (r: Resolution) => {
    r.onEnd = () => {
      outstanding--;
      poke();
    };
    outstanding++;
    if (waiting) {
      const w = waiting;
      waiting = null;
      w.resolve({ value: r, done: false });
    } else buffer.push(r);
  };

  void (async () => {
    if (done) return;
    const unsubscribe = ctx.store.subscribe(queue, poke);
    const stopOnClose = () => finish();
    ctx.closing.addEventListener('abort', stopOnClose, { once: true });
    let failures = 0;
    try {
      while (!done) {
        const free = options.concurrency - outstanding;
        if (free <= 0) {
          await sleep(options.pollInterval);
          continue;
        }
        let res: Awaited<ReturnType<typeof ctx.store.claim>>;
        try {
          res = await ctx.store.claim({
            queue,
            owner: ctx.nodeId,
            limit: free,
            leaseTtl: options.leaseTtl,
            from: 'completed',
          });
          failures = 0;
        } catch (err) {
          if (done || isRotaError(err, 'ROTA_CLOSED')) break;
          if (!isRotaError(err, 'ROTA_STORE_UNAVAILABLE')) throw err;
          failures++;
          await sleep(Math.min(5000, 50 * 2 ** Math.min(failures, 7)));
          continue;
        }
        for (const item of res.items) {
          host.observeChangeSeq(item.changeSeq);
          let resolution: Resolution;
          try {
            resolution = new Resolution(host, leases, item, toTask(item), options.leaseTtl);
          } catch (err) {
            if (!(err instanceof MalformedRecord)) throw err;
            // An undecodable completed task: resolving it deletes it.
            await ctx.store
              .settle([{ op: 'resolve', id: item.id, token: item.token as number, owner: ctx.nodeId }])
              .catch(() => undefined);
            host.events.emit('task:malformed', { id: item.id, queue, reason: err.message });
            continue;
          }
          if (done) void resolution.release().catch(() => undefined);
          else offer(resolution);
        }
        if (res.items.length < free) {
          const until = res.nextRunAt === null ? options.pollInterval : ctx.time.until(res.nextRunAt) + 1;
          await sleep(Math.min(options.pollInterval, Math.max(1, until)));
        }
      }
    } catch (err) {
      finish(err);
    } finally {
      unsubscribe();
      ctx.closing.removeEventListener('abort', stopOnClose);
      finish();
    }
  })();

  const iterator: AsyncIterableIterator<Resolution> = {
    next(): Promise<IteratorResult<Resolution>> {
      const r = buffer.shift();
      if (r) return Promise.resolve({ value: r, done: false });
      if (done) {
        if (failure !== null) {
          const f = failure;
          failure = null;
          return Promise.reject(f);
        }
        return Promise.resolve({ value: undefined, done: true });
      }
      return new Promise((resolve, reject) => {
        waiting = { resolve, reject };
      });
    },
    return(): Promise<IteratorResult<Resolution>> {
      finish();
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}

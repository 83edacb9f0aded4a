/**
 * Producer schedules (pool.md §2.8). `pool.schedule(producer, ms)` creates the distributed ticker
 * `pool:<P>:plan:<name>` (first tick at once) on every participating node, so exactly one node
 * runs `plan()` per tick. The plan is applied with bounded parallelism: `start` entries are
 * dispatched without waiting (an existing key counts as satisfied) and recorded under
 * `producers/<name>/`; `stopAll` stops every recorded key the plan did not start, otherwise the
 * `stop` keys are stopped; stopped keys are un-recorded. A `ScheduleStopError` from `plan` deletes
 * the ticker (ending the schedule on every node) and the records; started jobs keep running.
 */
import type { Cluster } from '../cluster/index.js';
import type { Tick, Ticker } from '../cluster/ticker.js';
import { encodeJson, type RotaContext } from '../core/context.js';
import type { Logger } from '../core/logger.js';
import { isRotaError } from '../errors.js';
import { checkFunction, checkName, checkOptions, checkSignal, invalid } from '../validate.js';
import type { PoolEventMap } from './events.js';
import type { PoolNode } from './node.js';
import { POOL_DEFAULTS } from './options.js';
import type { PoolKeys, ProducerRecord } from './records.js';

/** One job a plan wants running. */
export interface JobParam {
  key: string;
  /** Bytes, a string (UTF-8) or null. Default null. */
  payload?: Uint8Array | string | null;
}

/** What a producer wants: jobs to start, jobs to stop, or stop every job it started before. */
export interface JobPlan {
  start?: JobParam[];
  /** Ignored when `stopAll` is set. */
  stop?: string[];
  /** Stop every job this producer started that `start` does not list. */
  stopAll?: boolean;
}

/** What `plan` receives. */
export interface PlanContext {
  /** The tick being planned. */
  readonly tick: Tick;
  /** Aborts when this node's schedule ends. */
  readonly signal: AbortSignal;
  readonly pool: PoolNode;
}

/** A job producer (Pulse's `JobProducer`). Throw `ScheduleStopError` from `plan` to end the schedule. */
export interface JobProducer {
  readonly name: string;
  plan(context: PlanContext): Promise<JobPlan> | JobPlan;
}

/** A running schedule on this node. */
export interface PoolSchedule {
  readonly name: string;
  /** Stop this node's part (other nodes keep planning). */
  stop(): void;
  /** Resolves when this node's schedule ended (stopped, the pool closed, or a `ScheduleStopError`). */
  readonly done: Promise<void>;
}

/** What a schedule needs from its pool node. */
export interface ScheduleHost {
  readonly pool: PoolNode;
  readonly cluster: Cluster;
  readonly ctx: RotaContext;
  readonly keys: PoolKeys;
  readonly logger: Logger;
  emit<K extends keyof PoolEventMap>(name: K, payload: PoolEventMap[K]): void;
}

/** Validate and start a schedule (`pool.schedule`). */
export async function startSchedule(
  host: ScheduleHost,
  producer: JobProducer,
  intervalMs: number,
  options: { signal?: AbortSignal } = {},
): Promise<PoolSchedule> {
  if (typeof producer !== 'object' || producer === null)
    invalid('producer', 'must be an object with name and plan');
  const name = checkName('producer.name', producer.name);
  checkFunction('producer.plan', producer.plan);
  if (typeof intervalMs !== 'number' || !Number.isInteger(intervalMs) || intervalMs <= 0) {
    invalid('intervalMs', `must be a positive integer number of milliseconds, got ${String(intervalMs)}`);
  }
  checkOptions('options', options, ['signal']);
  const signal = checkSignal('options.signal', options.signal);
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  const ticker = await host.cluster.ticker(`pool:${host.pool.name}:plan:${name}`, intervalMs, {
    immediate: true,
    signal: stop.signal,
  });
  const done = run(host, producer, name, ticker, stop.signal).finally(() => {
    signal?.removeEventListener('abort', onAbort);
    if (!stop.signal.aborted) stop.abort();
  });
  return {
    name,
    stop: () => {
      stop.abort();
      ticker.close();
    },
    done,
  };
}

async function run(
  host: ScheduleHost,
  producer: JobProducer,
  name: string,
  ticker: Ticker,
  signal: AbortSignal,
): Promise<void> {
  const { pool, logger } = host;
  for await (const tick of ticker) {
    if (signal.aborted || pool.isClosed) break;
    let plan: JobPlan;
    try {
      plan = await producer.plan({ tick, signal, pool });
    } catch (err) {
      if (isRotaError(err, 'ROTA_SCHEDULE_STOP')) {
        await endEverywhere(host, name, ticker);
        break;
      }
      planFailed(host, name, err);
      continue;
    }
    try {
      await apply(host, name, plan);
    } catch (err) {
      planFailed(host, name, err);
    }
  }
  ticker.close();
  if (!signal.aborted) logger.debug(`pool ${pool.name}: schedule ${name} ended`);
}

function planFailed(host: ScheduleHost, producer: string, error: unknown): void {
  host.logger.error(`pool ${host.pool.name}: producer ${producer} failed; the next tick retries`, { error });
  host.emit('pool:plan-failed', { pool: host.pool.name, producer, error });
}

/** `ScheduleStopError`: delete the ticker (every node's schedule ends) and the producer's records. */
async function endEverywhere(host: ScheduleHost, name: string, ticker: Ticker): Promise<void> {
  const { ctx, keys } = host;
  await ticker
    .stop()
    .catch((err) => host.logger.warn('could not delete the schedule ticker', { error: err }));
  await ctx
    .retry(() => ctx.store.delete(keys.producers(name), { prefix: true }))
    .catch((err) => host.logger.warn('could not delete producer records', { error: err }));
}

function checkPlan(plan: unknown): { start: JobParam[]; stop: string[]; stopAll: boolean } {
  if (typeof plan !== 'object' || plan === null) invalid('plan', 'must be an object');
  const p = checkOptions('plan', plan as JobPlan, ['start', 'stop', 'stopAll']) as JobPlan;
  const start = p.start ?? [];
  const stop = p.stop ?? [];
  if (!Array.isArray(start)) invalid('plan.start', 'must be an array');
  if (!Array.isArray(stop)) invalid('plan.stop', 'must be an array');
  start.forEach((entry, i) => {
    checkOptions(`plan.start[${i}]`, entry, ['key', 'payload']);
    checkName(`plan.start[${i}].key`, entry.key);
  });
  stop.forEach((key, i) => {
    checkName(`plan.stop[${i}]`, key);
  });
  if (p.stopAll !== undefined && typeof p.stopAll !== 'boolean') invalid('plan.stopAll', 'must be a boolean');
  return { start, stop, stopAll: p.stopAll === true };
}

async function apply(host: ScheduleHost, name: string, raw: JobPlan): Promise<void> {
  const { pool, ctx, keys } = host;
  const plan = checkPlan(raw);
  const failures: unknown[] = [];
  const startKeys = new Set(plan.start.map((e) => e.key));
  await eachLimited(plan.start, POOL_DEFAULTS.planParallelism, async ({ key, payload }) => {
    try {
      await pool.dispatch(key, payload ?? null, { wait: false });
    } catch (err) {
      if (!isRotaError(err, 'ROTA_JOB_EXISTS')) {
        failures.push(err);
        return;
      }
    }
    const record: ProducerRecord = { at: ctx.time.now() };
    await ctx.retry(() => ctx.store.put(keys.producer(name, key), encodeJson(record)));
  });
  let toStop: string[];
  if (plan.stopAll) {
    const prefix = keys.producers(name);
    const { kvs } = await ctx.retry(() => ctx.store.range(prefix));
    toStop = kvs
      .map((kv) => decodeURIComponent(kv.key.slice(prefix.length)))
      .filter((k) => !startKeys.has(k));
  } else toStop = plan.stop;
  await eachLimited(toStop, POOL_DEFAULTS.planParallelism, async (key) => {
    try {
      await pool.stopJob(key, { wait: false });
    } catch (err) {
      failures.push(err);
      return;
    }
    await ctx.retry(() => ctx.store.delete(keys.producer(name, key)));
  });
  if (failures.length > 0) throw failures[0];
}

/** Run `fn` over `items` with at most `limit` in flight. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

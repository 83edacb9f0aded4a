/** Helpers shared by the tasks scenarios. */
import type { RotaEventMap } from '../../src/core/events.js';
import type { Rota } from '../../src/rota.js';
import type { TestCluster } from '../../src/testing/index.js';
import { assert, delay } from '../support/scenarios.js';

/**
 * Advance the cluster's manual clock in `step` ms increments until `check` holds (at most
 * `maxMs` of manual time). Fails with `what` otherwise.
 */
export async function advanceUntil<T>(
  cluster: TestCluster,
  check: () => Promise<T> | T,
  what: string,
  options: { step?: number; maxMs?: number } = {},
): Promise<NonNullable<T>> {
  const step = options.step ?? 10;
  const maxMs = options.maxMs ?? 60_000;
  for (let t = 0; ; t += step) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (t > maxMs) assert.fail(`manual time ran ${maxMs} ms without ${what}`);
    await cluster.advance(step);
  }
}

/** Let real-time promise chains (setImmediate hops) settle without moving the manual clock. */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Record every `name` event of `rota`. */
export function record<K extends keyof RotaEventMap & string>(rota: Rota, name: K): RotaEventMap[K][] {
  const seen: RotaEventMap[K][] = [];
  rota.events.on(name, (e) => seen.push(e));
  return seen;
}

/** Resolve when `signal` aborts, with its reason. */
export function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    else signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
  });
}

/** Sleep in real time (all-stores scenarios). */
export { delay };

/** Median and 99th percentile of `values`. */
export function percentiles(values: number[]): { p50: number; p99: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99) };
}

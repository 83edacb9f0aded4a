/**
 * Schedule-specific test helpers (Boundary's `TestScheduler` counterpart, together with
 * `createTestCluster()`): drive a manual-clock cluster until something happened, and wait for the
 * end of a schedule's next run.
 */
import type { Rota } from '../rota.js';
import type { RunInfo } from '../schedules/types.js';
import type { TestCluster } from './index.js';

/**
 * Advance a manual-clock test cluster in `step` ms increments (default 25) until `done()` is true,
 * at most `max` ms (default 60 000). Resolves with the time advanced; rejects when `max` is reached.
 */
export async function advanceUntil(
  cluster: TestCluster,
  done: () => boolean | Promise<boolean>,
  options: { step?: number; max?: number } = {},
): Promise<number> {
  const step = options.step ?? 25;
  const max = options.max ?? 60_000;
  for (let advanced = 0; ; advanced += step) {
    if (await done()) return advanced;
    if (advanced >= max) throw new Error(`advanceUntil: not done after ${max} ms`);
    await cluster.advance(step);
  }
}

/**
 * Resolve with the record of the next run of `name` that ends on this node (completed, failed or
 * interrupted), read from the store once its end was reported.
 */
export function nextRunEnd(rota: Rota, name: string): Promise<RunInfo> {
  return new Promise((resolve, reject) => {
    const offs: (() => void)[] = [];
    const done = (runId: string) => {
      for (const off of offs) off();
      rota.schedules.run(name, runId).then(resolve, reject);
    };
    offs.push(
      rota.events.on('run:completed', (e) => e.name === name && done(e.runId)),
      rota.events.on('run:failed', (e) => e.name === name && done(e.runId)),
      rota.events.on('run:interrupted', (e) => e.name === name && done(e.runId)),
    );
  });
}

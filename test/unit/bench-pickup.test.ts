/**
 * The benchmark's pickup workload in parts (bench/lib/workloads.ts): runs of two systems
 * interleaved part by part add up to whole runs, each with its exactly-once check. Rota on the
 * memory store stands in for a system; nothing here is timed against a bound.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PickupRun } from '../../bench/lib/workloads.js';
import { RotaSystem } from '../../bench/systems/rota.js';

const options = { jobs: 7, segments: 3, ratePerSec: 500, concurrency: 2, timeoutMs: 10_000 };

describe('bench pickup runs in parts', () => {
  it('two systems interleaved part by part: every job of each run starts exactly once', async () => {
    const systems = [new RotaSystem('memory'), new RotaSystem('memory')];
    try {
      const runs = systems.map((s) => new PickupRun(s, options));
      assert.throws(() => (runs[0] as PickupRun).result(), /segments left/);
      for (let part = 0; part < options.segments; part++) {
        for (const run of runs) {
          assert.equal(run.remaining, options.segments - part);
          await run.segment();
        }
      }
      for (const run of runs) {
        assert.equal(run.remaining, 0);
        const r = run.result();
        assert.deepEqual([r.duplicates, r.missing], [0, 0]);
        assert.ok(r.p50 >= 0 && r.p50 <= r.p99 && r.p99 <= r.max);
        await assert.rejects(run.segment(), /already ran/);
      }
    } finally {
      await Promise.all(systems.map((s) => s.teardown()));
    }
  });

  it('refuses a number of parts that does not divide a run into non-empty parts', () => {
    const system = new RotaSystem('memory');
    for (const segments of [0, 1.5, 8]) {
      assert.throws(
        () => new PickupRun(system, { ...options, segments }),
        /segments must be an integer in 1\.\.7/,
      );
    }
  });
});

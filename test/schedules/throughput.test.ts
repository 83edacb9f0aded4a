/** SC-36: 1 000 schedules on one node (memory store, manual clock). */
import { describe, it } from 'node:test';
import { assert, withManualCluster } from '../support/scenarios.js';
import { advance } from './helpers.js';

describe('schedules throughput (memory store)', () => {
  // The manual clock makes "1 s" exact, so the count checks scheduling, not machine speed; the
  // real-time rate is measured by the multi-process test and reported in docs/schedules.md.
  it('SC-36 1 000 schedules every 100 ms on one node for 1 s', { timeout: 60_000 }, async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      let runs = 0;
      for (let i = 0; i < 1000; i += 100) {
        await Promise.all(
          Array.from({ length: 100 }, (_, k) =>
            s.register({ name: `t${i + k}`, every: 100 }, () => {
              runs++;
            }),
          ),
        );
      }
      await s.start();
      await advance(cluster, 1000, 5);
      assert.ok(runs >= 9900 && runs <= 11_000, `${runs} runs in 1 s`);
    });
  });
});

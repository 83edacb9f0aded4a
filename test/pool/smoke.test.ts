import { it } from 'node:test';
import { assert, withManualCluster } from '../support/scenarios.js';

it('smoke', async () => {
  await withManualCluster({ nodes: 1 }, async (cluster) => {
    const rota = cluster.nodes[0]!.rota;
    const pool = await rota.pool.join('P');
    const started: string[] = [];
    const w = await pool.addWorker({
      start: (job) => { started.push(job.key); },
      stop: () => {},
    });
    const d = pool.dispatch('k', 'hello');
    for (let i = 0; i < 50 && started.length === 0; i++) await cluster.advance(10);
    await d;
    assert.deepEqual(started, ['k']);
    assert.equal(w.jobs().length, 1);
    assert.deepEqual(await pool.jobKeys(), ['k']);
    const s = pool.stopJob('k');
    for (let i = 0; i < 50; i++) await cluster.advance(10);
    assert.equal(await s, true);
    assert.deepEqual(await pool.jobKeys(), []);
    await pool.close();
  });
});

/** pool.md §2.8: producer schedules and the pool ticker (memory store, manual clock). */
import { describe, it } from 'node:test';
import type { Logger } from '../../src/core/logger.js';
import { ScheduleStopError } from '../../src/errors.js';
import type { JobPlan, JobProducer, PoolNode } from '../../src/pool/index.js';
import { assert, rejectsWith, withManualCluster } from '../support/scenarios.js';
import { JobLog, run, settle, until } from './support.js';

const FAST = { workerTtl: 2000, ackGracePeriod: 500, rebalanceDelay: 20 };
const TICK = 1000;

/** A logger that records errors (the scenarios require none). */
function recordingLogger(errors: string[]): Logger {
  return {
    debug: () => undefined,
    info: () => undefined,
    warn: () => undefined,
    error: (message) => errors.push(message),
  };
}

function running(log: JobLog): string[] {
  return [...log.running.keys()].sort();
}

describe('pool schedules (memory, manual clock)', () => {
  it('PO-27 a producer’s plans start and stop jobs tick by tick, and ScheduleStopError ends the schedule everywhere', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const errors: string[] = [];
      const pools: PoolNode[] = [];
      for (const n of cluster.nodes)
        pools.push(await n.rota.pool.join('P', { ...FAST, logger: recordingLogger(errors) }));
      const log = new JobLog();
      for (const [i, p] of pools.entries()) await p.addWorker(log.handler(`w${i}`));
      const plans: (JobPlan | 'stop')[] = [
        { start: [{ key: 'K' }] },
        { stop: ['K'] },
        { start: [{ key: 'K1' }, { key: 'K2', payload: 'two' }] },
        { stopAll: true },
        { start: [{ key: 'K' }] },
        { start: [{ key: 'K1' }], stopAll: true },
        'stop',
      ];
      let tick = 0;
      const producer: JobProducer = {
        name: 'producer',
        plan: () => {
          const plan = plans[tick++];
          if (plan === 'stop' || plan === undefined) throw new ScheduleStopError('done');
          return plan;
        },
      };
      const schedules = await Promise.all(pools.map((p) => p.schedule(producer, TICK)));
      const counts: number[] = [];
      const rota = cluster.nodes[0]!.rota;
      const prefix = rota.context.keys.prefix('pool', 'P');
      for (let i = 0; i < plans.length; i++) {
        await until(cluster, () => tick > i, `tick ${i + 1} planned`, 2 * TICK);
        await run(cluster, 300);
        counts.push(log.running.size);
        if (i === 5) assert.deepEqual(running(log), ['K1']);
        if (i === 5) {
          const recorded = (await rota.store.range(`${prefix}producers/producer/`)).kvs.map((kv) =>
            kv.key.split('/').pop(),
          );
          assert.deepEqual(recorded, ['K1']);
        }
      }
      assert.deepEqual(counts, [1, 0, 2, 0, 1, 1, 1]);
      await settle(cluster, Promise.all(schedules.map((s) => s.done)), 3 * TICK);
      const ticker = await rota.store.get(
        rota.context.keys.key('cluster', 'tickers', encodeURIComponent('pool:P:plan:producer')),
      );
      assert.equal(ticker.kv, null, 'the ticker entry is deleted');
      assert.equal((await rota.store.range(`${prefix}producers/`)).kvs.length, 0, 'the records are deleted');
      assert.deepEqual(running(log), ['K1'], 'started jobs keep running');
      assert.deepEqual(errors, [], 'nothing was logged as an error');
      await settle(cluster, Promise.all(pools.map((p) => p.close())));
    });
  });

  it('PO-28 three nodes scheduling the same producer plan once per tick, the first tick included', async () => {
    await withManualCluster({ nodes: 3 }, async (cluster) => {
      const pools = await Promise.all(cluster.nodes.map((n) => n.rota.pool.join('P', FAST)));
      const ticks: number[] = [];
      const planners: string[] = [];
      const producers = pools.map(
        (p): JobProducer => ({
          name: 'shared',
          plan: ({ tick }) => {
            ticks.push(tick.seq);
            planners.push(p.nodeId);
            return {};
          },
        }),
      );
      const schedules = await Promise.all(pools.map((p, i) => p.schedule(producers[i]!, TICK)));
      await run(cluster, 50);
      assert.equal(ticks.length, 1, 'the first tick is planned at once, by one node');
      await run(cluster, 5 * TICK);
      assert.equal(ticks.length, 6);
      assert.deepEqual(
        ticks,
        [...ticks].sort((a, b) => a - b),
      );
      assert.equal(new Set(ticks).size, ticks.length, 'no tick planned twice');
      for (const s of schedules) s.stop();
      await settle(cluster, Promise.all(schedules.map((s) => s.done)));
      await settle(cluster, Promise.all(pools.map((p) => p.close())));
    });
  });

  it('PO-29 a plan starting a key that already runs counts as satisfied and is recorded once', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const errors: string[] = [];
      const rota = cluster.nodes[0]!.rota;
      const pool = await rota.pool.join('P', { ...FAST, logger: recordingLogger(errors) });
      const failed: unknown[] = [];
      pool.events.on('pool:plan-failed', (e) => failed.push(e.error));
      const log = new JobLog();
      await pool.addWorker(log.handler('w1'));
      await settle(cluster, pool.dispatch('K', 'mine'));
      let plans = 0;
      const schedule = await pool.schedule(
        {
          name: 'p',
          plan: () => {
            plans++;
            return { start: [{ key: 'K' }] };
          },
        },
        TICK,
      );
      await until(cluster, () => plans >= 3, 'three plans', 4 * TICK);
      await run(cluster, 100);
      assert.deepEqual(failed, []);
      assert.deepEqual(errors, []);
      assert.equal(log.of('start', 'K').length, 1, 'the running job was left alone');
      const prefix = rota.context.keys.prefix('pool', 'P');
      assert.equal((await rota.store.range(`${prefix}producers/p/`)).kvs.length, 1);
      schedule.stop();
      await settle(cluster, schedule.done);
      await settle(cluster, pool.close());
    });
  });

  it('a failing plan is logged, emits pool:plan-failed and the next tick retries; bad producers are refused', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const errors: string[] = [];
      const pool = await cluster.nodes[0]!.rota.pool.join('P', { ...FAST, logger: recordingLogger(errors) });
      const failed: string[] = [];
      pool.events.on('pool:plan-failed', (e) => failed.push(e.producer));
      let plans = 0;
      const schedule = await pool.schedule(
        {
          name: 'flaky',
          plan: () => {
            plans++;
            if (plans === 1) throw new Error('flaky');
            if (plans === 2) return { start: [{ key: '' }] };
            return {};
          },
        },
        TICK,
      );
      await until(cluster, () => plans >= 3, 'the third plan', 4 * TICK);
      assert.deepEqual(failed, ['flaky', 'flaky']);
      assert.equal(errors.length, 2);
      schedule.stop();
      await settle(cluster, schedule.done);
      await rejectsWith(pool.schedule({ name: '', plan: () => ({}) }, TICK), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(pool.schedule({ name: 'x' } as never, TICK), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(pool.schedule({ name: 'x', plan: () => ({}) }, 0), 'ROTA_INVALID_ARGUMENT');
      await settle(cluster, pool.close());
    });
  });

  it('pool.ticker is the cluster ticker pool:<P>:<name>', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const rota = cluster.nodes[0]!.rota;
      const pool = await rota.pool.join('P', FAST);
      const ticker = await pool.ticker('T', 500);
      const next = ticker.next();
      await run(cluster, 500);
      const tick = await next;
      assert.equal(tick.value?.name, 'pool:P:T');
      const entry = await rota.store.get(
        rota.context.keys.key('cluster', 'tickers', encodeURIComponent('pool:P:T')),
      );
      assert.ok(entry.kv, 'the shared entry exists');
      ticker.close();
      await rejectsWith(pool.ticker('', 500), 'ROTA_INVALID_ARGUMENT');
      await settle(cluster, pool.close());
    });
  });
});

/** tasks.md §4, Diego convergence suites: the converger (TA-14 … TA-20). */
import { describe, it } from 'node:test';
import type { Resolution, Task } from '../../src/tasks/index.js';
import { allStores, assert, eventually, withManualCluster, withStoreCluster } from '../support/scenarios.js';
import { allFixtures } from '../support/stores.js';
import { advanceUntil, record } from './helpers.js';

allStores('tasks converger', {
  'TA-17 after a worker dies its claimed task re-runs as attempt 1 and its running task as attempt 2': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 2, nodeOptions: { sessionTtl: 5000 } }, async (cluster) => {
      const dying = cluster.node('n1').rota.tasks;
      const survivor = cluster.node('n2').rota.tasks;
      await dying.enqueue('q', 'claimed', { id: 'c' });
      const [claimed] = await dying.claim('q', { leaseTtl: 1000 });
      await dying.enqueue('q', 'running', { id: 'r' });
      const [running] = await dying.claim('q', { leaseTtl: 1000, start: true });
      assert.deepEqual([claimed?.id, running?.id], ['c', 'r']);
      cluster.kill('n1');
      const attempts = new Map<string, number>();
      const worker = survivor.work(
        'q',
        (task: Task) => {
          attempts.set(task.id, task.attempt);
        },
        { pollInterval: 200 },
      );
      await eventually(() => attempts.size === 2, 8000, 'both tasks to run again');
      assert.equal(attempts.get('c'), 1);
      assert.equal(attempts.get('r'), 2);
      const r = await eventually(
        async () => {
          const t = await survivor.get('r');
          return t?.state === 'completed' ? t : undefined;
        },
        3000,
        'r to complete',
      );
      assert.deepEqual([r.outcome, r.stalls], ['succeeded', 1]);
      await worker.close();
    });
  },
});

/** Manual-clock scenarios drive passes with converge(); the leader's own passes stay out of the way. */
const quiet = { tasks: { convergeInterval: 3_600_000 } };

describe('tasks converger (memory)', () => {
  it('TA-14 a pass reports its duration and counts; a malformed record is deleted and pruned', async () => {
    // Real clock: the pass duration is measured on the monotonic clock.
    const memory = allFixtures.find((f) => f.name === 'memory');
    assert.ok(memory);
    await withStoreCluster(memory, { nodes: 1 }, async (cluster) => {
      const node = cluster.node('n1');
      const { tasks, store } = node.rota;
      const malformed = record(node.rota, 'task:malformed');
      const completed = record(node.rota, 'converge:completed');
      await store.enqueue([{ id: 'bad', queue: 'q', payload: '{not json', timeout: 60_000 }]);
      assert.equal(await tasks.get('bad'), undefined, 'an undecodable task reads as absent');
      const runs = tasks.stats.runs;
      const report = await tasks.converge();
      assert.ok(report.durationMs > 0, `duration ${report.durationMs}`);
      assert.equal(report.pruned, 1);
      assert.equal(report.malformed, 1);
      assert.equal(tasks.stats.runs, runs + 1);
      assert.ok(completed.some((c) => c === report || c.pruned === 1));
      assert.equal(await store.getItem('bad'), null);
      assert.deepEqual(
        malformed.map((m) => m.id),
        ['bad'],
      );
    });
  });

  it('TA-15 a claim not started for 31 s goes back to pending with its attempt and another worker runs it', async () => {
    await withManualCluster({ nodes: 2, nodeOptions: quiet }, async (cluster) => {
      const a = cluster.node('n1').rota.tasks;
      const b = cluster.node('n2').rota.tasks;
      await a.enqueue('q', 1, { id: 't' });
      const [claimed] = await a.claim('q');
      assert.ok(claimed);
      await cluster.advance(31_000);
      assert.equal((await a.get('t'))?.state, 'claimed', 'the lease is kept alive by its holder');
      const report = await a.converge();
      assert.equal(report.unstarted, 1);
      const t = await a.get('t');
      assert.deepEqual([t?.state, t?.attempt], ['pending', 0]);
      let ranBy = '';
      const worker = b.work('q', (task) => {
        ranBy = `n2 attempt ${task.attempt}`;
      });
      await advanceUntil(cluster, () => ranBy, 'the other worker to run it');
      assert.equal(ranBy, 'n2 attempt 1');
      await advanceUntil(cluster, () => !claimed.held, 'the old holder to notice');
      await worker.close();
    });
  });

  it('TA-16 with claimTimeout a task runnable for 31 s fails ROTA_TASK_UNCLAIMED; a future one is kept', async () => {
    await withManualCluster({ nodes: 1, nodeOptions: quiet }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      await tasks.configureQueue('q', { claimTimeout: 30_000 });
      await tasks.enqueue('q', 1, { id: 'now' });
      await tasks.enqueue('q', 1, { id: 'later', delay: 3_600_000 });
      await tasks.enqueue('q', 1, { id: 'never', claimTimeout: null });
      await cluster.advance(31_000);
      const report = await tasks.converge();
      assert.equal(report.unclaimed, 1);
      const now = await tasks.get('now');
      assert.deepEqual(
        [now?.state, now?.outcome, now?.error?.code],
        ['completed', 'failed', 'ROTA_TASK_UNCLAIMED'],
      );
      assert.equal((await tasks.get('later'))?.state, 'pending');
      assert.equal((await tasks.get('never'))?.state, 'pending');
    });
  });

  it('TA-18 a zombie attempt on a live holder is failed ROTA_TASK_TIMEOUT though its lease is renewed', async () => {
    await withManualCluster(
      { nodes: 1, nodeOptions: { tasks: { ...quiet.tasks, abortGrace: 1000 } } },
      async (cluster) => {
        const { tasks } = cluster.node('n1').rota;
        await tasks.enqueue('q', 1, { id: 't', timeout: 5000, maxAttempts: 1 });
        // A holder that keeps renewing and never settles (its handler ignores every signal).
        const [zombie] = await tasks.claim('q', { start: true, leaseTtl: 2000 });
        assert.ok(zombie);
        await cluster.advance(5500);
        assert.equal((await tasks.converge()).timedOut, 0, 'not before timeout + abortGrace');
        assert.equal((await tasks.get('t'))?.state, 'running');
        await cluster.advance(600);
        assert.equal((await tasks.converge()).timedOut, 1);
        const t = await tasks.get('t');
        assert.deepEqual(
          [t?.state, t?.outcome, t?.error?.code],
          ['completed', 'failed', 'ROTA_TASK_TIMEOUT'],
        );
        await advanceUntil(cluster, () => !zombie.held, 'the holder to notice');
      },
    );
  });

  it('TA-19 succeeded and cancelled tasks are pruned after completedTtl, failed ones after failedTtl', async () => {
    await withManualCluster({ nodes: 1, nodeOptions: quiet }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      await tasks.configureQueue('q', { completedTtl: 10_000, failedTtl: 60_000 });
      await tasks.enqueueMany('q', [
        { payload: 1, id: 'ok' },
        { payload: 2, id: 'cancelled' },
        { payload: 3, id: 'failed' },
      ]);
      const [ok] = await tasks.claim('q', { start: true });
      await ok?.complete('fine');
      await tasks.cancel('cancelled');
      await tasks.fail('failed', 'broken');
      await cluster.advance(5000);
      await tasks.enqueue('q', 4, { id: 'young' });
      const [young] = await tasks.claim('q', { start: true });
      await young?.complete('later');
      await cluster.advance(5500);
      const pruned = record(cluster.node('n1').rota, 'task:pruned');
      assert.equal((await tasks.converge()).pruned, 2);
      assert.deepEqual(pruned, [{ count: 2 }]);
      assert.equal(await tasks.get('ok'), undefined);
      assert.equal(await tasks.get('cancelled'), undefined);
      assert.equal((await tasks.get('failed'))?.state, 'completed');
      assert.equal((await tasks.get('young'))?.state, 'completed');
      await cluster.advance(5000);
      assert.equal((await tasks.converge()).pruned, 1);
      assert.equal(await tasks.get('young'), undefined);
      await cluster.advance(50_000);
      assert.equal((await tasks.converge()).pruned, 1);
      assert.equal(await tasks.get('failed'), undefined);
    });
  });

  it('TA-20 a resolver killed while resolving loses the task after resolveLeaseTtl; another node gets it', async () => {
    await withManualCluster(
      { nodes: 2, nodeOptions: { tasks: { resolveLeaseTtl: 5000 } } },
      async (cluster) => {
        const a = cluster.node('n1').rota.tasks;
        const b = cluster.node('n2').rota.tasks;
        await a.enqueue('q', 1, { id: 't' });
        const [c] = await a.claim('q', { start: true });
        await c?.complete('r');
        const first = a.completions('q');
        const taken = await first.next();
        assert.equal(taken.value?.id, 't');
        assert.equal((await b.get('t'))?.state, 'resolving');
        cluster.kill('n1');
        const second = b.completions('q', { pollInterval: 1000 });
        const got: { next?: IteratorResult<Resolution> } = {};
        void second.next().then((r) => {
          got.next = r;
        });
        await cluster.advance(4000);
        assert.equal(got.next, undefined, 'not before the lease expires');
        const next = await advanceUntil(cluster, () => got.next, 'the other node to get the completion', {
          step: 100,
        });
        assert.equal(next.value?.id, 't');
        assert.ok((next.value?.token ?? 0) > (taken.value?.token ?? 0));
        await next.value?.resolve();
        assert.equal(await b.get('t'), undefined);
        await second.return?.();
      },
    );
  });
});

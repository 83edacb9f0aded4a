/** tasks.md §4, guarantee 3: never lost, exactly-once completion (TA-38 … TA-43). */
import { describe, it } from 'node:test';
import type { Task } from '../../src/tasks/index.js';
import {
  allStores,
  assert,
  delay,
  eventually,
  rejectsWith,
  withManualCluster,
  withStoreCluster,
} from '../support/scenarios.js';
import { advanceUntil, record, settle } from './helpers.js';

allStores(
  'tasks guarantees',
  {
    'TA-38 a thousand tasks survive two killed workers and a partitioned one; each completes once': async (
      fixture,
    ) => {
      await withStoreCluster(fixture, { nodes: 4, nodeOptions: { sessionTtl: 5000 } }, async (cluster) => {
        const [n1, n2, n3, n4] = cluster.nodes;
        assert.ok(n1 && n2 && n3 && n4);
        const ids = (
          await n1.rota.tasks.enqueueMany(
            'q',
            Array.from({ length: 1000 }, (_, i) => ({ payload: i })),
          )
        ).map((r) => r.id);
        const invocations = new Map<string, number>();
        const completions = new Map<string, number>();
        for (const n of cluster.nodes) {
          n.rota.events.on('task:completed', (e) => completions.set(e.id, (completions.get(e.id) ?? 0) + 1));
        }
        // Nodes meant to die or be cut off use short leases; the survivor a long one.
        const leases = [1000, 1000, 2000, 10_000];
        const workers = cluster.nodes.map((n, i) =>
          n.rota.tasks.work(
            'q',
            async (task: Task, ctx) => {
              invocations.set(task.id, (invocations.get(task.id) ?? 0) + 1);
              await delay(1 + Math.floor(Math.random() * 4));
              return { by: n.nodeId, token: ctx.token };
            },
            { concurrency: 5, leaseTtl: leases[i], pollInterval: 500, abortGrace: 200 },
          ),
        );
        await eventually(
          async () => ((await n4.rota.tasks.counts('q')).q?.completed ?? 0) >= 250,
          20_000,
          'a quarter done',
        );
        cluster.kill(n1);
        cluster.kill(n2);
        cluster.partition(n3);
        await delay(2 * 2000);
        cluster.heal(n3);
        await eventually(
          async () => (await n4.rota.tasks.counts('q')).q?.completed === 1000,
          30_000,
          'every task to complete',
        );
        await Promise.all([workers[2]?.close(), workers[3]?.close()]);
        let handlerRuns = 0;
        for (const id of ids) {
          const t: Task<number, { by: string; token: number }> | undefined = await n4.rota.tasks.get(id);
          assert.deepEqual([t?.state, t?.outcome], ['completed', 'succeeded'], id);
          assert.equal(t?.result?.token, t?.token, `${id}: the result is the final claim's`);
          assert.ok((completions.get(id) ?? 0) <= 1, `${id} completed ${completions.get(id)} times`);
          handlerRuns += invocations.get(id) ?? 0;
        }
        assert.ok(handlerRuns >= 1000, `${handlerRuns} handler runs`);
      });
    },

    'TA-39 a worker partitioned past its lease cannot complete a task another worker took over': async (
      fixture,
    ) => {
      await withStoreCluster(fixture, { nodes: 2, nodeOptions: { sessionTtl: 5000 } }, async (cluster) => {
        const a = cluster.node('n1');
        const b = cluster.node('n2').rota.tasks;
        await a.rota.tasks.enqueue('q', 1, { id: 't' });
        const [mine] = await a.rota.tasks.claim('q', { start: true, leaseTtl: 1000 });
        assert.ok(mine);
        cluster.partition(a);
        const theirs = await eventually(
          async () => (await b.claim('q', { start: true }))[0],
          5000,
          'the takeover',
        );
        await theirs.complete('B');
        cluster.heal(a);
        await rejectsWith(mine.complete('A'), 'ROTA_STALE_TOKEN');
        const t = await b.get('t');
        assert.deepEqual([t?.outcome, t?.result], ['succeeded', 'B']);
        assert.ok(theirs.token > mine.token);
      });
    },
  },
  { timeout: 90_000 },
);

describe('tasks guarantees (memory, manual clock)', () => {
  it('TA-40 a handler that returns after its task was cancelled gets a stale settle; the task stays cancelled', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const worker = cluster.node('n1');
      // No wake-ups and a long lease: the worker does not learn about the cancel before it settles.
      worker.faults.subscribe = () => () => undefined;
      const rejected = record(worker.rota, 'task:settle-rejected');
      let release: () => void = () => undefined;
      const w = worker.rota.tasks.work(
        'q',
        async () => {
          await new Promise<void>((r) => {
            release = r;
          });
          return 'too late';
        },
        { leaseTtl: 60_000, pollInterval: 100 },
      );
      const other = cluster.node('n2').rota.tasks;
      await other.enqueue('q', 1, { id: 't' });
      await advanceUntil(cluster, async () => (await other.get('t'))?.state === 'running', 'the start');
      await other.cancel('t');
      release();
      await advanceUntil(cluster, () => rejected.length > 0, 'the late settle to be refused');
      assert.deepEqual([rejected[0]?.id, rejected[0]?.op, rejected[0]?.status], ['t', 'complete', 'stale']);
      const t = await other.get('t');
      assert.deepEqual([t?.state, t?.outcome, t?.result], ['completed', 'cancelled', null]);
      await w.close();
    });
  });

  it('TA-41 a worker whose wall clock is an hour ahead claims nothing early and keeps its leases', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.node('n1');
      cluster.skew(node, 3_600_000);
      const clock = cluster.clock;
      assert.ok(clock);
      const { tasks } = node.rota;
      let started = 0;
      const w = tasks.work(
        'q',
        async (_task, ctx) => {
          started++;
          for (let i = 0; i < 20; i++) {
            await new Promise<void>((r) => clock.setTimeout(r, 1000));
            ctx.heartbeat();
          }
          return 'ok';
        },
        { leaseTtl: 5000 },
      );
      await tasks.enqueue('q', 1, { id: 't', delay: 10_000 });
      await cluster.advance(9_900);
      assert.equal(started, 0, 'not claimed before its runAt');
      await advanceUntil(cluster, () => started, 'the start', { step: 50 });
      await advanceUntil(cluster, async () => (await tasks.get('t'))?.state === 'completed', 'the end', {
        step: 500,
      });
      const t = await tasks.get('t');
      assert.deepEqual([t?.outcome, t?.attempt, t?.stalls, started], ['succeeded', 1, 0, 1]);
      await w.close();
    });
  });

  it('TA-42 ten thousand items in one enqueueMany are stored in order, all at once or not at all', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const a = cluster.node('n1').rota.tasks;
      const b = cluster.node('n2').rota.tasks;
      const items = Array.from({ length: 10_000 }, (_, i) => ({ payload: i, id: `t${i}` }));
      const seen = new Set<number>();
      let polling = true;
      const poll = (async () => {
        while (polling) {
          seen.add((await b.counts('q')).q?.pending ?? 0);
          await new Promise<void>((r) => setImmediate(r));
        }
      })();
      const refs = await a.enqueueMany('q', items);
      polling = false;
      await poll;
      assert.equal(refs.length, 10_000);
      assert.ok(
        [...seen].every((n) => n === 0 || n === 10_000),
        `observed counts ${[...seen]}`,
      );
      const order: string[] = [];
      for await (const t of b.list({ queue: 'q', limit: 5000 })) order.push(t.id);
      assert.deepEqual(
        order,
        items.map((i) => i.id),
      );
      const bad = [
        ...Array.from({ length: 9_999 }, (_, i) => ({ payload: i, id: `u${i}` })),
        { payload: 0, id: 't5' },
      ];
      await rejectsWith(a.enqueueMany('q', bad), 'ROTA_TASK_EXISTS');
      assert.equal(await a.get('u0'), undefined, 'a failed batch stores nothing');
      await settle();
    });
  });

  it('closing a node ends its watches, rejects its waits and gives back what it holds', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const b = cluster.node('n2').rota.tasks;
      await b.enqueue('q', 1, { id: 'w' });
      await b.enqueue('q', 2, { id: 'h' });
      const watch = a.tasks.watch({ queue: 'q' });
      const first = await watch.next();
      assert.equal(first.value?.task.id, 'w');
      const waiting = a.tasks.waitFor('h').then(
        () => 'resolved',
        (err) => (err as { code?: string }).code,
      );
      await settle();
      const [held] = await a.tasks.claim('q');
      assert.equal(held?.id, 'w');
      await a.close();
      assert.equal(await waiting, 'ROTA_CLOSED');
      for (;;) {
        const r = await watch.next();
        if (r.done) break;
      }
      assert.equal((await b.get('w'))?.state, 'pending', 'the claim was given back');
    });
  });

  it('TA-43 completions on three nodes yield each of thirty completed tasks exactly once', async () => {
    await withManualCluster({ nodes: 3 }, async (cluster) => {
      const yielded: string[] = [];
      const consumers = cluster.nodes.map(async (n) => {
        for await (const resolution of n.rota.tasks.completions('q', { concurrency: 4 })) {
          yielded.push(resolution.id);
          await resolution.resolve();
          if (yielded.length === 30) break;
        }
      });
      const { tasks } = cluster.node('n1').rota;
      await tasks.enqueueMany(
        'q',
        Array.from({ length: 30 }, (_, i) => ({ payload: i, id: `c${i}` })),
      );
      const w = tasks.work('q', (t: Task<number>) => t.payload, { concurrency: 5 });
      await advanceUntil(cluster, () => yielded.length === 30, 'thirty completions', { step: 50 });
      assert.equal(new Set(yielded).size, 30, 'no completion was yielded twice');
      assert.deepEqual(
        Object.values((await tasks.counts('q')).q ?? {}).reduce((x, y) => x + y, 0),
        0,
        'every completion was resolved',
      );
      await w.close();
      await cluster.close();
      await Promise.all(consumers);
    });
  });
});

/** tasks.md §4, BullMQ / pg-boss features: the worker API (TA-21 … TA-37). */
import { describe, it } from 'node:test';
import { RejectError, RetryAtError, UnrecoverableError } from '../../src/errors.js';
import { MemoryEngine } from '../../src/store/memory/index.js';
import type { ClaimRequest, Store } from '../../src/store/port.js';
import { backoffDelay } from '../../src/tasks/backoff.js';
import type { Task } from '../../src/tasks/index.js';
import { createTestCluster } from '../../src/testing/index.js';
import {
  allStores,
  assert,
  delay,
  eventually,
  rejectsWith,
  withManualCluster,
  withStoreCluster,
} from '../support/scenarios.js';
import { aborted, advanceUntil, percentiles, record } from './helpers.js';

allStores('tasks worker', {
  'TA-21 claims come out by priority (higher first), equal priorities in enqueue order': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 1 }, async (cluster) => {
      const { tasks, store } = cluster.node('n1').rota;
      const runAt = (await store.now()) - 1000;
      await tasks.enqueueMany('q', [
        { payload: 0, id: 'p0', priority: 0, runAt },
        { payload: 10, id: 'p10', priority: 10, runAt },
        { payload: -5, id: 'm5', priority: -5, runAt },
        { payload: 0, id: 'p0b', priority: 0, runAt },
        { payload: 10, id: 'p10b', priority: 10, runAt },
      ]);
      const order: string[] = [];
      for (let i = 0; i < 5; i++) {
        const [c] = await tasks.claim('q');
        assert.ok(c);
        order.push(c.id);
      }
      assert.deepEqual(order, ['p10', 'p10b', 'p0', 'p0b', 'm5']);
    });
  },

  'TA-22 a delayed task is not claimable early; an idle worker starts it on time via nextRunAt': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 1 }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      const ref = await tasks.enqueue('q', 1, { delay: 1000 });
      assert.deepEqual(await tasks.claim('q'), []);
      let started: Task | undefined;
      // pollInterval 60 s: only the claim's nextRunAt can start it in time.
      const worker = tasks.work(
        'q',
        (task) => {
          started = task;
        },
        { pollInterval: 60_000 },
      );
      await eventually(() => started, 3000, 'the delayed task to start');
      assert.equal(started?.id, ref.id);
      const lateness = (started?.startedAt ?? 0) - (started?.runAt ?? 0);
      assert.ok(lateness >= 0, 'not started before its runAt (store time)');
      // The timer set from the claim's nextRunAt started it, not the 60 s poll; how close to runAt
      // it lands is a benchmark figure, not a test assertion.
      assert.ok(lateness < 2000, `started ${lateness} ms after its runAt`);
      await worker.close();
    });
  },

  'TA-26 dedup keep: one holder while active, a new task after completion, ttl keeps the key': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 1 }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      const first = await tasks.enqueue('q', 1, { dedup: { key: 'k' } });
      const second = await tasks.enqueue('q', 2, { dedup: { key: 'k' } });
      assert.deepEqual([second.id, second.deduplicated, second.status], [first.id, true, 'deduplicated']);
      assert.equal((await tasks.counts('q')).q?.pending, 1);
      const [c] = await tasks.claim('q');
      await c?.complete();
      const third = await tasks.enqueue('q', 3, { dedup: { key: 'k', ttl: 10_000 } });
      assert.equal(third.deduplicated, false);
      assert.notEqual(third.id, first.id);
      const [c3] = await tasks.claim('q');
      await c3?.complete();
      await delay(2000);
      const fourth = await tasks.enqueue('q', 4, { dedup: { key: 'k' } });
      assert.deepEqual([fourth.id, fourth.deduplicated], [third.id, true], 'the ttl keeps the key active');
    });
  },

  'TA-31 waitFor: a result from another node, at once when done, unknown ids and timeouts': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 2 }, async (cluster) => {
      const a = cluster.node('n1').rota.tasks;
      const b = cluster.node('n2').rota.tasks;
      const ref = await a.enqueue('q', { x: 2 });
      const waiting = b.waitFor<number>(ref.id);
      const worker = a.work('q', (task: Task<{ x: number }>) => task.payload.x * 21);
      const result = await waiting;
      assert.deepEqual(result, { id: ref.id, outcome: 'succeeded', result: 42, error: null });
      assert.deepEqual(await b.waitFor(ref.id), result, 'at once once completed');
      await rejectsWith(b.waitFor('unknown'), 'ROTA_TASK_NOT_FOUND');
      await worker.close();
      const idle = await a.enqueue('q', 1);
      await rejectsWith(b.waitFor(idle.id, { timeout: 100 }), 'ROTA_TIMEOUT');
    });
  },

  'TA-32 a task failing every attempt is dead-lettered once; redrive moves it back once': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 1 }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      await tasks.configureQueue('q', {
        deadLetter: 'dlq',
        maxAttempts: 2,
        backoff: { delay: 0, jitter: 0 },
      });
      const ref = await tasks.enqueue('q', { job: 'x' });
      let calls = 0;
      const worker = tasks.work('q', () => {
        calls++;
        throw new Error(`boom ${calls}`);
      });
      const failed = await tasks.waitFor(ref.id, { timeout: 5000 });
      assert.deepEqual([failed.outcome, failed.error?.message], ['failed', 'boom 2']);
      await worker.close();
      const copy = await tasks.get(`dl-${ref.id}`);
      assert.equal(copy?.queue, 'dlq');
      assert.equal(copy?.state, 'pending');
      assert.deepEqual(copy?.payload, { job: 'x' });
      assert.deepEqual(copy?.deadLettered, {
        originalId: ref.id,
        queue: 'q',
        error: { code: 'ROTA_HANDLER_FAILED', message: 'boom 2' },
        attempts: 2,
      });
      assert.equal(await tasks.redrive('dlq'), 1);
      assert.equal(await tasks.redrive('dlq'), 0);
      const fresh = await tasks.listPage({ queue: 'q', state: 'pending' });
      assert.equal(fresh.tasks.length, 1);
      const again = fresh.tasks[0] as Task;
      assert.ok(again.id.startsWith(`rd-${ref.id}-`));
      assert.deepEqual([again.attempt, again.maxAttempts, again.payload], [0, 2, { job: 'x' }]);
      assert.equal((await tasks.get(`dl-${ref.id}`))?.state, 'completed');
    });
  },

  'TA-33 a hundred tasks at concurrency 10 take at most ten claims; batches settle per item': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 1 }, async (cluster) => {
      const node = cluster.node('n1');
      const { tasks } = node.rota;
      await tasks.enqueueMany(
        'q',
        Array.from({ length: 100 }, (_, i) => ({ payload: i })),
      );
      // Count the claim round trips that brought tasks (a worker may pipeline one more claim that
      // finds the queue already drained).
      let fruitful = 0;
      const claim = node.faults.claim;
      node.faults.claim = async (request) => {
        const res = await claim(request);
        if (res.items.length > 0) fruitful++;
        return res;
      };
      let started = 0;
      let claimsForAll = 0;
      let active = 0;
      let maxActive = 0;
      const worker = tasks.work(
        'q',
        async () => {
          if (++started === 100) claimsForAll = fruitful;
          maxActive = Math.max(maxActive, ++active);
          // Asynchronous but short: a batch of handlers finishes within one turn of the event loop.
          await new Promise<void>((resolve) => setImmediate(resolve));
          active--;
        },
        { concurrency: 10 },
      );
      await eventually(
        async () => (await tasks.counts('q')).q?.completed === 100,
        10_000,
        'all 100 to complete',
      );
      await worker.close();
      assert.ok(claimsForAll >= 1 && claimsForAll <= 10, `${claimsForAll} claims for 100 tasks`);
      assert.ok(maxActive <= 10, `at most 10 handlers at once (saw ${maxActive})`);

      await tasks.enqueueMany(
        'b',
        Array.from({ length: 30 }, (_, i) => ({ payload: i, id: `b${i}`, maxAttempts: 1 })),
      );
      const sizes: number[] = [];
      const batcher = tasks.workBatch(
        'b',
        async (batch: Task<number>[]) => {
          sizes.push(batch.length);
          return batch.map((t) => (t.payload === 7 ? new Error('seven') : t.payload * 2));
        },
        { batchSize: 10 },
      );
      await eventually(async () => (await tasks.counts('b')).b?.completed === 30, 10_000, 'the batches');
      await batcher.close();
      assert.ok(
        sizes.every((n) => n >= 1 && n <= 10),
        `batch sizes ${sizes}`,
      );
      const seven = await tasks.get('b7');
      assert.deepEqual([seven?.outcome, seven?.error?.message], ['failed', 'seven']);
      const eight = await tasks.get('b8');
      assert.deepEqual([eight?.outcome, eight?.result], ['succeeded', 16]);
      const failed = (await tasks.listPage({ queue: 'b', limit: 100 })).tasks.filter(
        (t) => t.outcome === 'failed',
      );
      assert.deepEqual(
        failed.map((t) => t.id),
        ['b7'],
      );
    });
  },

  'TA-35 an idle worker starts a new task quickly; without wake-ups within pollInterval': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 2 }, async (cluster) => {
      const { tasks, store } = cluster.node('n1').rota;
      const latencies: number[] = [];
      const worker = tasks.work(
        'q',
        async (task: Task<number>) => {
          latencies.push(performance.now() - task.payload);
        },
        { pollInterval: 60_000 },
      );
      await delay(100);
      for (let i = 0; i < 20; i++) {
        await tasks.enqueue('q', performance.now());
        await delay(20);
      }
      await eventually(() => latencies.length === 20, 5000, 'twenty pickups');
      await worker.close();
      // Far below the 60 s poll: the wake-ups started them. The 50 ms p50 target is measured by
      // `npm run bench` (pickup latency), not asserted here.
      const { p50 } = percentiles(latencies);
      assert.ok(p50 < 1000, `pickup p50 ${p50.toFixed(1)} ms`);

      // Break the wake-up channel of node n2: only its poll can find work.
      const n2 = cluster.node('n2');
      n2.faults.subscribe = () => () => undefined;
      let startedAt = 0;
      const poller = n2.rota.tasks.work(
        'p',
        () => {
          startedAt = performance.now();
        },
        { pollInterval: 300 },
      );
      await delay(50);
      const t0 = performance.now();
      await store.enqueue([{ id: 'polled', queue: 'p', payload: '1', timeout: 60_000 }]);
      await eventually(() => startedAt, 3000, 'the poll to find the task');
      assert.ok(startedAt - t0 < 300 + 1500, `found after ${(startedAt - t0).toFixed(0)} ms`);
      await poller.close();
    });
  },
});

// Alone in its group: filling a deep queue keeps the CPU busy, which would distort the timing of
// the scenarios running next to it.
allStores(
  'tasks claim latency',
  {
    'TA-34 claim latency does not depend on queue depth (100 vs 100 000)': async (fixture) => {
      await withStoreCluster(fixture, { nodes: 1 }, async (cluster) => {
        const { tasks, store } = cluster.node('n1').rota;
        const deep = store.capabilities.queueThroughput === 'low' ? 10_000 : 100_000;
        // Filled through the store directly: this scenario is about claims, not enqueue cost.
        const fill = async (queue: string, n: number) => {
          for (let i = 0; i < n; i += 1000) {
            await store.enqueue(
              Array.from({ length: Math.min(1000, n - i) }, (_, j) => ({
                id: `${queue}-${i + j}`,
                queue,
                payload: '0',
                timeout: 60_000,
              })),
            );
          }
        };
        await fill('shallow', 100);
        await fill('deep', deep);
        const time = async (queue: string) => {
          const t0 = performance.now();
          const [c] = await tasks.claim(queue);
          const ms = performance.now() - t0;
          await c?.complete();
          return ms;
        };
        let ratio = Number.POSITIVE_INFINITY;
        // Interleave the two queues so machine noise hits both alike; retry a noisy round.
        // A scan over the deep queue would be tens of times slower; the 2× target itself is a
        // benchmark figure (depth ratio), so the test only rules out depth-dependent claims.
        for (let round = 0; round < 3 && !(ratio < 4); round++) {
          const shallow: number[] = [];
          const deepMs: number[] = [];
          for (let i = 0; i < 40; i++) {
            shallow.push(await time('shallow'));
            deepMs.push(await time('deep'));
          }
          ratio = percentiles(deepMs).p50 / Math.max(percentiles(shallow).p50, 0.001);
          if (ratio < 0.5) ratio = 1 / ratio;
        }
        assert.ok(ratio < 4, `p50 claim latency differs ${ratio.toFixed(2)}× between depths`);
      });
    },
  },
  { concurrency: 1, timeout: 120_000 },
);

describe('tasks worker (memory, manual clock)', () => {
  it('TA-23 fixed and exponential backoff space the attempts; exhausting them fails with the last error', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      const starts = new Map<string, number[]>();
      const worker = tasks.work('q', (task: Task<{ ok: number }>) => {
        const list = starts.get(task.id) ?? [];
        list.push(task.startedAt ?? 0);
        starts.set(task.id, list);
        if (list.length <= task.payload.ok) throw new Error(`fail ${list.length}`);
        return 'ok';
      });
      await tasks.enqueue('q', { ok: 2 }, { id: 'fixed', backoff: { type: 'fixed', delay: 100, jitter: 0 } });
      await tasks.enqueue(
        'q',
        { ok: 2 },
        { id: 'exp', backoff: { type: 'exponential', delay: 100, jitter: 0 } },
      );
      await tasks.enqueue('q', { ok: 5 }, { id: 'never', backoff: { type: 'fixed', delay: 100, jitter: 0 } });
      await advanceUntil(
        cluster,
        async () => (await tasks.counts('q')).q?.completed === 3,
        'all three to finish',
        { step: 5 },
      );
      const gaps = (id: string) => {
        const s = starts.get(id) ?? [];
        return s.slice(1).map((t, i) => t - (s[i] as number));
      };
      const near = (actual: number[], expected: number[]) =>
        actual.length === expected.length &&
        actual.every((g, i) => g >= (expected[i] as number) && g < (expected[i] as number) + 20);
      assert.ok(near(gaps('fixed'), [100, 100]), `fixed gaps ${gaps('fixed')}`);
      assert.ok(near(gaps('exp'), [100, 200]), `exponential gaps ${gaps('exp')}`);
      assert.equal((await tasks.get('fixed'))?.outcome, 'succeeded');
      const never = await tasks.get('never');
      assert.deepEqual([never?.outcome, never?.attempt, never?.error?.message], ['failed', 3, 'fail 3']);
      await worker.close();
    });
  });

  it('TA-24 jitter scales the delay by 1 − jitter·random; a function backoff gets (attempt, error)', async () => {
    assert.equal(
      backoffDelay({ type: 'fixed', delay: 1000, jitter: 0.2 }, 1, null, () => 0.5),
      900,
    );
    assert.equal(
      backoffDelay({ delay: 1000, jitter: 0.2 }, 3, null, () => 0.5),
      3600,
    );
    assert.equal(
      backoffDelay({ delay: 1000, maxDelay: 1500, jitter: 0 }, 5, null, () => 0.5),
      1500,
    );
    await withManualCluster({ nodes: 1, nodeOptions: { random: () => 0.5 } }, async (cluster) => {
      const node = cluster.node('n1');
      const { tasks } = node.rota;
      const retrying = record(node.rota, 'task:retrying');
      const worker = tasks.work('q', () => {
        throw new Error('once');
      });
      await tasks.enqueue('q', 1, { id: 'j', backoff: { type: 'fixed', delay: 1000, jitter: 0.2 } });
      await advanceUntil(cluster, () => retrying.length > 0, 'the retry to be scheduled');
      assert.equal(retrying[0]?.delay, 900);
      const t = await tasks.get('j');
      assert.ok(t && t.state === 'pending' && t.runAt - t.updatedAt === 900);
      await worker.close();

      const calls: [number, string][] = [];
      const custom = tasks.work(
        'f',
        () => {
          throw new Error(`e${calls.length + 1}`);
        },
        {
          backoff: (attempt, error) => {
            calls.push([attempt, (error as Error).message]);
            return 50;
          },
        },
      );
      await tasks.enqueue('f', 1, { id: 'fn' });
      await advanceUntil(cluster, async () => (await tasks.get('fn'))?.state === 'completed', 'the attempts');
      assert.deepEqual(calls, [
        [1, 'e1'],
        [2, 'e2'],
      ]);
      await custom.close();
    });
  });

  it('TA-25 UnrecoverableError fails at once; RetryAtError reschedules without using an attempt', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const { tasks, store } = cluster.node('n1').rota;
      const at = (await store.now()) + 3_600_000;
      const worker = tasks.work('q', (task) => {
        if (task.id === 'u') throw new UnrecoverableError('no point');
        if (task.id === 'x') throw new RejectError('not here');
        throw new RetryAtError(at);
      });
      await tasks.enqueue('q', 1, { id: 'u' });
      await tasks.enqueue('q', 1, { id: 'r' });
      await tasks.enqueue('q', 1, { id: 'x', delay: 3_000_000 });
      await advanceUntil(cluster, async () => (await tasks.get('u'))?.state === 'completed', 'u to fail');
      const u = await tasks.get('u');
      assert.deepEqual([u?.outcome, u?.attempt, u?.error?.code], ['failed', 1, 'ROTA_UNRECOVERABLE']);
      const r = await advanceUntil(
        cluster,
        async () => {
          const x = await tasks.get('r');
          return x?.state === 'pending' && x.runAt === at ? x : undefined;
        },
        'r to be rescheduled',
      );
      assert.equal(r.attempt, 0);
      // RejectError gives the task back without using an attempt, counting a rejection.
      await cluster.advance(3_000_000);
      const x = await advanceUntil(
        cluster,
        async () => {
          const t = await tasks.get('x');
          return t && t.rejections >= 1 ? t : undefined;
        },
        'x to be rejected',
      );
      assert.deepEqual([x.lastRejection, x.attempt], ['not here', 0]);
      await worker.close();
    });
  });

  it('TA-27 dedup replace updates a pending holder and keeps a running one', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      const first = await tasks.enqueue('q', 'v1', { dedup: { key: 'k', mode: 'replace' } });
      const second = await tasks.enqueue('q', 'v2', { dedup: { key: 'k', mode: 'replace' }, priority: 5 });
      assert.deepEqual([second.id, second.replaced], [first.id, true]);
      const held = await tasks.get(first.id);
      assert.deepEqual([held?.payload, held?.priority], ['v2', 5]);
      const [c] = await tasks.claim('q', { start: true });
      const third = await tasks.enqueue('q', 'v3', { dedup: { key: 'k', mode: 'replace' } });
      assert.deepEqual([third.id, third.deduplicated, third.replaced], [first.id, true, false]);
      assert.equal((await tasks.get(first.id))?.payload, 'v2');
      await c?.complete();
    });
  });

  it('TA-28 a timeout aborts the signal with ROTA_TASK_TIMEOUT, fails the attempt and retries per backoff', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const { tasks, store } = cluster.node('n1').rota;
      const seen: { attempt: number; abortedAfter: number; code: string }[] = [];
      const worker = tasks.work('q', async (task, ctx) => {
        const t0 = await store.now();
        if (task.attempt === 2) return 'second time lucky';
        const reason = (await aborted(ctx.signal)) as { code: string };
        seen.push({ attempt: task.attempt, abortedAfter: (await store.now()) - t0, code: reason.code });
        throw reason;
      });
      await tasks.enqueue('q', 1, {
        id: 't',
        timeout: 200,
        backoff: { type: 'fixed', delay: 100, jitter: 0 },
      });
      await advanceUntil(cluster, async () => (await tasks.get('t'))?.state === 'completed', 'the retry', {
        step: 5,
      });
      assert.equal(seen.length, 1);
      assert.equal(seen[0]?.code, 'ROTA_TASK_TIMEOUT');
      assert.ok((seen[0]?.abortedAfter ?? 0) >= 195 && (seen[0]?.abortedAfter ?? 0) <= 220);
      const t = await tasks.get('t');
      assert.deepEqual([t?.outcome, t?.attempt, t?.result], ['succeeded', 2, 'second time lucky']);
      assert.ok((t?.startedAt ?? 0) - ((t?.runAt ?? 0) - 100) >= 100, 'the retry waited for the backoff');
      await worker.close();
    });
  });

  it('TA-29 heartbeats keep a task alive; a handler that stops heartbeating is aborted', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      const clock = cluster.clock;
      assert.ok(clock);
      let code = '';
      const worker = tasks.work('q', async (task, ctx) => {
        for (let i = 0; i < 10; i++) {
          await new Promise<void>((r) => clock.setTimeout(r, 100));
          if (task.id === 'alive' || i < 2) ctx.heartbeat();
          if (ctx.signal.aborted) {
            code = (ctx.signal.reason as { code: string }).code;
            throw ctx.signal.reason;
          }
        }
        return 'done';
      });
      await tasks.enqueue('q', 1, { id: 'alive', heartbeatTimeout: 300 });
      await tasks.enqueue('q', 1, { id: 'silent', heartbeatTimeout: 300, maxAttempts: 1 });
      await advanceUntil(cluster, async () => (await tasks.counts('q')).q?.completed === 2, 'both', {
        step: 20,
      });
      assert.equal((await tasks.get('alive'))?.outcome, 'succeeded');
      const silent = await tasks.get('silent');
      assert.deepEqual([silent?.outcome, silent?.error?.code], ['failed', 'ROTA_HEARTBEAT_TIMEOUT']);
      assert.equal(code, 'ROTA_HEARTBEAT_TIMEOUT');
      await worker.close();
    });
  });

  it('TA-30 progress reaches the store within leaseTtl/2 and a watcher on another node', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const b = cluster.node('n2').rota;
      const progress = record(b, 'task:progress');
      const watch = b.tasks.watch({ queue: 'q', states: ['running'] });
      const pump = (async () => {
        for await (const _ of watch) {
          // Consuming the watch is what makes node B see the progress.
        }
      })();
      let finish: () => void = () => undefined;
      const worker = a.tasks.work(
        'q',
        async (_task, ctx) => {
          ctx.progress(50);
          await new Promise<void>((r) => {
            finish = r;
          });
        },
        { leaseTtl: 10_000 },
      );
      await a.tasks.enqueue('q', 1, { id: 't' });
      await advanceUntil(cluster, async () => (await a.tasks.get('t'))?.state === 'running', 'the start');
      await cluster.advance(5000);
      assert.equal((await a.tasks.get('t'))?.progress, 50);
      await advanceUntil(cluster, () => progress.length > 0, 'node B to see the progress', { step: 100 });
      assert.deepEqual(progress[0], { id: 't', queue: 'q', progress: 50 });
      finish();
      await advanceUntil(cluster, async () => (await a.tasks.get('t'))?.state === 'completed', 'the end');
      await watch.return?.();
      await pump;
      await worker.close();
    });
  });

  it('TA-36 close releases prefetched tasks, then releases a stuck handler and rejects ROTA_STOP_TIMEOUT', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      await tasks.enqueueMany('q', [
        { payload: 1, id: 'a' },
        { payload: 2, id: 'b' },
        { payload: 3, id: 'c' },
      ]);
      const worker = tasks.work(
        'q',
        async () => {
          await new Promise<void>(() => undefined);
        },
        { concurrency: 1, batchSize: 3, prefetch: 2, abortGrace: 100 },
      );
      await advanceUntil(cluster, () => worker.held === 3, 'one running and two prefetched');
      const closing = worker.close({ timeout: 200 });
      const outcome = closing.then(
        () => 'resolved',
        (err) => err,
      );
      await advanceUntil(
        cluster,
        async () => (await tasks.counts('q')).q?.pending === 3,
        'all back to pending',
      );
      await cluster.advance(500);
      const err = await outcome;
      assert.equal((err as { code?: string }).code, 'ROTA_STOP_TIMEOUT');
      for (const id of ['a', 'b', 'c']) {
        const t = await tasks.get(id);
        assert.deepEqual([t?.state, t?.attempt], ['pending', 0], id);
      }
    });
  });

  it('TA-36b a worker claims up to 4 × concurrency tasks in one claim by default (batchSize)', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.node('n1');
      const { tasks } = node.rota;
      await tasks.enqueueMany(
        'q',
        Array.from({ length: 10 }, (_, i) => ({ payload: i })),
      );
      const before = node.faults.calls.get('claim') ?? 0;
      // Two slots and six prefetched: room for 8, which the default batchSize (8) fills at once.
      const worker = tasks.work(
        'q',
        async () => {
          await new Promise<void>(() => undefined);
        },
        { concurrency: 2, prefetch: 6, abortGrace: 100 },
      );
      await advanceUntil(cluster, () => worker.held === 8, 'two running and six prefetched');
      await cluster.advance(1000);
      assert.equal(worker.held, 8);
      assert.equal((node.faults.calls.get('claim') ?? 0) - before, 1, 'one claim took all eight');
      assert.equal((await tasks.counts('q')).q?.pending, 2);
      const closing = worker.close({ timeout: 200 }).catch((err: unknown) => err);
      await cluster.advance(1000);
      assert.equal(((await closing) as { code?: string }).code, 'ROTA_STOP_TIMEOUT');
    });
  });

  it('TA-36c on a store of low queue throughput (etcd) a claim takes at most 2 × concurrency by default', async () => {
    const engine = new MemoryEngine();
    const limits: number[] = [];
    // The memory store as etcd describes itself, recording each claim's limit.
    const lowThroughput = (store: Store): Store =>
      new Proxy(store, {
        get(target, key) {
          if (key === 'capabilities') return { ...target.capabilities, queueThroughput: 'low' };
          if (key === 'claim')
            return (request: ClaimRequest) => {
              limits.push(request.limit);
              return target.claim(request);
            };
          const value = Reflect.get(target, key, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    const cluster = await createTestCluster({
      nodes: 1,
      store: async () => lowThroughput(engine.client()),
      clock: 'real',
    });
    try {
      const { tasks } = cluster.node('n1').rota;
      await tasks.enqueueMany(
        'q',
        Array.from({ length: 10 }, (_, i) => ({ payload: i })),
      );
      const worker = tasks.work(
        'q',
        async () => {
          await new Promise<void>(() => undefined);
        },
        { concurrency: 2, prefetch: 6, abortGrace: 100 },
      );
      // Room for 8, claimed 4 at a time.
      await eventually(() => worker.held === 8, 5_000, 'two running and six prefetched');
      assert.deepEqual(limits.slice(0, 2), [4, 4]);
      assert.ok(limits.every((n) => n <= 4));
      await worker.close({ timeout: 200 }).catch(() => undefined);
    } finally {
      await cluster.close();
    }
  });

  it('TA-37 pause stops claiming; resume restarts it', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.node('n1');
      const { tasks } = node.rota;
      const paused = record(node.rota, 'worker:paused');
      let runs = 0;
      const worker = tasks.work('q', () => {
        runs++;
      });
      await tasks.enqueue('q', 1);
      await advanceUntil(cluster, () => runs === 1, 'the first run');
      worker.pause();
      assert.equal(paused.length, 1);
      const claims = node.faults.calls.get('claim') ?? 0;
      await tasks.enqueue('q', 2);
      await cluster.advance(20_000);
      assert.equal(runs, 1);
      assert.equal(node.faults.calls.get('claim') ?? 0, claims, 'no claim while paused');
      worker.resume();
      await advanceUntil(cluster, () => runs === 2, 'the run after resume');
      await worker.close();
    });
  });
});

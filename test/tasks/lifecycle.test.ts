/** tasks.md §4, Diego suites: the lifecycle API (TA-1 … TA-13). */
import { describe, it } from 'node:test';
import { StoreUnavailableError } from '../../src/errors.js';
import type { Task, TaskEvent } from '../../src/tasks/index.js';
import {
  allStores,
  assert,
  delay,
  eventually,
  rejectsWith,
  withManualCluster,
  withStoreCluster,
} from '../support/scenarios.js';
import { aborted, advanceUntil } from './helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Read the next event of a watch within `ms` (real time). */
async function nextEvent(it: AsyncIterator<TaskEvent>, ms = 3000): Promise<TaskEvent> {
  const r = await Promise.race([
    it.next(),
    delay(ms).then(() => ({ done: true, value: undefined }) as IteratorResult<TaskEvent>),
  ]);
  assert.ok(!r.done, `no watch event within ${ms} ms`);
  return r.value;
}

allStores('tasks lifecycle', {
  'TA-1 an enqueued task is pending with store timestamps and an id; get returns it': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 1 }, async (cluster) => {
      const { tasks, store } = cluster.node('n1').rota;
      const before = await store.now();
      const ref = await tasks.enqueue('q', { n: 1 });
      const after = await store.now();
      assert.match(ref.id, UUID);
      assert.equal(ref.status, 'created');
      const task = await tasks.get(ref.id);
      assert.ok(task);
      assert.equal(task.state, 'pending');
      assert.deepEqual(task.payload, { n: 1 });
      assert.equal(task.createdAt, task.updatedAt);
      assert.ok(task.createdAt >= before && task.createdAt <= after, 'createdAt is store time');
      assert.equal(task.maxAttempts, 3);
      assert.equal(task.timeout, 900_000);
      await tasks.enqueue('q', 'x', { id: 'a' });
      assert.equal((await tasks.get('a'))?.payload, 'x');
    });
  },

  'TA-2 enqueueing an existing id fails with ROTA_TASK_EXISTS and leaves the task unchanged': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 1 }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      await tasks.enqueue('q', 'first', { id: 'a' });
      const before = await tasks.get('a');
      await rejectsWith(tasks.enqueue('q', 'second', { id: 'a' }), 'ROTA_TASK_EXISTS');
      await rejectsWith(
        tasks.enqueueMany('q', [
          { payload: 'b', id: 'b' },
          { payload: 'again', id: 'a' },
        ]),
        'ROTA_TASK_EXISTS',
      );
      assert.deepEqual(await tasks.get('a'), before);
      assert.equal(await tasks.get('b'), undefined, 'the batch stored nothing');
    });
  },

  'TA-5 a claim takes a pending task with owner, token and store time; it is not claimed twice': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 2 }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const b = cluster.node('n2').rota;
      await a.tasks.enqueue('q', 1, { id: 't' });
      const before = await a.store.now();
      const [claimed] = await a.tasks.claim('q');
      const after = await a.store.now();
      assert.ok(claimed);
      const task = await a.tasks.get('t');
      assert.equal(task?.state, 'claimed');
      assert.equal(task?.owner, 'n1');
      assert.equal(task?.token, claimed.token);
      assert.ok(task && task.updatedAt >= before && task.updatedAt <= after);
      assert.deepEqual(await b.tasks.claim('q'), []);
      assert.deepEqual(await a.tasks.claim('q'), []);
      await claimed.release();
    });
  },

  'TA-6 start: running; a same-owner repeat is a no-op; another owner is refused; pending is invalid': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 2 }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const b = cluster.node('n2').rota;
      await a.tasks.enqueue('q', 1, { id: 't' });
      const [claimed] = await a.tasks.claim('q');
      assert.ok(claimed);
      assert.deepEqual(await claimed.start(), { started: true });
      const running = await a.tasks.get('t');
      assert.equal(running?.state, 'running');
      assert.equal(running?.attempt, 1);
      assert.deepEqual(await claimed.start(), { started: false });
      assert.equal((await a.tasks.get('t'))?.changeSeq, running?.changeSeq, 'the repeat wrote nothing');
      // Another node without the claim's token (Diego: StartTask from another cell).
      const stranger = await b.tasks.claimed({ id: 't', token: claimed.token - 1 });
      await rejectsWith(stranger.start(), 'ROTA_WRONG_OWNER');
      await a.tasks.enqueue('q', 2, { id: 'p' });
      const onPending = await a.tasks.claimed({ id: 'p', token: claimed.token });
      const err = await rejectsWith(onPending.start(), 'ROTA_INVALID_TRANSITION');
      assert.deepEqual([err.detail.from, err.detail.to], ['pending', 'running']);
      await claimed.complete();
    });
  },

  'TA-7 cancel ends pending, claimed and running tasks and aborts the handler; others are refused': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 2 }, async (cluster) => {
      const a = cluster.node('n1').rota;
      const b = cluster.node('n2').rota;
      await a.tasks.enqueue('other', 1, { id: 'pending' });
      await a.tasks.enqueue('claims', 1, { id: 'claimed' });
      await a.tasks.claim('claims');
      let reason: unknown;
      const started = new Promise<void>((resolve) => {
        b.tasks.work('run', async (_task, ctx) => {
          resolve();
          reason = await aborted(ctx.signal);
        });
      });
      await a.tasks.enqueue('run', 1, { id: 'running' });
      await started;
      for (const id of ['pending', 'claimed', 'running'])
        await a.tasks.cancel(id, { reason: 'no longer needed' });
      for (const id of ['pending', 'claimed', 'running']) {
        const t = await a.tasks.get(id);
        assert.deepEqual([t?.state, t?.outcome], ['completed', 'cancelled'], id);
      }
      await eventually(() => reason, 1500, 'the running handler to be aborted');
      assert.equal((reason as { code?: string }).code, 'ROTA_TASK_CANCELLED');
      await rejectsWith(a.tasks.cancel('pending'), 'ROTA_INVALID_TRANSITION');
      await a.tasks.enqueue('res', 1, { id: 'resolving' });
      const [c] = await a.tasks.claim('res');
      await c?.complete();
      await a.tasks.resolving('resolving');
      const err = await rejectsWith(a.tasks.cancel('resolving'), 'ROTA_INVALID_TRANSITION');
      assert.equal(err.detail.from, 'resolving');
      await rejectsWith(a.tasks.cancel('unknown'), 'ROTA_TASK_NOT_FOUND');
    });
  },

  'TA-9 resolving, resolve (delete), stale resolutions and resolving a running task': async (fixture) => {
    await withStoreCluster(fixture, { nodes: 1 }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      await tasks.enqueueMany('q', [
        { payload: 1, id: 'a' },
        { payload: 2, id: 'b' },
        { payload: 3, id: 'c' },
      ]);
      for (const c of await tasks.claim('q', { limit: 2 })) await c.complete({ id: c.id });
      const resolution = await tasks.resolving('a');
      assert.equal((await tasks.get('a'))?.state, 'resolving');
      assert.deepEqual(resolution.task.result, { id: 'a' });
      await rejectsWith(tasks.resolving('a'), 'ROTA_INVALID_TRANSITION');
      await resolution.resolve();
      assert.equal(await tasks.get('a'), undefined);
      await resolution.resolve();
      const first = await tasks.resolving('b');
      await first.release();
      const second = await tasks.resolving('b');
      assert.ok(second.token > first.token);
      await rejectsWith(first.resolve(), 'ROTA_STALE_TOKEN');
      await second.resolve();
      const [running] = await tasks.claim('q', { start: true });
      assert.equal(running?.id, 'c');
      const err = await rejectsWith(tasks.resolving('c'), 'ROTA_INVALID_TRANSITION');
      assert.deepEqual([err.detail.from, err.detail.to], ['running', 'resolving']);
      await rejectsWith(tasks.resolving('zzz'), 'ROTA_TASK_NOT_FOUND');
      await running?.complete();
    });
  },

  'TA-10 watches by state: creates and retries for pending, completions only for completed, resumable':
    async (fixture) => {
      await withStoreCluster(fixture, { nodes: 1 }, async (cluster) => {
        const { tasks } = cluster.node('n1').rota;
        const fromCursor = await tasks.cursor({ queue: 'q' });
        const pending = tasks.watch({ queue: 'q', states: ['pending'], fromCursor });
        const completed = tasks.watch({ queue: 'q', states: ['completed'], fromCursor });
        await tasks.enqueue('q', 1, { id: 'a' });
        const created = await nextEvent(pending);
        assert.deepEqual([created.type, created.task.id, created.task.state], ['created', 'a', 'pending']);
        const [c1] = await tasks.claim('q', { start: true });
        await c1?.fail(new Error('try again'), { backoff: { type: 'fixed', delay: 0, jitter: 0 } });
        const retried = await nextEvent(pending);
        assert.deepEqual([retried.type, retried.task.id, retried.task.attempt], ['changed', 'a', 1]);
        const [c2] = await tasks.claim('q', { start: true });
        await c2?.complete('done');
        const done = await nextEvent(completed);
        assert.deepEqual([done.task.id, done.task.state, done.task.outcome], ['a', 'completed', 'succeeded']);
        const resolution = await tasks.resolving('a');
        await resolution.resolve();
        // Neither watch reports the resolving step or the deletion: the next events are b's.
        await tasks.enqueue('q', 2, { id: 'b' });
        const nextPending = await nextEvent(pending);
        assert.deepEqual([nextPending.type, nextPending.task.id], ['created', 'b']);
        await pending.return?.();
        // While nobody watches, c is created and b completes; a resumed watch sees both.
        await tasks.enqueue('q', 3, { id: 'c' });
        const [cb] = await tasks.claim('q', { start: true });
        assert.equal(cb?.id, 'b');
        await cb?.complete('b done');
        const resumed = tasks.watch({ queue: 'q', fromCursor: nextPending.cursor });
        const seen = new Map<string, string>();
        while (seen.get('b') !== 'completed' || !seen.has('c')) {
          const e = await nextEvent(resumed);
          seen.set(e.task.id, e.task.state);
        }
        assert.equal(seen.get('c'), 'pending');
        const doneB = await nextEvent(completed);
        assert.deepEqual([doneB.task.id, doneB.task.outcome], ['b', 'succeeded']);
        await resumed.return?.();
        await completed.return?.();
      });
    },
});

describe('tasks lifecycle (memory, manual clock)', () => {
  it('TA-3 enqueue rides out a store outage and an ambiguous first attempt without a duplicate', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.node('n1');
      const { tasks } = node.rota;
      await tasks.counts();
      cluster.partition(node);
      const during = tasks.enqueue('q', 'outage');
      await cluster.advance(2000);
      cluster.heal(node);
      const ref = await advanceUntil(
        cluster,
        async () => Promise.race([during, new Promise<undefined>((r) => setImmediate(() => r(undefined)))]),
        'the enqueue to resolve after the outage',
      );
      assert.equal(ref.status, 'created');
      // The next write is applied but its reply is lost (ambiguous), during a 1 s outage.
      const faults = node.faults;
      const original = faults.enqueue;
      faults.enqueue = async (items) => {
        faults.enqueue = original;
        await faults.inner.enqueue(items);
        cluster.partition(node);
        throw new StoreUnavailableError('reply lost', { detail: { ambiguous: true } });
      };
      const ambiguous = tasks.enqueue('q', 'ambiguous');
      await cluster.advance(1000);
      cluster.heal(node);
      const second = await advanceUntil(
        cluster,
        async () =>
          Promise.race([ambiguous, new Promise<undefined>((r) => setImmediate(() => r(undefined)))]),
        'the ambiguous enqueue to resolve',
      );
      assert.equal(second.status, 'created');
      assert.equal((await tasks.counts('q')).q?.pending, 2, 'exactly one task per enqueue');
    });
  });

  it('TA-4 bad input is rejected with a coded error and stores nothing', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      await rejectsWith(tasks.enqueue('', 1), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(tasks.enqueue('q', 1, { id: 'a b' }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(tasks.enqueue('q', { f: () => 1 }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(tasks.enqueue('q', 'x'.repeat(2 * 1024 * 1024)), 'ROTA_PAYLOAD_TOO_LARGE');
      await rejectsWith(tasks.enqueue('q', 1, { priority: 2 ** 31 }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(tasks.enqueue('q', 1, { maxAttempts: 0 }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(
        tasks.enqueue('q', 1, { backoff: { type: 'fixed', jitter: 2 } }),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(tasks.enqueue('q', 1, { runAt: new Date(Number.NaN) }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(tasks.enqueue('q', 1, { callbackUrl: 'ftp://x' }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(tasks.enqueue('q', 1, { dedup: { key: '' } }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(tasks.enqueue('q', 1, { nope: 1 } as never), 'ROTA_INVALID_ARGUMENT');
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      await rejectsWith(
        tasks.enqueueMany<unknown>('q', [{ payload: 1 }, { payload: 2 }, { payload: cyclic }]),
        'ROTA_INVALID_ARGUMENT',
      );
      await rejectsWith(
        tasks.enqueueMany<unknown>('q', [{ payload: 1 }, { payload: 'x'.repeat(2 * 1024 * 1024) }]),
        'ROTA_PAYLOAD_TOO_LARGE',
      );
      await rejectsWith(tasks.enqueueMany('q', [{ payload: 1, id: 'a b' }]), 'ROTA_INVALID_ARGUMENT');
      assert.equal(Object.keys(await tasks.counts()).length, 0, 'nothing was stored');
      assert.throws(() => tasks.work('q', 'nope' as never), { code: 'ROTA_INVALID_ARGUMENT' });
      assert.throws(() => tasks.work('q', () => 1, { concurrency: 0 }), { code: 'ROTA_INVALID_ARGUMENT' });
      assert.throws(() => tasks.work('q', () => 1, { leaseTtl: 10 }), { code: 'ROTA_INVALID_ARGUMENT' });
      await rejectsWith(tasks.configureQueue('q', { maxAttempts: -1 }), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(tasks.get('not an id'), 'ROTA_INVALID_ARGUMENT');
    });
  });

  it('TA-8 complete stores the result; a claimed task may complete; a pending one may not; long messages are cut', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const { tasks, store } = cluster.node('n1').rota;
      await tasks.enqueueMany('q', [
        { payload: 1, id: 'run' },
        { payload: 2, id: 'claim' },
        { payload: 3, id: 'long' },
        { payload: 4, id: 'pend', delay: 60_000 },
      ]);
      const [run] = await tasks.claim('q', { start: true });
      await cluster.advance(1500);
      const now = await store.now();
      await run?.complete({ ok: 1 });
      const done = await tasks.get('run');
      assert.deepEqual([done?.state, done?.outcome, done?.result], ['completed', 'succeeded', { ok: 1 }]);
      assert.equal(done?.completedAt, now);
      const [claimOnly] = await tasks.claim('q');
      await claimOnly?.complete('fine');
      const c = await tasks.get('claim');
      assert.deepEqual([c?.state, c?.outcome, c?.attempt], ['completed', 'succeeded', 1]);
      const [long] = await tasks.claim('q', { start: true });
      await long?.fail(new Error('x'.repeat(2000)), { retry: false });
      const failed = await tasks.get('long');
      assert.deepEqual([failed?.state, failed?.outcome], ['completed', 'failed']);
      assert.equal(failed?.error?.message.length, 1024);
      const pending = await tasks.claimed({ id: 'pend', token: 1 });
      const err = await rejectsWith(pending.complete('no'), 'ROTA_INVALID_TRANSITION');
      assert.deepEqual([err.detail.from, err.detail.to], ['pending', 'completed']);
    });
  });

  it('TA-11 list by state, queue, owner and combinations matches get; get of an unknown id is undefined', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const a = cluster.node('n1').rota.tasks;
      const b = cluster.node('n2').rota.tasks;
      for (const q of ['q1', 'q2']) {
        await a.enqueueMany(
          q,
          Array.from({ length: 6 }, (_, i) => ({ payload: i, id: `${q}-${i}` })),
        );
      }
      await a.claim('q1', { limit: 2 });
      await b.claim('q1', { limit: 1, start: true });
      for (const c of await b.claim('q2', { limit: 2, start: true })) await c.complete(c.id);
      const all: Task[] = [];
      for await (const t of a.list({ limit: 2 })) all.push(t);
      assert.equal(all.length, 12);
      assert.deepEqual(
        all.map((t) => t.seq),
        [...all.map((t) => t.seq)].sort((x, y) => x - y),
        'enqueue order',
      );
      for (const t of all) assert.deepEqual(await a.get(t.id), t);
      const ids = async (q: Parameters<typeof a.list>[0]) => {
        const out: string[] = [];
        for await (const t of a.list(q)) out.push(t.id);
        return out;
      };
      const expect = (f: (t: (typeof all)[number]) => boolean) => all.filter(f).map((t) => t.id);
      assert.deepEqual(
        await ids({ state: 'claimed' }),
        expect((t) => t.state === 'claimed'),
      );
      assert.deepEqual(
        await ids({ queue: 'q2' }),
        expect((t) => t.queue === 'q2'),
      );
      assert.deepEqual(
        await ids({ owner: 'n2' }),
        expect((t) => t.owner === 'n2'),
      );
      assert.deepEqual(
        await ids({ queue: 'q2', state: 'completed', owner: 'n2' }),
        expect((t) => t.queue === 'q2' && t.state === 'completed' && t.owner === 'n2'),
      );
      assert.deepEqual(await ids({ queue: 'q1', state: 'running' }), ['q1-2']);
      const page = await a.listPage({ queue: 'q1', limit: 4 });
      assert.equal(page.tasks.length, 4);
      const rest = await a.listPage({ queue: 'q1', limit: 4, cursor: page.cursor ?? 0 });
      assert.deepEqual(
        [...page.tasks, ...rest.tasks].map((t) => t.id),
        expect((t) => t.queue === 'q1'),
      );
      assert.equal(rest.cursor, null);
      assert.equal(await a.get('unknown'), undefined);
    });
  });

  it('TA-12 three rejections return a claim to pending; the fourth fails it with ROTA_TASK_REJECTED', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      await tasks.enqueue('q', 1, { id: 't' });
      for (let i = 1; i <= 3; i++) {
        const [c] = await tasks.claim('q');
        assert.deepEqual(await c?.reject(`busy ${i}`), { state: 'pending' });
        const t = await tasks.get('t');
        assert.deepEqual(
          [t?.state, t?.rejections, t?.lastRejection, t?.attempt],
          ['pending', i, `busy ${i}`, 0],
        );
      }
      const [c] = await tasks.claim('q');
      assert.deepEqual(await c?.reject('still busy'), { state: 'completed' });
      const t = await tasks.get('t');
      assert.deepEqual([t?.state, t?.outcome, t?.error?.code], ['completed', 'failed', 'ROTA_TASK_REJECTED']);
    });
  });

  it('TA-13 fail(id, reason) fails a pending task without retry; a completed one is refused', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const { tasks } = cluster.node('n1').rota;
      await tasks.enqueue('q', 1, { id: 't', maxAttempts: 5 });
      await tasks.fail('t', 'x');
      const t = await tasks.get('t');
      assert.deepEqual(
        [t?.state, t?.outcome, t?.error?.message, t?.attempt],
        ['completed', 'failed', 'x', 0],
      );
      await cluster.advance(10_000);
      assert.equal((await tasks.get('t'))?.state, 'completed', 'no retry');
      const err = await rejectsWith(tasks.fail('t', 'again'), 'ROTA_INVALID_TRANSITION');
      assert.equal(err.detail.from, 'completed');
      await rejectsWith(tasks.fail('missing', 'x'), 'ROTA_TASK_NOT_FOUND');
    });
  });
});

/** Conformance: the Queue port (enqueue, claim, renew, settle, feed, sweep, wake-up). */
import type { NewItem, QueueItem, Store } from '../port.js';
import { assert, delay, eventually, rejectsWith } from './helpers.js';
import type { ConformanceGroup } from './index.js';

const item = (id: string, extra: Partial<NewItem> = {}): NewItem => ({
  id,
  queue: 'q',
  payload: JSON.stringify({ id }),
  ...extra,
});

async function claimOne(
  store: Store,
  owner = 'w1',
  extra: { start?: boolean; leaseTtl?: number; queue?: string } = {},
) {
  const res = await store.claim({
    queue: extra.queue ?? 'q',
    owner,
    limit: 1,
    leaseTtl: extra.leaseTtl ?? 30_000,
    ...(extra.start !== undefined ? { start: extra.start } : {}),
  });
  assert.equal(res.items.length, 1, 'expected one claimable item');
  return res.items[0] as QueueItem;
}

const fenced = (it: QueueItem) => ({ id: it.id, token: it.token as number, owner: it.owner as string });

export const queueTests: ConformanceGroup = {
  'enqueue stores a pending item with defaults and store timestamps': async ({ store }) => {
    const before = await store.now();
    const [res] = await store.enqueue([item('a')]);
    const after = await store.now();
    assert.deepEqual(res && { id: res.id, status: res.status }, { id: 'a', status: 'created' });
    const got = await store.getItem('a');
    assert.ok(got);
    assert.equal(got.state, 'pending');
    assert.equal(got.queue, 'q');
    assert.equal(got.payload, JSON.stringify({ id: 'a' }));
    assert.equal(got.priority, 0);
    assert.equal(got.maxAttempts, 3);
    assert.equal(got.attempt, 0);
    assert.equal(got.outcome, null);
    assert.equal(got.owner, null);
    assert.equal(got.createdAt, got.updatedAt);
    assert.ok(got.createdAt >= before - 5 && got.createdAt <= after + 5);
    assert.ok(got.runAt <= after + 5);
    assert.equal(got.seq, res?.seq);
    assert.equal(got.completedTtl, 3_600_000);
    assert.equal(got.failedTtl, 604_800_000);
    assert.equal(await store.getItem('nope'), null);
  },

  'enqueue of an existing id fails with ROTA_TASK_EXISTS and changes nothing; a batch stores none': async ({
    store,
  }) => {
    await store.enqueue([item('a', { payload: '"first"' })]);
    await rejectsWith(store.enqueue([item('a', { payload: '"second"' })]), 'ROTA_TASK_EXISTS');
    assert.equal((await store.getItem('a'))?.payload, '"first"');
    await rejectsWith(store.enqueue([item('b'), item('c'), item('a')]), 'ROTA_TASK_EXISTS');
    assert.equal(await store.getItem('b'), null);
    assert.equal(await store.getItem('c'), null);
    await rejectsWith(store.enqueue([item('d'), item('d')]), 'ROTA_TASK_EXISTS');
    assert.equal(await store.getItem('d'), null);
  },

  'an ambiguous retry with the same opId counts as created, without a duplicate': async ({ store }) => {
    const first = await store.enqueue([item('a', { opId: 'op-1' })]);
    const again = await store.enqueue([item('a', { opId: 'op-1' })]);
    assert.equal(again[0]?.status, 'created');
    assert.equal(again[0]?.seq, first[0]?.seq);
    await rejectsWith(store.enqueue([item('a', { opId: 'op-2' })]), 'ROTA_TASK_EXISTS');
    assert.equal((await store.listItems({ queue: 'q' })).items.length, 1);
  },

  'a batch mixing new ids, an ambiguous retry and a deleted id answers each in batch order': async ({
    store,
  }) => {
    // Two shapes of batch: items alike but for id and payload, and items with options of their own.
    // The batch is the retry of an operation that stored `retry` only.
    for (const [tag, options] of [
      ['u', (_i: number) => ({ opId: 'op-u' })],
      ['v', (i: number) => ({ opId: 'op-v', priority: i, maxAttempts: i + 1 })],
    ] as const) {
      const [stored] = await store.enqueue([item(`${tag}-retry`, options(0))]);
      await store.enqueue([item(`${tag}-gone`, options(0))]);
      await store.settle([{ op: 'cancel', id: `${tag}-gone` }]);
      const [resolving] = (
        await store.claim({ queue: 'q', owner: 'r', limit: 1, leaseTtl: 30_000, from: 'completed' })
      ).items;
      assert.ok(resolving);
      await store.settle([{ op: 'resolve', ...fenced(resolving) }]);
      assert.equal((await store.getItem(`${tag}-gone`))?.state ?? 'deleted', 'deleted');

      const batch = [
        item(`${tag}-1`, options(1)),
        item(`${tag}-retry`, options(0)),
        item(`${tag}-gone`, options(2)),
        item(`${tag}-3`, options(3)),
      ];
      const res = await store.enqueue(batch);
      assert.deepEqual(
        res.map((r) => [r.id, r.status]),
        batch.map((b) => [b.id, 'created']),
      );
      assert.equal(res[1]?.seq, stored?.seq);
      const [s1 = 0, s2 = 0, s3 = 0] = [res[0], res[2], res[3]].map((r) => r?.seq ?? 0);
      assert.ok(s1 > (stored?.seq ?? 0) && s1 < s2 && s2 < s3, `seqs ${[s1, s2, s3]}`);
      for (const [i, b] of batch.entries()) {
        const got = await store.getItem(b.id);
        assert.equal(got?.state, 'pending', b.id);
        assert.equal(got?.seq, res[i]?.seq, b.id);
        assert.equal(got?.priority, b.priority ?? 0, b.id);
        assert.equal(got?.maxAttempts, b.maxAttempts ?? 3, b.id);
      }
    }
  },

  'enqueueMany keeps enqueue order in seq, and list pages through it': async ({ store }) => {
    const items = Array.from({ length: 1000 }, (_, i) => item(`m${i}`, { payload: String(i) }));
    const results = await store.enqueue(items);
    for (let i = 1; i < results.length; i++) assert.ok((results[i]?.seq ?? 0) > (results[i - 1]?.seq ?? 0));
    const ids: string[] = [];
    let afterSeq: number | undefined;
    for (;;) {
      const page = await store.listItems({ queue: 'q', limit: 300, ...(afterSeq ? { afterSeq } : {}) });
      ids.push(...page.items.map((i) => i.id));
      if (page.nextAfterSeq === null) break;
      afterSeq = page.nextAfterSeq;
    }
    assert.deepEqual(
      ids,
      items.map((i) => i.id),
    );
  },

  'claims come out by priority desc, then runAt, then enqueue order': async ({ store }) => {
    const now = await store.now();
    await store.enqueue([
      item('p0a', { priority: 0 }),
      item('p10', { priority: 10 }),
      item('pm5', { priority: -5 }),
      item('p0b', { priority: 0 }),
      item('p0early', { priority: 0, runAt: now - 60_000 }),
      item('p10b', { priority: 10 }),
    ]);
    const res = await store.claim({ queue: 'q', owner: 'w', limit: 10, leaseTtl: 30_000 });
    assert.deepEqual(
      res.items.map((i) => i.id),
      ['p10', 'p10b', 'p0early', 'p0a', 'p0b', 'pm5'],
    );
    for (const it of res.items) {
      assert.equal(it.state, 'claimed');
      assert.equal(it.owner, 'w');
      assert.ok(typeof it.token === 'number' && it.token > 0);
      assert.ok((it.leaseExpiresAt ?? 0) > now);
    }
  },

  'a claim takes at most limit items and never returns an item twice': async ({ store }) => {
    await store.enqueue(Array.from({ length: 5 }, (_, i) => item(`l${i}`)));
    const a = await store.claim({ queue: 'q', owner: 'w1', limit: 3, leaseTtl: 30_000 });
    const b = await store.claim({ queue: 'q', owner: 'w2', limit: 3, leaseTtl: 30_000 });
    const c = await store.claim({ queue: 'q', owner: 'w3', limit: 3, leaseTtl: 30_000 });
    assert.equal(a.items.length, 3);
    assert.equal(b.items.length, 2);
    assert.equal(c.items.length, 0);
    const all = [...a.items, ...b.items].map((i) => i.id);
    assert.equal(new Set(all).size, 5);
    assert.equal(c.nextRunAt !== undefined, true);
  },

  'queues are independent': async ({ store }) => {
    await store.enqueue([item('x1', { queue: 'x' }), item('y1', { queue: 'y' })]);
    const x = await store.claim({ queue: 'x', owner: 'w', limit: 10, leaseTtl: 30_000 });
    assert.deepEqual(
      x.items.map((i) => i.id),
      ['x1'],
    );
    assert.equal((await store.getItem('y1'))?.state, 'pending');
  },

  'a delayed item is not claimable before its runAt, and nextRunAt tells when': async ({ store }) => {
    const now = await store.now();
    await store.enqueue([item('later', { delay: 1500 })]);
    const got = await store.getItem('later');
    assert.ok(got && got.runAt >= now + 1500 && got.runAt <= now + 1500 + 1000);
    const early = await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000 });
    assert.equal(early.items.length, 0);
    assert.ok(early.nextRunAt !== null && Math.abs(early.nextRunAt - (got?.runAt ?? 0)) <= 1);
    await eventually(
      async () =>
        (await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000 })).items.length === 1,
      4000,
      'the delayed item to become claimable',
    );
    assert.ok((await store.now()) >= (got?.runAt ?? 0));
  },

  'an explicit runAt in the past is runnable at once and keeps its place in order': async ({ store }) => {
    const now = await store.now();
    await store.enqueue([item('b'), item('a', { runAt: now - 1000 })]);
    const res = await store.claim({ queue: 'q', owner: 'w', limit: 2, leaseTtl: 30_000 });
    assert.deepEqual(
      res.items.map((i) => i.id),
      ['a', 'b'],
    );
  },

  'claim with start goes straight to running with attempt 1': async ({ store }) => {
    await store.enqueue([item('s')]);
    const it = await claimOne(store, 'w', { start: true });
    assert.equal(it.state, 'running');
    assert.equal(it.attempt, 1);
    assert.ok(it.startedAt !== null && it.claimedAt !== null);
  },

  'fencing tokens strictly increase, also when an expired claim is re-taken': async ({ store, connect }) => {
    await store.enqueue([item('t1'), item('t2')]);
    const a = await claimOne(store, 'w1', { leaseTtl: 1000 });
    const b = await claimOne(store, 'w1', { leaseTtl: 1000 });
    assert.ok((b.token ?? 0) > (a.token ?? 0), 'a later claim has a greater token');
    const other = await connect();
    assert.equal(
      (await other.claim({ queue: 'q', owner: 'w2', limit: 2, leaseTtl: 30_000 })).items.length,
      0,
    );
    await delay(1300);
    const again = (await other.claim({ queue: 'q', owner: 'w2', limit: 2, leaseTtl: 30_000 })).items;
    assert.equal(again.length, 2, 'both expired claims are claimable again');
    for (const it of again) {
      assert.ok((it.token ?? 0) > (b.token ?? 0), 're-claims carry greater tokens');
      assert.equal(it.attempt, 0, 'an expired claim does not consume an attempt');
      assert.equal(it.owner, 'w2');
    }
  },

  'a stalled running item is re-claimed with the stall counted; without attempts left it fails': async ({
    store,
  }) => {
    await store.enqueue([item('st', { maxAttempts: 2, deadLetter: 'dlq' })]);
    const first = await claimOne(store, 'w1', { start: true, leaseTtl: 1000 });
    const second = await eventually(
      async () =>
        (await store.claim({ queue: 'q', owner: 'w2', limit: 1, leaseTtl: 1000, start: true })).items[0],
      4000,
      'the stalled item to be re-claimed',
    );
    assert.equal(second.attempt, 2);
    assert.equal(second.stalls, 1);
    assert.ok((second.token ?? 0) > (first.token ?? 0));
    await eventually(
      async () => {
        await store.claim({ queue: 'q', owner: 'w3', limit: 1, leaseTtl: 1000 });
        return (await store.getItem('st'))?.state === 'completed';
      },
      4000,
      'the last stalled attempt to fail',
    );
    const failed = await store.getItem('st');
    assert.equal(failed?.outcome, 'failed');
    assert.equal(failed?.error?.code, 'ROTA_LEASE_EXPIRED');
    const dead = await store.getItem('dl-st');
    assert.equal(dead?.queue, 'dlq');
    assert.equal(dead?.state, 'pending');
  },

  'start moves claimed to running; a repeat is a noop; a stranger is wrong_owner': async ({ store }) => {
    await store.enqueue([item('a')]);
    const it = await claimOne(store, 'w1');
    const [started] = await store.settle([{ op: 'start', ...fenced(it) }]);
    assert.equal(started?.status, 'ok');
    assert.equal(started?.state, 'running');
    const running = await store.getItem('a');
    assert.equal(running?.attempt, 1);
    const updatedAt = running?.updatedAt;
    const [repeat] = await store.settle([{ op: 'start', ...fenced(it) }]);
    assert.equal(repeat?.status, 'noop');
    assert.equal((await store.getItem('a'))?.updatedAt, updatedAt);
    const [stranger] = await store.settle([
      { op: 'start', id: 'a', token: (it.token ?? 0) + 1000, owner: 'w2' },
    ]);
    assert.equal(stranger?.status, 'wrong_owner');
    const [missing] = await store.settle([{ op: 'start', id: 'zz', token: 1, owner: 'w1' }]);
    assert.equal(missing?.status, 'not_found');
  },

  'a batch mixing completions with other ops answers each in order, ops on one id in turn': async ({
    store,
  }) => {
    await store.enqueue(['a', 'b', 'c', 'e', 'f', 'g'].map((id) => item(id)));
    const a = await claimOne(store, 'w', { start: true });
    const b = await claimOne(store, 'w', { start: true });
    const c = await claimOne(store, 'w', { start: true });
    const e = await claimOne(store, 'w', { start: true });
    const f = await claimOne(store, 'w');
    const before = await store.getItem('g');
    const results = await store.settle([
      { op: 'complete', ...fenced(a), result: '"a"' },
      { op: 'complete', ...fenced(b), token: (b.token ?? 0) + 1000, result: '"b"' },
      { op: 'cancel', id: 'c' },
      { op: 'complete', ...fenced(c), result: '"c"' },
      { op: 'complete', ...fenced(e), result: '"e1"' },
      { op: 'complete', ...fenced(e), result: '"e2"' },
      { op: 'complete', ...fenced(f), result: null },
      { op: 'complete', id: 'g', token: 1, owner: 'w', result: null },
      { op: 'complete', id: 'nope', token: 1, owner: 'w', result: null },
    ]);
    assert.deepEqual(
      results.map((r) => [r.id, r.status, r.state, r.outcome]),
      [
        ['a', 'ok', 'completed', 'succeeded'],
        ['b', 'stale', 'running', null],
        ['c', 'ok', 'completed', 'cancelled'],
        ['c', 'stale', 'completed', 'cancelled'],
        ['e', 'ok', 'completed', 'succeeded'],
        ['e', 'noop', 'completed', 'succeeded'],
        ['f', 'ok', 'completed', 'succeeded'],
        ['g', 'stale', 'pending', null],
        ['nope', 'not_found', null, null],
      ],
    );
    const done = await store.getItem('a');
    assert.equal(done?.result, '"a"');
    assert.equal(done?.leaseExpiresAt, null);
    assert.equal(done?.attempt, 1);
    assert.ok(done?.completedAt && done.expireAt === done.completedAt + 3_600_000);
    assert.equal((await store.getItem('b'))?.state, 'running');
    assert.equal((await store.getItem('e'))?.result, '"e1"');
    const claimedOnly = await store.getItem('f');
    assert.equal(claimedOnly?.attempt, 1);
    assert.equal(claimedOnly?.startedAt, claimedOnly?.completedAt);
    assert.deepEqual(await store.getItem('g'), before);
  },

  'complete stores the result and completion time; from claimed it counts as started': async ({ store }) => {
    await store.enqueue([item('c1'), item('c2')]);
    const a = await claimOne(store, 'w', { start: true });
    const b = await claimOne(store, 'w');
    const [ra, rb] = await store.settle([
      { op: 'complete', ...fenced(a), result: '{"ok":1}' },
      { op: 'complete', ...fenced(b), result: null },
    ]);
    assert.equal(ra?.status, 'ok');
    assert.equal(rb?.status, 'ok');
    const done = await store.getItem('c1');
    assert.equal(done?.state, 'completed');
    assert.equal(done?.outcome, 'succeeded');
    assert.equal(done?.result, '{"ok":1}');
    assert.ok(done?.completedAt && done.expireAt === done.completedAt + 3_600_000);
    assert.equal((await store.getItem('c2'))?.attempt, 1);
    const [again] = await store.settle([{ op: 'complete', ...fenced(a), result: '"other"' }]);
    assert.equal(again?.status, 'noop');
    assert.equal((await store.getItem('c1'))?.result, '{"ok":1}');
  },

  'a stale token is rejected and never changes the item': async ({ store, connect }) => {
    await store.enqueue([item('s')]);
    const old = await claimOne(store, 'w1', { start: true, leaseTtl: 1000 });
    const other = await connect();
    const fresh = await eventually(
      async () =>
        (await other.claim({ queue: 'q', owner: 'w2', limit: 1, leaseTtl: 30_000, start: true })).items[0],
      4000,
      're-claim after expiry',
    );
    const [late] = await store.settle([{ op: 'complete', ...fenced(old), result: '"late"' }]);
    assert.ok(late?.status === 'stale' || late?.status === 'wrong_owner');
    assert.equal((await store.getItem('s'))?.state, 'running');
    const [renew] = await store.renew([{ id: 's', token: old.token as number }], 30_000);
    assert.equal(renew?.status, 'stale');
    const [ok] = await other.settle([{ op: 'complete', ...fenced(fresh), result: '"fresh"' }]);
    assert.equal(ok?.status, 'ok');
    assert.equal((await store.getItem('s'))?.result, '"fresh"');
  },

  'a settle after the lease expired is stale even if nobody re-claimed': async ({ store }) => {
    await store.enqueue([item('e')]);
    const it = await claimOne(store, 'w1', { start: true, leaseTtl: 1000 });
    await delay(1300);
    const [res] = await store.settle([{ op: 'complete', ...fenced(it), result: null }]);
    assert.equal(res?.status, 'stale');
    const now = await store.getItem('e');
    assert.equal(now?.state, 'pending');
    assert.equal(now?.stalls, 1);
  },

  'retry returns a running item to pending after a delay, optionally refunding the attempt': async ({
    store,
  }) => {
    await store.enqueue([item('r1'), item('r2')]);
    const a = await claimOne(store, 'w', { start: true });
    const b = await claimOne(store, 'w', { start: true });
    const now = await store.now();
    const [ra, rb] = await store.settle([
      { op: 'retry', ...fenced(a), retryIn: 60_000, error: { code: 'E', message: 'boom' } },
      { op: 'retry', ...fenced(b), retryAt: now - 1, refundAttempt: true },
    ]);
    assert.equal(ra?.status, 'ok');
    assert.equal(rb?.status, 'ok');
    const r1 = await store.getItem('r1');
    assert.equal(r1?.state, 'pending');
    assert.equal(r1?.attempt, 1);
    assert.deepEqual(r1?.error, { code: 'E', message: 'boom' });
    assert.ok((r1?.runAt ?? 0) >= now + 59_000);
    const r2 = await store.getItem('r2');
    assert.equal(r2?.attempt, 0);
    const next = await store.claim({ queue: 'q', owner: 'w', limit: 5, leaseTtl: 30_000 });
    assert.deepEqual(
      next.items.map((i) => i.id),
      ['r2'],
    );
    // r1 waits 60 s; r2, just claimed, could come back when its lease expires: whichever is first.
    assert.equal(next.nextRunAt, Math.min(r1?.runAt ?? 0, next.items[0]?.leaseExpiresAt ?? 0));
    const [repeat] = await store.settle([{ op: 'retry', ...fenced(a), retryIn: 1 }]);
    assert.equal(repeat?.status, 'noop');
  },

  'fail completes as failed, truncates the message, and dead-letters once': async ({ store }) => {
    await store.enqueue([item('f', { deadLetter: 'dlq', payload: '{"v":42}' })]);
    const it = await claimOne(store, 'w', { start: true });
    const long = 'x'.repeat(2000);
    const [res] = await store.settle([
      { op: 'fail', ...fenced(it), error: { code: 'E_BAD', message: long } },
    ]);
    assert.equal(res?.status, 'ok');
    assert.equal(res?.outcome, 'failed');
    const failed = await store.getItem('f');
    assert.equal(failed?.state, 'completed');
    assert.equal(failed?.error?.code, 'E_BAD');
    assert.equal(failed?.error?.message.length, 1024);
    assert.equal(failed?.expireAt, (failed?.completedAt ?? 0) + 604_800_000);
    const dead = await store.getItem('dl-f');
    assert.ok(dead);
    assert.equal(dead.queue, 'dlq');
    assert.equal(dead.payload, '{"v":42}');
    const meta = JSON.parse(dead.meta ?? '{}');
    assert.deepEqual(meta.deadLetter.originalId, 'f');
    assert.deepEqual(meta.deadLetter.queue, 'q');
    assert.equal(meta.deadLetter.error.code, 'E_BAD');
    assert.equal(meta.deadLetter.attempts, 1);
    const [again] = await store.settle([
      { op: 'fail', ...fenced(it), error: { code: 'E_BAD', message: 'x' } },
    ]);
    assert.equal(again?.status, 'noop');
    assert.equal((await store.listItems({ queue: 'dlq' })).items.length, 1);
  },

  'release returns an item to pending; rejections above the limit fail it': async ({ store }) => {
    await store.enqueue([item('rj')]);
    for (let i = 1; i <= 3; i++) {
      const it = await claimOne(store, 'w');
      const [res] = await store.settle([
        { op: 'release', ...fenced(it), reject: { reason: `no ${i}`, maxRejections: 3 } },
      ]);
      assert.equal(res?.state, 'pending');
      assert.equal((await store.getItem('rj'))?.rejections, i);
    }
    const it = await claimOne(store, 'w');
    const [res] = await store.settle([
      { op: 'release', ...fenced(it), reject: { reason: 'no 4', maxRejections: 3 } },
    ]);
    assert.equal(res?.state, 'completed');
    const failed = await store.getItem('rj');
    assert.equal(failed?.outcome, 'failed');
    assert.equal(failed?.error?.code, 'ROTA_TASK_REJECTED');
    assert.equal(failed?.lastRejection, 'no 4');
    assert.equal(failed?.attempt, 0);
  },

  'release with refundAttempt gives a running attempt back': async ({ store }) => {
    await store.enqueue([item('rf')]);
    const it = await claimOne(store, 'w', { start: true });
    const [res] = await store.settle([{ op: 'release', ...fenced(it), refundAttempt: true }]);
    assert.equal(res?.status, 'ok');
    const back = await store.getItem('rf');
    assert.equal(back?.state, 'pending');
    assert.equal(back?.attempt, 0);
    assert.equal(back?.owner, null);
  },

  'cancel ends pending, claimed and running items; a cancelled claim renews as cancelled': async ({
    store,
  }) => {
    await store.enqueue([item('cp'), item('cc'), item('cr'), item('cd')]);
    const claimed = await store.claim({ queue: 'q', owner: 'w', limit: 2, leaseTtl: 30_000 });
    const running = await claimOne(store, 'w', { start: true });
    const done = await claimOne(store, 'w', { start: true });
    await store.settle([{ op: 'complete', ...fenced(done), result: null }]);
    const ids = ['cp', 'cc', 'cr'];
    const cancelled = [claimed.items[0]?.id, claimed.items[1]?.id, running.id];
    assert.deepEqual(cancelled.sort(), ids.sort());
    const results = await store.settle(ids.map((id) => ({ op: 'cancel' as const, id, reason: 'user' })));
    for (const r of results) {
      assert.equal(r.status, 'ok');
      assert.equal(r.outcome, 'cancelled');
    }
    const [renew] = await store.renew([{ id: running.id, token: running.token as number }], 30_000);
    assert.equal(renew?.status, 'cancelled');
    const [late] = await store.settle([{ op: 'complete', ...fenced(running), result: '"late"' }]);
    assert.equal(late?.status, 'stale');
    assert.equal((await store.getItem(running.id))?.outcome, 'cancelled');
    const [onDone] = await store.settle([{ op: 'cancel', id: done.id }]);
    assert.equal(onDone?.status, 'invalid_state');
    assert.equal(onDone?.state, 'completed');
    const [unknown] = await store.settle([{ op: 'cancel', id: 'nope' }]);
    assert.equal(unknown?.status, 'not_found');
  },

  'abort fails an item without retry and without a dead-letter copy': async ({ store }) => {
    await store.enqueue([item('ab', { deadLetter: 'dlq' })]);
    const [res] = await store.settle([{ op: 'abort', id: 'ab', error: { code: 'ADMIN', message: 'x' } }]);
    assert.equal(res?.status, 'ok');
    const got = await store.getItem('ab');
    assert.equal(got?.outcome, 'failed');
    assert.equal(got?.error?.message, 'x');
    assert.equal(await store.getItem('dl-ab'), null);
    const [again] = await store.settle([{ op: 'abort', id: 'ab', error: { code: 'ADMIN', message: 'x' } }]);
    assert.equal(again?.status, 'invalid_state');
  },

  'renew extends the lease and stores progress; unknown tokens are stale': async ({ store }) => {
    await store.enqueue([item('rn')]);
    // Renewing every 400 ms keeps a 2 s lease alive with room for slow round trips.
    const it = await claimOne(store, 'w', { start: true, leaseTtl: 2000 });
    for (let i = 0; i < 4; i++) {
      await delay(400);
      const [res] = await store.renew(
        [{ id: 'rn', token: it.token as number, progress: String(i * 25) }],
        2000,
      );
      assert.equal(res?.status, 'ok');
      assert.ok((res?.leaseExpiresAt ?? 0) > (await store.now()));
    }
    const got = await store.getItem('rn');
    assert.equal(got?.state, 'running');
    assert.equal(got?.progress, '75');
    const [stale] = await store.renew([{ id: 'rn', token: (it.token as number) - 1 }], 1000);
    assert.equal(stale?.status, 'stale');
    const [missing] = await store.renew([{ id: 'gone', token: 1 }], 1000);
    assert.equal(missing?.status, 'stale');
  },

  'a batch settle of 1 000 items applies each in one call': async ({ store }) => {
    await store.enqueue(Array.from({ length: 1000 }, (_, i) => item(`b${i}`)));
    const claimed: QueueItem[] = [];
    while (claimed.length < 1000) {
      const res = await store.claim({ queue: 'q', owner: 'w', limit: 500, leaseTtl: 60_000, start: true });
      claimed.push(...res.items);
      if (res.items.length === 0) break;
    }
    assert.equal(claimed.length, 1000);
    const results = await store.settle(
      claimed.map((it, i) =>
        i % 10 === 0
          ? { op: 'fail' as const, ...fenced(it), error: { code: 'E', message: 'bad' } }
          : { op: 'complete' as const, ...fenced(it), result: String(i) },
      ),
    );
    assert.equal(results.length, 1000);
    assert.ok(results.every((r) => r.status === 'ok'));
    const counts = (await store.countItems('q')).q;
    assert.equal(counts?.completed, 1000);
    assert.equal(counts?.running, 0);
  },

  'concurrent claimers on two clients never receive the same item': async ({ store, connect }) => {
    const other = await connect();
    await store.enqueue(Array.from({ length: 300 }, (_, i) => item(`cc${i}`)));
    const seen = new Map<string, string>();
    const worker = async (client: Store, name: string) => {
      for (;;) {
        const res = await client.claim({ queue: 'q', owner: name, limit: 7, leaseTtl: 60_000, start: true });
        if (res.items.length === 0) return;
        for (const it of res.items) {
          assert.ok(!seen.has(it.id), `${it.id} claimed by ${seen.get(it.id)} and ${name}`);
          seen.set(it.id, name);
        }
        await client.settle(
          res.items.map((it) => ({ op: 'complete' as const, ...fenced(it), result: null })),
        );
      }
    };
    await Promise.all([worker(store, 'a1'), worker(store, 'a2'), worker(other, 'b1'), worker(other, 'b2')]);
    assert.equal(seen.size, 300);
    assert.equal((await store.countItems('q')).q?.completed, 300);
  },

  'completed items are claimed for resolution, resolved (deleted) or given back': async ({ store }) => {
    await store.enqueue([item('r1'), item('r2'), item('r3')]);
    const res = await store.claim({ queue: 'q', owner: 'w', limit: 3, leaseTtl: 30_000, start: true });
    await store.settle(res.items.map((it) => ({ op: 'complete' as const, ...fenced(it), result: null })));
    const none = await store.claim({ queue: 'q', owner: 'w', limit: 3, leaseTtl: 30_000 });
    assert.equal(none.items.length, 0);
    const resolving = await store.claim({
      queue: 'q',
      owner: 'res',
      limit: 2,
      leaseTtl: 30_000,
      from: 'completed',
    });
    assert.equal(resolving.items.length, 2);
    assert.ok(resolving.items.every((i) => i.state === 'resolving' && i.owner === 'res'));
    const [x, y] = resolving.items as [QueueItem, QueueItem];
    const [resolved, given] = await store.settle([
      { op: 'resolve', ...fenced(x) },
      { op: 'unresolve', ...fenced(y) },
    ]);
    assert.equal(resolved?.status, 'ok');
    assert.equal(given?.state, 'completed');
    assert.equal(await store.getItem(x.id), null);
    const [again] = await store.settle([{ op: 'resolve', ...fenced(x) }]);
    assert.ok(again?.status === 'noop' || again?.status === 'not_found');
    const [stale] = await store.settle([{ op: 'resolve', ...fenced(y) }]);
    assert.equal(stale?.status, 'stale');
    const rest = await store.claim({
      queue: 'q',
      owner: 'res2',
      limit: 5,
      leaseTtl: 30_000,
      from: 'completed',
    });
    assert.equal(rest.items.length, 2);
  },

  'a claim restricted to ids takes only those items (for resolving one given task)': async ({ store }) => {
    await store.enqueue([item('i1'), item('i2'), item('i3'), item('i4')]);
    const started = await store.claim({ queue: 'q', owner: 'w', limit: 3, leaseTtl: 30_000, start: true });
    await store.settle(started.items.map((it) => ({ op: 'complete' as const, ...fenced(it), result: null })));
    const [a, b] = started.items as [QueueItem, QueueItem];
    const one = await store.claim({
      queue: 'q',
      owner: 'res',
      limit: 5,
      leaseTtl: 30_000,
      from: 'completed',
      ids: [b.id, 'i4', 'absent'],
    });
    assert.deepEqual(
      one.items.map((i) => [i.id, i.state, i.owner]),
      [[b.id, 'resolving', 'res']],
    );
    assert.ok((one.items[0]?.token ?? 0) > (b.token ?? 0));
    const again = await store.claim({
      queue: 'q',
      owner: 'res2',
      limit: 1,
      leaseTtl: 30_000,
      from: 'completed',
      ids: [b.id],
    });
    assert.equal(again.items.length, 0, 'a resolving item is not claimed twice');
    assert.equal((await store.getItem(a.id))?.state, 'completed');
    const other = await store.claim({
      queue: 'other',
      owner: 'res',
      limit: 1,
      leaseTtl: 30_000,
      ids: ['i4'],
    });
    assert.equal(other.items.length, 0, 'ids of another queue are ignored');
    const pending = await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000, ids: ['i4'] });
    assert.deepEqual(
      pending.items.map((i) => [i.id, i.state]),
      [['i4', 'claimed']],
    );
    await rejectsWith(
      store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000, ids: ['i4', 'i4'] }),
      'ROTA_INVALID_ARGUMENT',
    );
  },

  'an expired resolver lease returns the item to completed for another resolver': async ({ store }) => {
    await store.enqueue([item('rz')]);
    const it = await claimOne(store, 'w', { start: true });
    await store.settle([{ op: 'complete', ...fenced(it), result: null }]);
    const first = await store.claim({
      queue: 'q',
      owner: 'res1',
      limit: 1,
      leaseTtl: 1000,
      from: 'completed',
    });
    assert.equal(first.items.length, 1);
    const second = await eventually(
      async () =>
        (await store.claim({ queue: 'q', owner: 'res2', limit: 1, leaseTtl: 30_000, from: 'completed' }))
          .items[0],
      4000,
      'the resolver lease to expire',
    );
    assert.equal(second.owner, 'res2');
    assert.ok((second.token ?? 0) > (first.items[0]?.token ?? 0));
  },

  'dedup keep returns the active holder, and frees the key once it completes': async ({ store }) => {
    const [a] = await store.enqueue([item('d1', { dedup: { key: 'k' } })]);
    const [b] = await store.enqueue([item('d2', { dedup: { key: 'k' } })]);
    assert.equal(a?.status, 'created');
    assert.deepEqual(b && { id: b.id, status: b.status }, { id: 'd1', status: 'deduplicated' });
    assert.equal(await store.getItem('d2'), null);
    const [other] = await store.enqueue([item('o1', { queue: 'other', dedup: { key: 'k' } })]);
    assert.equal(other?.status, 'created', 'dedup keys are per queue');
    const it = await claimOne(store, 'w', { start: true });
    await store.settle([{ op: 'complete', ...fenced(it), result: null }]);
    const [c] = await store.enqueue([item('d3', { dedup: { key: 'k' } })]);
    assert.deepEqual(c && { id: c.id, status: c.status }, { id: 'd3', status: 'created' });
  },

  'dedup with ttl stays active after completion until createdAt + ttl': async ({ store }) => {
    await store.enqueue([item('t1', { dedup: { key: 'k', ttl: 10_000 } })]);
    const it = await claimOne(store, 'w', { start: true });
    await store.settle([{ op: 'complete', ...fenced(it), result: null }]);
    const [again] = await store.enqueue([item('t2', { dedup: { key: 'k', ttl: 10_000 } })]);
    assert.deepEqual(again && { id: again.id, status: again.status }, { id: 't1', status: 'deduplicated' });
    await store.enqueue([item('s1', { dedup: { key: 'short', ttl: 1000 } })]);
    const s = await claimOne(store, 'w', { start: true });
    await store.settle([{ op: 'complete', ...fenced(s), result: null }]);
    await delay(1100);
    const [fresh] = await store.enqueue([item('s2', { dedup: { key: 'short', ttl: 1000 } })]);
    assert.equal(fresh?.status, 'created');
  },

  'dedup replace updates a pending holder but keeps a running one': async ({ store }) => {
    await store.enqueue([item('p1', { payload: '"v1"', dedup: { key: 'k', mode: 'replace' } })]);
    const [r] = await store.enqueue([
      item('p2', { payload: '"v2"', priority: 7, dedup: { key: 'k', mode: 'replace' } }),
    ]);
    assert.deepEqual(r && { id: r.id, status: r.status }, { id: 'p1', status: 'replaced' });
    const held = await store.getItem('p1');
    assert.equal(held?.payload, '"v2"');
    assert.equal(held?.priority, 7);
    await claimOne(store, 'w', { start: true });
    const [k] = await store.enqueue([item('p3', { payload: '"v3"', dedup: { key: 'k', mode: 'replace' } })]);
    assert.equal(k?.status, 'deduplicated');
    assert.equal((await store.getItem('p1'))?.payload, '"v2"');
  },

  'the change feed yields each changed item once, in order, resumable from its cursor': async ({
    store,
    connect,
  }) => {
    const start = (await store.changes({ after: 0 })).cursor;
    await store.enqueue([item('f1'), item('f2'), item('g1', { queue: 'g' })]);
    const first = await store.changes({ after: start });
    assert.deepEqual(first.items.map((i) => i.id).sort(), ['f1', 'f2', 'g1']);
    for (let i = 1; i < first.items.length; i++) {
      assert.ok(
        (first.items[i]?.changeSeq ?? 0) >= (first.items[i - 1]?.changeSeq ?? 0),
        'changeSeq never decreases',
      );
    }
    assert.ok(
      first.cursor >= (first.items[first.items.length - 1]?.changeSeq ?? 0),
      'the cursor covers the page',
    );
    const other = await connect();
    const it = await claimOne(other, 'w', { start: true });
    await other.settle([{ op: 'complete', ...fenced(it), result: '"r"' }]);
    const second = await store.changes({ after: first.cursor, queue: 'q' });
    assert.deepEqual(
      second.items.map((i) => [i.id, i.state]),
      [[it.id, 'completed']],
      'conflated: the latest state only',
    );
    const none = await store.changes({ after: second.cursor });
    assert.equal(none.items.length, 0);
    assert.equal(none.cursor, second.cursor);
    // Paging with limit 1 walks the same items once each, in the same order.
    const walked: string[] = [];
    let cursor = start;
    for (let guard = 0; guard < 10; guard++) {
      const page = await store.changes({ after: cursor, limit: 1 });
      if (page.items.length === 0) break;
      walked.push(...page.items.map((i) => i.id));
      cursor = page.cursor;
    }
    assert.deepEqual(walked.sort(), ['f1', 'f2', 'g1']);
  },

  'deleted items appear in the feed as tombstones until purged, then old cursors are compacted': async ({
    store,
  }) => {
    const start = (await store.changes({ after: 0 })).cursor;
    await store.enqueue([item('z')]);
    const it = await claimOne(store, 'w', { start: true });
    await store.settle([{ op: 'complete', ...fenced(it), result: null }]);
    const [res] = (
      await store.claim({ queue: 'q', owner: 'r', limit: 1, leaseTtl: 30_000, from: 'completed' })
    ).items;
    assert.ok(res);
    await store.settle([{ op: 'resolve', ...fenced(res) }]);
    const feed = await store.changes({ after: start });
    assert.deepEqual(
      feed.items.map((i) => [i.id, i.state]),
      [['z', 'deleted']],
    );
    const swept = await store.sweep({ tombstoneTtl: 0 });
    assert.equal(swept.purged, 1);
    await rejectsWith(store.changes({ after: start }), 'ROTA_COMPACTED');
    const fresh = await store.changes({ after: feed.cursor });
    assert.equal(fresh.items.length, 0);
  },

  'sweep returns stale claims, times out runs, fails unclaimed items and prunes old ones': async ({
    store,
  }) => {
    const now = await store.now();
    await store.enqueue([
      item('claimed'),
      item('slow', { timeout: 1000, maxAttempts: 1 }),
      item('retryable', { timeout: 1000, maxAttempts: 2 }),
      item('unclaimed', { queue: 'idle', claimTimeout: 1000, runAt: now - 2000 }),
      item('future', { queue: 'idle', claimTimeout: 1000, runAt: now + 3_600_000 }),
      item('short', { completedTtl: 1000 }),
    ]);
    const claimed = await claimOne(store, 'w');
    assert.equal(claimed.id, 'claimed');
    const running = await store.claim({ queue: 'q', owner: 'w', limit: 3, leaseTtl: 60_000, start: true });
    const short = running.items.find((i) => i.id === 'short') as QueueItem;
    await store.settle([{ op: 'complete', ...fenced(short), result: null }]);
    await delay(1200);
    const result = await store.sweep({ startTimeout: 1000, abortGrace: 100 });
    assert.equal(result.unstarted, 1);
    assert.equal(result.timedOut, 2);
    assert.equal(result.unclaimed, 1);
    assert.equal(result.pruned, 1);
    assert.equal(result.more, false);
    assert.equal((await store.getItem('claimed'))?.state, 'pending');
    assert.equal((await store.getItem('slow'))?.outcome, 'failed');
    assert.equal((await store.getItem('slow'))?.error?.code, 'ROTA_TASK_TIMEOUT');
    assert.equal((await store.getItem('retryable'))?.state, 'pending');
    assert.equal((await store.getItem('unclaimed'))?.error?.code, 'ROTA_TASK_UNCLAIMED');
    assert.equal((await store.getItem('future'))?.state, 'pending');
    assert.equal(await store.getItem('short'), null);
    const quiet = await store.sweep({ startTimeout: 1000 });
    assert.equal(quiet.unstarted + quiet.timedOut + quiet.unclaimed + quiet.pruned, 0);
  },

  'sweep applies expired leases (reclaim, stall, unresolve)': async ({ store }) => {
    // The completed item is prepared first, so the three short leases start close together.
    await store.enqueue([item('c')]);
    const c = await claimOne(store, 'w', { start: true });
    await store.settle([{ op: 'complete', ...fenced(c), result: null }]);
    await store.enqueue([item('a'), item('b')]);
    await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 2000 });
    await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 2000, start: true });
    await store.claim({ queue: 'q', owner: 'r', limit: 1, leaseTtl: 2000, from: 'completed' });
    await delay(2300);
    const swept = await store.sweep();
    assert.equal(swept.reclaimed, 1);
    assert.equal(swept.stalled, 1);
    assert.equal(swept.unresolved, 1);
    assert.equal((await store.getItem('a'))?.state, 'pending');
    assert.equal((await store.getItem('b'))?.stalls, 1);
    assert.equal((await store.getItem('c'))?.state, 'completed');
  },

  'countItems counts by state per queue; listItems filters by queue, state and owner': async ({ store }) => {
    await store.enqueue([item('a'), item('b'), item('c'), item('x', { queue: 'x' })]);
    await claimOne(store, 'w1');
    await claimOne(store, 'w2', { start: true });
    const counts = await store.countItems();
    assert.deepEqual(counts.q, { pending: 1, claimed: 1, running: 1, completed: 0, resolving: 0 });
    assert.deepEqual(counts.x, { pending: 1, claimed: 0, running: 0, completed: 0, resolving: 0 });
    assert.deepEqual((await store.countItems('empty')).empty, {
      pending: 0,
      claimed: 0,
      running: 0,
      completed: 0,
      resolving: 0,
    });
    const byOwner = await store.listItems({ owner: 'w2' });
    assert.deepEqual(
      byOwner.items.map((i) => i.id),
      ['b'],
    );
    const pendingQ = await store.listItems({ queue: 'q', state: 'pending' });
    assert.deepEqual(
      pendingQ.items.map((i) => i.id),
      ['c'],
    );
    const all = await store.listItems({});
    assert.equal(all.items.length, 4);
  },

  'subscribe fires soon after another client makes work runnable; unsubscribe stops it': async ({
    store,
    connect,
  }) => {
    const other = await connect();
    let fired = 0;
    const off = store.subscribe('wake', () => {
      fired++;
    });
    await delay(200);
    await other.enqueue([item('w1', { queue: 'wake' })]);
    await eventually(() => fired > 0, 3000, 'a wake-up after enqueue');
    off();
    await delay(200);
    const seen = fired;
    await other.enqueue([item('w2', { queue: 'wake' })]);
    await delay(400);
    assert.equal(fired, seen, 'no wake-up after unsubscribe');
    let any = 0;
    const offAll = store.subscribe('*', () => {
      any++;
    });
    await delay(200);
    await other.enqueue([item('w3', { queue: 'elsewhere' })]);
    await eventually(() => any > 0, 3000, "a '*' wake-up");
    offAll();
  },
};

/** Redis-specific behaviour on the shared test server: key layout, history bound, idle lease expiry, processes. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { isRotaError } from '../../src/errors.js';
import { openStore } from '../../src/store/open.js';
import { ITEM_DEFAULTS, type WatchEvent } from '../../src/store/port.js';
import { dropRedisPrefix, selectedFixtures, serverAvailable } from '../support/stores.js';

const url = process.env.ROTA_TEST_REDIS_URL as string;
const fixture = selectedFixtures().find((f) => f.name === 'redis');
const enabled = fixture !== undefined && serverAvailable(fixture);
const enc = (s: string) => new TextEncoder().encode(s);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const newPrefix = () => `rs-${randomBytes(5).toString('hex')}`;

describe('redis store specifics', { skip: !enabled, concurrency: 4, timeout: 60_000 }, () => {
  it('keeps every key under the {prefix} hash tag (one Redis Cluster slot)', async () => {
    const prefix = newPrefix();
    const store = await openStore(url, { prefix });
    try {
      const lease = await store.grant(5000);
      await store.put('a', enc('1'), { lease: lease.id });
      await store.txn({ compare: [], success: [{ type: 'put', key: 'b', value: enc('2') }] });
      await store.enqueue([
        { id: 'i1', queue: 'q1', payload: '1', dedup: { key: 'd' }, claimTimeout: 60_000 },
        { id: 'i2', queue: 'q2', payload: '2', deadLetter: 'dlq', timeout: 60_000, delay: 60_000 },
      ]);
      const [it] = (await store.claim({ queue: 'q1', owner: 'w', limit: 1, leaseTtl: 5000 })).items;
      await store.settle([
        { op: 'complete', id: 'i1', token: it?.token as number, owner: 'w', result: null },
      ]);
      await store.sweep();
      const admin = new Redis(url);
      const keys = await admin.keys('*');
      admin.disconnect();
      const mine = keys.filter((k) => k.includes(prefix));
      assert.ok(mine.length >= 10, `expected the store's keys, got ${mine.join(', ')}`);
      for (const k of mine) assert.ok(k.startsWith(`{${prefix}}:`), `key ${k} is outside the hash tag`);
    } finally {
      await store.close();
      await dropRedisPrefix(url, prefix);
    }
  });

  it('trims watch history to historyRevisions and compacts what it dropped', async () => {
    const prefix = newPrefix();
    const store = await openStore(url, { prefix, historyRevisions: 5 });
    try {
      const revs: number[] = [];
      for (let i = 0; i < 20; i++) revs.push((await store.put(`h/${i}`, enc(String(i)))).revision);
      const last = revs.at(-1) as number;
      assert.deepEqual(await store.status(), { revision: last, compactRevision: last - 5 });
      const stale = store.watch('h/', { fromRevision: last - 10 });
      await assert.rejects(stale.next(), (err: unknown) => isRotaError(err, 'ROTA_COMPACTED'));
      const fresh = store.watch('h/', { fromRevision: last - 4 });
      const got: number[] = [];
      for await (const e of fresh) {
        got.push(e.revision);
        if (got.length === 5) break;
      }
      assert.deepEqual(got, revs.slice(-5));
    } finally {
      await store.close();
      await dropRedisPrefix(url, prefix);
    }
  });

  it("expires a dead client's lease on an idle store and the watcher sees the deletes", async () => {
    const prefix = newPrefix();
    const owner = await openStore(url, { prefix });
    const observer = await openStore(url, { prefix });
    try {
      const watch = observer.watch('s/');
      // The observer never writes; wait for its watch to be registered.
      await sleep(300);
      const lease = await owner.grant(1000);
      await owner.put('s/node-1', enc('alive'), { lease: lease.id });
      // The owner dies without revoking: nobody writes from now on.
      await owner.close();
      const events: WatchEvent[] = [];
      // Generous: the lease expires after ~1 s; the bound only stops a lost sweep from hanging the
      // suite (a loaded CI machine once took over 5 s here).
      const deadline = Date.now() + 20_000;
      while (events.length < 2) {
        const next = await Promise.race([watch.next(), sleep(deadline - Date.now()).then(() => null)]);
        if (!next || next.done) {
          const left = await observer.get('s/node-1');
          assert.fail(
            `timed out with ${events.length} events; a read (which sweeps) found the key ${left.kv ? 'still there' : 'gone'}`,
          );
        }
        events.push(next.value);
      }
      assert.deepEqual(
        events.map((e) => [e.type, e.kv.key]),
        [
          ['put', 's/node-1'],
          ['delete', 's/node-1'],
        ],
      );
      await watch.return?.();
    } finally {
      await owner.close();
      await observer.close();
      await dropRedisPrefix(url, prefix);
    }
  });

  it('enqueues 10 000 items in one call, all stored in enqueue order', async () => {
    const prefix = newPrefix();
    const store = await openStore(url, { prefix });
    try {
      // Ids not in sort order, so that enqueue order is not id order.
      const ids = Array.from({ length: 10_000 }, (_, i) => `b${(i * 7919) % 10_000}`);
      const results = await store.enqueue(
        ids.map((id, i) => ({ id, queue: 'big', payload: `{"n":${i}}`, ...(i % 3 ? { meta: '{}' } : {}) })),
      );
      assert.deepEqual(
        results.map((r) => r.id),
        ids,
      );
      assert.ok(results.every((r) => r.status === 'created'));
      for (let i = 1; i < results.length; i++) {
        assert.ok((results[i]?.seq ?? 0) > (results[i - 1]?.seq ?? 0), `seq order at ${i}`);
      }
      assert.equal((await store.countItems('big')).big?.pending, 10_000);
      const stored: string[] = [];
      let afterSeq: number | undefined;
      for (;;) {
        const page = await store.listItems({ queue: 'big', limit: 1000, ...(afterSeq ? { afterSeq } : {}) });
        for (const it of page.items) {
          assert.equal(it.payload, `{"n":${stored.length}}`);
          stored.push(it.id);
        }
        if (page.nextAfterSeq === null) break;
        afterSeq = page.nextAfterSeq;
      }
      assert.deepEqual(stored, ids);
      const claimed = await store.claim({ queue: 'big', owner: 'w', limit: 5, leaseTtl: 30_000 });
      assert.deepEqual(
        claimed.items.map((it) => it.id),
        ids.slice(0, 5),
      );
    } finally {
      await store.close();
      await dropRedisPrefix(url, prefix);
    }
  });

  it('enqueue (one JSON argument) and claim (one JSON reply) keep text fields exactly', async () => {
    const prefix = newPrefix();
    const store = await openStore(url, { prefix });
    try {
      // Quotes, backslashes, '/', escaped and raw control characters, non-ASCII, astral and U+2028:
      // everything a JSON encoder escapes or passes through differently.
      const payload = '{"s":"q\\"b\\\\c/d\\u0000\\u001f","u":"é 😀 \u2028",\t"n":\n1}';
      const meta = '{"tags":["ü/\\"x"]}';
      await store.enqueue([
        { id: 'j-1', queue: 'q', payload, meta, opId: 'op "1"\n\u0000', dedup: { key: 'k\u0001' } },
        { id: 'later', queue: 'q', payload: '2', delay: 60_000 },
      ]);
      const res = await store.claim({ queue: 'q', owner: 'w"1', limit: 5, leaseTtl: 30_000, start: true });
      assert.equal(res.items.length, 1);
      const it = res.items[0];
      assert.equal(it?.payload, payload);
      assert.equal(it?.meta, meta);
      assert.equal(it?.opId, 'op "1"\n\u0000');
      assert.equal(it?.dedupKey, 'k\u0001');
      assert.equal(it?.owner, 'w"1');
      assert.equal(it?.state, 'running');
      assert.equal(it?.attempt, 1);
      assert.deepEqual(it, await store.getItem('j-1'));
      // The next due time is the claimed item's lease expiry (30 s), before the delayed item's minute.
      const now = await store.now();
      assert.equal(typeof res.nextRunAt, 'number');
      assert.ok((res.nextRunAt as number) > now + 20_000 && (res.nextRunAt as number) <= now + 30_000);
      const empty = await store.claim({ queue: 'none', owner: 'w', limit: 5, leaseTtl: 30_000 });
      assert.deepEqual(empty, { items: [], nextRunAt: null });
      // A batch alike but for ids and payloads goes as one shared row (q-enqueue.lua): the same
      // text comes back, and each item keeps its own id and payload.
      const payloads = [payload, '"\\u0000"', '{"a":[1,2,{"b":null}]}', '"é 😀"'];
      const ids = payloads.map((_, i) => `u-${i}`);
      await store.enqueue(
        payloads.map((p, i) => ({ id: ids[i] as string, queue: 'u', payload: p, opId: 'same' })),
      );
      const got = await store.claim({ queue: 'u', owner: 'w', limit: 10, leaseTtl: 30_000 });
      assert.deepEqual(
        got.items.map((it) => [it.id, it.payload, it.opId]),
        payloads.map((p, i) => [ids[i], p, 'same']),
      );
    } finally {
      await store.close();
      await dropRedisPrefix(url, prefix);
    }
  });

  it('stores priority, maxAttempts and the TTLs only when they differ from their default', async () => {
    const prefix = newPrefix();
    const store = await openStore(url, { prefix });
    const admin = new Redis(url);
    try {
      // The Lua side's defaults (absent field = default) are ITEM_DEFAULTS.
      const lua = readFileSync(
        new URL('../../src/store/redis/scripts/lib-queue.lua', import.meta.url),
        'utf8',
      );
      const luaDefault = (name: string) => Number(new RegExp(`${name} = '?(\\d+)'?`).exec(lua)?.[1]);
      assert.equal(luaDefault('DEFAULT_MA'), ITEM_DEFAULTS.maxAttempts);
      assert.equal(luaDefault('DEFAULT_CTL'), ITEM_DEFAULTS.completedTtl);
      assert.equal(luaDefault('DEFAULT_FTL'), ITEM_DEFAULTS.failedTtl);

      await store.enqueue([
        { id: 'plain', queue: 'q', payload: '1' },
        {
          id: 'given',
          queue: 'q',
          payload: '2',
          priority: 5,
          maxAttempts: 7,
          completedTtl: 10,
          failedTtl: 20,
        },
        { id: 'same', queue: 'q', payload: '3', priority: 0, maxAttempts: 3, completedTtl: 3_600_000 },
      ]);
      const fields = async (id: string) => (await admin.hkeys(`{${prefix}}:i:${id}`)).sort();
      for (const id of ['plain', 'same']) {
        const stored = await fields(id);
        for (const f of ['pr', 'ma', 'ctl', 'ftl']) assert.ok(!stored.includes(f), `${id} stores ${f}`);
      }
      const givenFields = await fields('given');
      assert.ok(
        ['pr', 'ma', 'ctl', 'ftl'].every((f) => givenFields.includes(f)),
        'given stores all four',
      );
      const plain = await store.getItem('plain');
      assert.deepEqual(
        [plain?.priority, plain?.maxAttempts, plain?.completedTtl, plain?.failedTtl],
        [0, 3, 3_600_000, 604_800_000],
      );
      const given = await store.getItem('given');
      assert.deepEqual(
        [given?.priority, given?.maxAttempts, given?.completedTtl, given?.failedTtl],
        [5, 7, 10, 20],
      );

      // An item written before (the four fields stored with their default) reads the same.
      const before = await store.getItem('same');
      await admin.hset(`{${prefix}}:i:same`, 'pr', '0', 'ma', '3', 'ctl', '3600000', 'ftl', '604800000');
      assert.deepEqual(await store.getItem('same'), before);

      // The defaults act: a completion keeps the item completedTtl.
      const claimed = await store.claim({ queue: 'q', owner: 'w', limit: 3, leaseTtl: 30_000, start: true });
      assert.deepEqual(
        claimed.items.map((it) => [it.id, it.maxAttempts, it.attempt]),
        [
          ['given', 7, 1],
          ['plain', 3, 1],
          ['same', 3, 1],
        ],
      );
      const held = claimed.items.find((it) => it.id === 'plain');
      const [done] = await store.settle([
        { op: 'complete', id: 'plain', token: held?.token as number, owner: 'w' },
      ]);
      assert.equal(done?.status, 'ok');
      const completed = await store.getItem('plain');
      assert.equal(completed?.expireAt, (completed?.completedAt as number) + 3_600_000);

      // A replacing duplicate with priority 0 takes the holder's priority 5 away.
      await store.enqueue([{ id: 'h', queue: 'r', payload: 'a', priority: 5, dedup: { key: 'k' } }]);
      const [replaced] = await store.enqueue([
        { id: 'n', queue: 'r', payload: 'b', dedup: { key: 'k', mode: 'replace' } },
      ]);
      assert.deepEqual([replaced?.id, replaced?.status], ['h', 'replaced']);
      const holder = await store.getItem('h');
      assert.deepEqual([holder?.payload, holder?.priority], ['b', 0]);
      assert.ok(!(await fields('h')).includes('pr'));
    } finally {
      admin.disconnect();
      await store.close();
      await dropRedisPrefix(url, prefix);
    }
  });

  it('runs its scripts as Redis Functions, and again after the server lost them', async () => {
    const prefix = newPrefix();
    const admin = new Redis(url);
    const functions = await openStore(url, { prefix, scripts: 'functions' });
    const evalOnly = await openStore(url, { prefix, scripts: 'eval' });
    try {
      const libraries = (await admin.call('FUNCTION', 'LIST', 'LIBRARYNAME', 'rota_*')) as unknown[][];
      const names = libraries.map((lib) => String(lib[1]));
      assert.ok(
        names.some((n) => /^rota_queue_[0-9a-f]{12}$/.test(n)),
        names.join(),
      );
      assert.ok(
        names.some((n) => /^rota_kv_[0-9a-f]{12}$/.test(n)),
        names.join(),
      );
      // Both ways share the data: what one writes, the other reads and changes.
      await functions.enqueue([{ id: 'a', queue: 'q', payload: '1' }]);
      await functions.put('k', enc('v'));
      const claimed = await evalOnly.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000 });
      assert.deepEqual(
        claimed.items.map((it) => it.id),
        ['a'],
      );
      // A server that lost its functions (FUNCTION FLUSH, or a restart without persistence): the
      // next call loads them and runs (it had not run).
      await admin.call('FUNCTION', 'FLUSH');
      const [done] = await functions.settle([
        { op: 'complete', id: 'a', token: claimed.items[0]?.token as number, owner: 'w' },
      ]);
      assert.equal(done?.status, 'ok');
      assert.equal(new TextDecoder().decode((await functions.get('k')).kv?.value), 'v');
      await admin.call('SCRIPT', 'FLUSH');
      assert.equal((await evalOnly.getItem('a'))?.outcome, 'succeeded');
    } finally {
      admin.disconnect();
      await functions.close();
      await evalOnly.close();
      await dropRedisPrefix(url, prefix);
    }
  });

  it('falls back to EVALSHA when the server refuses FUNCTION LOAD, unless told functions', async () => {
    const prefix = newPrefix();
    const admin = new Redis(url);
    // A user that may do anything but the FUNCTION command, as an ACL can set it.
    const user = `rota-nofn-${randomBytes(3).toString('hex')}`;
    await admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all', '-function');
    const limited = new URL(url);
    limited.username = user;
    limited.password = 'pw';
    let store: Awaited<ReturnType<typeof openStore>> | undefined;
    try {
      await assert.rejects(openStore(limited.toString(), { prefix, scripts: 'functions' }));
      store = await openStore(limited.toString(), { prefix });
      await store.enqueue([{ id: 'a', queue: 'q', payload: '1' }]);
      const got = await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000 });
      assert.deepEqual(
        got.items.map((it) => it.id),
        ['a'],
      );
    } finally {
      await store?.close();
      await admin.call('ACL', 'DELUSER', user);
      admin.disconnect();
      await dropRedisPrefix(url, prefix);
    }
  });

  it('a claim restricted to ids applies an expired lease past the per-claim expiry batch', async () => {
    const prefix = newPrefix();
    const store = await openStore(url, { prefix });
    try {
      // 1 001 expired leases: one claim applies the first 1 000 (claimExpireBatch), by lease
      // expiry and then seq, so x1000's is left for the ids path itself.
      const n = 1001;
      await store.enqueue(Array.from({ length: n }, (_, i) => ({ id: `x${i}`, queue: 'e', payload: '{}' })));
      const first = await store.claim({ queue: 'e', owner: 'w1', limit: n, leaseTtl: 1000 });
      assert.equal(first.items.length, n);
      await sleep(1100);
      const got = await store.claim({
        queue: 'e',
        owner: 'w2',
        limit: 2,
        leaseTtl: 30_000,
        ids: ['x1000', 'x5'],
      });
      assert.deepEqual(
        got.items.map((it) => [it.id, it.state, it.owner]),
        [
          ['x5', 'claimed', 'w2'],
          ['x1000', 'claimed', 'w2'],
        ],
      );
      assert.equal(got.nextRunAt, null);
      const counts = (await store.countItems('e')).e;
      assert.deepEqual(counts && [counts.pending, counts.claimed], [n - 2, 2]);
    } finally {
      await store.close();
      await dropRedisPrefix(url, prefix);
    }
  });

  it('worker processes share a queue without completing an item twice', async () => {
    const prefix = newPrefix();
    const store = await openStore(url, { prefix });
    try {
      await store.enqueue(
        Array.from({ length: 300 }, (_, i) => ({ id: `m${i}`, queue: 'mp', payload: '{}' })),
      );
      const run = promisify(execFile);
      const file = fileURLToPath(new URL('./fixtures/worker.ts', import.meta.url));
      const outputs = await Promise.all(
        ['p1', 'p2', 'p3'].map((name) =>
          run(process.execPath, ['--import', 'tsx', file, url, prefix, name], { timeout: 30_000 }),
        ),
      );
      const done = outputs.flatMap((o) => JSON.parse(o.stdout) as string[]);
      assert.equal(done.length, 300);
      assert.equal(new Set(done).size, 300);
      assert.equal((await store.countItems('mp')).mp?.completed, 300);
    } finally {
      await store.close();
      await dropRedisPrefix(url, prefix);
    }
  });
});

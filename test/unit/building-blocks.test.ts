import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { uuidv7 } from '../../src/core/ids.js';
import { compareKeys, prefixEnd, toSafeInteger, utf8Length } from '../../src/store/keys.js';
import { ManualClock, skewedClock, sleep } from '../../src/time/clock.js';
import { Channel } from '../../src/util/channel.js';
import { Heap } from '../../src/util/heap.js';
import { checkName, checkOptions, toJsonText } from '../../src/validate.js';

describe('keys', () => {
  it('compareKeys orders by code point (UTF-8 byte order), not UTF-16 units', () => {
    const keys = ['b', 'a', '\uffff', '\u{10000}', 'ab', ''];
    const sorted = [...keys].sort(compareKeys);
    const byBytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    assert.deepEqual(sorted, byBytes);
  });
  it('utf8Length, prefixEnd, toSafeInteger', () => {
    assert.equal(utf8Length('abc'), 3);
    assert.equal(utf8Length('é😀'), 6);
    assert.equal(prefixEnd('a/'), 'a0');
    assert.equal(toSafeInteger(5n), 5);
    assert.equal(toSafeInteger('42'), 42);
    assert.throws(() => toSafeInteger(2n ** 60n), { code: 'ROTA_REVISION_OVERFLOW' });
  });
});

describe('uuidv7', () => {
  it('encodes the millisecond, version 7 and variant bits, and sorts in creation order', () => {
    const id = uuidv7(0x0123_4567_89ab);
    assert.match(id, /^01234567-89ab-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // Several ids per millisecond (a counter), more than one random-pool refill's worth.
    const ids = Array.from({ length: 5_000 }, (_, i) => uuidv7(1_700_000_000_000 + Math.floor(i / 3)));
    for (const x of ids)
      assert.match(x, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(Number.parseInt(ids[0]?.replace('-', '').slice(0, 12) ?? '', 16), 1_700_000_000_000);
  });
});

describe('ManualClock', () => {
  it('fires timers in time order as time advances, and skew only moves the wall clock', async () => {
    const clock = new ManualClock(1000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b'), 200);
    clock.setTimeout(() => fired.push('a'), 100);
    const cancelled = clock.setTimeout(() => fired.push('x'), 150);
    clock.clearTimeout(cancelled);
    await clock.advance(150);
    assert.deepEqual(fired, ['a']);
    assert.equal(clock.now(), 1150);
    await clock.advance(100);
    assert.deepEqual(fired, ['a', 'b']);
    const skewed = skewedClock(clock, 3_600_000);
    assert.equal(skewed.now(), clock.now() + 3_600_000);
    assert.equal(skewed.monotonic(), clock.monotonic());
    const slept = sleep(clock, 500).then(() => 'done');
    await clock.advance(500);
    assert.equal(await slept, 'done');
  });
});

describe('Channel', () => {
  it('delivers pushed values in order, ends, and fails', async () => {
    const ch = new Channel<number>();
    ch.push(1);
    ch.push(2);
    const p = ch.next();
    assert.deepEqual(await p, { value: 1, done: false });
    ch.end();
    assert.deepEqual(await ch.next(), { value: 2, done: false });
    assert.equal((await ch.next()).done, true);
    const bad = new Channel<number>();
    bad.fail(new Error('boom'));
    await assert.rejects(bad.next(), /boom/);
  });
  it('ends on abort and calls onClose once', async () => {
    const controller = new AbortController();
    let closed = 0;
    const ch = new Channel<number>({ signal: controller.signal, onClose: () => closed++ });
    const pending = ch.next();
    controller.abort();
    assert.equal((await pending).done, true);
    await ch.return();
    assert.equal(closed, 1);
  });
});

describe('Heap', () => {
  it('pops in order and skips stale entries', () => {
    const heap = new Heap<number>((a, b) => a - b);
    for (const n of [5, 1, 4, 2, 3]) heap.push(n);
    assert.equal(
      heap.peekLive((n) => n < 3),
      3,
    );
    const out: number[] = [];
    while (heap.size) out.push(heap.pop() as number);
    assert.deepEqual(out, [3, 4, 5]);
  });
});

describe('validation helpers', () => {
  it('checkName applies the name rules of cluster.md §5', () => {
    assert.equal(checkName('n', 'jobs/a=b'), 'jobs/a=b');
    for (const bad of ['', ' x', 'x ', 'a\u0000b', 'x'.repeat(513), 5]) {
      assert.throws(() => checkName('n', bad), { code: 'ROTA_INVALID_ARGUMENT' });
    }
  });
  it('checkOptions refuses unknown keys and non-objects', () => {
    assert.deepEqual(checkOptions('o', { a: 1 }, ['a']), { a: 1 });
    assert.throws(() => checkOptions('o', { b: 1 }, ['a']), { code: 'ROTA_INVALID_ARGUMENT' });
    assert.throws(() => checkOptions('o', [] as unknown as object, ['a']), { code: 'ROTA_INVALID_ARGUMENT' });
  });
  it('toJsonText refuses what JSON cannot carry and oversized values', () => {
    assert.equal(toJsonText('p', { a: [1, 'x', null] }, 100), '{"a":[1,"x",null]}');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const bad of [() => 1, 10n, cyclic, { x: Number.NaN }, undefined]) {
      assert.throws(() => toJsonText('p', bad, 100), { code: 'ROTA_INVALID_ARGUMENT' });
    }
    assert.throws(() => toJsonText('p', 'x'.repeat(200), 100), { code: 'ROTA_PAYLOAD_TOO_LARGE' });
  });
  it('toJsonText names the path of what it refuses, and takes what JSON carries', () => {
    // The check runs without paths first; the error still names where the problem is.
    const cases: [unknown, RegExp][] = [
      [{ a: [1, { b: Symbol('s') }] }, /^p\.a\[1\]\.b: is not JSON-serialisable \(symbol\)/],
      [{ a: { b: [Number.POSITIVE_INFINITY] } }, /^p\.a\.b\[0\]: is not a finite number/],
      [[0, [0, 0, 3n]], /^p\[1\]\[2\]: is not JSON-serialisable \(bigint\)/],
    ];
    for (const [bad, message] of cases) {
      assert.throws(() => toJsonText('p', bad, 1000), { code: 'ROTA_INVALID_ARGUMENT', message });
    }
    const deep: Record<string, unknown> = { n: {} };
    (deep.n as Record<string, unknown>).back = deep;
    assert.throws(() => toJsonText('p', deep, 1000), { message: /^p\.n\.back: contains a cycle/ });
    // A shared object is not a cycle; undefined inside objects and arrays, and dates, are JSON's own.
    const shared = { x: 1 };
    assert.equal(toJsonText('p', { a: shared, b: [shared] }, 1000), '{"a":{"x":1},"b":[{"x":1}]}');
    assert.equal(toJsonText('p', { u: undefined, l: [undefined] }, 1000), '{"l":[null]}');
    assert.equal(toJsonText('p', { d: new Date(0) }, 1000), '{"d":"1970-01-01T00:00:00.000Z"}');
    // The size counts UTF-8 bytes: 'é' is 2, an escaped lone surrogate 6 ASCII bytes.
    assert.equal(toJsonText('p', 'éé', 6), '"éé"');
    assert.throws(() => toJsonText('p', 'ééé', 7), { code: 'ROTA_PAYLOAD_TOO_LARGE' });
    assert.equal(utf8Length('\ud800'), 3);
  });
});

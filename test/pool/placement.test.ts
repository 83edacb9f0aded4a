/** pool.md §2.3: the placement hash and rendezvous placement (PO-34 and the rebalance bounds). */
import { describe, it } from 'node:test';
import { hash64, pairScore, workerHash } from '../../src/pool/hash.js';
import { toHex } from '../../src/pool/index.js';
import { Placement, rank } from '../../src/pool/placement.js';
import { assert } from '../support/scenarios.js';

const M = (1n << 64n) - 1n;

/** The reference definition with BigInt: FNV-1a 64 over UTF-8, then fmix64. */
function reference(text: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(text)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & M;
  }
  return fmix(h);
}

function fmix(x: bigint): bigint {
  let h = x;
  h ^= h >> 33n;
  h = (h * 0xff51afd7ed558ccdn) & M;
  h ^= h >> 33n;
  h = (h * 0xc4ceb9fe1a85ec53n) & M;
  h ^= h >> 33n;
  return h;
}

const hex = (n: bigint) => n.toString(16).padStart(16, '0');

function workers(n: number, from = 0) {
  return Array.from({ length: n }, (_, i) => ({ id: `worker-${from + i}`, createdAt: 1000 + from + i }));
}

function targets(placement: Placement, keys: string[]): (string | null)[] {
  return keys.map((k) => placement.pick(k, 0).target);
}

describe('pool placement', () => {
  it('hash64 matches its BigInt definition on ASCII, multi-byte, astral and long input', () => {
    const inputs = ['', 'a', 'job-1', 'é', '€', '😀', 'key=with/slash', 'x'.repeat(5000)];
    for (let i = 0; i < 300; i++) inputs.push(`${i}-${Math.random().toString(36)}-\u00e9\u4e2d\ud83d\ude00`);
    for (const text of inputs) assert.equal(toHex(hash64(text)), hex(reference(text)), JSON.stringify(text));
  });

  it('a pair score is the top 53 bits of fmix64(hash64(worker ‖ 0x00) XOR hash64(key))', () => {
    for (const [w, k] of [
      ['w1', 'job-1'],
      ['0190a1b2-c3d4-7e5f-8a9b-000000000001', 'tenant/é/1'],
    ] as const) {
      const expected = fmix(reference(`${w}\u0000`) ^ reference(k)) >> 11n;
      assert.equal(BigInt(pairScore(workerHash(w), hash64(k))), expected);
    }
  });

  it('spreads keys evenly: each of 10 workers is first for about a tenth of 10 000 keys', () => {
    const ids = workers(10).map((w) => w.id);
    const counts = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      const first = rank(`job-${i}`, ids)[0] as string;
      counts.set(first, (counts.get(first) ?? 0) + 1);
    }
    for (const [id, n] of counts) assert.ok(n > 850 && n < 1150, `${id} got ${n}`);
  });

  it('PO-34 removing a non-newest worker moves only its jobs; adding one moves about 1/11 (±30 %)', () => {
    const keys = Array.from({ length: 1000 }, (_, i) => `job-${i}`);
    const ten = workers(10);
    const placement = new Placement();
    placement.setWorkers(ten);
    const before = targets(placement, keys);
    // Remove worker-3 (neither the newest nor the oldest).
    placement.setWorkers(ten.filter((w) => w.id !== 'worker-3'));
    const afterLeave = targets(placement, keys);
    keys.forEach((_, i) => {
      if (before[i] !== 'worker-3')
        assert.equal(afterLeave[i], before[i], 'a key of a remaining worker stayed');
      else assert.notEqual(afterLeave[i], 'worker-3');
    });
    // Add an eleventh worker.
    placement.setWorkers([...ten, ...workers(1, 10)]);
    const afterJoin = targets(placement, keys);
    let moved = 0;
    keys.forEach((_, i) => {
      if (afterJoin[i] !== before[i]) {
        moved++;
        assert.equal(afterJoin[i], 'worker-10', 'a key moved only to the newcomer');
      }
    });
    const ideal = 1000 / 11;
    assert.ok(moved > ideal * 0.7 && moved < ideal * 1.3, `${moved} keys moved (ideal ${ideal.toFixed(0)})`);
  });

  it('a leave moves only the leaver’s keys and a join moves ~1/(n+1), for every position of the worker', () => {
    const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`);
    const base = workers(8);
    const placement = new Placement();
    placement.setWorkers(base);
    const before = targets(placement, keys);
    for (const leaver of base) {
      placement.setWorkers(base.filter((w) => w !== leaver));
      const after = targets(placement, keys);
      const moved = keys.filter((_, i) => after[i] !== before[i]).length;
      assert.equal(moved, before.filter((t) => t === leaver.id).length, `leave of ${leaver.id}`);
    }
    placement.setWorkers([...base, ...workers(1, 100)]);
    const joined = targets(placement, keys);
    const moved = keys.filter((_, i) => joined[i] !== before[i]).length;
    assert.ok(Math.abs(moved - 2000 / 9) < 2000 / 9 / 3, `${moved} moved on join`);
  });

  it('rankOffset walks the ranking (target = rank[offset mod n]) and next is the one after', () => {
    const ids = workers(4).map((w) => w.id);
    const placement = new Placement();
    placement.setWorkers(workers(4));
    const ranking = rank('job-x', ids);
    for (let offset = 0; offset < 9; offset++) {
      const pick = placement.pick('job-x', offset);
      assert.equal(pick.target, ranking[offset % 4]);
      assert.equal(pick.next, ranking[(offset + 1) % 4]);
    }
    const empty = new Placement();
    assert.deepEqual(empty.pick('job-x', 0), { target: null, next: null });
  });

  it('a custom placement gets the active workers oldest first and the attempt; unknown answers are ignored', () => {
    const calls: [string, readonly string[], number][] = [];
    const bad: unknown[] = [];
    const placement = new Placement(
      (key, ids, attempt) => {
        calls.push([key, [...ids], attempt]);
        return key === 'bad' ? 'nobody' : (ids[attempt % ids.length] as string);
      },
      (_key, picked) => bad.push(picked),
    );
    placement.setWorkers([
      { id: 'b', createdAt: 2 },
      { id: 'a', createdAt: 1 },
    ]);
    assert.deepEqual(placement.pick('k', 1), { target: 'b', next: 'a' });
    assert.deepEqual(calls[0], ['k', ['a', 'b'], 1]);
    assert.equal(placement.pick('bad', 0).target, null);
    assert.deepEqual(bad, ['nobody', 'nobody']);
  });

  it('recomputes the targets of 10 000 jobs over 50 workers quickly (see bench/pool-placement.ts)', () => {
    const keys = Array.from({ length: 10_000 }, (_, i) => `tenant-${i % 97}/job-${i}`);
    const fifty = workers(50);
    const placement = new Placement();
    placement.setWorkers(fifty);
    targets(placement, keys);
    placement.setWorkers(fifty.slice(1));
    const cpu = process.cpuUsage();
    targets(placement, keys);
    const used = process.cpuUsage(cpu);
    const ms = (used.user + used.system) / 1000;
    // A generous bound (CI machines are slow and shared); the benchmark reports the real number.
    assert.ok(ms < 1000, `rebalance took ${ms.toFixed(1)} ms of CPU`);
  });
});

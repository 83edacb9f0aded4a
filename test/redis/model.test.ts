/**
 * The Lua queue state machine against the reference: the same seeded random sequence of enqueue,
 * claim (some restricted to ids), renew and settle calls (right and wrong tokens, every op kind) runs on a memory store and
 * on a Redis store, and every result and every item must agree. Timestamps and counter values
 * differ between the engines and are left out; everything else is compared.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { MemoryEngine } from '../../src/store/memory/index.js';
import { openStore } from '../../src/store/open.js';
import type { FeedItem, NewItem, QueueItem, SettleOp, Store } from '../../src/store/port.js';
import { dropRedisPrefix, selectedFixtures, serverAvailable } from '../support/stores.js';

const url = process.env.ROTA_TEST_REDIS_URL as string;
const fixture = selectedFixtures().find((f) => f.name === 'redis');
const enabled = fixture !== undefined && serverAvailable(fixture);

/** A small deterministic PRNG (mulberry32). */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The engine-independent part of an item. */
function shape(it: FeedItem | QueueItem | null) {
  if (!it) return null;
  return {
    id: it.id,
    queue: it.queue,
    state: it.state,
    outcome: it.outcome,
    payload: it.payload,
    priority: it.priority,
    attempt: it.attempt,
    maxAttempts: it.maxAttempts,
    owner: it.owner,
    held: it.leaseExpiresAt !== null,
    started: it.startedAt !== null,
    claimed: it.claimedAt !== null,
    completed: it.completedAt !== null,
    progress: it.progress,
    result: it.result,
    error: it.error,
    rejections: it.rejections,
    lastRejection: it.lastRejection,
    deadLetter: it.deadLetter,
    dedupKey: it.dedupKey,
    meta: it.meta,
    opId: it.opId,
  };
}

describe('redis queue scripts match queue-model.ts', { skip: !enabled, timeout: 60_000 }, () => {
  for (const seed of [1, 2, 3, 4]) {
    it(`random op sequence ${seed}`, async () => {
      const memory = new MemoryEngine();
      const mem = memory.client();
      const prefix = `rm-${randomBytes(5).toString('hex')}`;
      const red = await openStore(url, { prefix });
      const rand = rng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
      const ids = Array.from({ length: 12 }, (_, i) => `i${i}`);
      /** A claim's `ids`: some of the items (in random order), a dead-letter copy, an unknown id. */
      const someIds = () => {
        const some = ids.filter(() => rand() < 0.4);
        for (let i = some.length - 1; i > 0; i--) {
          const j = Math.floor(rand() * (i + 1));
          [some[i], some[j]] = [some[j] as string, some[i] as string];
        }
        if (rand() < 0.3) some.push(`dl-${pick(ids)}`);
        if (rand() < 0.3) some.push('absent');
        return some.length > 0 ? some : [pick(ids)];
      };
      // Tokens differ between engines: keep each engine's latest token per item, and refer to
      // "the current token" or "a wrong token" symbolically.
      const tokens = new Map<Store, Map<string, number>>([
        [mem, new Map()],
        [red, new Map()],
      ]);
      const both = async <T>(fn: (s: Store) => Promise<T>): Promise<[T | string, T | string]> => {
        const run = (s: Store) => fn(s).catch((err: { code?: string }) => `error ${err.code}`);
        return [await run(mem), await run(red)];
      };
      const remember = (s: Store, items: QueueItem[]) => {
        for (const it of items) tokens.get(s)?.set(it.id, it.token as number);
      };
      try {
        for (let step = 0; step < 250; step++) {
          const roll = rand();
          const id = pick(ids);
          let what: string;
          let results: [unknown, unknown];
          if (roll < 0.2) {
            const item: NewItem = {
              id,
              queue: pick(['q', 'q', 'r']),
              payload: JSON.stringify({ step }),
              priority: pick([0, 0, 5, -1]),
              maxAttempts: pick([1, 2, 3]),
              ...(rand() < 0.4 ? { deadLetter: 'dlq' } : {}),
              ...(rand() < 0.3
                ? { dedup: { key: pick(['d1', 'd2']), mode: pick(['keep', 'replace'] as const) } }
                : {}),
              ...(rand() < 0.2 ? { opId: 'op' } : {}),
              ...(rand() < 0.2 ? { meta: '{"m":1}' } : {}),
            };
            what = `enqueue ${JSON.stringify(item)}`;
            const [a, b] = await both((s) => s.enqueue([item]));
            results = [
              typeof a === 'string' ? a : a.map((r) => [r.id, r.status]),
              typeof b === 'string' ? b : b.map((r) => [r.id, r.status]),
            ];
          } else if (roll < 0.45) {
            const request = {
              queue: pick(['q', 'r', 'dlq']),
              owner: pick(['w1', 'w2']),
              limit: pick([1, 2, 5]),
              leaseTtl: 60_000,
              start: rand() < 0.5,
              ...(rand() < 0.2 ? { from: 'completed' as const } : {}),
              ...(rand() < 0.3 ? { ids: someIds() } : {}),
            };
            what = `claim ${JSON.stringify(request)}`;
            const [a, b] = await both(async (s) => {
              const res = await s.claim(request);
              remember(s, res.items);
              return res.items.map(shape);
            });
            results = [a, b];
          } else if (roll < 0.55) {
            const wrong = rand() < 0.2;
            const progress = rand() < 0.5 ? String(step) : undefined;
            what = `renew ${id} wrong=${wrong}`;
            results = await both(async (s) => {
              const token = (tokens.get(s)?.get(id) ?? 0) + (wrong ? 1 : 0);
              return (await s.renew([{ id, token, ...(progress ? { progress } : {}) }], 60_000)).map((r) => [
                r.id,
                r.status,
              ]);
            });
          } else {
            const kind = pick([
              'start',
              'complete',
              'complete',
              'retry',
              'fail',
              'release',
              'resolve',
              'unresolve',
              'cancel',
              'abort',
            ] as const);
            const wrong = rand() < 0.15;
            const owner = pick(['w1', 'w1', 'w2']);
            const extra = {
              result: rand() < 0.5 ? '"r"' : null,
              error: { code: 'E', message: `m${step}` },
              retryIn: 0,
              refundAttempt: rand() < 0.5,
              reject: rand() < 0.5 ? { reason: `no ${step}`, maxRejections: 1 } : undefined,
            };
            what = `settle ${kind} ${id} owner=${owner} wrong=${wrong} ${JSON.stringify(extra)}`;
            results = await both(async (s) => {
              const token = (tokens.get(s)?.get(id) ?? 0) + (wrong ? 1 : 0);
              const fenced = { id, token, owner };
              const op: SettleOp =
                kind === 'cancel'
                  ? { op: 'cancel', id, reason: 'stop' }
                  : kind === 'abort'
                    ? { op: 'abort', id, error: extra.error }
                    : kind === 'complete'
                      ? { op: 'complete', ...fenced, result: extra.result }
                      : kind === 'retry'
                        ? {
                            op: 'retry',
                            ...fenced,
                            error: extra.error,
                            retryIn: 0,
                            refundAttempt: extra.refundAttempt,
                          }
                        : kind === 'fail'
                          ? { op: 'fail', ...fenced, error: extra.error }
                          : kind === 'release'
                            ? {
                                op: 'release',
                                ...fenced,
                                refundAttempt: extra.refundAttempt,
                                ...(extra.reject ? { reject: extra.reject } : {}),
                              }
                            : { op: kind, ...fenced };
              return (await s.settle([op])).map((r) => [r.status, r.state, r.outcome]);
            });
          }
          assert.deepEqual(results[1], results[0], `step ${step}: ${what}`);
          const [ma, ra] = await both(async (s) =>
            Promise.all([...ids, ...ids.map((i) => `dl-${i}`)].map(async (i) => shape(await s.getItem(i)))),
          );
          assert.deepEqual(ra, ma, `items after step ${step}: ${what}`);
          const [mc, rc] = await both((s) => s.countItems());
          assert.deepEqual(rc, mc, `counts after step ${step}: ${what}`);
        }
        const [ml, rl] = await both(async (s) => (await s.listItems({ limit: 1000 })).items.map((i) => i.id));
        assert.deepEqual(rl, ml, 'listItems');
      } finally {
        await mem.close();
        memory.kv.dispose();
        await red.close();
        await dropRedisPrefix(url, prefix);
      }
    });
  }
});

/**
 * A separate process acting on a SQLite store, for the multi-process tests. Usage:
 *
 *   node --import tsx actor.ts <command> <store-url-or-path> [args...]
 *
 * It prints one JSON line with its result (or `{ "error": { code, message } }`) and exits.
 * Commands that race wait for a `go` line on stdin after printing `ready`, so every child starts
 * at the same moment.
 */
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { casIncrement, dec } from '../../../src/store/conformance/helpers.js';
import { openStore } from '../../../src/store/open.js';
import type { QueueItem, Store } from '../../../src/store/port.js';

const [command, target, ...args] = process.argv.slice(2);
const out = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

async function waitForGo(): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  out('ready');
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  lines.close();
}

/** CAS increments on `counter` and claim/complete on queue `race`, at the same time. */
async function race(store: Store, increments: number, name: string) {
  await waitForGo();
  const counterLoop = async () => {
    const seen: number[] = [];
    for (let i = 0; i < increments; i++) seen.push(await casIncrement(store, 'counter'));
    return seen;
  };
  const claimLoop = async (n: number) => {
    const claims: { id: string; token: number }[] = [];
    let settledOk = 0;
    for (;;) {
      const res = await store.claim({
        queue: 'race',
        owner: `${name}-${n}`,
        limit: 10,
        leaseTtl: 120_000,
        start: true,
      });
      if (res.items.length === 0) return { claims, settledOk };
      claims.push(...res.items.map((it: QueueItem) => ({ id: it.id, token: it.token as number })));
      const results = await store.settle(
        res.items.map((it) => ({
          op: 'complete' as const,
          id: it.id,
          token: it.token as number,
          owner: `${name}-${n}`,
          result: JSON.stringify({ by: name }),
        })),
      );
      settledOk += results.filter((r) => r.status === 'ok').length;
    }
  };
  const [counter, ...loops] = await Promise.all([counterLoop(), claimLoop(0), claimLoop(1), claimLoop(2)]);
  return {
    counter,
    claims: loops.flatMap((l) => l.claims),
    settledOk: loops.reduce((n, l) => n + l.settledOk, 0),
  };
}

/** Open each URL and write to it; the result per URL is 'ok' or the error code. */
async function probe(urls: string[]): Promise<string[]> {
  const results: string[] = [];
  for (const url of urls) {
    try {
      const store = await openStore(url);
      await store.put('probe', new TextEncoder().encode('x'));
      await store.close();
      results.push('ok');
    } catch (err) {
      results.push((err as { code?: string }).code ?? String(err));
    }
  }
  return results;
}

async function main(): Promise<unknown> {
  if (command === 'probe') return probe([target as string, ...args]);
  if (command === 'hold-lock') {
    // Take the write lock with the raw driver and keep it until told (or for at most 20 s).
    const db = new Database(target as string);
    db.exec('BEGIN IMMEDIATE');
    const lines = createInterface({ input: process.stdin });
    out('locked');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 20_000);
      lines.once('line', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    lines.close();
    db.exec('COMMIT');
    db.close();
    return { released: true };
  }
  const store = await openStore(target as string);
  try {
    switch (command) {
      case 'race':
        return await race(store, Number(args[0]), String(args[1]));
      case 'put-leased': {
        // Put a key on a 1 s lease and exit without revoking it, like a crashed process.
        const lease = await store.grant(1000);
        const put = await store.put(String(args[0]), new TextEncoder().encode('leased'), { lease: lease.id });
        out({ lease: lease.id, revision: put.revision });
        process.exit(0);
        break;
      }
      case 'put': {
        const revisions: number[] = [];
        for (let i = 0; i < Number(args[1] ?? 1); i++)
          revisions.push((await store.put(`${args[0]}${i}`, new TextEncoder().encode(String(i)))).revision);
        return { revisions };
      }
      case 'put-and-compact': {
        let last = 0;
        for (let i = 0; i < Number(args[1]); i++)
          last = (await store.put(`${args[0]}${i}`, new TextEncoder().encode(String(i)))).revision;
        await store.compact(last);
        return { compacted: last };
      }
      case 'enqueue':
        return await store.enqueue([{ id: String(args[1]), queue: String(args[0]), payload: '{}' }]);
      case 'get':
        return { value: dec((await store.get(String(args[0]))).kv?.value ?? new Uint8Array()) };
      default:
        throw new Error(`unknown command ${command}`);
    }
  } finally {
    await store.close();
  }
}

main().then(
  (result) => out(result),
  (err: { code?: string; message?: string }) => {
    out({ error: { code: err.code ?? 'UNKNOWN', message: err.message } });
    process.exitCode = 1;
  },
);

/**
 * Child process for the multi-process test: claims and completes items of one queue until it is
 * empty, then prints the ids whose completion the store accepted, as JSON.
 */
import { openStore } from '../../../src/store/open.js';

const [url, prefix, queue, owner] = process.argv.slice(2) as [string, string, string, string];
const store = await openStore(url, { prefix });
const completed: string[] = [];
for (let idle = 0; idle < 3; ) {
  const { items } = await store.claim({ queue, owner, limit: 5, leaseTtl: 60_000, start: true });
  if (items.length === 0) {
    idle++;
    await new Promise((r) => setTimeout(r, 50));
    continue;
  }
  idle = 0;
  const results = await store.settle(
    items.map((it) => ({
      op: 'complete' as const,
      id: it.id,
      token: it.token as number,
      owner,
      result: null,
    })),
  );
  results.forEach((r) => {
    if (r.status === 'ok') completed.push(r.id);
  });
}
await store.close();
process.stdout.write(JSON.stringify(completed));

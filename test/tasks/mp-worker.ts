/**
 * A worker process for the multi-process scenario (multiprocess.test.ts):
 *
 *   node --import tsx test/tasks/mp-worker.ts <storeUrl> <namespace> <queue> <recordFile> <nodeId>
 *
 * It works `queue` at concurrency 20 with a 2 s lease and appends to `recordFile`, synchronously,
 * `E <id> <attempt> <token>` when a handler starts and `C <id> <token>` once the store acknowledged
 * the completion. SIGTERM closes it gracefully; SIGKILL is the crash being tested.
 */
import { appendFileSync } from 'node:fs';
import { Rota } from '../../src/rota.js';

const [url, namespace, queue, file, nodeId] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const rota = await Rota.connect({ store: url, namespace, nodeId, sessionTtl: 3000 });
rota.events.on('task:completed', (e) => {
  appendFileSync(file, `C ${e.id} ${(e.result as { token: number }).token}\n`);
});
const worker = rota.tasks.work(
  queue,
  async (task, ctx) => {
    appendFileSync(file, `E ${task.id} ${ctx.attempt} ${ctx.token}\n`);
    // A little asynchronous work, so that a kill lands while handlers are in flight.
    await new Promise<void>((resolve) => setTimeout(resolve, Math.random() * 2));
    return { pid: process.pid, token: ctx.token };
  },
  { concurrency: 20, leaseTtl: 2000, pollInterval: 500 },
);
process.on('SIGTERM', () => {
  void (async () => {
    await worker.close({ timeout: 5000 }).catch(() => undefined);
    await rota.close();
    process.exit(0);
  })();
});
process.stdout.write('ready\n');

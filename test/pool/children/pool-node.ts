/**
 * A child process for the pool multi-process test: joins pool `P` with `ROTA_WORKERS` workers and
 * reports on stdout, in store time:
 * `READY <nodeId>`, `START <key> <worker> <token> <storeMs>` (taken before the handler returns),
 * `STOP <key> <worker> <token> <reason> <storeMs>` (taken when the handler's stop returns).
 */
import { Rota } from '../../../src/rota.js';

const rota = await Rota.connect({
  store: process.env.ROTA_STORE as string,
  namespace: process.env.ROTA_NAMESPACE as string,
  nodeId: process.env.ROTA_NODE_ID as string,
});
const pool = await rota.pool.join('P', {
  workerTtl: Number(process.env.ROTA_WORKER_TTL ?? 3000),
  ackGracePeriod: Number(process.env.ROTA_ACK_GRACE ?? 2000),
});
const workers = Number(process.env.ROTA_WORKERS ?? 2);
for (let i = 0; i < workers; i++) {
  const label = `${rota.nodeId}/w${i}`;
  await pool.addWorker({
    async start(job) {
      const at = await rota.store.now();
      console.log(`START ${job.key} ${label} ${job.token} ${at}`);
    },
    async stop(job, reason) {
      const at = await rota.store.now();
      console.log(`STOP ${job.key} ${label} ${job.token} ${reason} ${at}`);
    },
  });
}
console.log(`READY ${rota.nodeId}`);
process.on('SIGTERM', () => {
  void rota.close().then(() => process.exit(0));
});

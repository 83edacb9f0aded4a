/**
 * A child process that campaigns for election `E` and reports on stdout:
 * `READY <nodeId>`, then `LEADER <nodeId> <token> <storeTimeMs>` whenever it becomes leader.
 */
import { Rota } from '../../../src/rota.js';

const rota = await Rota.connect({
  store: process.env.ROTA_STORE as string,
  namespace: process.env.ROTA_NAMESPACE as string,
  nodeId: process.env.ROTA_NODE_ID as string,
  sessionTtl: Number(process.env.ROTA_SESSION_TTL ?? 2000),
});
console.log(`READY ${rota.nodeId}`);
void rota.cluster.election('E').lead(async (leadership) => {
  console.log(`LEADER ${rota.nodeId} ${leadership.token} ${await rota.store.now()}`);
});
process.on('SIGTERM', () => {
  void rota.close().then(() => process.exit(0));
});

/**
 * A child process of the multi-process schedules test: one Rota node on the shared store that
 * registers the 20 schedules, starts its runner and appends one line per run start (handlers take 300 ms, so kills hit running runs) to its
 * own file (`<name> <slotAt> <runId> <nodeId> <pid> <delayMs>`), until it is killed or sent SIGTERM.
 *
 *   node --import tsx test/schedules/mp-child.ts <storeUrl> <namespace> <nodeId> <outFile> <count> <every>
 */
import { appendFileSync } from 'node:fs';
import { Rota } from '../../src/rota.js';

const [url, namespace, nodeId, outFile, count, every] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string,
];

for (;;) {
  try {
    const rota = await Rota.connect({ store: url, namespace, nodeId, sessionTtl: 2000 });
    rota.events.on('run:started', (e) => {
      appendFileSync(outFile, `${e.name} ${e.slotAt} ${e.runId} ${nodeId} ${process.pid} ${e.delayMs}\n`);
    });
    for (let i = 0; i < Number(count); i++) {
      await rota.schedules.register({ name: `s${i}`, every: Number(every), keepRuns: 10_000 }, async () => {
        await new Promise((r) => setTimeout(r, 300));
      });
    }
    await rota.schedules.start({ monitorInterval: 500, interruptThreshold: 3000 });
    process.stdout.write('ready\n');
    process.on('SIGTERM', () => {
      void rota.close().finally(() => process.exit(0));
    });
    break;
  } catch (err) {
    // A restarted node waits until its previous incarnation's session expired.
    if ((err as { code?: string }).code !== 'ROTA_NODE_ID_IN_USE') throw err;
    await new Promise((r) => setTimeout(r, 200));
  }
}

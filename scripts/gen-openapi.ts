/** Writes docs/openapi.json from the server's route schemas (run: npx tsx scripts/gen-openapi.ts). */
import { writeFileSync } from 'node:fs';
import { silentLogger } from '../src/core/logger.js';
import { buildServer } from '../src/http/server.js';
import { Rota } from '../src/index.js';

const rota = await Rota.connect({ store: 'memory:openapi', logger: silentLogger });
const { app } = await buildServer(rota);
writeFileSync(
  new URL('../docs/openapi.json', import.meta.url),
  `${JSON.stringify(app.swagger(), null, 2)}\n`,
);
await app.close();
await rota.close();

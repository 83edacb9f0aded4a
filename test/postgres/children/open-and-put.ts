/**
 * Child process of migrations.test.ts: open `count` stores on a schema at once (each migrating it
 * if needed), write one key from each, close. Arguments: url schema name count.
 */
import { openStore } from '../../../src/store/open.js';

const [url, schema, name, count] = process.argv.slice(2) as [string, string, string, string];
await Promise.all(
  Array.from({ length: Number(count) }, async (_, i) => {
    const store = await openStore(url, { schema, poolSize: 1 });
    await store.put(`proc/${name}.${i}`, new TextEncoder().encode(`${name}.${i}`));
    await store.close();
  }),
);
process.stdout.write('ok\n');

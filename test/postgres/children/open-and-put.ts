/**
 * Child process of migrations.test.ts: open the store on a schema (migrating it if needed), write
 * one key, close. Arguments: url schema name.
 */
import { openStore } from '../../../src/store/open.js';

const [url, schema, name] = process.argv.slice(2) as [string, string, string];
const store = await openStore(url, { schema, poolSize: 1 });
await store.put(`proc/${name}`, new TextEncoder().encode(name));
await store.close();
process.stdout.write('ok\n');

/** etcd store: three processes claiming from one queue complete every item exactly once. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { dropEtcdPrefix } from '../../src/store/etcd/index.js';
import { openStore } from '../../src/store/open.js';

const run = promisify(execFile);
const url = process.env.ROTA_TEST_ETCD_URL;

describe('etcd store across processes', { skip: !url && 'set ROTA_TEST_ETCD_URL', timeout: 60_000 }, () => {
  it('three worker processes complete 120 items, each exactly once', async () => {
    const prefix = `rota-test/${randomUUID()}/`;
    const store = await openStore(url as string, { prefix });
    try {
      const ids = Array.from({ length: 120 }, (_, i) => `mp${i}`);
      await store.enqueue(ids.map((id) => ({ id, queue: 'mp', payload: '{}' })));
      const worker = join(import.meta.dirname, 'support', 'claim-worker.ts');
      const outputs = await Promise.all(
        ['p1', 'p2', 'p3'].map((owner) =>
          run(process.execPath, ['--import', 'tsx', worker, url as string, prefix, 'mp', owner], {
            timeout: 50_000,
          }),
        ),
      );
      const done = outputs.flatMap((o) => JSON.parse(o.stdout) as string[]);
      assert.equal(done.length, ids.length, 'every completion was accepted once');
      assert.deepEqual([...new Set(done)].sort(), [...ids].sort());
      assert.equal((await store.countItems('mp')).mp?.completed, 120);
    } finally {
      await store.close();
      await dropEtcdPrefix(url as string, prefix);
    }
  });
});

/** PostgreSQL store: versioned migrations under an advisory lock; a newer schema is refused. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isRotaError } from '../../src/errors.js';
import { dec, enc } from '../../src/store/conformance/helpers.js';
import { openStore } from '../../src/store/open.js';
import { newItemJson } from '../../src/store/postgres/queue-rows.js';
import { migrationText, migrationVersions, query } from '../../src/store/postgres/sql.js';
import { dropPostgresSchema, testSchema } from '../support/stores.js';
import { admin, needsServer, PG_URL, rawClient, withSchema } from './helpers.js';

/** How clients before schema version 3 called enqueue (the function takes jsonb there). */
const OLD_ENQUEUE = 'SELECT r_ord, r_id, r_seq, r_status, r_queue FROM q_enqueue($1::jsonb)';

const child = fileURLToPath(new URL('./children/open-and-put.ts', import.meta.url));

function run(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('error', reject);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe('postgres migrations', needsServer, () => {
  // Two processes with four clients each: eight sessions race on the fresh schema. (More processes
  // would only add node start-up work; each client is its own server session either way.)
  it('8 clients in 2 processes opening a fresh schema at once migrate it exactly once', {
    timeout: 60_000,
  }, async () => {
    const url = PG_URL as string;
    const schema = testSchema();
    try {
      const results = await Promise.all(
        Array.from({ length: 2 }, (_, i) => run([url, schema, `p${i}`, '4'])),
      );
      for (const r of results) assert.equal(r.code, 0, r.out);
      const versions = await admin<{ version: number }>(
        `SELECT version FROM "${schema}".schema_versions ORDER BY version`,
      );
      assert.deepEqual(
        versions.map((v) => v.version),
        migrationVersions(),
      );
      const store = await openStore(url, { schema, poolSize: 1 });
      try {
        const keys = (await store.range('proc/')).kvs.map((kv) => dec(kv.value));
        assert.deepEqual(keys.sort(), ['p0.0', 'p0.1', 'p0.2', 'p0.3', 'p1.0', 'p1.1', 'p1.2', 'p1.3']);
      } finally {
        await store.close();
      }
    } finally {
      await dropPostgresSchema(url, schema);
    }
  });

  it('8 clients of one process opening a fresh schema at once all work', async () => {
    await withSchema(async (open, schema) => {
      const stores = await Promise.all(Array.from({ length: 8 }, () => open({ poolSize: 1 })));
      await Promise.all(stores.map((s, i) => s.put(`c/${i}`, enc(String(i)))));
      assert.equal((await stores[0]!.range('c/')).kvs.length, 8);
      const rows = await admin<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".schema_versions`);
      assert.equal(rows[0]?.n, migrationVersions().length);
    });
  });

  it('a schema newer than the code is ROTA_SCHEMA_TOO_NEW and is left untouched', async () => {
    await withSchema(async (open, schema) => {
      const first = await open();
      await first.put('keep', enc('me'));
      await admin(`INSERT INTO "${schema}".schema_versions (version) VALUES (999)`);
      let error: unknown;
      try {
        await open();
      } catch (err) {
        error = err;
      }
      assert.ok(isRotaError(error, 'ROTA_SCHEMA_TOO_NEW'), `got ${String(error)}`);
      assert.equal(error.detail.version, 999);
      assert.equal(error.detail.schema, schema);
      assert.equal(dec((await first.get('keep')).kv?.value ?? enc('')), 'me');
    });
  });

  it('a schema at version 1 with queue items is upgraded, and claims restricted to ids work', async () => {
    await withSchema(async (open, schema) => {
      // Version 1 as a release without migration 2 left it, with an item enqueued by its functions.
      await admin(`CREATE SCHEMA "${schema}"`);
      const client = await rawClient(schema);
      try {
        await client.query(query('schema-versions-table'));
        await client.query(migrationText(1));
        await client.query(query('schema-version-add'), [1]);
        await client.query(OLD_ENQUEUE, [
          JSON.stringify([newItemJson({ id: 'old', queue: 'q', payload: '1' }, 0)]),
        ]);
      } finally {
        await client.end();
      }
      const store = await open();
      const versions = await admin<{ version: number }>(
        `SELECT version FROM "${schema}".schema_versions ORDER BY version`,
      );
      assert.deepEqual(
        versions.map((v) => v.version),
        migrationVersions(),
      );
      assert.ok(migrationVersions().includes(2));
      const claimed = await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000, ids: ['old'] });
      assert.deepEqual(
        claimed.items.map((i) => [i.id, i.state, i.owner]),
        [['old', 'claimed', 'w']],
      );
    });
  });

  it('a schema at version 2 with queue items is upgraded, and enqueue keeps its answers', async () => {
    await withSchema(async (open, schema) => {
      // Versions 1 and 2 as the release before migration 3 left them, with items enqueued by
      // version 1's q_enqueue.
      await admin(`CREATE SCHEMA "${schema}"`);
      const client = await rawClient(schema);
      try {
        await client.query(query('schema-versions-table'));
        for (const version of [1, 2]) {
          await client.query(migrationText(version));
          await client.query(query('schema-version-add'), [version]);
        }
        await client.query(OLD_ENQUEUE, [
          JSON.stringify([
            newItemJson({ id: 'kept', queue: 'q', payload: '1', opId: 'op-1' }, 0),
            newItemJson({ id: 'gone', queue: 'q', payload: '2' }, 1),
          ]),
        ]);
      } finally {
        await client.end();
      }
      const store = await open();
      assert.deepEqual(
        (
          await admin<{ version: number }>(`SELECT version FROM "${schema}".schema_versions ORDER BY version`)
        ).map((v) => v.version),
        migrationVersions(),
      );
      const kept = await store.getItem('kept');
      assert.ok(kept);
      // 'gone' becomes a tombstone: cancelled, claimed for resolution, resolved.
      await store.settle([{ op: 'cancel', id: 'gone' }]);
      const resolving = await store.claim({
        queue: 'q',
        owner: 'r',
        limit: 1,
        leaseTtl: 30_000,
        from: 'completed',
        ids: ['gone'],
      });
      const token = resolving.items[0]?.token as number;
      assert.deepEqual(await store.settle([{ op: 'resolve', id: 'gone', token, owner: 'r' }]), [
        { id: 'gone', status: 'ok', state: null, outcome: null },
      ]);

      // The same opId is an ambiguous retry: created, with the stored seq.
      const retry = await store.enqueue([{ id: 'kept', queue: 'q', payload: '1', opId: 'op-1' }]);
      assert.deepEqual(retry, [{ id: 'kept', seq: kept.seq, status: 'created' }]);
      // Another operation's id, or an id twice in one batch: the whole batch fails.
      for (const batch of [
        [
          { id: 'fresh', queue: 'q', payload: '3' },
          { id: 'kept', queue: 'q', payload: '1', opId: 'op-2' },
        ],
        [
          { id: 'twice', queue: 'q', payload: '4' },
          { id: 'twice', queue: 'q', payload: '5' },
        ],
      ]) {
        await assert.rejects(
          store.enqueue(batch),
          (err) => isRotaError(err) && err.code === 'ROTA_TASK_EXISTS',
        );
      }
      assert.equal(await store.getItem('fresh'), null);
      // A tombstone's id is reused, in batch order with a new one.
      const created = await store.enqueue([
        { id: 'gone', queue: 'q', payload: '6' },
        { id: 'fresh', queue: 'q', payload: '7' },
      ]);
      assert.deepEqual(
        created.map((r) => [r.id, r.status]),
        [
          ['gone', 'created'],
          ['fresh', 'created'],
        ],
      );
      assert.ok((created[0]?.seq as number) > kept.seq);
      assert.equal((created[1]?.seq as number) - (created[0]?.seq as number), 1);
      assert.deepEqual(
        [(await store.getItem('gone'))?.state, (await store.getItem('gone'))?.payload],
        ['pending', '6'],
      );
    });
  });

  it('version 4: every index of items that leads with queue is partial; per-queue counts and feed still answer', async () => {
    await withSchema(async (open, schema) => {
      const store = await open();
      // An index on (queue, …) for all rows is one a claim's `queue = $1` can pick when the
      // statistics of a fresh queue are stale, reading the whole queue per claim (migration 4).
      const indexes = await admin<{ name: string; def: string }>(
        `SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE schemaname = $1 AND tablename = 'items'`,
        [schema],
      );
      const byQueue = indexes.filter((i) => /\(queue\b/.test(i.def));
      assert.ok(byQueue.some((i) => i.name === 'items_claim'));
      for (const i of byQueue) assert.match(i.def, / WHERE /, `${i.name} covers every row: ${i.def}`);
      assert.ok(!indexes.some((i) => i.name === 'items_queue_feed' || i.name === 'items_lease_expiry'));

      const now = await store.now();
      const start = (await store.changes({ after: 0 })).cursor;
      await store.enqueue([
        { id: 'ready-1', queue: 'q', payload: '1' },
        { id: 'ready-2', queue: 'q', payload: '2' },
        { id: 'ready-3', queue: 'q', payload: '3' },
        { id: 'later', queue: 'q', payload: '4', runAt: now + 3_600_000 },
        { id: 'other', queue: 'other', payload: '5' },
      ]);
      const [running] = (
        await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000, start: true })
      ).items;
      const [claimed] = (await store.claim({ queue: 'q', owner: 'w', limit: 1, leaseTtl: 30_000 })).items;
      assert.ok(running && claimed);
      await store.settle([
        { op: 'complete', id: running.id, token: running.token as number, owner: 'w', result: null },
      ]);
      const expected = { pending: 2, claimed: 1, running: 0, completed: 1, resolving: 0 };
      assert.deepEqual(await store.countItems('q'), { q: expected });
      assert.deepEqual(await store.countItems(), {
        q: expected,
        other: { pending: 1, claimed: 0, running: 0, completed: 0, resolving: 0 },
      });
      assert.deepEqual(await store.countItems('empty'), {
        empty: { pending: 0, claimed: 0, running: 0, completed: 0, resolving: 0 },
      });
      const feed = await store.changes({ after: start, queue: 'q' });
      assert.deepEqual(feed.items.map((i) => i.id).sort(), ['later', 'ready-1', 'ready-2', 'ready-3']);
      assert.deepEqual(
        (await store.changes({ after: start, queue: 'other' })).items.map((i) => i.id),
        ['other'],
      );
    });
  });

  it('re-opening an up-to-date schema keeps its data', async () => {
    await withSchema(async (open) => {
      const a = await open();
      await a.put('k', enc('v'));
      const b = await open();
      assert.equal(dec((await b.get('k')).kv?.value ?? enc('')), 'v');
    });
  });
});

/**
 * The hot statements read by index, never by scanning a table or sorting: that is what keeps claim,
 * settle, expiry and feed costs independent of queue depth and history length.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { openStore } from '../../src/store/open.js';
import { sqliteUrl } from '../../src/store/sqlite/index.js';
import * as items from '../../src/store/sqlite/sql/items.js';
import * as kv from '../../src/store/sqlite/sql/kv.js';
import * as leases from '../../src/store/sqlite/sql/leases.js';
import { tempDir } from './support.js';

const HOT: Record<string, string> = {
  READY_HEAD: items.READY_HEAD,
  PROMOTE_DUE: items.PROMOTE_DUE,
  QUEUE_EXPIRED_LEASES: items.QUEUE_EXPIRED_LEASES,
  COMPLETED_HEAD: items.COMPLETED_HEAD,
  NEXT_DELAYED: items.NEXT_DELAYED,
  NEXT_LEASE_EXPIRY: items.NEXT_LEASE_EXPIRY,
  GET_ITEM: items.GET_ITEM,
  DEDUP_HOLDER: items.DEDUP_HOLDER,
  FEED_ALL: items.FEED_ALL,
  FEED_QUEUE: items.FEED_QUEUE,
  WOKEN_QUEUES: items.WOKEN_QUEUES,
  LIST_QUEUE: items.LIST_QUEUE,
  SWEEP_EXPIRED_LEASES: items.SWEEP_EXPIRED_LEASES,
  SWEEP_UNSTARTED: items.SWEEP_UNSTARTED,
  SWEEP_TIMED_OUT: items.SWEEP_TIMED_OUT,
  SWEEP_UNCLAIMED: items.SWEEP_UNCLAIMED,
  SWEEP_EXPIRED_RETENTION: items.SWEEP_EXPIRED_RETENTION,
  SWEEP_TOMBSTONES: items.SWEEP_TOMBSTONES,
  UPDATE_CLAIM: items.updateItemSql(['state', 'owner', 'token', 'lease_expires_at', 'change_seq']),
  GET_KEY: kv.GET_KEY,
  RANGE_BOUNDED: kv.RANGE_BOUNDED,
  EVENTS_AFTER: kv.EVENTS_AFTER,
  COMPACT_HISTORY: kv.COMPACT_HISTORY,
  DUE_LEASES: leases.DUE_LEASES,
  EARLIEST_LEASE_EXPIRY: leases.EARLIEST_LEASE_EXPIRY,
  LEASE_KEYS: leases.LEASE_KEYS,
};

describe('sqlite: query plans', () => {
  it('every hot statement is an index search without a full scan or a sort', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'plans.db');
      const store = await openStore(sqliteUrl(path));
      await store.enqueue(
        Array.from({ length: 200 }, (_, i) => ({ id: `i${i}`, queue: `q${i % 4}`, payload: '1' })),
      );
      await store.close();
      const db = new Database(path, { readonly: true });
      try {
        for (const [name, sql] of Object.entries(HOT)) {
          const named = [...new Set([...sql.matchAll(/@(\w+)/g)].map((m) => m[1] as string))];
          const positional = (sql.match(/\?/g) ?? []).length;
          const stmt = db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
          const rows = (
            named.length > 0
              ? stmt.all(Object.fromEntries(named.map((n) => [n, 1])))
              : stmt.all(...Array(positional).fill(1))
          ) as { detail: string }[];
          const plan = rows.map((r) => r.detail).join(' | ');
          assert.match(plan, /^(SEARCH|USE TEMP B-TREE FOR DISTINCT)/, `${name}: ${plan}`);
          assert.doesNotMatch(plan, /\bSCAN\b/, `${name} scans: ${plan}`);
          assert.doesNotMatch(plan, /TEMP B-TREE FOR ORDER BY/, `${name} sorts: ${plan}`);
        }
      } finally {
        db.close();
      }
    } finally {
      cleanup();
    }
  });
});

/**
 * PostgreSQL schema version 7: a one-item enqueue to an idle worker of the same client inserts the
 * task claimed at once (one row version), instead of inserting it pending and claiming it. The row
 * and the answer must be what the general path (q_enqueue_items_claim) leaves, and every case the
 * general path decides differently must still go to it. Work is read from the transaction's own
 * statistics (pg_stat_xact_user_tables: rows inserted and updated), not from time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import type { NewItem } from '../../src/store/port.js';
import { newItemJson } from '../../src/store/postgres/queue-rows.js';
import { needsServer, rawClient, withSchema } from './helpers.js';

const DIRECT = 'SELECT * FROM q_enqueue_uniform_claim($1::text[], $2::text[], $3::json, $4, $5, $6, $7, $8)';
const GENERAL =
  'SELECT * FROM q_enqueue_items_claim(q_uniform_items($1::text[], $2::text[], $3::json), $4, $5, $6, $7, $8)';

interface Answer {
  rows: {
    r_ord: number | null;
    r_id: string | null;
    r_seq: string | null;
    r_status: string | null;
    r_item: Record<string, unknown> | null;
  }[];
  inserted: number;
  updated: number;
}

/** One enqueue with a parked claim (owner w, lease 30 s) in a transaction of its own. */
async function enqueueClaim(client: pg.Client, sql: string, item: NewItem, start = true): Promise<Answer> {
  const { id, payload, ...common } = newItemJson(item, 0);
  // The view also counts this session's earlier transactions until they are flushed: read it
  // before and after, inside the transaction (no flush happens in between).
  const counts = async () =>
    (
      await client.query(
        "SELECT n_tup_ins::int AS ins, n_tup_upd::int AS upd FROM pg_stat_xact_user_tables WHERE relid = 'items'::regclass",
      )
    ).rows[0] as { ins: number; upd: number };
  await client.query('BEGIN');
  try {
    const before = await counts();
    const res = await client.query(sql, [
      [id],
      [payload],
      JSON.stringify(common),
      item.queue,
      'w',
      1,
      30_000,
      start,
    ]);
    const after = await counts();
    await client.query('COMMIT');
    return { rows: res.rows, inserted: after.ins - before.ins, updated: after.upd - before.upd };
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

/**
 * A claimed row with what differs between two enqueues (ids, queues, seqs, times) taken out: times
 * of the claim relative to claimedAt, of the enqueue to createdAt (the general path reads the clock
 * twice, so claimedAt - createdAt may be a millisecond or two there).
 */
function shape(row: Record<string, unknown>): Record<string, unknown> {
  const created = row.created_at as number;
  const claimed = row.claimed_at as number;
  const rel = (k: string, t: number) => (row[k] === null ? null : (row[k] as number) - t);
  const { id: _id, queue: _q, seq: _s, token: _t, change_xid: _x, op_id: _o, ...rest } = row;
  assert.ok(claimed >= created && claimed - created < 1000, 'claimed at enqueue time');
  return {
    ...rest,
    created_at: 0,
    run_at: rel('run_at', created),
    claimed_at: 0,
    updated_at: rel('updated_at', claimed),
    started_at: rel('started_at', claimed),
    lease_expires_at: rel('lease_expires_at', claimed),
  };
}

describe('postgres one-item hand-off (schema version 7)', needsServer, () => {
  it('inserts the task claimed: the row and answer of the general path, in one row version', async () => {
    await withSchema(async (open, schema) => {
      await open();
      const client = await rawClient(schema);
      try {
        const item = (id: string, queue: string): NewItem => ({
          id,
          queue,
          payload: '{"n":1}',
          priority: 3,
          maxAttempts: 4,
          timeout: 5_000,
          claimTimeout: 1_000,
          meta: '{"tags":["x"]}',
          opId: `op-${id}`,
        });
        for (const start of [true, false]) {
          const direct = await enqueueClaim(client, DIRECT, item(`d-${start}`, `qd-${start}`), start);
          const general = await enqueueClaim(client, GENERAL, item(`g-${start}`, `qg-${start}`), start);
          assert.deepEqual([direct.inserted, direct.updated], [1, 0], 'one insert, no update');
          assert.deepEqual(
            [general.inserted, general.updated],
            [1, 1],
            'the general path: insert, then claim',
          );
          for (const a of [direct, general]) {
            assert.equal(a.rows.length, 2);
            const [answer, claimed] = a.rows;
            assert.equal(answer?.r_ord, 1);
            assert.equal(answer?.r_status, 'created');
            assert.equal(answer?.r_item, null);
            assert.equal(claimed?.r_ord, null);
            assert.equal(claimed?.r_item?.id, answer?.r_id);
            assert.equal(String(claimed?.r_item?.seq), answer?.r_seq);
            assert.ok((claimed?.r_item?.token as number) > 0);
          }
          const d = direct.rows[1]?.r_item as Record<string, unknown>;
          const g = general.rows[1]?.r_item as Record<string, unknown>;
          assert.deepEqual(shape(d), shape(g));
          assert.equal(d.state, start ? 'running' : 'claimed');
          // What is stored is what was answered.
          const stored = await client.query('SELECT row_to_json(i) AS r FROM items i WHERE id = $1', [d.id]);
          assert.deepEqual(stored.rows[0]?.r, d);
        }
      } finally {
        await client.end();
      }
    });
  });

  it('leaves to the general path whatever it would decide differently', async () => {
    await withSchema(async (open, schema) => {
      const store = await open();
      const client = await rawClient(schema);
      try {
        const one = (id: string, queue: string, extra: Partial<NewItem> = {}): NewItem => ({
          id,
          queue,
          payload: '1',
          opId: `op-${id}`,
          ...extra,
        });
        // A ready task already waits: the claim takes it (claim order), not the new one.
        await store.enqueue([one('waiting', 'ready')]);
        const ready = await enqueueClaim(client, DIRECT, one('new', 'ready'));
        assert.equal(ready.rows[1]?.r_item?.id, 'waiting');
        assert.equal(ready.updated, 1);

        // A delayed task that came due: q_claim promotes and takes it.
        await store.enqueue([one('due', 'delayed', { delay: 60_000 })]);
        await client.query("UPDATE items SET run_at = run_at - 120000 WHERE id = 'due'");
        const due = await enqueueClaim(client, DIRECT, one('after-due', 'delayed'));
        assert.equal(due.rows[1]?.r_item?.id, 'due');

        // An expired lease in the queue: q_claim expires it first (an update) before it claims.
        await store.enqueue([one('lost', 'expired')]);
        await store.claim({ queue: 'expired', owner: 'gone', limit: 1, leaseTtl: 30_000, start: false });
        await client.query("UPDATE items SET lease_expires_at = 0 WHERE id = 'lost'");
        const expired = await enqueueClaim(client, DIRECT, one('after-lost', 'expired'));
        assert.equal(expired.updated, 2, 'the expiry and the claim');
        assert.notEqual((await store.getItem('lost'))?.owner, 'gone');

        // Delayed, dedup key: no direct claim.
        const later = await enqueueClaim(client, DIRECT, one('later', 'later', { delay: 60_000 }));
        assert.deepEqual(
          later.rows.map((r) => [r.r_id, r.r_status, r.r_item]),
          [['later', 'created', null]],
        );
        const keyed = await enqueueClaim(client, DIRECT, one('keyed', 'keyed', { dedup: { key: 'k' } }));
        assert.equal(keyed.rows[1]?.r_item?.id, 'keyed');
        assert.equal(keyed.updated, 1, 'the general path claimed it');

        // The id is taken by the same operation (an ambiguous retry): answered as stored, once.
        const first = await enqueueClaim(client, DIRECT, one('retry', 'retry'));
        const again = await enqueueClaim(client, DIRECT, one('retry', 'retry'));
        assert.deepEqual(
          again.rows.slice(0, 1).map((r) => [r.r_id, r.r_seq, r.r_status]),
          [['retry', first.rows[0]?.r_seq, 'created']],
        );
        assert.equal((await store.getItem('retry'))?.state, 'running');
        // Taken by another operation: the general path's error.
        await assert.rejects(
          enqueueClaim(client, DIRECT, one('retry', 'retry', { opId: 'other' })),
          /exists/i,
        );
      } finally {
        await client.end();
      }
    });
  });
});

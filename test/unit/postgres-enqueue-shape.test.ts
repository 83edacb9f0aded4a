/** PostgreSQL enqueue: which batches go as id and payload arrays plus one shared record. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NewItem } from '../../src/store/port.js';
import { newItemJson, uniformFields } from '../../src/store/postgres/queue-rows.js';

const records = (items: NewItem[]) => items.map(newItemJson);

describe('postgres enqueue batch shape', () => {
  it('items alike but for id and payload share one record, without id and payload', () => {
    const common = uniformFields(
      records([
        { id: 'a', queue: 'q', payload: '1', priority: 5, opId: 'op' },
        { id: 'b', queue: 'q', payload: '2', priority: 5, opId: 'op' },
      ]),
    );
    assert.ok(common);
    assert.equal('id' in common || 'payload' in common, false);
    assert.equal(common.queue, 'q');
    assert.equal(common.priority, 5);
    assert.equal(common.op_id, 'op');
    assert.equal(common.max_attempts, 3);
    assert.equal(common.run_at, null);
  });

  it('one item is a batch of its own shape', () => {
    assert.equal(uniformFields(records([{ id: 'a', queue: 'q', payload: '1' }]))?.queue, 'q');
  });

  it('any other field that differs, or an empty batch, has no shared record', () => {
    const base: NewItem = { id: 'a', queue: 'q', payload: '1' };
    for (const other of [
      { queue: 'r' },
      { priority: 1 },
      { runAt: 5 },
      { delay: 10 },
      { maxAttempts: 1 },
      { opId: 'op' },
      { meta: '{}' },
      { dedup: { key: 'k' } },
    ] as Partial<NewItem>[]) {
      assert.equal(
        uniformFields(records([base, { ...base, id: 'b', ...other }])),
        null,
        JSON.stringify(other),
      );
    }
    assert.equal(uniformFields([]), null);
  });
});

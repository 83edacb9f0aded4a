/** The gocron-style test doubles of rota/testing. */
import { describe, it } from 'node:test';
import { fakeElector, fakeLocker } from '../../src/testing/index.js';
import { assert, rejectsWith } from '../support/scenarios.js';

describe('fakeElector and fakeLocker', () => {
  it('fakeElector answers from its script and records calls; a throwing script counts as false', async () => {
    const seq = fakeElector([false, true]);
    assert.deepEqual([await seq.isLeader(), await seq.isLeader(), await seq.isLeader()], [false, true, true]);
    assert.equal(seq.calls, 3);
    seq.setLeader(false);
    assert.equal(await seq.isLeader(), false);
    const broken = fakeElector(() => {
      throw new Error('down');
    });
    assert.equal(await broken.isLeader(), false);
  });

  it('fakeLocker grants increasing tokens, refuses held or busy keys, records calls and releases', async () => {
    const locker = fakeLocker();
    const a = await locker.lock('job@1');
    await rejectsWith(locker.lock('job@1'), 'ROTA_LOCK_BUSY');
    const b = await locker.lock('job@2');
    assert.ok(b.token > a.token);
    await a.release();
    await a.release();
    assert.deepEqual(locker.released, ['job@1']);
    locker.setBusy((key) => key.startsWith('x'));
    await rejectsWith(locker.lock('x1'), 'ROTA_LOCK_BUSY');
    locker.lose('job@2');
    assert.equal((b.signal.reason as { code?: string }).code, 'ROTA_LOCK_LOST');
    assert.deepEqual(
      locker.calls.map((c) => [c.key, c.granted]),
      [
        ['job@1', true],
        ['job@1', false],
        ['job@2', true],
        ['x1', false],
      ],
    );
  });
});

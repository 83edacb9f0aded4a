/** schedules.md §2.3, §2.9: definitions, validation and runner options (SC-1 … SC-4, SC-22, SC-24, SC-27, SC-28, SC-30, SC-34, SC-45, SC-3). */
import { describe, it } from 'node:test';
import {
  allStores,
  assert,
  delay,
  rejectsWith,
  withManualCluster,
  withStoreCluster,
} from '../support/scenarios.js';
import { fakeLocker as fakeLockerForTests } from './fakes.js';
import { advance, HOUR, record, work } from './helpers.js';

allStores('schedules definitions', {
  'SC-3 registering the same definition on two nodes (and twice) keeps one definition and its nextRunAt':
    async (fixture) => {
      await withStoreCluster(fixture, { nodes: 2, nodeOptions: { sessionTtl: 5000 } }, async (cluster) => {
        const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
        const def = { name: 'j', every: 3_600_000, description: 'first' };
        const first = await a.rota.schedules.register(def);
        await delay(20);
        const [second, third] = await Promise.all([
          b.rota.schedules.register(def),
          a.rota.schedules.register(def),
        ]);
        assert.equal(second.nextRunAt, first.nextRunAt);
        assert.equal(third.nextRunAt, first.nextRunAt);
        const changed = await b.rota.schedules.register({ ...def, description: 'second' });
        assert.equal(changed.nextRunAt, first.nextRunAt, 'a description change keeps nextRunAt');
        const list = await a.rota.schedules.list();
        assert.equal(list.length, 1);
        assert.equal(list[0]?.description, 'second');
        assert.equal(list[0]?.nextRunAt, first.nextRunAt);
      });
    },

  'SC-45 a malformed cron for an existing name is rejected and leaves the stored definition alone': async (
    fixture,
  ) => {
    await withStoreCluster(fixture, { nodes: 1, nodeOptions: { sessionTtl: 5000 } }, async (cluster) => {
      const s = cluster.nodes[0]!.rota.schedules;
      const before = await s.register({ name: 'c', cron: '0 0 * * *' });
      const err = await rejectsWith(s.register({ name: 'c', cron: '0 0 32 * *' }), 'ROTA_INVALID_CRON');
      assert.equal(err.detail.reason, 'parse');
      await rejectsWith(s.register({ name: 'c', cron: '0 0 30 2 *' }), 'ROTA_INVALID_CRON');
      const after = await s.get('c');
      assert.deepEqual(after, before);
      assert.deepEqual(await s.runs('c'), []);
    });
  },
});

describe('schedules definitions (memory, manual clock)', () => {
  it('SC-1 start() defaults, custom values, and bad values', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const s = cluster.nodes[0]!.rota.schedules;
      for (const bad of [0, -1, '1m']) {
        for (const field of ['rescanInterval', 'monitorInterval', 'interruptThreshold']) {
          const err = await rejectsWith(s.start({ [field]: bad }), 'ROTA_INVALID_ARGUMENT');
          assert.equal(err.detail.field, field);
        }
      }
      await s.start();
      assert.equal(s.options.rescanInterval, 60_000);
      assert.equal(s.options.monitorInterval, 30_000);
      assert.equal(s.options.interruptThreshold, 300_000);
      await s.stop();
      await s.start({ rescanInterval: 1000, monitorInterval: 200, interruptThreshold: 900 });
      assert.deepEqual(
        [s.options.rescanInterval, s.options.monitorInterval, s.options.interruptThreshold],
        [1000, 200, 900],
      );
      await rejectsWith(
        s.start({ monitorInterval: 1000, interruptThreshold: 1500 }),
        'ROTA_INVALID_ARGUMENT',
      );
    });
  });

  it('SC-2 a missing name, a 600-byte name or no trigger is rejected and nothing is stored', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const s = cluster.nodes[0]!.rota.schedules;
      await rejectsWith(s.register({ every: 1000 } as never), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(s.register({ name: 'x'.repeat(600), every: 1000 }), 'ROTA_INVALID_ARGUMENT');
      const err = await rejectsWith(s.register({ name: 'j' }), 'ROTA_INVALID_TRIGGER');
      assert.equal(err.detail.field, 'trigger');
      await rejectsWith(s.register({ name: 'j', every: 1000, cron: '* * * * *' }), 'ROTA_INVALID_TRIGGER');
      assert.deepEqual(await s.list(), []);
      const { kvs } = await cluster.nodes[0]!.rota.store.range(
        cluster.nodes[0]!.rota.context.keys.prefix('schedules'),
      );
      assert.equal(kvs.length, 0);
    });
  });

  it('SC-4 pullForward only ever moves nextRunAt earlier', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const s = cluster.nodes[0]!.rota.schedules;
      const j = await s.register({ name: 'j', dynamic: { firstRunIn: 2 * HOUR } });
      const t0 = j.nextRunAt! - 2 * HOUR;
      assert.equal((await s.pullForward('j', HOUR)).nextRunAt, t0 + HOUR);
      assert.equal((await s.pullForward('j', 4 * HOUR)).nextRunAt, t0 + HOUR);
      await rejectsWith(s.pullForward('nope', 0), 'ROTA_SCHEDULE_NOT_FOUND');
      await rejectsWith(s.pullForward('', 0), 'ROTA_INVALID_ARGUMENT');
      await rejectsWith(s.pullForward('j', -1), 'ROTA_INVALID_ARGUMENT');
    });
  });

  it('SC-22 update changes the cadence from the next slot and keeps the run history', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      const started = record([node], 'run:started');
      await s.register({ name: 'j', every: 1000 }, () => undefined);
      await s.start();
      await advance(cluster, 3100);
      assert.equal(started.length, 3);
      const updated = await s.update('j', { every: 3000 });
      assert.deepEqual(updated.trigger, { kind: 'every', every: 3000, origin: null });
      await advance(cluster, 6000);
      const gaps = started.slice(3).map((e, i, all) => (i === 0 ? 0 : e.slotAt - all[i - 1]!.slotAt));
      assert.equal(started.length, 5, 'two more runs in 6 s');
      assert.deepEqual(gaps.slice(1), [3000]);
      assert.ok((await s.runs('j')).length >= 5, 'earlier run records remain');
      await rejectsWith(s.update('nope', { every: 5 }), 'ROTA_SCHEDULE_NOT_FOUND');
    });
  });

  it('SC-24 start → stop → start → close: runs resume, then the module is closed', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      let runs = 0;
      await s.register({ name: 'j', every: 100 }, () => {
        runs++;
      });
      await s.start();
      await advance(cluster, 350);
      await s.stop();
      const afterStop = runs;
      assert.ok(afterStop >= 3, `runs before stop: ${afterStop}`);
      await advance(cluster, 500);
      assert.equal(runs, afterStop, 'no run while stopped');
      await s.start();
      await advance(cluster, 350);
      assert.ok(runs > afterStop, 'runs resume after the second start');
      await s.close();
      await rejectsWith(s.list(), 'ROTA_CLOSED');
      await s.close();
    });
  });

  it('SC-27 every invalid input of the gocron matrix gets its code and detail.field, with no write', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const s = cluster.nodes[0]!.rota.schedules;
      const now = cluster.clock!.now();
      const cases: [Record<string, unknown>, string, string][] = [
        [{ cron: 'not a cron' }, 'ROTA_INVALID_CRON', 'cron'],
        [{ cron: '0 0 30 2 *' }, 'ROTA_INVALID_CRON', 'cron'],
        [{ cron: 'CRON_TZ=Nowhere/Land 0 9 * * *' }, 'ROTA_INVALID_CRON', 'cron'],
        [{ every: 0 }, 'ROTA_INVALID_TRIGGER', 'every'],
        [{ every: -1 }, 'ROTA_INVALID_TRIGGER', 'every'],
        [{ everyRandom: { min: 5, max: 5 } }, 'ROTA_INVALID_TRIGGER', 'everyRandom.max'],
        [{ everyRandom: { min: 0, max: 5 } }, 'ROTA_INVALID_TRIGGER', 'everyRandom.min'],
        [{ daily: { at: '24:00' } }, 'ROTA_INVALID_TRIGGER', 'daily.at[0].hour'],
        [{ daily: { at: { hour: 1, minute: 60 } } }, 'ROTA_INVALID_TRIGGER', 'daily.at[0].minute'],
        [{ daily: { at: [] } }, 'ROTA_INVALID_TRIGGER', 'daily.at'],
        [{ daily: { interval: 0, at: '10:00' } }, 'ROTA_INVALID_TRIGGER', 'daily.interval'],
        [{ weekly: { weekdays: [], at: '10:00' } }, 'ROTA_INVALID_TRIGGER', 'weekly.weekdays'],
        [{ weekly: { weekdays: [7], at: '10:00' } }, 'ROTA_INVALID_TRIGGER', 'weekly.weekdays[0]'],
        [{ monthly: { days: [0], at: '10:00' } }, 'ROTA_INVALID_TRIGGER', 'monthly.days[0]'],
        [{ monthly: { days: [32], at: '10:00' } }, 'ROTA_INVALID_TRIGGER', 'monthly.days[0]'],
        [{ monthly: { days: [], at: '10:00' } }, 'ROTA_INVALID_TRIGGER', 'monthly.days'],
        [{ once: now - 1000 }, 'ROTA_INVALID_TRIGGER', 'once'],
        [{ once: [now - 2000, now - 1000] }, 'ROTA_INVALID_TRIGGER', 'once'],
        [{ every: 1000, startAt: now - 1000 }, 'ROTA_INVALID_ARGUMENT', 'startAt'],
        [{ every: 1000, startAt: now + 5000, stopAt: now + 4000 }, 'ROTA_INVALID_ARGUMENT', 'stopAt'],
        [{ every: 1000, stopAt: now - 1 }, 'ROTA_INVALID_ARGUMENT', 'stopAt'],
        [{ every: 1000, limitRuns: 0 }, 'ROTA_INVALID_ARGUMENT', 'limitRuns'],
        [{ every: 1000, hooks: { beforeRun: 'x' } }, 'ROTA_INVALID_ARGUMENT', 'hooks.beforeRun'],
        [{ every: 1000, timezone: 'Mars/Olympus' }, 'ROTA_INVALID_ARGUMENT', 'timezone'],
        [{ every: 1000, overlap: 'queue' }, 'ROTA_INVALID_ARGUMENT', 'overlap'],
        [{ every: 1000, locker: {} }, 'ROTA_INVALID_ARGUMENT', 'locker'],
        [{ every: 1000, description: 'd'.repeat(1025) }, 'ROTA_INVALID_ARGUMENT', 'description'],
      ];
      for (const [def, code, field] of cases) {
        const err = await rejectsWith(s.register({ name: 'bad', ...def } as never), code as never);
        assert.equal(err.detail.field, field, `${JSON.stringify(def)} → ${field}`);
      }
      const handlerErr = await rejectsWith(
        s.register({ name: 'bad', every: 1000 }, 'x' as never),
        'ROTA_INVALID_ARGUMENT',
      );
      assert.equal(handlerErr.detail.field, 'handler');
      assert.deepEqual(await s.list(), []);
      // A past entry in a list is dropped when another is in the future.
      const ok = await s.register({ name: 'ok', once: [now - 1000, now + 1000] });
      assert.equal(ok.nextRunAt, now + 1000);
    });
  });

  it('SC-28 bad start options: concurrency.limit 0, stopTimeout 0, elector {}, locker null', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const s = cluster.nodes[0]!.rota.schedules;
      const cases: [Record<string, unknown>, string][] = [
        [{ concurrency: { limit: 0 } }, 'concurrency.limit'],
        [{ stopTimeout: 0 }, 'stopTimeout'],
        [{ elector: {} }, 'elector'],
        [{ locker: null }, 'locker'],
        [{ claimLimit: 0 }, 'claimLimit'],
        [{ mode: 'some' }, 'mode'],
        [{ bogus: 1 }, 'options.bogus'],
      ];
      for (const [options, field] of cases) {
        const err = await rejectsWith(s.start(options as never), 'ROTA_INVALID_ARGUMENT');
        assert.equal(err.detail.field, field);
      }
      await s.start({ locker: fakeLockerForTests(() => true), concurrency: { limit: 2, mode: 'skip' } });
    });
  });

  it('SC-30 a one-time job runs once at its instant and is then exhausted', async () => {
    await withManualCluster({ nodes: 2 }, async (cluster) => {
      const t0 = cluster.clock!.now();
      const runs: number[] = [];
      for (const n of cluster.nodes) {
        await n.rota.schedules.register({ name: 'o', once: new Date(t0 + 10_000) }, (ctx) => {
          runs.push(ctx.slotAt);
        });
        await n.rota.schedules.start();
      }
      assert.equal((await cluster.nodes[0]!.rota.schedules.get('o')).nextRunAt, t0 + 10_000);
      await advance(cluster, 12_000, 100);
      assert.deepEqual(runs, [t0 + 10_000]);
      const info = await cluster.nodes[0]!.rota.schedules.get('o');
      assert.equal(info.state, 'exhausted');
      assert.equal(info.nextRunAt, null);
      assert.equal(info.lastRun?.slotAt, t0 + 10_000);
    });
  });

  it('SC-34 remove aborts a running run; unknown names fail; 1 000 removals; removeByTags from beforeRun skips the run', async () => {
    await withManualCluster({ nodes: 1 }, async (cluster) => {
      const node = cluster.nodes[0]!;
      const s = node.rota.schedules;
      let aborted: unknown = null;
      await s.register({ name: 'long', every: 1000 }, async (ctx) => {
        await work(node, 60_000, ctx.signal).catch(() => {
          aborted = ctx.signal.reason;
        });
      });
      let ran = false;
      await s.register(
        {
          name: 'self',
          every: 1000,
          tags: ['mine'],
          hooks: { beforeRun: () => s.removeByTags(['mine']).then(() => undefined) },
        },
        () => {
          ran = true;
        },
      );
      await s.start();
      await advance(cluster, 1100);
      await s.remove('long');
      await advance(cluster, 50);
      assert.equal((aborted as { code?: string } | null)?.code, 'ROTA_RUN_INTERRUPTED');
      assert.equal(ran, false, 'the run whose beforeRun removed its schedule was skipped');
      await rejectsWith(s.get('self'), 'ROTA_SCHEDULE_NOT_FOUND');
      await rejectsWith(s.remove('long'), 'ROTA_SCHEDULE_NOT_FOUND');
      await rejectsWith(s.remove('nope'), 'ROTA_SCHEDULE_NOT_FOUND');
      for (let i = 0; i < 1000; i += 100) {
        await Promise.all(
          Array.from({ length: 100 }, (_, k) =>
            s.register({ name: `bulk-${i + k}`, every: 3_600_000, tags: ['bulk'] }),
          ),
        );
      }
      assert.equal((await s.list()).length, 1000);
      assert.equal(await s.removeByTags(['bulk']), 1000);
      assert.deepEqual(await s.list(), []);
    });
  });
});
